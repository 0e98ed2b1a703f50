"""Comparison presets: each composes, sweeps existing keys, validates every job; end to end."""
from __future__ import annotations

import csv

import pytest
import yaml

from tests.experiments.conftest import ROOT, parent_and_children, run_train

CONF = ROOT / "conf"
PRESETS = ("gd_variants", "activations", "lr_tuning", "lr_schedules", "early_stopping",
           "optimizers", "rnn_vs_lstm", "feature_scaling", "boundaries", "deep_activations",
           "dead_units")
ABSENT = object()


def _compose(overrides: list[str], hydra_cfg: bool = False):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=hydra_cfg)


def _jobs(params: dict[str, str], extra: list[str] = ()) -> list[list[str]]:
    """The basic sweeper's cartesian product of the preset's sweep params."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(
        [f"{k}={v}" for k, v in params.items()] + list(extra))
    return [list(job) for job in BasicSweeper.split_arguments(parsed, None)[0]]


def test_the_presets_exist():
    found = {p.stem for p in (CONF / "experiment").glob("*.yaml")}
    assert found == set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes_and_sweeps_existing_keys(name):
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    text = (CONF / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    cfg = _compose([f"experiment={name}"], hydra_cfg=True)
    assert cfg.hydra.mode == RunMode.MULTIRUN
    assert cfg.mlflow.experiment_name == name
    assert isinstance(cfg.mlflow.description, str) and len(cfg.mlflow.description) > 20
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert params, "a preset sweeps something"
    choices = cfg.hydra.runtime.choices
    for key, values in params.items():
        if key in choices:  # a config group: every option must exist
            for value in str(values).split(","):
                assert (CONF / key / f"{value}.yaml").is_file(), (key, value)
        else:
            assert OmegaConf.select(cfg, key, default=ABSENT) is not ABSENT, key
    assert len(_jobs(params)) >= 2


@pytest.mark.parametrize("name", PRESETS)
def test_every_job_of_a_preset_validates(name):
    """Each job's config passes the harness's validation and builds its training objects."""
    from omegaconf import OmegaConf

    from experiments.config import validate

    params = OmegaConf.to_container(_compose([f"experiment={name}"], True).hydra.sweeper.params)
    configs = []
    for job in _jobs(params):
        cfg = _compose([f"experiment={name}", *job])
        validate(cfg)
        configs.append(OmegaConf.to_container(cfg, resolve=True))
        assert cfg.seed == 0  # every arm shares the seed: same split, init and batch order
    # the arms really differ from one another
    assert len({yaml.safe_dump(c) for c in configs}) == len(configs)


def test_presets_differ_from_the_defaults_in_what_they_claim():
    gd = _compose(["experiment=gd_variants"])
    assert gd.optimizer._target_.endswith("SGD") and gd.early_stopping.patience is None
    lr = _jobs(_compose(["experiment=lr_tuning"], True).hydra.sweeper.params)
    rates = sorted(float(job[0].split("=")[1]) for job in lr)
    assert rates[0] <= 1e-4 and rates[-1] >= 10  # crawls ... diverges
    sched = _compose(["experiment=lr_schedules"])
    assert sched.trainer.batch_size == 1 and sched.optimizer._target_.endswith("SGD")
    rnn = _compose(["experiment=rnn_vs_lstm"])
    assert rnn.dataset.name == "adding" and rnn.trainer.clip_grad_norm == 1.0
    assert rnn.optimizer._target_.endswith("Adam")
    scaling = _compose(["experiment=feature_scaling"], True)
    assert scaling.dataset.name == "wine" and scaling.trainer.batch_size == 1
    assert scaling.optimizer._target_.endswith("SGD")
    assert set(scaling.hydra.sweeper.params["dataset.scaling"].split(",")) == {
        "none", "standard", "minmax"}


def test_boundaries_preset_sweeps_activations_on_spirals():
    cfg = _compose(["experiment=boundaries"], True)
    assert cfg.dataset.name == "spirals" and cfg.model.kind == "mlp"
    acts = set(cfg.hydra.sweeper.params["model.activation"].split(","))
    assert {"sigmoid", "tanh", "relu", "leaky_relu", "elu", "swish"} <= acts


def test_seeds_on_the_command_line_repeat_every_arm():
    params = _compose(["experiment=optimizers"], True).hydra.sweeper.params
    jobs = _jobs(params, ["seed=0,1,2"])
    assert len(jobs) == 4 * 3
    arms = {tuple(o for o in job if not o.startswith("seed=")) for job in jobs}
    assert len(arms) == 4


# ------------------------------------------------------------------ end to end (subprocess)
SHORT = {
    "gd_variants": ["trainer.max_epochs=2"],
    "activations": ["trainer.max_epochs=2", "model.hidden=[16]"],
    "lr_tuning": ["trainer.max_epochs=3", "model.hidden=[16]"],
    "lr_schedules": ["trainer.max_epochs=2", "model.hidden=[8]"],
    "early_stopping": ["trainer.max_epochs=6", "model.hidden=[16]"],
    "optimizers": ["trainer.max_epochs=2", "model.hidden=[16]"],
    "rnn_vs_lstm": ["trainer.max_epochs=2", "dataset.n_samples=200", "model.hidden=8"],
    "boundaries": ["trainer.max_epochs=2", "dataset.n_samples=200", "model.hidden=[8]"],
    "feature_scaling": ["trainer.max_epochs=2", "optimizer.lr=0.001,0.1"],
    "deep_activations": ["trainer.max_epochs=2", "model.hidden=[8,8,8]"],
    "dead_units": ["trainer.max_epochs=2", "model.hidden=[16]"],
}


def test_layer_presets_set_up_what_they_claim():
    """deep_activations: a deep, narrow MLP, sigmoid and tanh against the ReLU family;
    dead_units: ReLU and its relievers at a normal and a too-large rate."""
    deep = _compose(["experiment=deep_activations"], True)
    assert len(deep.model.hidden) >= 6 and max(deep.model.hidden) <= 32
    acts = str(deep.hydra.sweeper.params["model.activation"]).split(",")
    assert {"sigmoid", "tanh", "relu"} <= set(acts)
    dead = _compose(["experiment=dead_units"], True)
    params = dead.hydra.sweeper.params
    assert set(str(params["model.activation"]).split(",")) == {"relu", "leaky_relu", "elu",
                                                               "prelu"}
    rates = [float(v) for v in str(params["optimizer.lr"]).split(",")]
    assert min(rates) <= dead.optimizer.lr < max(rates) / 10
    for cfg in (deep, dead, _compose(["experiment=activations"])):
        assert cfg.trainer.probe_rows >= 256  # dead units counted on enough rows


def _expected_jobs(name: str, extra: list[str]) -> list[list[str]]:
    params = _compose([f"experiment={name}"], True).hydra.sweeper.params
    return _jobs(params, [o for o in extra if "," in o])


def _check_sweep(client, name: str, n_jobs: int, n_arms: int, tmp_path):
    exp = client.get_experiment_by_name(name)
    assert exp is not None
    assert exp.tags.get("mlflow.note.content") == _compose([f"experiment={name}"]).mlflow \
        .description
    parent, children, runs = parent_and_children(client, name)
    assert parent.info.status == "FINISHED"
    assert len(children) == n_jobs == len(runs) - 1
    assert all(c.info.status == "FINISHED" and c.data.tags["ann.role"] == "child"
               for c in children)
    assert len({c.data.tags["ann.arm"] for c in children}) == n_arms
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/summary.csv", "report/summary.md", "report/comparison.png",
            "report/curves_vs_samples.png", "report/curves_vs_seconds.png"} <= arts
    local = client.download_artifacts(parent.info.run_id, "report/summary.csv", str(tmp_path))
    with open(local, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n_arms
    assert parent.data.tags["mlflow.note.content"].startswith("Best arm: ")
    assert f"{name}: " in parent.data.tags["mlflow.note.content"]
    return parent, rows


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS)
def test_preset_runs_end_to_end(name, tracking_uri, client, tmp_path):
    proc = run_train([f"experiment={name}", *SHORT[name]], tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _expected_jobs(name, SHORT[name])
    parent, rows = _check_sweep(client, name, len(jobs), len(jobs), tmp_path)
    if any(r["diverged"] == "false" for r in rows):
        assert parent.data.tags["best_arm"] in {r["arm"] for r in rows}
        assert "best_val_loss" in parent.data.metrics
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert ("report/gradient_flow.png" in arts) == (name == "rnn_vs_lstm"), arts
    assert "report/layer_diagnostics.png" in arts, arts  # every preset: probe_rows > 0
    if name in ("deep_activations", "dead_units"):  # what their descriptions promise
        assert all(r["grad_ratio_final"] and r["dead_fraction"] for r in rows), rows
    two_d = _compose([f"experiment={name}"]).dataset.name in ("moons", "circles", "spirals")
    assert ("report/decision_boundaries.png" in arts) == two_d, arts


@pytest.mark.slow
def test_preset_repeated_over_seeds_reports_mean_and_spread(tracking_uri, client, tmp_path):
    extra = ["seed=0,1", "trainer.max_epochs=2", "model.hidden=[16]"]
    proc = run_train(["experiment=optimizers", *extra], tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parent, rows = _check_sweep(client, "optimizers", 8, 4, tmp_path)
    assert all(r["n_seeds"] == "2" and r["best_val_loss_std"] != "" for r in rows)
    assert "±" in parent.data.tags["mlflow.note.content"]


@pytest.mark.slow
def test_unknown_preset_fails_before_anything_is_logged(tracking_uri, client, tmp_path):
    proc = run_train(["experiment=no_such_preset"], tracking_uri, tmp_path)
    assert proc.returncode != 0
    assert "no_such_preset" in proc.stderr
    assert all(not client.search_runs([e.experiment_id]) for e in client.search_experiments())


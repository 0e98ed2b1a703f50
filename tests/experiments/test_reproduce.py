"""reproduce.py: identical metrics from a logged config; changes in code, data or config seen."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from experiments.reproduce import check_targets, main, split_overrides, ReproduceError
from tests.experiments.conftest import ROOT, run_train

REPRODUCE = ROOT / "experiments" / "reproduce.py"
SMALL = ["dataset=iris", "trainer.max_epochs=3", "model.hidden=[8]", "early_stopping=off"]


@pytest.fixture
def logged_run(tracking_uri, client):
    """A tiny job logged in this process through the harness; returns its run id."""
    from hydra import compose, initialize_config_dir

    from experiments.runner import run_job

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=SMALL)
    outcome = run_job(cfg, overrides=SMALL, tracking_uri=tracking_uri)
    assert outcome.status == "FINISHED"
    return outcome.run_id


def _replace_config(client, run_id, tmp_path, edit):
    """Overwrite the run's config.yaml artifact with an edited copy."""
    local = Path(client.download_artifacts(run_id, "config.yaml", str(tmp_path / "dl")))
    data = yaml.safe_load(local.read_text())
    edit(data)
    path = tmp_path / "edited" / "config.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data))
    client.log_artifact(run_id, str(path))


def _n_runs(client, run_id):
    exp = client.get_run(run_id).info.experiment_id
    return len(client.search_runs([exp]))


def test_reproduction_in_a_fresh_process_is_identical(tracking_uri, client, tmp_path):
    proc = run_train(SMALL, tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr
    (exp,) = [e for e in client.search_experiments() if e.name == "ann"]
    (orig,) = client.search_runs([exp.experiment_id])
    proc = subprocess.run([sys.executable, str(REPRODUCE), orig.info.run_id,
                           "--tracking-uri", tracking_uri], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env={**os.environ, "CI": "true"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "identical at every step" in proc.stdout
    runs = client.search_runs([exp.experiment_id], filter_string=(
        f"tags.reproduced_from = '{orig.info.run_id}'"))
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    new = runs[0]
    for key in ("val_loss", "train_accuracy", "grad_norm"):
        hist = [(m.step, m.value) for m in client.get_metric_history(new.info.run_id, key)]
        assert sorted(hist) == sorted(
            (m.step, m.value) for m in client.get_metric_history(orig.info.run_id, key))
    assert new.data.params == orig.data.params
    assert new.data.tags["dataset_digest"] == orig.data.tags["dataset_digest"]


def test_a_different_code_version_is_reported(logged_run, client, tracking_uri, capsys):
    client.set_tag(logged_run, "mlflow.source.git.commit", "0" * 40)
    assert main([logged_run, "--tracking-uri", tracking_uri]) == 0  # metrics still match
    captured = capsys.readouterr()
    assert "code version differs" in captured.err and "0" * 40 in captured.err
    assert "identical" in captured.out


def test_different_data_is_a_difference(logged_run, client, tracking_uri, capsys):
    client.set_tag(logged_run, "dataset_digest", "not-the-digest-of-these-data")
    assert main([logged_run, "--tracking-uri", tracking_uri]) == 1
    captured = capsys.readouterr()
    assert "data differ" in captured.err
    assert "tag dataset_digest" in captured.out and "not-the-digest-of-these-data" in captured.out


def test_a_changed_config_gives_metric_differences(logged_run, client, tracking_uri, tmp_path,
                                                   capsys):
    def edit(cfg):
        cfg["optimizer"]["lr"] = cfg["optimizer"]["lr"] * 2

    _replace_config(client, logged_run, tmp_path, edit)
    assert main([logged_run, "--tracking-uri", tracking_uri]) == 1
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines()]
    val_loss = [parts for parts in lines if parts and parts[0] == "val_loss"]
    assert [parts[1] for parts in val_loss] == ["1", "2", "3"]  # every epoch differs
    assert not any(parts and parts[0] in ("epoch_seconds", "wall_seconds", "train_seconds")
                   for parts in lines)


@pytest.mark.parametrize("target", ["os.system", "subprocess.run", "ann.data.load_dataset",
                                    "ann.early_stopping.EarlyStopping"])  # the last: wrong group
def test_a_config_naming_a_foreign_target_is_refused(logged_run, client, tracking_uri,
                                                    tmp_path, capsys, target):
    def edit(cfg):
        cfg["optimizer"]["_target_"] = target

    _replace_config(client, logged_run, tmp_path, edit)
    n_before = _n_runs(client, logged_run)
    assert main([logged_run, "--tracking-uri", tracking_uri]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and target in err[0] and "not one of this project's" in err[0]
    assert _n_runs(client, logged_run) == n_before  # nothing ran, nothing logged


def test_check_targets_rejects_hidden_instantiation_keys():
    check_targets({"optimizer": {"_target_": "ann.optimizers.Adam", "lr": 0.1}})
    for bad in ({"model": {"_target_": "ann.optimizers.Adam"}},           # not a target group
                {"optimizer": {"inner": {"_target_": "ann.optimizers.Adam"}}},  # nested
                {"optimizer": {"_target_": "ann.optimizers.Adam", "_args_": ["x"]}},
                {"seed": "${oc.env:HOME}"}):
        with pytest.raises(ReproduceError):
            check_targets(bad)


def test_split_overrides_keeps_lists_whole():
    assert split_overrides("model.hidden=[8,4],optimizer.lr=0.1,x='a,b'") == [
        "model.hidden=[8,4]", "optimizer.lr=0.1", "x='a,b'"]
    assert split_overrides("") == []


def test_bad_input_exits_2_with_one_line(client, tracking_uri, tmp_path, capsys):
    bare = client.create_run(client.create_experiment(
        "bare", artifact_location=(tmp_path / "art").as_uri())).info.run_id  # no config.yaml
    cases = [([bare, "--tracking-uri", tracking_uri], "no readable config.yaml"),
             (["0123456789abcdef0123456789abcdef", "--tracking-uri", tracking_uri],
              "no run with id"),
             (["abc", "--tracking-uri", f"sqlite:///{tmp_path}/none/mlflow.db"],
              "no MLflow store"),
             (["../etc/passwd", "--tracking-uri", tracking_uri], "not an MLflow run id")]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (args, err)
    assert len(client.search_runs([client.get_experiment_by_name("bare").experiment_id])) == 1

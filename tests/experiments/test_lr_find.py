"""experiments/lr_find.py in a fresh process against a real SQLite store under tmp_path."""
from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.experiments.conftest import all_runs, parent_and_children, run_train, wait_until

ROOT = Path(__file__).resolve().parents[2]
LR_FIND = ROOT / "experiments" / "lr_find.py"
# lr_tuning's job (conf/experiment/lr_tuning.yaml) without its sweep
LR_TUNING_MODEL = ["optimizer=sgd", "schedule=constant", "early_stopping=off",
                   "model.hidden=[128,64]"]


def _command(args: list[str], tracking_uri: str, cwd: Path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "CI": "true"}
    return [sys.executable, str(LR_FIND), *args, f"hydra.run.dir={cwd}/outputs/lr_find"], env


def run_lr_find(args: list[str], tracking_uri: str, cwd: Path) -> subprocess.CompletedProcess:
    command, env = _command(args, tracking_uri, cwd)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _the_run(client, experiment: str = "lr_find"):
    runs = all_runs(client, experiment)
    assert len(runs) == 1, [r.data.tags.get("mlflow.runName") for r in runs]
    return runs[0]


def _series(client, run_id: str, key: str) -> np.ndarray:
    history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
    assert [m.step for m in history] == list(range(len(history)))
    return np.array([m.value for m in history])


def test_a_range_test_is_one_logged_run(tmp_path, tracking_uri, client):
    proc = run_lr_find(["lr_find.num_updates=120", "lr_find.min_lr=1e-5", "lr_find.max_lr=100"],
                       tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = _the_run(client)
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and run_id in lines[0] and "suggested_lr=" in lines[0]

    # the series: rate, loss, smoothed loss per update (step = update index)
    lrs = _series(client, run_id, "lr_find.lr")
    losses = _series(client, run_id, "lr_find.loss")
    smoothed = _series(client, run_id, "lr_find.smoothed_loss")
    n = len(lrs)
    assert 10 < n <= 120 and len(losses) == len(smoothed) == n
    assert run.data.metrics["lr_find.n_updates"] == n
    np.testing.assert_allclose(lrs, 1e-5 * (100 / 1e-5) ** (np.arange(n) / 119), rtol=1e-12)
    from ann.lr_finder import smooth, suggest_lr

    np.testing.assert_allclose(smoothed, smooth(losses, 0.98), rtol=1e-12)
    stop = run.data.tags["stop_reason"]
    assert stop in ("diverged", "num_updates", "non_finite")
    if stop == "diverged":  # the default job's Adam blows up long before a rate of 100
        assert smoothed[-1] > 4 * smoothed.min() and n < 120
    # the suggestion: the default rule (minimum / 10) applied to the logged curve
    expected, method = suggest_lr(lrs, smoothed, "minimum")
    assert run.data.metrics["suggested_lr"] == pytest.approx(expected, rel=1e-12)
    assert run.data.tags["ann.lr_find.method"] == method
    assert f"suggested_lr={expected:.3g}" in lines[0]
    assert run.data.tags["ann.lr_find.stopped"]
    assert run.data.tags["mlflow.source.name"] == "experiments/lr_find.py"
    assert run.data.tags["mlflow.runName"].startswith("lr_find: ")

    # params: the job and the test's settings, not what the test ignores
    params = run.data.params
    assert params["lr_find.num_updates"] == "120" and params["lr_find.suggestion"] == "minimum"
    assert params["optimizer"] == "adam" and params["model.hidden"] == "[256, 128]"
    assert not [k for k in params if k.startswith(("schedule", "early_stopping", "mlflow"))
                or k in ("optimizer.lr", "trainer.max_epochs")]
    assert [i.dataset.name for i in run.inputs.dataset_inputs] == [
        "digits-train", "digits-validation", "digits-test"]

    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "lr_find.csv", "lr_find.png"} <= artifacts
    table = Path(client.download_artifacts(run_id, "lr_find.csv", str(tmp_path)))
    with open(table) as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["loss"]) for r in rows] == losses.tolist()
    png = Path(client.download_artifacts(run_id, "lr_find.png", str(tmp_path)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("override, message", [
    ("lr_find.min_lr=0", "error: invalid config: lr_find.min_lr=0: must be a finite number > 0"),
    ("lr_find.max_lr=1e-9", "error: invalid config: lr_find.max_lr=1e-09: must be"),
    ("lr_find.num_updates=1", "error: invalid config: lr_find.num_updates=1: must be an integer"),
    ("lr_find.stop_factor=1", "error: invalid config: lr_find.stop_factor=1: must be a number > 1"),
    ("experiment=lr_tuning", "error: lr_find.py runs one range test, not a sweep: experiment="),
    ("-m", "error: lr_find.py runs one range test, not a sweep: -m is not allowed"),
])
def test_bad_input_is_one_line_before_any_run(tmp_path, tracking_uri, client, override, message):
    proc = run_lr_find([override], tracking_uri, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(message), proc.stderr
    assert all_runs(client) == []
    assert not (tmp_path / "outputs" / "lr_find").exists()  # no folder left behind either


def test_sigterm_ends_the_run_killed(tmp_path, tracking_uri, client):
    # per-sample updates at tiny rates that never blow up: long enough to be stopped
    command, env = _command(["gd=sgd", "lr_find.num_updates=10000000", "lr_find.max_lr=1e-4",
                             "lr_find.stop_factor=null"], tracking_uri, tmp_path)
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        def running():
            exp = client.get_experiment_by_name("lr_find")
            runs = client.search_runs([exp.experiment_id]) if exp else []
            return runs if runs and runs[0].data.tags.get("dataset_digest") else None

        wait_until(running, "a RUNNING range test", proc=proc, timeout=120)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err[-2000:]
    run = _the_run(client)
    assert run.info.status == "KILLED"
    assert err.strip() == f"interrupted (SIGTERM): run {run.info.run_id} KILLED"


def test_same_job_as_train_and_no_lr_find_key_in_train_params():
    from hydra import compose, initialize_config_dir

    from experiments.config import job_params
    from experiments.lr_find_run import UNUSED_KEYS, lr_find_params

    overrides = ["optimizer=momentum", "gd=sgd", "dataset=wine", "seed=3"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        train = job_params(compose("config", overrides=overrides))
        lr_find = lr_find_params(compose("lr_find", overrides=overrides))
    assert not [k for k in train if k.startswith("lr_find")]
    settings = {k for k in lr_find if k.startswith("lr_find.")}
    assert settings == {f"lr_find.{k}" for k in
                        ("min_lr", "max_lr", "num_updates", "stop_factor", "beta", "suggestion")}
    unused = {k for k in train if any(k == u or k.startswith(u + ".") for u in UNUSED_KEYS)}
    assert unused and {k: v for k, v in lr_find.items() if k not in settings} == {
        k: v for k, v in train.items() if k not in unused}


@pytest.mark.slow
def test_suggestion_for_plain_sgd_is_within_10x_of_lr_tunings_best_rate(tmp_path, tracking_uri,
                                                                        client):
    """The issue's acceptance check: the range test of lr_tuning's model against the best arm
    of the real lr_tuning sweep (10 epochs instead of 30: the ranking is the same)."""
    sweep = run_train(["experiment=lr_tuning", "trainer.max_epochs=10", "trainer.probe_rows=0"],
                      tracking_uri, tmp_path)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    parent, children, _ = parent_and_children(client, "lr_tuning")
    best = [c for c in children if c.data.tags["ann.arm"] == parent.data.tags["best_arm"]]
    assert len(best) == 1 and len(children) == 6
    best_lr = float(best[0].data.params["optimizer.lr"])

    proc = run_lr_find(LR_TUNING_MODEL, tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = _the_run(client)
    # the same job: every param the two runs share has the same value (but the rate)
    shared = set(run.data.params) & set(best[0].data.params)
    assert {"dataset.name", "model.hidden", "optimizer", "trainer.batch_size", "seed"} <= shared
    assert {k: run.data.params[k] for k in shared} == {k: best[0].data.params[k] for k in shared}
    suggested = run.data.metrics["suggested_lr"]
    assert best_lr / 10 <= suggested <= best_lr * 10, (suggested, best_lr)
    assert math.isfinite(run.data.metrics["lr_find.lr_at_min"])

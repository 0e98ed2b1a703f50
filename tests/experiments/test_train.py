"""End-to-end: experiments/train.py in a fresh process against a real SQLite store."""
from __future__ import annotations

import signal

import numpy as np
import pytest
import yaml

from tests.experiments.conftest import all_runs, run_train, started_train, wait_until


def test_single_run_logs_everything(tracking_uri, client, tmp_path):
    proc = run_train(["dataset=iris", "trainer.max_epochs=4", "early_stopping=off",
                      "model.hidden=[16]"], tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = all_runs(client)
    assert run.info.status == "FINISHED"
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == "ann"
    assert exp.artifact_location.startswith("file:///")  # absolute, not cwd-relative
    p, m, t = run.data.params, run.data.metrics, run.data.tags
    # every leaf of the resolved config is a param
    for key in ("seed", "dataset.name", "model.hidden", "optimizer.lr",
                "trainer.batch_size", "trainer.gd", "early_stopping.patience",
                "schedule", "optimizer", "model.n_params", "dataset.n_train"):
        assert key in p, key
    # where it logs, how it shows progress, how many threads: config.yaml, not params
    assert not [k for k in p if k.startswith("mlflow") or k.endswith("_target_")
                or k in ("trainer.progress", "trainer.blas_threads")], sorted(p)
    assert p["model.hidden"] == "[16]" and p["dataset.name"] == "iris"
    # per-epoch metrics, one value per epoch, steps 1..n
    for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr", "grad_norm",
                "epoch_seconds", "wall_seconds", "samples_seen"):
        hist = client.get_metric_history(run.info.run_id, key)
        assert [h.step for h in sorted(hist, key=lambda h: h.step)] == [1, 2, 3, 4], key
    seen = sorted(client.get_metric_history(run.info.run_id, "samples_seen"), key=lambda h: h.step)
    assert np.diff([h.value for h in seen]).tolist() == [seen[0].value] * 3
    for key in ("test_loss", "test_accuracy", "best_epoch", "best_val_loss", "stopped_epoch"):
        assert key in m, key
    assert m["stopped_epoch"] == 4
    for key in ("mlflow.source.git.commit", "git_dirty", "dataset_digest", "ann.overrides", "stop_reason",
                "diverged"):
        assert key in t, key
    assert t["stop_reason"] == "max_epochs" and t["diverged"] == "false"
    assert "trainer.max_epochs=4" in t["ann.overrides"]
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "learning_curves.png", "weights.npz", "history.csv"} <= arts
    local = client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))
    assert yaml.safe_load(open(local))["trainer"]["max_epochs"] == 4
    weights = np.load(client.download_artifacts(run.info.run_id, "weights.npz", str(tmp_path)))
    assert weights["0.W"].shape == (4, 16)  # iris: 4 features


def test_far_too_large_lr_is_a_diverged_run_not_a_crash(tracking_uri, client, tmp_path):
    proc = run_train(["dataset=iris", "optimizer=sgd", "optimizer.lr=1000",
                      "trainer.max_epochs=20", "early_stopping=off"], tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = all_runs(client)
    assert run.info.status == "FINISHED"
    assert run.data.tags["diverged"] == "true"
    assert run.data.tags["stop_reason"] == "diverged"
    assert run.data.metrics["stopped_epoch"] < 20


@pytest.mark.parametrize("override,needle", [
    ("optimizer.lr=-1", "optimizer.lr=-1"),
    ("trainer.batch_size=0", "trainer.batch_size=0"),
    ("model.hidden=[0]", "model.hidden=[0]"),
])
def test_bad_input_exits_nonzero_with_one_line_and_no_run(tracking_uri, client, tmp_path,
                                                          override, needle):
    proc = run_train([override], tracking_uri, tmp_path)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert all_runs(client) == []


def test_bad_value_in_a_sweep_stops_before_any_run(tracking_uri, client, tmp_path):
    proc = run_train(["-m", "dataset=iris", "optimizer.lr=0.1,-1"], tracking_uri, tmp_path)
    assert proc.returncode != 0
    assert "optimizer.lr=-1" in proc.stderr
    assert all_runs(client) == []


def test_sigterm_ends_the_run_killed_not_running(tracking_uri, client, tmp_path):
    with started_train(["trainer.max_epochs=1000", "early_stopping=off"], tracking_uri,
                       tmp_path) as proc:
        run = wait_until(lambda: next((r for r in all_runs(client) if
                                       client.get_metric_history(r.info.run_id, "val_loss")),
                                      None), "a run's first epoch", proc, every=0.5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode != 0
    assert client.get_run(run.info.run_id).info.status == "KILLED"


@pytest.mark.parametrize("args,needle", [
    (["optimizer.lrr=1"], "optimizer.lrr"),
    (["-m", "optimizer.lrr=1,2"], "optimizer.lrr"),
    (["model=transformer"], "available options in 'model': lstm, mlp, rnn"),
    (["experiment=no_such_preset"], "no_such_preset"),
    (["-m", "model=mlp,transformer"], "model/transformer"),
])
def test_bad_override_is_one_line_and_nothing_logged(tracking_uri, client, tmp_path, args,
                                                     needle):
    proc = run_train(args, tracking_uri, tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: invalid config:"), proc.stderr
    assert needle in lines[0]
    assert all_runs(client) == []

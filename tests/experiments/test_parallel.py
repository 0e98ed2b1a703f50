"""Parallel sweeps on one machine: many joblib workers, one SQLite store, nothing misfiled."""
from __future__ import annotations

import pytest

from experiments.tracking import TIMING_METRICS
from tests.experiments.conftest import all_runs, parent_and_children, run_train

pytestmark = pytest.mark.slow
TINY = ["dataset=iris", "model.hidden=[8]", "trainer.max_epochs=3"]


def _sweep(tmp_path, name: str, n_jobs: int, values: str, uri: str | None = None):
    """Run one joblib sweep into its own store; returns (client, experiment id, runs)."""
    folder = tmp_path / name
    folder.mkdir()
    uri = uri or f"sqlite:///{folder / 'mlflow.db'}"
    proc = run_train(["-m", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}", *TINY,
                      f"optimizer.lr={values}", "mlflow.experiment_name=parallel"], uri, folder)
    assert proc.returncode == 0, proc.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp_id = client.get_experiment_by_name("parallel").experiment_id
    return client, exp_id, all_runs(client)


def test_sixteen_jobs_four_workers_fresh_store_files_every_run(tmp_path):
    lrs = ",".join(f"{0.005 * (i + 1):.3f}" for i in range(16))
    # No database file yet: the sweep creates store and experiment once, before the jobs.
    client, exp_id, runs = _sweep(tmp_path, "fresh", 4, lrs)
    parent, children, _ = parent_and_children(client)
    assert len(runs) == 17 and len(children) == 16
    assert {r.info.experiment_id for r in runs} == {exp_id}  # none in another experiment
    assert {c.info.status for c in children} == {"FINISHED"}
    assert len({c.data.tags["ann.arm"] for c in children}) == 16
    assert parent.info.status == "FINISHED"
    for child in children:
        for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr",
                    "grad_norm", "epoch_seconds", "wall_seconds", "samples_seen"):
            history = client.get_metric_history(child.info.run_id, key)
            assert sorted(m.step for m in history) == [1, 2, 3], (key, child.data.tags)
        assert "test_accuracy" in child.data.metrics


def _histories(client, runs) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per arm: every non-timing metric's (step, value) history."""
    out = {}
    for run in runs:
        if run.data.tags.get("ann.role") != "child":
            continue
        out[run.data.tags["ann.arm"]] = {
            key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics if key not in TIMING_METRICS}
    return out


def test_one_and_two_workers_give_identical_metrics(tmp_path):
    lrs = "0.01,0.05,0.1,0.5"
    serial = _histories(*_sweep(tmp_path, "one", 1, lrs)[::2])
    parallel = _histories(*_sweep(tmp_path, "two", 2, lrs)[::2])
    assert len(serial) == 4 and set(serial) == set(parallel)
    assert all(len(metrics) > 10 for metrics in serial.values())
    assert serial == parallel

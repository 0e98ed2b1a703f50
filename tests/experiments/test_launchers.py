"""Cluster launchers: the submitit path (SLURM's) run locally through `submitit_local`.

Each job runs in its own submitit subprocess, reads `<sweep dir>/mlflow_sweep.json` and logs
a child of the sweep's parent run, as it would on a SLURM node with a shared file system.
"""
from __future__ import annotations

import pytest

from tests.experiments.conftest import run_train

pytestmark = pytest.mark.slow


def test_submitit_local_sweep_files_children_under_the_parent(tracking_uri, client, tmp_path):
    proc = run_train(["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                      "hydra.launcher.cpus_per_task=1", "dataset=iris", "model.hidden=[8]",
                      "trainer.max_epochs=3", "optimizer.lr=0.01,0.1",
                      "mlflow.experiment_name=submitit_test"], tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr
    exp = client.get_experiment_by_name("submitit_test")
    runs = [r for e in client.search_experiments()
            for r in client.search_runs([e.experiment_id])]
    assert {r.info.experiment_id for r in runs} == {exp.experiment_id}
    parent = next(r for r in runs if r.data.tags.get("ann.role") == "parent")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and len(children) == 2
    assert parent.data.tags["ann.launcher"] == "submitit_local"
    assert parent.info.status == "FINISHED"
    assert {c.info.status for c in children} == {"FINISHED"}
    assert sorted(c.data.tags["ann.arm"] for c in children) == ["optimizer.lr=0.01",
                                                                "optimizer.lr=0.1"]
    for child in children:
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val_loss")] == [
            1, 2, 3]
    assert (tmp_path / "multirun" / ".submitit").is_dir()  # the jobs did go through submitit

"""Sweeps as parent runs: every launcher, failing jobs, interruption. Real store, real Hydra."""
from __future__ import annotations

import signal
import time

import pytest

from tests.experiments.conftest import (all_runs, parent_and_children, run_train,
                                         started_train, wait_until)

pytestmark = pytest.mark.slow


def _parent_and_children(client):
    parent, children, runs = parent_and_children(client)
    assert len(children) == len(runs) - 1
    return parent, children


def test_joblib_sweep_two_workers_files_every_child_under_its_parent(tracking_uri, client,
                                                                    tmp_path):
    proc = run_train(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                      "dataset=iris", "model.hidden=[8]", "trainer.max_epochs=3",
                      "optimizer.lr=0.001,0.01,0.1", "mlflow.experiment_name=sweep_test"],
                     tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr
    parent, children = _parent_and_children(client)
    exp = client.get_experiment_by_name("sweep_test")
    assert parent.info.experiment_id == exp.experiment_id
    assert parent.info.status == "FINISHED"
    assert len(children) == 3
    assert {c.info.experiment_id for c in children} == {exp.experiment_id}
    assert {c.info.status for c in children} == {"FINISHED"}
    assert sorted(c.data.tags["ann.arm"] for c in children) == [
        "optimizer.lr=0.001", "optimizer.lr=0.01", "optimizer.lr=0.1"]
    for child in children:
        assert len(client.get_metric_history(child.info.run_id, "val_loss")) == 3
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert any(p.endswith("summary.md") for p in arts), arts
    assert any(p.endswith("summary.csv") for p in arts), arts
    assert parent.data.tags.get("ann.launcher") == "joblib"


def test_a_failing_job_is_a_failed_child_and_the_sweep_goes_on(tracking_uri, client, tmp_path):
    # 6 samples cannot be split three ways with stratification: that job raises in ann.data.
    proc = run_train(["-m", "dataset=moons", "dataset.n_samples=6,300", "model.hidden=[8]",
                      "trainer.max_epochs=2"], tracking_uri, tmp_path)
    assert proc.returncode != 0
    assert "failed" in proc.stderr.lower()
    parent, children = _parent_and_children(client)
    status = {c.data.tags["ann.arm"]: c.info.status for c in children}
    assert status == {"dataset.n_samples=6": "FAILED", "dataset.n_samples=300": "FINISHED"}
    failed = next(c for c in children if c.info.status == "FAILED")
    assert "traceback.txt" in {a.path for a in client.list_artifacts(failed.info.run_id)}
    text = open(client.download_artifacts(failed.info.run_id, "traceback.txt",
                                          str(tmp_path))).read()
    assert "Traceback" in text and "ValueError" in text
    assert parent.info.status == "FAILED"
    assert any(a.path == "report" for a in client.list_artifacts(parent.info.run_id))


def test_ctrl_c_leaves_no_run_running(tracking_uri, client, tmp_path):
    args = ["-m", "seed=0,1,2,3", "trainer.max_epochs=400", "early_stopping=off"]
    with started_train(args, tracking_uri, tmp_path) as proc:
        wait_until(lambda: any(r.info.status == "RUNNING" and r.data.tags.get("ann.role")
                               == "child" for r in all_runs(client)),
                   "a child run training", proc, every=0.5)
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode != 0
    runs = all_runs(client)
    assert runs and not [r for r in runs if r.info.status == "RUNNING"]
    assert {r.info.status for r in runs} <= {"KILLED", "FINISHED"}
    parent = next(r for r in runs if r.data.tags.get("ann.role") == "parent")
    assert parent.info.status == "KILLED"

"""What the MLflow UI reads: finite metrics, readable names, params that define the job,
MLflow's own source tags and dataset inputs. Real commands, a real store, MLflow's client."""
from __future__ import annotations

import math

import pytest

from tests.experiments.conftest import all_runs, parent_and_children, run_train

HARNESS_PARAMS = ("trainer.progress", "trainer.blas_threads")


def _every_value(client, run) -> list[float]:
    return [m.value for key in run.data.metrics
            for m in client.get_metric_history(run.info.run_id, key)]


@pytest.mark.slow
def test_lr_tuning_logs_finite_metrics_and_names_the_diverged_arms(tracking_uri, client,
                                                                    tmp_path):
    proc = run_train(["experiment=lr_tuning", "trainer.max_epochs=6"], tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parent, children, runs = parent_and_children(client, "lr_tuning")
    for run in runs:
        values = _every_value(client, run)
        assert values and all(math.isfinite(v) and abs(v) < 1e6 for v in values), \
            (run.info.run_name, max(values, key=abs))
        assert math.isfinite(run.data.metrics.get("best_val_loss", 0.0))
    diverged = {c.data.tags["ann.arm"] for c in children if c.data.tags["diverged"] == "true"}
    # 10 diverges at once; 1.0 diverges or collapses to chance, depending on the scaling
    assert "optimizer.lr=10.0" in diverged <= {"optimizer.lr=1.0", "optimizer.lr=10.0"}
    for child in children:
        is_diverged = child.data.tags["diverged"] == "true"
        assert child.info.run_name.startswith("diverged: ") == is_diverged, child.info.run_name
        assert child.info.run_name.endswith(child.data.tags["ann.arm"])
        if is_diverged:  # where and how it diverged
            assert int(child.data.tags["diverged_epoch"]) >= 1
            assert int(child.data.tags["diverged_update"]) >= 1
            assert child.data.tags["diverged_loss"]
            # only completed epochs are logged: the last logged epoch precedes the divergence
            steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_loss")]
            assert max(steps, default=0) == int(child.data.tags["diverged_epoch"]) - 1
    assert parent.info.run_name == "lr_tuning: optimizer.lr"
    assert parent.data.params["optimizer.lr"] == "0.0001,0.001,0.01,0.1,1.0,10.0"
    assert parent.data.params["optimizer"] == "sgd" and parent.data.params["seed"] == "0"
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("Best arm: optimizer.lr=0.1") and "|" not in note


def test_a_default_run_has_a_name_source_tags_dataset_inputs_and_job_params(tracking_uri, client,
                                                                           tmp_path):
    proc = run_train(["trainer.max_epochs=2", "mlflow.experiment_name=ann"], tracking_uri,
                     tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = all_runs(client)
    tags = run.data.tags
    assert run.info.run_name == "trainer.max_epochs=2" == tags["mlflow.runName"]
    for key in ("mlflow.user", "mlflow.source.name", "mlflow.source.type",
                "mlflow.source.git.commit"):
        assert tags.get(key), key
    assert tags["mlflow.source.name"] == "experiments/train.py"
    assert tags["mlflow.source.type"] == "LOCAL"
    inputs = run.inputs.dataset_inputs
    contexts = sorted(t.value for i in inputs for t in i.tags if t.key == "mlflow.data.context")
    assert contexts == ["test", "train", "validation"]
    assert {i.dataset.digest for i in inputs} == {tags["dataset_digest"][:36]}
    assert all(i.dataset.name.startswith("digits") for i in inputs)
    params = run.data.params
    assert not [k for k in params if k.startswith("mlflow") or k in HARNESS_PARAMS
                or k.endswith("_target_")], sorted(params)
    assert params["optimizer"] == "adam" and params["schedule"] == "cosine"
    assert int(params["model.n_params"]) > 0 and "n_params" not in run.data.metrics
    assert not [k for k in tags if k.startswith("ann.choice.")]
    # the terminal: the run's name and where to open it
    assert f"MLflow run {run.info.run_id} (trainer.max_epochs=2): FINISHED" in proc.stderr
    assert f"#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}" in proc.stderr


def test_a_run_without_overrides_is_named_default(tracking_uri, client, tmp_path):
    proc = run_train([], tracking_uri, tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (run,) = all_runs(client)
    assert run.info.run_name == "default"


def test_an_ad_hoc_sweep_parent_has_params_and_its_children_distinct_names(tracking_uri, client,
                                                                          tmp_path):
    proc = run_train(["-m", "dataset=iris", "trainer.max_epochs=2", "optimizer.lr=0.01,0.1",
                      "seed=0,1"], tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr
    parent, children, _ = parent_and_children(client)
    assert parent.info.run_name == "sweep: optimizer.lr, seed"
    assert parent.data.params["optimizer.lr"] == "0.01,0.1"
    assert parent.data.params["seed"] == "0,1"
    assert parent.data.params["dataset.name"] == "iris"  # shared by every arm
    names = sorted(c.info.run_name for c in children)
    assert names == ["optimizer.lr=0.01,seed=0", "optimizer.lr=0.01,seed=1",
                     "optimizer.lr=0.1,seed=0", "optimizer.lr=0.1,seed=1"]
    # the terminal: per-arm results, the best arm and the parent's id
    assert "Best arm: " in proc.stderr and parent.info.run_id in proc.stderr
    assert "1. optimizer.lr=" in proc.stderr

"""`resume=true` and `seeds=N`: real sweeps from a committed copy of the project.

Reuse depends on the code version (a run logged from the same commit with a clean tree), so
these tests copy ann/, experiments/ and conf/ into a fresh git repository under tmp_path,
commit it, and run that copy's experiments/train.py: the checkout the tests run from may have
uncommitted changes, a copy has exactly the state each test gives it.
"""
from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from experiments.config import ConfigError, config_digest, expand_seeds
from experiments.resume import reused_run_ids, reused_tags
from tests.experiments.conftest import ROOT, all_runs, wait_until

LR = "optimizer.lr=0.01,0.1"
SHORT = ["dataset=iris", "trainer.max_epochs=2"]


def _git(proj: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          cwd=proj, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def proj(tmp_path) -> Path:
    """A committed copy of the project (code only)."""
    proj = tmp_path / "proj"
    for part in ("ann", "experiments", "conf"):
        shutil.copytree(ROOT / part, proj / part,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _git(proj, "init", "-q")
    _git(proj, "add", "-A")
    _git(proj, "commit", "-q", "-m", "copy")
    return proj


def _command(proj: Path, args: list[str], sweep: str) -> tuple[list[str], dict]:
    env = {**os.environ, "CI": "true"}
    return [sys.executable, str(proj / "experiments" / "train.py"), *args,
            f"hydra.sweep.dir={proj}/multirun/{sweep}"], env


def sweep(proj: Path, uri: str, args: list[str], name: str) -> subprocess.CompletedProcess:
    command, env = _command(proj, args, name)
    proc = subprocess.run(command, cwd=proj, env={**env, "MLFLOW_TRACKING_URI": uri},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def parent_of(client, proc: subprocess.CompletedProcess):
    run_id = next(line.split()[4] for line in proc.stderr.splitlines()
                  if line.startswith("MLflow: sweep parent run ") and "(" in line)
    return client.get_run(run_id)


def children(client, parent) -> list:
    return [r for r in all_runs(client)
            if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def resume_lines(stderr: str) -> dict[str, str]:
    """The per-job lines of `resume:` (label -> what it says)."""
    out = {}
    for line in stderr.splitlines():
        if line.startswith("  #"):
            label, what = line.strip().split(": ", 1)
            out[label.split(" ", 1)[1]] = what
    return out


@pytest.mark.slow
def test_a_changed_value_trains_that_arm_and_the_rest_is_reused(proj, tracking_uri, client):
    """seeds=2 sweeps the seed; resume reuses the unchanged arm (both seeds), trains the new
    value, with the joblib launcher; the report covers every arm."""
    first = sweep(proj, tracking_uri, ["-m", LR, *SHORT, "seeds=2"], "a")
    parent_a = parent_of(client, first)
    assert parent_a.data.tags["mlflow.runName"] == "sweep: optimizer.lr, seed"
    assert parent_a.data.params["seed"] == "0,1"
    assert sorted(r.data.params["seed"] for r in children(client, parent_a)) == ["0", "0", "1", "1"]

    second = sweep(proj, tracking_uri, ["-m", "optimizer.lr=0.01,0.2", *SHORT, "seeds=2",
                                        "resume=true", "hydra/launcher=joblib",
                                        "hydra.launcher.n_jobs=2"], "b")
    lines = resume_lines(second.stderr)
    old = {r.info.run_id for r in children(client, parent_a)
           if r.data.params["optimizer.lr"] == "0.01"}
    assert set(lines) == {"optimizer.lr=0.01,seed=0", "optimizer.lr=0.01,seed=1",
                          "optimizer.lr=0.2,seed=0", "optimizer.lr=0.2,seed=1"}
    for label, what in lines.items():
        if "0.01" in label:
            assert what.startswith("reuses FINISHED run ") and what.split()[-1] in old
        else:
            assert what == "trains (no FINISHED run with this config)"
    parent_b = parent_of(client, second)
    trained = children(client, parent_b)
    assert sorted(r.data.params["optimizer.lr"] for r in trained) == ["0.2", "0.2"]
    assert set(reused_run_ids(parent_b.data.tags)) == old
    assert parent_b.data.tags["ann.resumed"] == "true"
    rows = list(csv.DictReader(open(proj / "multirun" / "b" / "report" / "summary.csv")))
    assert {r["arm"]: r["n_seeds"] for r in rows} == {"optimizer.lr=0.01": "2",
                                                      "optimizer.lr=0.2": "2"}
    assert "(2 reused)" in parent_b.data.tags.get("mlflow.note.content", "") or \
        "(2 reused)" in client.get_run(parent_b.info.run_id).data.tags["mlflow.note.content"]


@pytest.mark.slow
def test_a_killed_sweep_resumed_trains_only_the_missing_jobs(proj, tracking_uri, client):
    args = ["-m", "optimizer.lr=0.01,0.02,0.03,0.04,0.05,0.06", "trainer.max_epochs=8"]
    command, env = _command(proj, args, "killed")
    proc = subprocess.Popen(command, cwd=proj, env={**env, "MLFLOW_TRACKING_URI": tracking_uri},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: sum(r.info.status == "FINISHED" for r in all_runs(client)
                               if r.data.tags.get("ann.role") == "child") >= 2,
                   "two finished jobs", proc)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    done = [r for r in all_runs(client) if r.data.tags.get("ann.role") == "child"]
    finished = {r.info.run_id for r in done if r.info.status == "FINISHED"}
    statuses = sorted(r.info.status for r in done)
    assert 2 <= len(finished) < 6 and set(statuses) <= {"FINISHED", "KILLED"}, statuses

    again = sweep(proj, tracking_uri, [*args, "resume=true"], "resumed")
    parent = parent_of(client, again)
    trained = children(client, parent)
    assert len(trained) == 6 - len(finished)  # only the jobs without a FINISHED run
    assert all(r.info.status == "FINISHED" for r in trained)
    assert set(reused_run_ids(parent.data.tags)) == finished
    assert f"{len(finished)} of 6 jobs reuse a FINISHED run" in again.stderr
    report = proj / "multirun" / "resumed" / "report"
    rows = list(csv.DictReader(open(report / "summary.csv")))
    assert len(rows) == 6 and all(r["status"] == "FINISHED" for r in rows)
    note = client.get_run(parent.info.run_id).data.tags["mlflow.note.content"]
    assert "jobs ran" not in note and "Not every job finished" not in note
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


@pytest.mark.slow
def test_code_changes_a_dirty_tree_and_other_data_mean_training(proj, tracking_uri, client):
    first = sweep(proj, tracking_uri, ["-m", LR, *SHORT], "a")
    runs = {r.data.params["optimizer.lr"]: r for r in children(client, parent_of(client, first))}
    resume = ["-m", LR, *SHORT, "resume=true"]

    (proj / "experiments" / "plots.py").write_text(
        (proj / "experiments" / "plots.py").read_text() + "\n# a local change\n")
    dirty = resume_lines(sweep(proj, tracking_uri, resume, "dirty").stderr)
    assert len(dirty) == 2 and all("uncommitted changes" in w and w.startswith("trains")
                                   for w in dirty.values())

    _git(proj, "commit", "-q", "-am", "change")
    changed = sweep(proj, tracking_uri, resume, "changed")
    lines = resume_lines(changed.stderr)
    assert all(w.startswith("trains (code changed: run ") for w in lines.values()), lines

    # the runs just trained match this commit; as if the data had changed since (a new
    # scikit-learn release of a bundled table), their data digest is made different
    for run in children(client, parent_of(client, changed)):
        client.set_tag(run.info.run_id, "dataset_digest", "0" * 64)
    other = resume_lines(sweep(proj, tracking_uri, resume, "data").stderr)
    assert all(w.startswith("trains (the data differ: run ") for w in other.values()), other
    assert runs  # the first sweep's runs were never touched
    assert all(client.get_run(r.info.run_id).data.tags == r.data.tags for r in runs.values())


@pytest.mark.parametrize("argv, expected", [
    (["seeds=3"], ["--multirun", "seed=range(0,3)"]),
    (["experiment=optimizers", "seed=10", "seeds=2"],
     ["--multirun", "experiment=optimizers", "seed=range(10,12)"]),
    (["-m", "optimizer.lr=0.1,1", "seeds=1"], ["-m", "optimizer.lr=0.1,1", "seed=range(0,1)"]),
    (["optimizer.lr=0.1"], ["optimizer.lr=0.1"]),
])
def test_seeds_becomes_a_swept_seed(argv, expected):
    assert expand_seeds(argv) == expected


@pytest.mark.parametrize("argv, words", [
    (["seeds=0"], "seeds='0': must be an integer >= 1"),
    (["seeds=x"], "seeds='x': must be an integer >= 1"),
    (["seeds=2", "seed=0,1"], "seed=0,1: with seeds=2 give one starting seed"),
])
def test_bad_seeds_is_one_line(argv, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        expand_seeds(argv)


def test_the_config_digest_ignores_where_a_job_logs_and_nothing_else():
    base = OmegaConf.create({"seed": 0, "resume": False, "optimizer": {"lr": 0.1},
                             "trainer": {"progress": False, "max_epochs": 3},
                             "mlflow": {"tracking_uri": None, "experiment_name": "ann"}})
    same = OmegaConf.merge(base, {"resume": True, "trainer": {"progress": True},
                                  "mlflow": {"tracking_uri": "sqlite:///x.db"}})
    assert config_digest(same) == config_digest(base)
    for change in ({"seed": 1}, {"optimizer": {"lr": 0.2}}, {"trainer": {"max_epochs": 4}}):
        assert config_digest(OmegaConf.merge(base, change)) != config_digest(base)


def test_reused_ids_fill_several_tags_and_come_back_in_order():
    ids = [f"{i:032x}" for i in range(450)]
    tags = reused_tags(ids)
    assert list(tags) == ["ann.reused_runs", "ann.reused_runs.2", "ann.reused_runs.3"]
    assert all(len(v) <= 8000 for v in tags.values())
    assert reused_run_ids(tags) == ids and reused_run_ids({}) == []

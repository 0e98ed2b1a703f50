"""The record can be trusted: simultaneous starts, own folders, exact reproduction, refusals.

Real processes against real SQLite stores that do not exist before the commands start, with
Hydra's default output folders (no hydra.run.dir / hydra.sweep.dir given), as a user runs them.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.experiments.conftest import ROOT, TRAIN, all_runs, run_train, started_train, wait_until

REPRODUCE = ROOT / "experiments" / "reproduce.py"
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def _env(uri: str) -> dict[str, str]:
    """The user's environment: no threading variable set by hand."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    return {**env, "MLFLOW_TRACKING_URI": uri, "CI": "true"}


def _start(args: list[str], uri: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(TRAIN), *args], cwd=cwd, env=_env(uri),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _artifact(client, run_id: str, path: str, dst: Path) -> bytes:
    dst.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, path, str(dst))).read_bytes()


@pytest.mark.slow
def test_six_runs_started_together_into_a_new_store_three_times(tmp_path):
    runs = []
    for attempt in range(3):
        cwd = tmp_path / f"attempt{attempt}"
        cwd.mkdir()
        uri = f"sqlite:///{cwd / 'store' / 'mlflow.db'}"  # neither the folder nor the file exist
        procs = [_start(["dataset=iris", "trainer.max_epochs=3", f"seed={seed}"], uri, cwd)
                 for seed in range(6)]  # all started within one second
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
        client = _client(uri)
        found = all_runs(client, "ann")
        assert len(found) == 6
        for run in found:
            assert run.info.status == "FINISHED"
            logged = yaml.safe_load(_artifact(client, run.info.run_id, "config.yaml",
                                              tmp_path / "dl" / run.info.run_id))
            assert str(logged["seed"]) == run.data.params["seed"]
            weights = _artifact(client, run.info.run_id, "weights.npz",
                                tmp_path / "dl" / run.info.run_id)
            runs.append((run, hashlib.sha256(weights).hexdigest()))
        assert sorted(r.data.params["seed"] for r in found) == [str(s) for s in range(6)]
        # six output folders, each with its own run's config
        folders = sorted((cwd / "outputs").glob("*/*"))
        assert len(folders) == 6
        assert sorted(yaml.safe_load((f / "config.yaml").read_text())["seed"]
                      for f in folders) == list(range(6))
    assert len(runs) == 18
    assert len({r.info.artifact_uri for r, _ in runs}) == 18
    # Same seed in another store: the same weights (determinism); different seeds: different.
    by_seed = {}
    for run, digest in runs:
        by_seed.setdefault(run.data.params["seed"], set()).add(digest)
    assert all(len(d) == 1 for d in by_seed.values()) and len(by_seed) == 6


@pytest.mark.slow
def test_two_sweeps_started_in_the_same_second_keep_their_own_children(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    args = ["experiment=gd_variants", "trainer.max_epochs=2"]
    procs = [_start(args, uri, tmp_path) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    client = _client(uri)
    runs = all_runs(client, "gd_variants")
    parents = [r for r in runs if r.data.tags.get("ann.role") == "parent"]
    assert len(parents) == 2 and len(runs) == 8
    assert parents[0].data.tags["ann.sweep_dir"] != parents[1].data.tags["ann.sweep_dir"]
    for parent in parents:
        assert parent.info.status == "FINISHED"
        children = [r for r in runs
                    if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert sorted(c.data.tags["ann.arm"] for c in children) == [
            "gd=batch", "gd=minibatch", "gd=sgd"]
        sweep_dir = Path(parent.data.tags["ann.sweep_dir"])
        assert sorted(p.name for p in sweep_dir.iterdir() if p.name.isdigit()) == ["0", "1", "2"]
        summary = _artifact(client, parent.info.run_id, "report/summary.md",
                            tmp_path / "dl" / parent.info.run_id).decode()
        assert "3 arms, 3 runs" in summary and parent.info.run_id in summary


def _reproduce(run_id: str, uri: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPRODUCE), run_id], cwd=cwd, env=_env(uri),
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_reproduce_is_exact_without_any_threading_variable(tmp_path):
    """The default run, an LSTM, a float32 run that diverges, and a joblib sweep's child."""
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    singles = [[],
               ["dataset=digits_seq", "model=lstm", "trainer.max_epochs=3"],
               ["trainer.dtype=float32", "optimizer=sgd", "optimizer.lr=5", "schedule=constant",
                "trainer.max_epochs=5"]]
    for args in singles:
        proc = subprocess.run([sys.executable, str(TRAIN), *args], cwd=tmp_path, env=_env(uri),
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, str(TRAIN), "-m", "hydra/launcher=joblib",
                           "hydra.launcher.n_jobs=2", "trainer.max_epochs=5", "seed=0,1"],
                          cwd=tmp_path, env=_env(uri), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    client = _client(uri)
    runs = all_runs(client, "ann")
    diverged = [r for r in runs if r.data.tags.get("diverged") == "true"]
    assert len(diverged) == 1 and diverged[0].data.params["trainer.dtype"] == "float32"
    child = next(r for r in runs if r.data.tags.get("ann.role") == "child")
    to_check = [r for r in runs if r.data.tags.get("ann.role") == "single"] + [child]
    assert len(to_check) == 4
    for run in to_check:
        proc = _reproduce(run.info.run_id, uri, tmp_path)
        assert proc.returncode == 0, (run.data.tags.get("ann.overrides"), proc.stdout,
                                      proc.stderr)
        assert "identical at every step" in proc.stdout


def test_reproduce_refuses_a_sweeps_parent_run(tracking_uri, client, tmp_path):
    proc = run_train(["-m", "dataset=iris", "trainer.max_epochs=1", "seed=0,1"], tracking_uri,
                     tmp_path)
    assert proc.returncode == 0, proc.stderr
    (parent,) = [r for r in all_runs(client) if r.data.tags.get("ann.role") == "parent"]
    proc = _reproduce(parent.info.run_id, tracking_uri, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "a sweep's parent run" in proc.stderr and "child" in proc.stderr


@pytest.mark.parametrize("args, words", [
    (["-m", "seed=0,0"], "the sweep would run this job twice"),
    (["-m", "optimizer.lr=0.1,0.10", "seed=1"], "the sweep would run this job twice"),
    (["-m", "experiment=gd_variants,lr_tuning"], "a sweep over comparison presets"),
])
def test_sweeps_that_cannot_mean_what_they_say_are_refused(tmp_path, args, words):
    store = tmp_path / "store"
    proc = subprocess.run([sys.executable, str(TRAIN), *args], cwd=tmp_path,
                          env=_env(f"sqlite:///{store / 'mlflow.db'}"), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid config:"), proc.stderr
    assert words in lines[0]
    assert not store.exists() and not (tmp_path / "multirun").exists()


@pytest.mark.slow
def test_a_folder_in_use_by_another_run_is_refused(tracking_uri, client, tmp_path):
    long_run = ["dataset=digits", "trainer.max_epochs=200", "early_stopping=off"]
    with started_train(long_run, tracking_uri, tmp_path) as first:
        wait_until(lambda: any(r.info.status == "RUNNING" for r in all_runs(client)),
                   "the first run", proc=first)
        second = run_train(["dataset=iris", "trainer.max_epochs=1"], tracking_uri, tmp_path)
        assert second.returncode == 2
        (line,) = second.stderr.strip().splitlines()
        assert "hydra.run.dir=" in line and "in use by another run" in line, line
        assert len(all_runs(client)) == 1  # the refused run created nothing
        first.terminate()
        first.wait(timeout=60)
    assert (tmp_path / "outputs" / "run" / "config.yaml").exists()  # the first run's folder


def test_a_refused_run_leaves_no_output_folder(tmp_path):
    proc = subprocess.run([sys.executable, str(TRAIN), "optimizer.lr=-1"], cwd=tmp_path,
                          env=_env(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "store").exists()


def test_resend_of_a_missing_folder_is_an_error(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "resend.py"),
                           str(tmp_path / "nowhere")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: no such folder") and "nowhere" in line


def test_divergence_is_a_result_without_numpy_warnings(tracking_uri, client, tmp_path):
    proc = run_train(["dataset=digits", "optimizer=sgd", "optimizer.lr=10", "schedule=constant",
                      "trainer.max_epochs=3"], tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeWarning" not in proc.stderr, proc.stderr
    (summary,) = [line for line in proc.stderr.splitlines() if line.startswith("MLflow run")]
    assert "diverged in epoch 1" in summary
    (run,) = all_runs(client)
    assert run.data.tags["diverged"] == "true" and run.data.tags["stop_reason"] == "diverged"
    assert run.info.status == "FINISHED"


def _log_same_dataset(uri: str, exp_id: str, name: str, barrier, results) -> None:
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.tracking import MlflowClient

    from experiments.record import log_inputs
    from experiments.unsent import Uplink

    client = Uplink(MlflowClient(tracking_uri=uri))
    run_id = client.create_run(exp_id).info.run_id
    dataset = Dataset(name=name, digest="d" * 36, source_type="code", source="{}")
    barrier.wait()
    log_inputs(client, run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "train")])])
    results.put(client.error)


@pytest.mark.slow
def test_jobs_logging_the_same_dataset_at_once_all_succeed(tracking_uri, client):
    """MLflow inserts a new dataset after looking it up: simultaneous jobs of a sweep collide on
    its unique key; the runner retries instead of losing the store for the job."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    exp_id = client.create_experiment("inputs")
    errors = []
    for round_ in range(6):
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_log_same_dataset,
                             args=(tracking_uri, exp_id, f"set{round_}", barrier, results))
                 for _ in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=120)
        errors += [results.get(timeout=10) for _ in procs]
    assert errors == [None] * 24, [e for e in errors if e]
    runs = client.search_runs([exp_id])
    assert len(runs) == 24 and all(len(r.inputs.dataset_inputs) == 1 for r in runs)

"""Fixtures for harness tests: a real SQLite MLflow store under tmp_path.

Migrating a fresh MLflow database costs 1-2 s, so one is prepared per session and copied
(0.02 s) into each test's temporary folder.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "experiments" / "train.py"


@pytest.fixture(scope="session")
def prepared_db(tmp_path_factory) -> Path:
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("prepared") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking_uri(tmp_path, prepared_db) -> str:
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(prepared_db, db)
    return f"sqlite:///{db}"


@pytest.fixture
def client(tracking_uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def _train(args: list[str], tracking_uri: str, cwd: Path,
           extra_env: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Command and environment of experiments/train.py against `tracking_uri`, run in `cwd`
    (single runs write to `cwd/outputs/run`, sweeps to `cwd/multirun`)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "CI": "true",
           **(extra_env or {})}
    return [sys.executable, str(TRAIN), *args, f"hydra.run.dir={cwd}/outputs/run",
            f"hydra.sweep.dir={cwd}/multirun"], env


def run_train(args: list[str], tracking_uri: str, cwd: Path, timeout: float = 600,
              extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run experiments/train.py in a fresh process against `tracking_uri`."""
    command, env = _train(args, tracking_uri, cwd, extra_env)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@contextlib.contextmanager
def started_train(args: list[str], tracking_uri: str, cwd: Path):
    """experiments/train.py running in the background (pipes, text); killed on the way out."""
    command, env = _train(args, tracking_uri, cwd)
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at this moment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(ready, what: str, proc: subprocess.Popen | None = None,
               timeout: float = 120, every: float = 0.2):
    """Poll `ready()` until it returns something true (returned); fail the test after
    `timeout` seconds, or at once when `proc` has exited meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process ended before {what}: {proc.communicate()[1][-3000:]}")
        value = ready()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out waiting for {what}")


def all_runs(client, experiment_name: str | None = None) -> list:
    """Every run of the store, or of one experiment."""
    experiments = ([client.get_experiment_by_name(experiment_name)] if experiment_name
                   else client.search_experiments())
    return [r for e in experiments for r in
            client.search_runs([e.experiment_id], max_results=1000)]


def parent_and_children(client, experiment_name: str | None = None) -> tuple:
    """(the one sweep parent run, its children, all runs) of the store or of one experiment."""
    runs = all_runs(client, experiment_name)
    parents = [r for r in runs if r.data.tags.get("ann.role") == "parent"]
    assert len(parents) == 1, [r.data.tags for r in runs]
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children, runs


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")} if path.exists() else set()


@pytest.fixture(scope="session", autouse=True)
def project_store_untouched():
    """No test may write into the project's own store or report folders."""
    watched = [ROOT / "mlruns", ROOT / "reports"]
    before = [_tree(p) for p in watched]
    yield
    for path, old in zip(watched, before):
        new = _tree(path) - old
        assert not new, f"tests wrote into {path}: {sorted(new)[:5]}"

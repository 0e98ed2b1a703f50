"""Fixtures for harness tests: a real SQLite MLflow store under tmp_path.

Migrating a fresh MLflow database costs 1-2 s, so one is prepared per session and copied
(0.02 s) into each test's temporary folder.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def run_train(args: list[str], tracking_uri: str, cwd: Path, timeout: float = 600,
              extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run experiments/train.py in a fresh process against `tracking_uri`."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "CI": "true",
           **(extra_env or {})}
    return subprocess.run([sys.executable, str(TRAIN), *args,
                           f"hydra.run.dir={cwd}/outputs/run",
                           f"hydra.sweep.dir={cwd}/multirun"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


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

"""A real `mlflow server`: a sweep through it, an unreachable server, a server lost mid-run."""
from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import server as mlflow_server
from tests.experiments.conftest import (ROOT, all_runs, parent_and_children, run_train,
                                         started_train, wait_until)

pytestmark = pytest.mark.slow
RESEND = ROOT / "experiments" / "resend.py"
TINY = ["dataset=iris", "model.hidden=[8]"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """An `mlflow server` on 127.0.0.1 over a SQLite store under tmp_path."""

    def __init__(self, store: Path) -> None:
        self.store, self.port, self.proc = store, _free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = mlflow_server.start(self.store, port=self.port, log=self.store / "server.log")
        mlflow_server.wait_healthy(self.url, timeout=90, proc=self.proc)

    def kill(self) -> None:
        if self.proc is not None:
            mlflow_server.stop(self.proc, sig=signal.SIGKILL)

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.url)


@pytest.fixture
def server(tmp_path, prepared_db):
    store = tmp_path / "server"
    store.mkdir()
    shutil.copy(prepared_db, store / "server.db")  # skips the migrations at start
    srv = Server(store)
    try:
        srv.start()
        yield srv
    finally:
        srv.kill()


def test_sweep_through_a_server_then_the_unreachable_server_line(server, tmp_path):
    proc = run_train(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY,
                      "trainer.max_epochs=3", "optimizer.lr=0.01,0.1",
                      "mlflow.experiment_name=served"], server.url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    client = server.client()
    parent, children, runs = parent_and_children(client, "served")
    assert len(children) == 2 and len(runs) == 3
    assert {c.info.status for c in children} == {"FINISHED"}
    for child in children:
        for key in ("train_loss", "val_loss", "val_accuracy", "lr", "wall_seconds"):
            assert [m.step for m in client.get_metric_history(child.info.run_id, key)] == [1, 2, 3]
        assert "test_accuracy" in child.data.metrics
        paths = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"config.yaml", "weights.npz", "history.csv"} <= paths
        assert child.info.artifact_uri.startswith("mlflow-artifacts:")  # served, no shared disk
    local = client.download_artifacts(children[0].info.run_id, "weights.npz", str(tmp_path))
    assert Path(local).stat().st_size > 0

    server.kill()
    before = _count_runs(server.store)
    proc = run_train([*TINY, "trainer.max_epochs=2"], server.url, tmp_path, timeout=120)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: cannot reach the MLflow tracking server at " + server.url)
    assert _count_runs(server.store) == before  # nothing logged half-way


def _count_runs(store: Path) -> int:
    import sqlite3

    with sqlite3.connect(store / "server.db") as db:
        return db.execute("select count(*) from runs").fetchone()[0]


def test_server_lost_mid_run_keeps_results_locally_and_resend_completes_the_run(server,
                                                                               tmp_path):
    epochs = 400
    out = tmp_path / "outputs" / "run"  # where started_train puts a single run
    args = [*TINY, f"trainer.max_epochs={epochs}", "early_stopping=off",
            "mlflow.experiment_name=lost"]
    with started_train(args, server.url, tmp_path) as job:
        run_id = _wait_for_metrics(server.client(), "lost", job)
        server.kill()
        _, stderr = job.communicate(timeout=300)
    assert job.returncode != 0
    assert "experiments/resend.py " + str(out) in stderr.splitlines()[-1], stderr

    marker = json.loads((out / "unsent.json").read_text())
    assert marker["run_id"] == run_id and marker["status"] == "FINISHED"
    assert marker["tracking_uri"] == server.url
    for name in ("config.yaml", "history.csv", "weights.npz", "final.json"):
        assert (out / name).exists(), name
    assert len((out / "history.csv").read_text().splitlines()) == epochs + 1

    server.start()  # the same store, the same address
    for attempt in range(2):  # the second finds nothing to send
        resend = subprocess.run([sys.executable, str(RESEND), str(out)], cwd=tmp_path,
                                capture_output=True, text=True, timeout=300)
        assert resend.returncode == 0, resend.stderr
    assert "nothing to send" in resend.stderr
    assert (out / "sent.json").exists() and not (out / "unsent.json").exists()

    client = server.client()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    for key in ("train_loss", "val_loss", "wall_seconds", "epoch_seconds"):
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert sorted(steps) == list(range(1, epochs + 1)), key
    final = json.loads((out / "final.json").read_text())
    assert run.data.metrics["test_accuracy"] == pytest.approx(final["metrics"]["test_accuracy"])
    assert run.data.tags["stop_reason"] == final["tags"]["stop_reason"]
    assert run.data.params["optimizer.lr"] and len(run.data.params) > 20
    paths = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "weights.npz", "history.csv", "learning_curves.png"} <= paths


def _wait_for_metrics(client, experiment: str, job) -> str:
    """The run id once a few epochs have arrived on the server."""
    def ready() -> str | None:
        runs = all_runs(client, experiment) if client.get_experiment_by_name(experiment) else []
        if runs and len(client.get_metric_history(runs[0].info.run_id, "val_loss")) >= 5:
            return runs[0].info.run_id
        return None
    return wait_until(ready, "metrics on the server", job)


def test_server_lost_mid_sweep_exits_nonzero_and_resend_finishes_the_sweep(server, tmp_path):
    sweep_dir = tmp_path / "multirun"  # where started_train puts a sweep
    args = ["-m", *TINY, "trainer.max_epochs=300", "early_stopping=off",
            "optimizer.lr=0.001,0.01", "mlflow.experiment_name=lost_sweep"]
    with started_train(args, server.url, tmp_path) as job:
        _wait_for_metrics(server.client(), "lost_sweep", job)
        server.kill()
        _, stderr = job.communicate(timeout=400)
    assert job.returncode == 2, stderr
    assert f"experiments/resend.py {sweep_dir}" in stderr.strip().splitlines()[-1], stderr
    assert len(list(sweep_dir.rglob("unsent.json"))) == 2

    server.start()
    resend = subprocess.run([sys.executable, str(RESEND), str(sweep_dir)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert resend.returncode == 0, resend.stderr
    client = server.client()
    parent, children, _ = parent_and_children(client, "lost_sweep")
    assert parent.info.status == "FINISHED"
    assert len(children) == 2 and {c.info.status for c in children} == {"FINISHED"}
    for child in children:
        assert len(client.get_metric_history(child.info.run_id, "val_loss")) == 300
    assert any(a.path == "report" for a in client.list_artifacts(parent.info.run_id))

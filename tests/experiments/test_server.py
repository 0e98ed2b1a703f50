"""A real `mlflow server`: a sweep through it, an unreachable server, a server lost mid-run."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import server as mlflow_server
from tests.experiments.conftest import (ROOT, all_runs, free_port, parent_and_children,
                                         run_train, started_train, wait_until)

pytestmark = pytest.mark.slow
RESEND = ROOT / "experiments" / "resend.py"
TINY = ["dataset=iris", "model.hidden=[8]"]


class Server:
    """An `mlflow server` on 127.0.0.1 over a SQLite store under tmp_path."""

    def __init__(self, store: Path) -> None:
        self.store, self.port, self.proc = store, free_port(), None
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
    assert "View run" not in proc.stdout + proc.stderr  # MLflow's two lines per run are gone
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


# ---------------------------------------------------------------- a port already in use
SERVER = ROOT / "experiments" / "server.py"


def _held_port(port: int = 0) -> socket.socket | None:
    """A listening socket on 127.0.0.1:port (None when the port cannot be had)."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    sock.listen()
    return sock


def _one_error_line(proc: subprocess.CompletedProcess, port: int) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0, proc.stderr
    assert lines and lines[0] == (f"error: cannot listen on 127.0.0.1:{port}: the port is "
                                  "already in use (another MLflow server or UI?); stop it or "
                                  "choose --port"), proc.stderr
    return lines[0]


@pytest.mark.parametrize("mode", [["--ui"], []])
def test_server_and_ui_refuse_a_port_in_use(tmp_path, mode):
    sock = _held_port()
    port = sock.getsockname()[1]
    try:
        start = time.monotonic()
        proc = subprocess.run([sys.executable, str(SERVER), *mode, "--port", str(port),
                               "--store", str(tmp_path / "store")], capture_output=True,
                              text=True, timeout=60, start_new_session=True)
        elapsed = time.monotonic() - start
    finally:
        sock.close()
    _one_error_line(proc, port)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert elapsed < 10
    assert not (tmp_path / "store").exists()  # nothing created


@pytest.mark.parametrize("target, port", [("ui", 5000), ("server", 5001)])
def test_make_targets_fail_when_their_port_is_taken(target, port):
    """`make ui` / `make server` against their fixed ports: our line, then make's own."""
    sock = _held_port(port)  # None: held by someone else, which must fail all the same
    # -o: never rebuild the venv stamp (no pip install from a test)
    # CI runs this suite under `make test`: without the outer make's variables the inner one
    # is a top-level make, as when a user types `make ui`
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    make = subprocess.Popen(["make", "-s", "-o", ".venv/.installed", target], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env)
    try:
        out, err = make.communicate(timeout=30)
    finally:
        if make.poll() is None:  # it started a server after all: end it, then fail
            mlflow_server.stop(make)
        if sock is not None:
            sock.close()
    proc = subprocess.CompletedProcess(make.args, make.returncode, out, err)
    _one_error_line(proc, port)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and re.match(r"make(\[\d+\])?: \*\*\* ", lines[1]) and proc.returncode == 2, \
        proc.stderr


def test_ui_serves_the_store_and_a_second_ui_on_its_port_fails(tmp_path, prepared_db):
    store = tmp_path / "local"
    store.mkdir()
    shutil.copy(prepared_db, store / "mlflow.db")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(SERVER), "--ui", "--port", str(port), "--store", str(store)]
    ui = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          start_new_session=True)
    try:
        mlflow_server.wait_healthy(url, timeout=90, proc=ui)
        from mlflow.tracking import MlflowClient

        assert [e.name for e in MlflowClient(url).search_experiments()] == ["Default"]
        assert (store / "artifacts").is_dir()
        second = subprocess.run(command, capture_output=True, text=True, timeout=60,
                                start_new_session=True)
        _one_error_line(second, port)
        assert second.returncode == 2
        assert ui.poll() is None  # the first UI goes on
    finally:
        mlflow_server.stop(ui)

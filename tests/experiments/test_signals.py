"""Ctrl-C (SIGINT) and `kill` (SIGTERM) with every kind of launcher: runs end KILLED, never
RUNNING, every process of the sweep stops, one line on stderr and exit 128 + signal; a report
built afterwards says how many jobs are missing. Real processes, a real SQLite store."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.experiments.conftest import ROOT, all_runs, started_train, wait_until

pytestmark = pytest.mark.slow

REPORT = ROOT / "experiments" / "report.py"
# Long enough to be mid-training whenever the signal comes; iris epochs take milliseconds.
LONG = ["dataset=iris", "model.hidden=[8]", "trainer.max_epochs=200000", "early_stopping=off"]


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            if pid not in found:
                found.add(pid)
                todo.append(pid)
    return found


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphaned zombie waits for init, which may be slow to reap)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _running_child(client):
    return next((r for r in all_runs(client) if r.info.status == "RUNNING"
                 and r.data.tags.get("ann.role") == "child"
                 and client.get_metric_history(r.info.run_id, "val_loss")), None)


def _lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def _interrupt(proc, signum: int, timeout: float = 30) -> tuple[float, str]:
    """Send `signum`, wait for the exit; (seconds it took, stderr)."""
    start = time.monotonic()
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {timeout} s after {signal.Signals(signum).name}")
    return time.monotonic() - start, err


def test_sigterm_stops_a_joblib_sweep_and_the_report_says_what_is_missing(tracking_uri, client,
                                                                          tmp_path):
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *LONG,
            "seed=0,1,2,3,4,5", "mlflow.experiment_name=sigterm_joblib"]
    workers: set[int] = set()
    try:
        with started_train(args, tracking_uri, tmp_path) as proc:
            wait_until(lambda: _running_child(client), "a child run training", proc, every=0.5)
            workers = _descendants(proc.pid)
            assert workers, "the joblib sweep has no worker process"
            seconds, err = _interrupt(proc, signal.SIGTERM)
        assert proc.returncode == 143, err
        assert seconds < 30
        assert "Traceback" not in err, err
        said = [line for line in _lines(err) if line.startswith("interrupted")]
        assert len(said) == 1 and said[0].startswith("interrupted (SIGTERM): sweep parent"), err
        runs = all_runs(client)
        assert not [r for r in runs if r.info.status == "RUNNING"]
        parent = next(r for r in runs if r.data.tags.get("ann.role") == "parent")
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert parent.info.status == "KILLED"
        assert children and {c.info.status for c in children} <= {"KILLED", "FINISHED"}
        assert "KILLED" in {c.info.status for c in children}
        assert len(children) < 6
        # no process of the sweep lives on (resource trackers exit once the sweep is gone)
        wait_until(lambda: not any(_alive(p) for p in workers), "the sweep's processes to end",
                   timeout=15)
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

    out = tmp_path / "report"
    report = subprocess.run([sys.executable, str(REPORT), "--run-id", parent.info.run_id,
                             "--out", str(out)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri})
    assert report.returncode == 0, report.stderr
    ran = len(children)
    said = f"{ran} of 6 jobs ran; {6 - ran} missing (the sweep was KILLED)"
    assert said in report.stderr
    summary = (out / "summary.md").read_text()
    assert said in summary and f"{ran} of 6 jobs ran" in summary.splitlines()[0]
    assert said in client.get_run(parent.info.run_id).data.tags["mlflow.note.content"]


def test_ctrl_c_on_a_single_run_is_one_line_exit_130_and_the_run_killed(tracking_uri, client,
                                                                        tmp_path):
    with started_train(LONG, tracking_uri, tmp_path) as proc:
        run = wait_until(lambda: next((r for r in all_runs(client) if
                                       client.get_metric_history(r.info.run_id, "val_loss")),
                                      None), "the run's first epoch", proc, every=0.5)
        _, err = _interrupt(proc, signal.SIGINT)
    assert proc.returncode == 130, err
    assert _lines(err) == [f"interrupted (SIGINT): run {run.info.run_id} KILLED"]
    assert client.get_run(run.info.run_id).info.status == "KILLED"


def test_sigterm_on_a_basic_sweep_ends_parent_and_child_killed(tracking_uri, client, tmp_path):
    args = ["-m", *LONG, "seed=0,1,2", "mlflow.experiment_name=sigterm_basic"]
    with started_train(args, tracking_uri, tmp_path) as proc:
        child = wait_until(lambda: _running_child(client), "a child run training", proc,
                           every=0.5)
        _, err = _interrupt(proc, signal.SIGTERM)
    assert proc.returncode == 143, err
    assert "Traceback" not in err, err
    runs = all_runs(client)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    parent = next(r for r in runs if r.data.tags.get("ann.role") == "parent")
    assert parent.info.status == "KILLED"
    assert client.get_run(child.info.run_id).info.status == "KILLED"
    assert len(runs) == 2  # the other jobs never started
    assert _lines(err)[-1] == (f"interrupted (SIGTERM): sweep parent {parent.info.run_id} "
                               "KILLED and 1 child run KILLED; 0 of 3 jobs finished, "
                               "2 never started")


def test_workers_end_their_runs_when_the_launching_process_is_killed(tracking_uri, client,
                                                                     tmp_path):
    """SIGKILL leaves the launching process no say: each worker notices and ends its run."""
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *LONG, "seed=0,1,2",
            "mlflow.experiment_name=sigkill_joblib"]
    workers: set[int] = set()
    try:
        with started_train(args, tracking_uri, tmp_path) as proc:
            child = wait_until(lambda: _running_child(client), "a child run training", proc,
                               every=0.5)
            workers = _descendants(proc.pid)
            proc.kill()
            proc.wait(timeout=10)
        wait_until(lambda: not any(_alive(p) for p in workers), "the orphaned workers to end",
                   timeout=20)
        assert client.get_run(child.info.run_id).info.status == "KILLED"
        children = [r for r in all_runs(client) if r.data.tags.get("ann.role") == "child"]
        assert not [r for r in children if r.info.status == "RUNNING"]
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("leaked_thread", [False, True])
def test_an_interrupted_process_exits_even_when_a_thread_would_not_stop(leaked_thread):
    """After finish() the process exits with the interrupt's code: at once normally, and after
    EXIT_GRACE when a non-daemon thread (as a library pool's worker left unregistered by the
    KeyboardInterrupt) would hold interpreter shutdown forever."""
    code = (
        "import sys, threading, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from experiments import signals\n"
        "signals.EXIT_GRACE = 1.0\n"
        + ("threading.Thread(target=time.sleep, args=(600,)).start()\n" if leaked_thread else "")
        + "sys.exit(signals.finish())\n")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    seconds = time.monotonic() - started
    assert proc.returncode == 130, proc.stderr
    assert "interrupted (SIGINT)" in proc.stderr
    assert ("exit forced" in proc.stderr) is leaked_thread, proc.stderr
    assert seconds < (20 if leaked_thread else 10)


def test_finish_writes_after_a_write_interrupted_before_its_commit(tmp_path):
    """Ctrl-C between a store write and its commit: the connection, held by the frames the
    interrupt unwound, keeps SQLite's write lock. finish() lets those frames go before its
    cleanups write, so the cleanup's write goes through instead of 'database is locked'."""
    db = tmp_path / "store.db"
    code = (
        "import sqlite3, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from experiments import signals\n"
        "signals.EXIT_GRACE = 30.0\n"
        f"db = {str(db)!r}\n"
        "setup = sqlite3.connect(db); setup.execute('create table runs (status)');"
        " setup.commit(); setup.close()\n"
        "def write_interrupted():\n"
        "    con = sqlite3.connect(db, timeout=0.2)\n"
        "    con.execute(\"insert into runs values ('RUNNING')\")  # write lock held\n"
        "    raise KeyboardInterrupt  # before con.commit()\n"
        "def end_runs():\n"
        "    other = sqlite3.connect(db, timeout=1.0)\n"
        "    other.execute(\"insert into runs values ('KILLED')\"); other.commit()\n"
        "    return 'runs ended'\n"
        "signals.at_interrupt(end_runs)\n"
        "try:\n"
        "    write_interrupted()\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(signals.finish())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 130, proc.stderr
    assert "interrupted (SIGINT): runs ended" in proc.stderr, proc.stderr
    import sqlite3

    with sqlite3.connect(db) as con:  # the interrupted write rolled back, the cleanup's kept
        assert [r[0] for r in con.execute("select status from runs")] == ["KILLED"]

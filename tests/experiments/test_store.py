"""Store problems end in one line (exit 2, within 10 s, nothing created); a new store is created
and migrated once under an inter-process lock; relative SQLite URIs work as MLflow defines them.

Every case runs the real entry point in a fresh process against a real SQLite file. Read-only
file systems are real: a tmpfs remounted read-only in a private mount namespace (`unshare -rm`).
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from experiments import tracking
from tests.experiments.conftest import ROOT, _train, run_train

REPORT = ROOT / "experiments" / "report.py"
REPRODUCE = ROOT / "experiments" / "reproduce.py"
TINY = ["dataset=iris", "model.hidden=[8]", "trainer.max_epochs=2"]
LIMIT = 10.0  # s to the one line


def _tree(path: Path) -> dict[str, bytes | None]:
    """Every entry under `path` (file contents, None for folders); {} when it does not exist."""
    if not path.exists():
        return {}
    if path.is_file():
        return {".": path.read_bytes()}
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(path.rglob("*"))}


def _one_line(proc: subprocess.CompletedProcess, elapsed: float, *fragments: str) -> str:
    """The run ended with exit code 2 and exactly one line `error: ...` holding `fragments`."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in proc.stdout
    assert elapsed < LIMIT, f"{elapsed:.1f} s to: {lines[0]}"
    return lines[0]


def _train_timed(tracking_uri: str, cwd: Path, args: list[str] | None = None):
    start = time.monotonic()
    proc = run_train([*TINY, *(args or [])], tracking_uri, cwd, timeout=120)
    return proc, time.monotonic() - start


def _script(path: Path, args: list[str], cwd: Path, uri: str | None):
    env = {**os.environ, "CI": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    if uri is not None:
        env["MLFLOW_TRACKING_URI"] = uri
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(path), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - start


@pytest.fixture
def work(tmp_path) -> Path:
    """The working directory of the command (Hydra's output folders go here)."""
    path = tmp_path / "work"
    path.mkdir()
    return path


# ---------------------------------------------------------------- the store location
def test_a_path_component_that_is_a_file(tmp_path, work):
    (tmp_path / "mlruns").write_text("not a folder")
    before = _tree(tmp_path / "mlruns")
    proc, elapsed = _train_timed(f"sqlite:///{tmp_path}/mlruns/mlflow.db", work)
    _one_line(proc, elapsed, f"sqlite:///{tmp_path}/mlruns/mlflow.db",
              f"{tmp_path}/mlruns is a file, not a folder", "MLFLOW_TRACKING_URI")
    assert _tree(tmp_path / "mlruns") == before

    # The same store named relative to the working directory, and given to report.py.
    (work / "mlruns").write_text("not a folder")
    proc, elapsed = _train_timed("sqlite:///mlruns/mlflow.db", work)
    _one_line(proc, elapsed, f"{work}/mlruns is a file, not a folder")
    proc, elapsed = _script(REPORT, ["--experiment", "x"], work, "sqlite:///mlruns/mlflow.db")
    _one_line(proc, elapsed, f"{work}/mlruns is a file, not a folder")
    assert (work / "mlruns").read_text() == "not a folder"


def test_a_folder_that_cannot_be_created(work):
    # /proc and /sys accept no new folders, even from root.
    for parent in ("/proc", "/sys"):
        folder = Path(parent) / f"ann-test-{os.getpid()}"
        proc, elapsed = _train_timed(f"sqlite:///{folder}/mlflow.db", work)
        _one_line(proc, elapsed, f"sqlite:///{folder}/mlflow.db",
                  f"the folder {folder} cannot be created")
        assert not folder.exists()


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


RO_SCRIPT = textwrap.dedent("""\
    set -e
    mount -t tmpfs none "$RO"
    mkdir "$RO/old" "$RO/empty"
    cp "$DB" "$RO/old/mlflow.db"
    mount -o remount,ro "$RO"
    find "$RO" | sort > "$OUT/before"
    set +e
    start=$(date +%s.%N)
    "$@" > "$OUT/stdout" 2> "$OUT/stderr"
    echo $? > "$OUT/rc"
    echo "$(date +%s.%N) $start" > "$OUT/time"
    find "$RO" | sort > "$OUT/after"
    """)


def _in_read_only_fs(tmp_path: Path, db: Path, command: list[str], env: dict[str, str],
                     cwd: Path) -> tuple[subprocess.CompletedProcess, float, Path]:
    """Run `command` in a private mount namespace where `ro` is a read-only tmpfs holding
    ro/old/mlflow.db (a copy of `db`) and an empty folder ro/empty."""
    ro, out = tmp_path / "ro", tmp_path / "ro-out"
    ro.mkdir(exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    subprocess.run(["unshare", "-rm", "sh", "-c", RO_SCRIPT, "sh", *command], check=True,
                   env={**env, "RO": str(ro), "DB": str(db), "OUT": str(out)}, cwd=cwd,
                   timeout=120)
    end, start = map(float, (out / "time").read_text().split())
    assert (out / "before").read_text() == (out / "after").read_text()  # nothing created
    proc = subprocess.CompletedProcess(command, int((out / "rc").read_text()),
                                       (out / "stdout").read_text(), (out / "stderr").read_text())
    return proc, end - start, ro


@pytest.mark.skipif(not _unshare_works(), reason="no private mount namespace (unshare -rm)")
@pytest.mark.parametrize("folder, cause", [
    ("old", "cannot write the database {ro}/old/mlflow.db (Read-only file system)"),
    ("empty", "cannot write in the folder {ro}/empty (Read-only file system)"),
    ("new", "the folder {ro}/new cannot be created ({ro} refuses: Read-only file system)"),
])
def test_a_read_only_file_system(tmp_path, work, prepared_db, folder, cause):
    """An existing store, a new database in an existing folder, a new folder: refused before
    training (train.py used to train to the end, or retry for 105 s)."""
    uri = f"sqlite:///{tmp_path}/ro/{folder}/mlflow.db"
    command, env = _train(TINY, uri, work)
    proc, elapsed, ro = _in_read_only_fs(tmp_path, prepared_db, command, env, work)
    _one_line(proc, elapsed, f"cannot use the MLflow store {uri}", cause.format(ro=ro))


@pytest.mark.skipif(not _unshare_works(), reason="no private mount namespace (unshare -rm)")
def test_report_and_reproduce_on_a_read_only_store(tmp_path, work, prepared_db):
    uri = f"sqlite:///{tmp_path}/ro/old/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    for command in ([sys.executable, str(REPORT), "--experiment", "Default"],
                    [sys.executable, str(REPRODUCE), "0123456789abcdef0123456789abcdef"]):
        proc, elapsed, ro = _in_read_only_fs(tmp_path, prepared_db, command, env, work)
        _one_line(proc, elapsed, f"cannot write the database {ro}/old/mlflow.db")


def _corrupt(kind: str, db: Path, prepared_db: Path) -> None:
    data = prepared_db.read_bytes()
    if kind == "random bytes":
        db.write_bytes(os.urandom(40_000))
    elif kind == "a text file":
        db.write_text("experiment,run\n1,2\n")
    elif kind == "another program's database":
        with sqlite3.connect(db) as con:
            con.execute("create table notes (id integer primary key, text)")
        con.close()
    elif kind == "truncated":
        db.write_bytes(data[: len(data) // 3])
    elif kind == "overwritten pages":
        db.write_bytes(data[:100] + b"\xff" * 8000 + data[8100:])


CORRUPTIONS = {
    "random bytes": "is not an SQLite database",
    "a text file": "is not an SQLite database",
    "another program's database": "is an SQLite database but not an MLflow store (its "
                                  "tables: notes)",
    "truncated": "is a damaged SQLite database (database disk image is malformed)",
    "overwritten pages": "is a damaged SQLite database",
}


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_a_corrupted_database(tmp_path, work, prepared_db, kind):
    store = tmp_path / "store"
    store.mkdir()
    db = store / "mlflow.db"
    _corrupt(kind, db, prepared_db)
    before = _tree(store)
    uri = f"sqlite:///{db}"
    runs = [(*_train_timed(uri, work), "train.py"),
            (*_script(REPORT, ["--experiment", "x"], work, uri), "report.py"),
            (*_script(REPRODUCE, ["0123456789abcdef0123456789abcdef"], work, uri),
             "reproduce.py")]
    for proc, elapsed, name in runs:
        line = _one_line(proc, elapsed, f"cannot use the MLflow store {uri}",
                         f"{db} {CORRUPTIONS[kind]}")
        assert "invalid config" not in line, name
    assert _tree(store) == before  # not migrated into, no lock file, no artifacts folder


def test_a_store_folder_whose_artifact_folder_is_a_file(tmp_path, work):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "artifacts").write_text("x")
    proc, elapsed = _train_timed(f"sqlite:///{tmp_path}/store/mlflow.db", work)
    _one_line(proc, elapsed, f"{tmp_path}/store/artifacts (the artifact folder) is a file")
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["artifacts"]


# ---------------------------------------------------------------- URIs
@pytest.mark.parametrize("uri, fragments", [
    ("foo://bar", ["MLFLOW_TRACKING_URI='foo://bar'", "is not a tracking store",
                   "sqlite, http, https, postgresql[+driver], mysql[+driver], mssql[+driver]"]),
    ("mlruns", ["MLFLOW_TRACKING_URI='mlruns'", "file store", "MLFLOW_ALLOW_FILE_STORE"]),
    ("sqlite://", ["MLFLOW_TRACKING_URI='sqlite://'", "in-memory SQLite database"]),
    ("sqlite:///:memory:", ["'sqlite:///:memory:'", "in-memory SQLite database"]),
])
def test_uris_that_cannot_be_a_store(work, uri, fragments):
    proc, elapsed = _train_timed(uri, work)
    line = _one_line(proc, elapsed, *fragments)
    assert "model registry" not in line
    assert sorted(p.name for p in work.iterdir()) in ([], ["outputs"])
    assert not list(work.rglob("*.db")) and not (work / "artifacts").exists()


def test_a_database_server_that_does_not_answer(work):
    """MLflow would retry the connection for ~100 s; the password stays out of the line."""
    uri = "postgresql://ann:secret@127.0.0.1:9/mlflow"
    proc, elapsed = _train_timed(uri, work)
    line = _one_line(proc, elapsed, "postgresql://ann:***@127.0.0.1:9/mlflow", "127.0.0.1:9",
                     "Connection refused")
    assert "secret" not in line


def test_the_uri_from_the_config_key_names_the_key(work, tracking_uri):
    proc, elapsed = _train_timed(tracking_uri, work, ["mlflow.tracking_uri=foo://bar"])
    _one_line(proc, elapsed, "mlflow.tracking_uri='foo://bar'", "sqlite, http, https")
    proc, elapsed = _script(REPORT, ["--experiment", "x", "--tracking-uri", "foo://bar"],
                            work, None)
    _one_line(proc, elapsed, "--tracking-uri='foo://bar'")
    proc, elapsed = _script(REPRODUCE, ["0123456789abcdef0123456789abcdef"], work, "foo://bar")
    _one_line(proc, elapsed, "'foo://bar'", "sqlite, http, https")


def test_a_600_character_experiment_name_is_a_config_error(tmp_path, work):
    store = tmp_path / "new-store"
    proc, elapsed = _train_timed(f"sqlite:///{store}/mlflow.db", work,
                                 ["mlflow.experiment_name=" + "x" * 600])
    line = _one_line(proc, elapsed, "mlflow.experiment_name", "at most 256 characters", "600")
    assert len(line) < 300
    assert not store.exists()


def test_normalize_uri_makes_relative_sqlite_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    norm = tracking.normalize_uri
    assert norm("sqlite:///mlflow.db") == f"sqlite:///{tmp_path}/mlflow.db"
    assert norm("sqlite:///a/../b/m.db?timeout=20") == f"sqlite:///{tmp_path}/b/m.db?timeout=20"
    assert norm(f"sqlite:///{tmp_path}/x.db") == f"sqlite:///{tmp_path}/x.db"
    assert norm("http://127.0.0.1:5001") == "http://127.0.0.1:5001"
    assert norm("postgresql+psycopg://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert tracking.artifact_location_for("sqlite:///s/m.db?timeout=20") == \
        (tmp_path / "s" / "artifacts").as_uri()
    with pytest.raises(tracking.StoreError, match="in-memory"):
        norm("sqlite:///:memory:?cache=shared")


def test_a_relative_sqlite_uri_works_as_mlflow_defines_it(work):
    """MLFLOW_TRACKING_URI=sqlite:///mlflow.db: the database and its artifacts in the working
    directory (it used to fail after creating both)."""
    proc = run_train(TINY, "sqlite:///mlflow.db", work, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (work / "mlflow.db").is_file()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work}/mlflow.db")
    exp = client.get_experiment_by_name("ann")
    assert exp is not None and exp.artifact_location == (work / "artifacts").as_uri()
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert (work / "artifacts" / runs[0].info.run_id / "artifacts" / "config.yaml").is_file()
    assert "View run" not in proc.stdout


# ---------------------------------------------------------------- report.py --out
def test_report_out_folder_that_cannot_be_created_is_named(tracking_uri, work):
    for out in ("/proc/ann-report", f"{work}/file/report"):
        (work / "file").write_text("x")
        proc, elapsed = _script(REPORT, ["--experiment", "x", "--out", out], work, tracking_uri)
        line = _one_line(proc, elapsed, f"cannot write the report to {out}")
        assert "MLflow store" not in line
    assert not Path("/proc/ann-report").exists()


# ---------------------------------------------------------------- noise
def test_no_download_progress_bars_when_stderr_is_not_a_terminal(tracking_uri, tmp_path):
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from experiments import tracking
        client = tracking.client_for({tracking_uri!r})
        run = client.create_run(tracking.ensure_experiment({tracking_uri!r}, "noise"))
        open({str(tmp_path / 'a.txt')!r}, "w").write("x")
        client.log_artifact(run.info.run_id, {str(tmp_path / 'a.txt')!r})
        client.download_artifacts(run.info.run_id, "", {str(tmp_path / 'dl')!r})
        client.set_terminated(run.info.run_id)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "dl" / "a.txt").is_file()
    assert proc.stderr == "" and proc.stdout == ""


# ---------------------------------------------------------------- simultaneous starts
RACER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from experiments import tracking
    import mlflow.store.tracking.sqlalchemy_store  # loaded before the start line
    uri, start_at, index = sys.argv[2], float(sys.argv[3]), sys.argv[4]
    time.sleep(max(0.0, start_at - time.time()))
    uri = tracking.resolve_tracking_uri()
    experiment_id = tracking.ensure_experiment(uri, "race")
    client = tracking.client_for(uri)
    run = client.create_run(experiment_id, tags={"index": index})
    for step in range(30):
        client.log_batch(run.info.run_id, metrics=tracking.metrics_batch(
            {"a": step, "b": 2.0 * step}, step, int(time.time() * 1000)))
    client.set_terminated(run.info.run_id, "FINISHED")
    print("started", start_at, "finished", time.time())
""")


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(1))  # 3 rounds of 6 train.py: test_record.py
def test_six_processes_create_one_new_store_together(tmp_path, round_):
    db = tmp_path / f"fresh-{round_}" / "sub" / "mlflow.db"
    uri = f"sqlite:///{db}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    start_at = time.time() + 4.0  # after the imports: the store is opened within ~10 ms
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(ROOT), uri, str(start_at),
                               str(i)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(6)]
    outs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err
        assert err == "", err  # no migration chatter, no "database is locked" warning
        assert float(out.split()[1]) == start_at

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    assert sorted(experiments) == ["Default", "race"]
    assert client.search_runs([experiments["Default"]]) == []
    runs = client.search_runs([experiments["race"]])
    assert sorted(r.data.tags["index"] for r in runs) == [str(i) for i in range(6)]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "b")] == \
            list(range(30))
    with sqlite3.connect(db) as con:
        assert con.execute("pragma integrity_check").fetchone() == ("ok",)
        assert len(con.execute("select * from alembic_version").fetchall()) == 1
        assert not [t for (t,) in con.execute("select name from sqlite_master") if "tmp" in t]
    con.close()
    # Usable afterwards from a new process: one more run.
    proc = subprocess.run([sys.executable, "-c", RACER, str(ROOT), uri, "0", "late"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert len(client.search_runs([experiments["race"]])) == 7

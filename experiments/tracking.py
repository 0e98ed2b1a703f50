"""MLflow plumbing: where the store is, checking and opening it once, experiments created once."""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STORE = PROJECT_ROOT / "mlruns"
# The only metrics that may differ between a run and its reproduction (or across workers).
TIMING_METRICS = frozenset({"epoch_seconds", "wall_seconds", "train_seconds"})


class StoreError(RuntimeError):
    """The tracking store cannot be reached or used; str() is the one line for the user."""


# MLflow retries a failed HTTP call 7 times with 2**n s backoff and a 120 s timeout (minutes
# per call when a server is gone); bounded here, at most ~90 s per call. The user's values win.
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
for _key, _value in HTTP_LIMITS.items():
    os.environ.setdefault(_key, _value)
# No "Downloading artifacts" progress bars in logs and pipes; no "🏃 View run ... / 🧪 View
# experiment ..." pair printed by MLflow at every set_terminated against a server (train.py
# prints one line per run of its own; run_link() gives a run's address on a server).
if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

ALLOWED_SCHEMES = ("sqlite, http, https, postgresql[+driver], mysql[+driver], mssql[+driver] "
                   "(file only when MLFLOW_ALLOW_FILE_STORE=true)")
DB_SERVER_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
SQLITE_HEADER = b"SQLite format 3\x00"
LOCK_TIMEOUT = 120.0  # s to wait for another process creating or migrating the same store


def default_tracking_uri() -> str:
    return f"sqlite:///{DEFAULT_STORE / 'mlflow.db'}"


def resolve_tracking_uri(override: str | None = None, source: str = "mlflow.tracking_uri") -> str:
    """An explicit override wins over $MLFLOW_TRACKING_URI, which wins over the local store.

    The URI comes back checked and absolute (a relative SQLite path is read from the working
    directory, as MLflow does); a store that cannot work raises StoreError (one line naming
    where the URI came from, the store and the cause) before anything is created.
    """
    if override:
        uri, where = override, source
    elif os.environ.get("MLFLOW_TRACKING_URI"):
        uri, where = os.environ["MLFLOW_TRACKING_URI"], "MLFLOW_TRACKING_URI"
    else:
        uri, where = default_tracking_uri(), "the default store"
    uri = normalize_uri(uri, where)
    check_store(uri, where)
    return uri


def _source_of(uri: str) -> str:
    return ("MLFLOW_TRACKING_URI" if uri == os.environ.get("MLFLOW_TRACKING_URI")
            else "the tracking URI")


def normalize_uri(uri: str, source: str | None = None) -> str:
    """`uri` with its scheme checked and a relative SQLite path made absolute (from the cwd).

    Raises StoreError naming `source` (an environment variable or config key), the value and
    the schemes allowed.
    """
    source = source or _source_of(uri)
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return _normalize_sqlite(uri, source)
    if scheme in ("http", "https"):
        if not urllib.parse.urlsplit(uri).hostname:
            raise StoreError(f"{source}={uri!r} names no host (e.g. http://127.0.0.1:5001)")
        return uri
    if base in DB_SERVER_PORTS:
        return uri
    file_ok = os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("true", "1")
    if scheme in ("file", "") and file_ok:
        return uri
    what = ("is a file store, which MLflow allows only with MLFLOW_ALLOW_FILE_STORE=true"
            if scheme in ("file", "") else "is not a tracking store this project can use")
    raise StoreError(f"{source}={uri!r} {what}: the scheme must be one of {ALLOWED_SCHEMES}")


def _split_sqlite(uri: str) -> tuple[str, str | None, str]:
    """(scheme, path, "?query" or "") of an SQLite URI: path "" for sqlite:// (in memory),
    None for a form SQLAlchemy does not read as a file (sqlite://host/...)."""
    scheme, _, rest = uri.partition("://")
    rest, mark, query = rest.partition("?")
    if not rest:
        return scheme, "", mark + query
    return scheme, (rest[1:] if rest.startswith("/") else None), mark + query


def sqlite_path(uri: str) -> Path | None:
    """The database file of an SQLite URI (as given), None for other schemes and in-memory."""
    if urllib.parse.urlsplit(uri).scheme.lower().split("+", 1)[0] != "sqlite":
        return None
    _, path, _ = _split_sqlite(uri)
    return Path(path) if path and path != ":memory:" else None


def _normalize_sqlite(uri: str, source: str) -> str:
    scheme, path, query = _split_sqlite(uri)
    if path is None:
        raise StoreError(f"{source}={uri!r} is not an SQLite URI: use sqlite:///relative/path.db "
                         "or sqlite:////absolute/path.db")
    if not path or path == ":memory:" or "mode=memory" in query:
        raise StoreError(f"{source}={uri!r} is an in-memory SQLite database: the runs would "
                         "vanish with the process and no other process could see them; name a "
                         "file, e.g. sqlite:///mlflow.db")
    return f"{scheme}:///{os.path.abspath(path)}{query}"


def artifact_location_for(uri: str) -> str | None:
    """Absolute artifact root for the default local store (relative paths follow the cwd)."""
    if uri == default_tracking_uri():
        root = DEFAULT_STORE / "artifacts"
        root.mkdir(parents=True, exist_ok=True)
        return root.as_uri()
    db = sqlite_path(uri)
    if db is not None:
        root = Path(os.path.abspath(db)).parent / "artifacts"
        root.mkdir(parents=True, exist_ok=True)
        return root.as_uri()
    return None  # a tracking server decides for itself


def run_link(uri: str, experiment_id: str, run_id: str) -> str | None:
    """The MLflow UI address of a run on an http(s) tracking server (None for other stores)."""
    if not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


# ---------------------------------------------------------------- checking a store location
def check_store(uri: str, source: str | None = None) -> None:
    """Refuse, before anything is created, a store that cannot work: raises StoreError.

    SQLite: a path component that is a file, a folder that cannot be created or written (a
    read-only file system, no permission), a database file that cannot be written, is not an
    SQLite file or is an SQLite file of something else than MLflow. Only the location is
    checked here; a database server's reachability is check_reachable's.
    """
    db = sqlite_path(uri)
    if db is None:
        return
    cause = sqlite_location_problem(Path(os.path.abspath(db)))
    if cause:
        where = f" (from {source})" if source and source != "the default store" else ""
        raise StoreError(f"cannot use the MLflow store {uri}{where}: {cause}")


def _why(err: OSError) -> str:
    return err.strerror or type(err).__name__


def folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot be created or written (None when it can); creates nothing."""
    folder = Path(os.path.abspath(folder))
    try:
        for part in [*reversed(folder.parents), folder]:
            if part.is_dir():
                continue
            if part.exists() or part.is_symlink():
                return f"{part} is a file, not a folder"
            # `part` is missing: its parent (a folder) must accept a new entry.
            try:
                probe = tempfile.mkdtemp(prefix=".ann-probe-", dir=part.parent)
            except OSError as err:
                return f"the folder {part} cannot be created ({part.parent} refuses: {_why(err)})"
            os.rmdir(probe)
            return None
        try:
            fd, probe = tempfile.mkstemp(prefix=".ann-probe-", dir=folder)
        except OSError as err:
            return f"cannot write in the folder {folder} ({_why(err)})"
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        return f"cannot use the folder {folder} ({_why(err)})"
    return None


def sqlite_location_problem(db: Path) -> str | None:
    """Why the SQLite database `db` (absolute) cannot serve as an MLflow store, or None."""
    header = None
    if db.is_file():
        try:  # a real write open: a read-only file system or file says so (root included)
            fd = os.open(db, os.O_RDWR)
        except OSError as err:
            return f"cannot write the database {db} ({_why(err)})"
        try:
            header = os.read(fd, len(SQLITE_HEADER))
        finally:
            os.close(fd)
    problem = folder_problem(db.parent)  # SQLite writes its journal beside the database
    if problem:
        return problem
    artifacts = db.parent / "artifacts"
    if artifacts.exists() and not artifacts.is_dir():
        return f"{artifacts} (the artifact folder) is a file, not a folder"
    if db.is_dir():
        return f"{db} is a folder, not a database file"
    if not header:
        return None  # no file or an empty one: MLflow creates it, once, under the lock
    if header != SQLITE_HEADER:
        return f"{db} is not an SQLite database (corrupted, or some other kind of file)"
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True,
                                                timeout=10)) as con:
            tables = {name for (name,) in con.execute(
                "select name from sqlite_master where type = 'table'")}
    except sqlite3.Error as err:
        return f"{db} is a damaged SQLite database ({first_line(err)})"
    # Foreign = no MLflow table at all (not the full set: a store that another process is
    # creating at this moment, under the lock, already has "experiments", its first table).
    if tables and not tables & {"alembic_version", "experiments"}:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        return f"{db} is an SQLite database but not an MLflow store (its tables: {shown})"
    return None


@contextlib.contextmanager
def store_lock(uri: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """An exclusive inter-process lock (flock on `<db>.lock`) around creating or migrating an
    SQLite store; nothing for other stores. SQLite's own locks are POSIX locks on the database
    file, which flock on a separate file never meets (on NFS flock is emulated with them)."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    db = Path(os.path.abspath(db))
    db.parent.mkdir(parents=True, exist_ok=True)
    lock_path = db.with_name(db.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise StoreError(f"cannot use the MLflow store {uri}: cannot create the lock file "
                         f"{lock_path} ({_why(err)})") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"cannot use the MLflow store {uri}: another process has held {lock_path} "
                        f"for {timeout:.0f} s (creating or migrating the store?)") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


_CLIENTS: dict[str, Any] = {}


def client_for(uri: str):
    """One MlflowClient per store and process. Building it opens the store, and creates and
    migrates a new SQLite database: that happens under an inter-process lock, so processes
    starting together against a new store wait for the first one instead of racing in
    MLflow's migrations. A store that cannot be opened raises StoreError (one line)."""
    uri = normalize_uri(uri)
    if uri not in _CLIENTS:
        check_store(uri)
        from mlflow.tracking import MlflowClient

        quiet = [logging.getLogger(name) for name in ("mlflow.store.db.utils", "alembic")]
        levels = [log.level for log in quiet]
        try:
            with store_lock(uri):
                for log in quiet:  # "Creating initial MLflow database tables..." and alembic's
                    log.setLevel(logging.WARNING)  # per-migration lines
                _CLIENTS[uri] = MlflowClient(tracking_uri=uri)
        except StoreError:
            raise
        except Exception as err:  # noqa: BLE001 - a damaged or foreign store: one line
            raise StoreError(f"cannot open the MLflow store {_redact(uri)}: "
                             f"{first_line(err)}") from None
        finally:
            for log, level in zip(quiet, levels):
                log.setLevel(level)
    return _CLIENTS[uri]


def first_line(err: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def open_store(uri: str, timeout: float = 10.0):
    """A client for a store that must already exist: a missing SQLite file or an unreachable
    server raises StoreError (one line) instead of creating or waiting on anything."""
    uri = normalize_uri(uri)
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        check_store(uri)  # a file in the way says so; otherwise it simply does not exist
        raise StoreError(f"no MLflow store at {uri} (file {db} does not exist)")
    check_reachable(uri, timeout=timeout)
    return client_for(uri)


def check_reachable(uri: str, timeout: float = 20.0) -> None:
    """Fail fast with one line when an http(s) tracking server or a database server does not
    answer (MLflow would retry for minutes: ~100 s for a database server)."""
    parts = urllib.parse.urlsplit(uri)
    base = parts.scheme.lower().split("+", 1)[0]
    if base in DB_SERVER_PORTS:
        try:
            host, port = parts.hostname, parts.port or DB_SERVER_PORTS[base]
        except ValueError as err:  # a port that is not a number
            raise StoreError(f"cannot use the MLflow store {_redact(uri)}: {err}") from None
        if not host:
            return  # a local socket: left to the driver
        try:
            socket.create_connection((host, port), timeout=min(timeout, 10.0)).close()
        except OSError as err:
            raise StoreError(f"cannot reach the database server of the MLflow store "
                             f"{_redact(uri)} at {host}:{port}: {_why(err)}") from None
        return
    if not uri.startswith(("http://", "https://")):
        return
    from urllib.error import URLError
    from urllib.request import urlopen

    try:
        with urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
            if resp.status != 200:
                raise StoreError(f"tracking server {uri} answered HTTP {resp.status} on /health")
    except (URLError, OSError, TimeoutError) as err:
        reason = getattr(err, "reason", err)
        raise StoreError(f"cannot reach the MLflow tracking server at {uri}: {reason}") from None


def _redact(uri: str) -> str:
    """`uri` without its password."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


# The MLflow 3 UI opens an experiment without this tag in its GenAI mode ("Evaluations");
# with it, in the model-training mode (runs, charts, models). A user's own choice is kept.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def _set_experiment_tag(client, exp_id: str, key: str, value: str) -> None:
    """Set an experiment tag that processes started together may all be setting: MLflow's
    SQL store inserts a missing tag, so all but one collide on its key; the tag is then set."""
    try:
        client.set_experiment_tag(exp_id, key, value)
    except Exception:  # noqa: BLE001 - a concurrent writer set it, or the store failed
        if client.get_experiment(exp_id).tags.get(key) != value:
            raise


def ensure_experiment(uri: str, name: str, description: str | None = None) -> str:
    """Create (or find) an experiment once; return its id. Call in one process only."""
    check_reachable(uri)
    try:
        client = client_for(uri)
        exp = client.get_experiment_by_name(name)
        if exp is None:
            tags = {EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1]}
            if description:
                tags["mlflow.note.content"] = description
            try:
                exp_id = client.create_experiment(
                    name, artifact_location=artifact_location_for(uri), tags=tags)
            except Exception:  # created meanwhile by another process
                exp = client.get_experiment_by_name(name)
                if exp is None:
                    raise
                exp_id = exp.experiment_id
        else:
            exp_id = exp.experiment_id
            if exp.lifecycle_stage == "deleted":
                client.restore_experiment(exp_id)
            if description and exp.tags.get("mlflow.note.content") != description:
                _set_experiment_tag(client, exp_id, "mlflow.note.content", description)
            if EXPERIMENT_KIND[0] not in exp.tags:
                _set_experiment_tag(client, exp_id, *EXPERIMENT_KIND)
        return exp_id
    except StoreError:
        raise
    except Exception as err:  # noqa: BLE001 - any store failure becomes one line
        raise StoreError(f"cannot use the MLflow store {_redact(uri)}: {first_line(err)}") \
            from None


def git_info() -> tuple[str, bool]:
    """(commit, dirty) of the project checkout; ("unknown", True) outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "ann",
                         "experiments", "conf"))
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown", True


def metrics_batch(values: dict[str, float], step: int, timestamp_ms: int) -> list[Any]:
    from mlflow.entities import Metric

    return [Metric(key=k, value=float(v), timestamp=timestamp_ms, step=step)
            for k, v in values.items()]

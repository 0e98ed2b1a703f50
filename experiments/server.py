"""A shared MLflow tracking server over a SQLite store, serving the artifacts itself.

    python experiments/server.py [--port 5001] [--host 127.0.0.1] [--store mlruns]
    make server                                  # the same, on 127.0.0.1:5001
    python experiments/server.py --ui            # make ui: the MLflow UI over the local store
                                                 # (mlruns/mlflow.db, mlruns/artifacts) on :5000

A port already in use ends in one line and exit code 2 (`mlflow` itself would only log
"address already in use" and exit 0).

Clients then set MLFLOW_TRACKING_URI=http://127.0.0.1:5001 (or mlflow.tracking_uri=...).
The store is `<store>/server.db` with artifacts under `<store>/server-artifacts`; clients
upload and download artifacts through the server, so they need no shared disk. For several
machines use `--backend-store-uri postgresql://user:pass@host/db` (SQLite is one-writer).
One worker and no job execution keep the server at ~0.6 GB instead of ~3 GB.
"""
from __future__ import annotations

import argparse
import errno
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.serving import stop, wait_healthy  # noqa: E402,F401 - tests use them from here

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 5001
UI_PORT = 5000


def port_problem(host: str, port: int) -> str | None:
    """Why `mlflow server` could not listen on host:port (None when it can). Binds the way
    uvicorn does (SO_REUSEADDR: a closed server's TIME_WAIT connections do not count)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as err:
        return f"cannot listen on {host}:{port}: {err.strerror or err}"
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as err:
                reason = err.strerror or str(err)
                if err.errno == errno.EADDRINUSE:
                    reason = "the port is already in use (another MLflow server or UI?)"
                return f"cannot listen on {host}:{port}: {reason}; stop it or choose --port"
    return None


def server_command(store: Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                   backend_store_uri: str | None = None) -> list[str]:
    """The `mlflow server` command line for a store folder (created if missing)."""
    store = Path(store).resolve()
    store.mkdir(parents=True, exist_ok=True)
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    return [mlflow, "server", "--host", host, "--port", str(port), "--workers", "1",
            "--backend-store-uri", backend_store_uri or f"sqlite:///{store / 'server.db'}",
            "--artifacts-destination", str(store / "server-artifacts")]


def server_env() -> dict[str, str]:
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def start(store: Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          log: Path | None = None) -> subprocess.Popen:
    """Start a server in its own process group (stop() ends the whole group)."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen(server_command(store, host=host, port=port), env=server_env(),
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def ui_command(store: Path, *, host: str = "127.0.0.1", port: int = UI_PORT) -> list[str]:
    """The `mlflow ui` command line over a local store folder (mlflow.db + artifacts/)."""
    store = Path(store).resolve()
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    return [mlflow, "ui", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
            "--default-artifact-root", str(store / "artifacts"), "--host", host,
            "--port", str(port), "--workers", "1"]


def _open_local_store(uri: str) -> None:
    """Check, create or migrate a local store the way train.py does (once, under the lock
    of experiments.tracking), so the UI starting next to new runs does not race them."""
    from experiments.tracking import client_for, normalize_uri

    client_for(normalize_uri(uri, "--store"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ui", action="store_true",
                        help="the MLflow UI over <store>/mlflow.db (port 5000 unless --port)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None,
                        help=f"default {DEFAULT_PORT} ({UI_PORT} with --ui)")
    parser.add_argument("--store", type=Path, default=PROJECT_ROOT / "mlruns",
                        help="folder of server.db and server-artifacts, or with --ui of "
                             "mlflow.db and artifacts (default: mlruns/)")
    parser.add_argument("--backend-store-uri", default=None,
                        help="e.g. postgresql://user:pass@host:5432/mlflow for several machines")
    args = parser.parse_args(argv)
    port = args.port if args.port is not None else (UI_PORT if args.ui else DEFAULT_PORT)
    problem = port_problem(args.host, port)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from experiments.tracking import StoreError, folder_problem

    problem = folder_problem(args.store)  # a file in the way, a read-only disk ...
    if problem:
        print(f"error: cannot use the store folder {args.store}: {problem}", file=sys.stderr)
        return 2
    try:
        if args.ui:
            cmd = ui_command(args.store, host=args.host, port=port)
            _open_local_store(cmd[cmd.index("--backend-store-uri") + 1])
            (Path(args.store).resolve() / "artifacts").mkdir(exist_ok=True)
        else:
            cmd = server_command(args.store, host=args.host, port=port,
                                 backend_store_uri=args.backend_store_uri)
    except (StoreError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    store = cmd[cmd.index("--backend-store-uri") + 1]
    if args.ui:
        print(f"MLflow UI on http://{args.host}:{port} (store {store})", file=sys.stderr)
    else:
        print(f"MLflow server on http://{args.host}:{port} (store {store}); "
              f"clients: export MLFLOW_TRACKING_URI=http://{args.host}:{port}", file=sys.stderr)
    os.execve(cmd[0], cmd, server_env())


if __name__ == "__main__":
    sys.exit(main())

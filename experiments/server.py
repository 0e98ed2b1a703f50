"""A shared MLflow tracking server over a SQLite store, serving the artifacts itself.

    python experiments/server.py [--port 5001] [--host 127.0.0.1] [--store mlruns]
    make server                                  # the same, on 127.0.0.1:5001

Clients then set MLFLOW_TRACKING_URI=http://127.0.0.1:5001 (or mlflow.tracking_uri=...).
The store is `<store>/server.db` with artifacts under `<store>/server-artifacts`; clients
upload and download artifacts through the server, so they need no shared disk. For several
machines use `--backend-store-uri postgresql://user:pass@host/db` (SQLite is one-writer).
One worker and no job execution keep the server at ~0.6 GB instead of ~3 GB.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 5001


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


def wait_healthy(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll `url`/health until it answers 200; raise RuntimeError on timeout or early exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the MLflow server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the MLflow server at {url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """End the server's process group (SIGTERM, then SIGKILL after `timeout` s)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--store", type=Path, default=PROJECT_ROOT / "mlruns",
                        help="folder of server.db and server-artifacts (default: mlruns/)")
    parser.add_argument("--backend-store-uri", default=None,
                        help="e.g. postgresql://user:pass@host:5432/mlflow for several machines")
    args = parser.parse_args(argv)
    cmd = server_command(args.store, host=args.host, port=args.port,
                         backend_store_uri=args.backend_store_uri)
    print(f"MLflow server on http://{args.host}:{args.port} (store {cmd[cmd.index('--backend-store-uri') + 1]}); "
          f"clients: export MLFLOW_TRACKING_URI=http://{args.host}:{args.port}", file=sys.stderr)
    os.execve(cmd[0], cmd, server_env())


if __name__ == "__main__":
    main()

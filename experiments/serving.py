"""A local MLflow server process: wait until it answers, stop its whole process group.

Shared by the commands that start one (experiments/server.py, experiments/ui_check.py) and
their tests; the server is started with start_new_session=True, so its pid is its group.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request


def wait_healthy(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None,
                 what: str = "the MLflow server") -> None:
    """Poll `url`/health until it answers 200; raise RuntimeError (naming `what`) on timeout
    or when `proc` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} at {url} did not answer /health within {timeout:.0f} s")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """End the server's process group (`sig`, then SIGKILL after `timeout` s)."""
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

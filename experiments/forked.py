"""Figures drawn in a forked copy of this process while this process goes on with other work.

A sweep's report draws half its figures in a copy (comparison.build_report), and a job that
has a core to itself draws its per-run figures in a copy while it sends its record to MLflow
(runner). The copy only writes files: it never touches the store (its SQLite connections and
HTTP sessions belong to this process), resets Ctrl-C and SIGTERM to their default (the
handlers it inherits would end runs from the copy), and leaves with os._exit, which skips
every exit hook. Whatever the copy fails to deliver, this process draws after all.
"""
from __future__ import annotations

import os
import signal
import sys
import time

FORK_TIMEOUT = 60.0  # seconds the copy may still take once this process is done


def spare_cores() -> int:
    """Cores this process may run on, beyond the one it uses (0 when it has one)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(0, cores - 1)


def draw_in_two(first: list, second: list, *, fork: bool = True) -> None:
    """Run the callables `first` here and the figure functions `second` in a forked copy at the
    same time, when a second core is free (`fork` False, or one core: all of them here, in
    order). Returns once both are done; a copy that fails, or has not finished FORK_TIMEOUT s
    after `first` did (a lock another thread held at the fork stays held in the copy), is
    killed and `second` is run here. When `first` raises, or an exception (Ctrl-C) arrives
    while waiting for the copy, the copy is killed and reaped before the exception goes on."""
    pid = _fork(second) if fork and second and spare_cores() else None
    try:
        for call in first:
            call()
        copied = pid is not None and _child_succeeded(pid, timeout=FORK_TIMEOUT)
    except BaseException:  # Ctrl-C here or while waiting: the copy goes too, reaped
        if pid is not None:
            _kill(pid)
        raise
    if copied:
        return
    for draw in second:
        draw()


def _fork(second: list) -> int | None:
    """The copy's pid (None if fork failed); in the copy, draw `second` and leave."""
    if not hasattr(os, "fork"):
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid == 0:  # the copy
        code = 1
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            for draw in second:
                draw()
            code = 0
        finally:
            os._exit(code)
    return pid


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass


def _child_succeeded(pid: int, timeout: float) -> bool:
    """Wait for the copy; one still running after `timeout` s is killed and counts as failed."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        if time.monotonic() > deadline:
            _kill(pid)
            return False
        time.sleep(0.002)

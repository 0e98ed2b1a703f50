"""Ctrl-C (SIGINT) and `kill` (SIGTERM): which signal arrived, and what each process does.

Two roles, each installed once per process:

- The launching process (train.py's `__main__`, before Hydra runs) is where the user's signal
  lands. The first signal stops every descendant process (the joblib/loky workers, submitit's
  subprocesses: SIGTERM, then SIGKILL after GRACE_SECONDS) and then raises `Interrupted` (a
  KeyboardInterrupt) in the main thread, so a job running in this process ends its run KILLED
  on the way up. At the top, `finish()` runs the cleanups registered with `at_interrupt` (the
  sweep callback: every RUNNING child and the parent KILLED), prints one line and returns the
  exit code, 128 + the signal (130 for SIGINT, 143 for SIGTERM).
- A job process that is not the launching process (a loky worker, a submitit task) installs
  `install_worker()`. A signal during a job raises `Interrupted` in it; once the run is marked
  KILLED (`note_killed`) the process exits, so a worker pool never goes on with the next job.
  A signal while idle exits at once. A watchdog thread also ends the worker (as if SIGTERM had
  arrived) when the launching process is gone, e.g. killed by SIGKILL.

This module is the harness's lowest layer: it imports no other experiments module.
Descendants are found through /proc (Linux); elsewhere only the signal handling applies.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Callable

GRACE_SECONDS = 5.0  # for a stopped process to mark its run KILLED before SIGKILL
LAUNCHER_ENV = "ANN_LAUNCHING_PROCESS"  # "<pid>:<start time>" of the launching process
REPEAT_SECONDS = 10.0  # the launching process ignores repeated signals this long
HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by a SIGINT or SIGTERM handler of this module."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal_name(signum)}")
        self.signum = signum


class _State:
    def __init__(self) -> None:
        self.pid: int | None = None  # the process the handlers were installed in
        self.role: str | None = None  # "launcher" or "worker"
        self.signum: int | None = None  # the first signal received
        self.ticks = 0  # when it came (launching process; /proc start-time units)
        self.finishing = False  # the launching process is cleaning up: signals are ignored
        self.deadline = 0.0  # worker: exit by then; launcher: ignore repeats until then
        self.job_code = None  # code object of the job function (train.main)
        self.killed_runs: list[str] = []
        self.cleanups: list[Callable[[], str | None]] = []


_state = _State()


def signal_name(signum: int | None) -> str:
    try:
        return signal.Signals(signum).name
    except (TypeError, ValueError):
        return f"signal {signum}"


def received() -> int | None:
    """The first SIGINT/SIGTERM this process received (None: none)."""
    return _state.signum if _state.pid == os.getpid() else None


def exit_code(signum: int | None = None) -> int:
    return 128 + int(signum or received() or signal.SIGINT)


def installed() -> bool:
    return _state.pid == os.getpid()


def _install(handler) -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    for signum in HANDLED:
        signal.signal(signum, handler)
    return True


def _reset_if_forked() -> None:
    if _state.pid is not None and _state.pid != os.getpid():
        _state.__init__()


# ---------------------------------------------------------------- the launching process
def install_launcher() -> None:
    """Handlers of the launching process (call before Hydra runs)."""
    _reset_if_forked()
    if _state.pid == os.getpid() or not _install(_launcher_handler):
        return
    _state.pid, _state.role = os.getpid(), "launcher"
    start = _start_time(os.getpid())
    os.environ[LAUNCHER_ENV] = f"{os.getpid()}:{start}"


def _launcher_handler(signum, frame) -> None:
    if _state.finishing:
        return  # the cleanup is under way; it ends everything
    if _state.signum is not None and time.monotonic() < _state.deadline:
        return  # the first interrupt is unwinding (ending runs KILLED): let it
    if _state.signum is None:
        _state.signum, _state.ticks = signum, _now_ticks()
        stop_descendants()  # workers end their runs KILLED before the parent looks
    # a repeat long after the first means something swallowed the first: raise again
    _state.deadline = time.monotonic() + REPEAT_SECONDS
    raise Interrupted(_state.signum)


def at_interrupt(cleanup: Callable[[], str | None]) -> None:
    """Call `cleanup` in `finish()`; it returns a few words on what it ended (or None)."""
    if cleanup not in _state.cleanups:
        _state.cleanups.append(cleanup)


def finish() -> int:
    """The interrupt reached the top of the launching process: stop what is left, run the
    cleanups, print one line on stderr; returns the exit code (130 SIGINT, 143 SIGTERM)."""
    signum = _state.signum or signal.SIGINT
    _state.signum, _state.finishing = signum, True
    _state.ticks = _state.ticks or _now_ticks()
    stop_descendants()
    _release_interrupted_frames()
    notes = []
    for cleanup in list(_state.cleanups):
        try:
            note = cleanup()
        except Exception as err:  # noqa: BLE001 - one line says what could not be ended
            note = f"could not end the open runs: {type(err).__name__}: {err}"
        if note:
            notes.append(note)
    if not notes and _state.killed_runs:
        notes = [f"run {', '.join(_state.killed_runs)} KILLED"]
    print(f"interrupted ({signal_name(signum)}): " + ("; ".join(notes) or "no MLflow run was open"),
          file=sys.stderr, flush=True)
    code = exit_code(signum)
    threading.Thread(target=_exit_anyway, args=(code, EXIT_GRACE), name="ann-exit-guard",
                     daemon=True).start()
    return code


def _release_interrupted_frames() -> None:
    """Let go of what the frames the interrupt unwound still hold. The exception being handled
    keeps them, and their locals, alive: a store connection caught between a write and its
    commit keeps its SQLite write lock, so the cleanups' writes would wait MLflow's busy
    timeout (20 s) and fail, leaving runs RUNNING (seen once in ~40 Ctrl-C's of a sweep: 20.3 s,
    one run RUNNING). Clearing the frames (and collecting) closes such a connection, which
    rolls its transaction back, before anything is written."""
    import gc
    import traceback as tb

    seen: set[int] = set()
    exc = sys.exc_info()[1]
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if exc.__traceback__ is not None:
            tb.clear_frames(exc.__traceback__)  # skips the frames still executing
        exc = exc.__cause__ or exc.__context__
    gc.collect()


EXIT_GRACE = 30.0  # s an interrupted process may take to exit once its runs are ended


def _exit_anyway(code: int, grace: float) -> None:
    """End the process `grace` s after finish() if it is still there. Interpreter shutdown
    joins every non-daemon thread first, and one can be left waiting forever: seen once in ~40
    Ctrl-C's of a sweep, MLflow's artifact download pool had started a worker when the
    KeyboardInterrupt arrived, before concurrent.futures registered it to be told to stop, and
    the process hung in threading._shutdown. The runs are already ended here (the cleanups
    above); only the exit is forced."""
    time.sleep(grace)
    try:
        sys.stderr.write(f"warning: exit forced {grace:g} s after the interrupt (a thread "
                         "would not stop)\n")
        sys.stderr.flush()
        sys.stdout.flush()
    finally:
        os._exit(code)


# ---------------------------------------------------------------- job processes
def enter_job(frame) -> None:
    """A job starts in `frame` (its function's frame): in a worker, a signal while this
    function is on the stack ends the job's run KILLED first; otherwise it exits at once."""
    _reset_if_forked()
    _state.job_code = frame.f_code
    if _state.pid != os.getpid():
        install_worker()


def install_worker() -> None:
    """Handlers and the launcher watchdog of a job process that is not the launching one."""
    _reset_if_forked()
    if _state.pid == os.getpid() or not _install(_worker_handler):
        return
    _state.pid, _state.role = os.getpid(), "worker"
    launcher = _launcher_identity()
    threading.Thread(target=_watchdog, args=(launcher,), name="ann-signal-watchdog",
                     daemon=True).start()


def _worker_handler(signum, frame) -> None:
    if _state.signum is not None:
        return  # already ending (the watchdog makes sure of it)
    _state.signum = signum
    _state.deadline = time.monotonic() + GRACE_SECONDS
    if not _in_job(frame):
        _exit()
    raise Interrupted(signum)


def note_killed(run_id: str | None) -> None:
    """The run was marked KILLED after an interrupt. A worker process then exits (its pool
    must not start the next job); the launching process remembers the id for its line."""
    if run_id:
        _state.killed_runs.append(run_id)
    if _state.role == "worker" and _state.pid == os.getpid() and _state.signum is not None:
        _exit()


def _exit() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(exit_code(_state.signum))


def _in_job(frame) -> bool:
    while frame is not None:
        if _state.job_code is not None and frame.f_code is _state.job_code:
            return True
        frame = frame.f_back
    return False


def _launcher_identity() -> tuple[int, str | None]:
    """(pid, start time) of the launching process, from the environment; else the parent."""
    text = os.environ.get(LAUNCHER_ENV, "")
    pid, _, start = text.partition(":")
    if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid), start or None):
        return int(pid), start or None
    return os.getppid(), _start_time(os.getppid())


def _watchdog(launcher: tuple[int, str | None]) -> None:
    pid, start = launcher
    ppid = os.getppid()
    told = False
    while True:
        time.sleep(0.5)
        if _state.signum is not None:
            main = sys._current_frames().get(threading.main_thread().ident)
            if not _in_job(main) or time.monotonic() > _state.deadline:
                _exit()
        elif not told and (not _alive(pid, start) or (pid == ppid and os.getppid() != ppid)):
            told = True  # the launching process is gone: end as if it had sent SIGTERM
            os.kill(os.getpid(), signal.SIGTERM)


# ---------------------------------------------------------------- processes (Linux /proc)
def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from `state` on (index 0 = state, 1 = ppid, 19 = start)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode(errors="replace")
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def _alive(pid: int, start: str | None = None) -> bool:
    """Running (not a zombie) and, when `start` is given, the same process (no pid reuse)."""
    fields = _stat(pid)
    if fields is None:
        if os.path.isdir("/proc/self"):
            return False
        try:  # no /proc: ask the kernel
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return fields[0] not in ("Z", "X", "x") and (start is None or fields[19] == start)


def descendants(root: int | None = None) -> dict[int, str | None]:
    """Every live descendant of `root` (default: this process): pid -> start time."""
    root = os.getpid() if root is None else root
    children: dict[int, list[tuple[int, str]]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for entry in entries:
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields and len(fields) > 19 and fields[0] not in ("Z", "X", "x"):
                children.setdefault(int(fields[1]), []).append((int(entry), fields[19]))
    found: dict[int, str | None] = {}
    todo = [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            if pid not in found:
                found[pid] = start
                todo.append(pid)
    return found


def _ignores_sigterm(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except (OSError, ValueError):
        pass
    return False


def _send(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _now_ticks() -> int:
    """Now, in the unit of /proc/<pid>/stat's start time (clock ticks since boot)."""
    try:
        with open("/proc/uptime") as fh:
            return int(float(fh.read().split()[0]) * os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError):
        return 2 ** 62


def _stoppable(before: int) -> dict[int, str | None]:
    """Descendants started before `before` (ticks), minus those that ignore SIGTERM.

    Left alone: processes started after the interrupt, i.e. helpers of the cleanup itself
    (loky runs `pgrep -P` to find a dead worker's children, and fails loudly when that is
    killed), and the resource trackers of multiprocessing and loky, which exit by themselves
    once this process is gone (killed, loky relaunches one that prints KeyErrors)."""
    return {p: s for p, s in descendants().items()
            if (s is None or int(s) <= before) and not _ignores_sigterm(p)}


def stop_descendants(grace: float = GRACE_SECONDS) -> list[int]:
    """SIGTERM every descendant process, wait up to `grace` s (each job process ends its run
    KILLED and exits), then SIGKILL whatever is left. Returns the pids that were stopped.
    After an interrupt only processes that existed when it came are stopped. Processes
    orphaned meanwhile (a submitit task whose controller died) are still followed: the whole
    tree is read before any signal is sent."""
    procs = _stoppable(_state.ticks if _state.signum is not None and _state.ticks else
                       _now_ticks())
    if not procs:
        return []
    for pid in procs:
        _send(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while True:
        alive = [p for p, s in procs.items() if _alive(p, s)]
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    for pid in alive:
        _send(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while any(_alive(p, s) for p, s in procs.items()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return sorted(procs)

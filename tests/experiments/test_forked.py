"""forked.draw_in_two (figures drawn by a forked copy) and the runner's use of it."""
from __future__ import annotations

import os
import signal
import time

import pytest

from experiments import forked
from tests.experiments.conftest import ROOT

two_cores = pytest.mark.skipif(forked.spare_cores() < 1, reason="needs a second core")


def _touch(path):
    return lambda: path.write_text(str(os.getpid()))


def test_figures_drawn_in_a_forked_copy_or_here_when_it_fails_or_hangs(tmp_path, monkeypatch):
    """The copy's figures arrive; a copy that fails or hangs is replaced by drawing here (the
    hang is cut at FORK_TIMEOUT); fork=False draws everything here."""
    here = str(os.getpid())
    a, b = tmp_path / "a", tmp_path / "b"
    forked.draw_in_two([_touch(a)], [_touch(b)])
    assert a.read_text() == here
    if forked.spare_cores():  # drawn by the copy
        assert b.read_text() != here
    forked.draw_in_two([_touch(a)], [_touch(b)], fork=False)
    assert b.read_text() == here
    b.unlink()

    def fails():
        if str(os.getpid()) != here:
            raise RuntimeError("the copy fails")
        _touch(b)()

    forked.draw_in_two([_touch(a)], [fails])
    assert b.read_text() == here
    b.unlink()

    def hangs():
        if str(os.getpid()) != here:
            time.sleep(60)
        _touch(b)()

    monkeypatch.setattr(forked, "FORK_TIMEOUT", 0.5)
    started = time.monotonic()
    forked.draw_in_two([_touch(a)], [hangs])
    assert b.read_text() == here and time.monotonic() - started < 10


@two_cores
def test_the_copy_is_killed_when_the_work_here_raises(tmp_path):
    """Ctrl-C (or any error) in this process's part: the copy does not live on drawing."""
    pid_file, late = tmp_path / "copy.pid", tmp_path / "late"

    def slow_figure():
        pid_file.write_text(str(os.getpid()))
        time.sleep(30)
        late.write_text("drawn after all")

    def interrupted():
        deadline = time.monotonic() + 20
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        forked.draw_in_two([interrupted], [slow_figure])
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(pid, 0)
    assert not late.exists()


@two_cores
def test_the_copy_does_not_run_this_process_signal_handlers(tmp_path):
    """A SIGTERM reaching the copy kills it outright: the handler this process installed (the
    harness's ends the current run KILLED through the store) never runs in the copy, and the
    copy's figure is drawn here instead."""
    ran_in = tmp_path / "handler"
    out = tmp_path / "figure"
    here = os.getpid()

    def handler(signum, frame):
        ran_in.write_text(str(os.getpid()))

    def terminated_figure():
        if os.getpid() != here:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        _touch(out)()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        forked.draw_in_two([lambda: None], [terminated_figure])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not ran_in.exists()
    assert out.read_text() == str(here)


@two_cores
def test_a_job_with_a_spare_core_has_the_same_figures_drawn_in_a_copy(tracking_uri, client,
                                                                      tmp_path, monkeypatch):
    """The runner forks for a job's figures once this process has made them (the second job
    here), and what the run holds is byte for byte what a job drawing them itself holds."""
    from hydra import compose, initialize_config_dir

    from experiments.runner import run_job

    overrides = ["dataset=iris", "trainer.max_epochs=4", "model.hidden=[8]"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    from experiments import plots

    monkeypatch.setattr(plots, "_KEPT", {})  # as in a new process: no figure made yet
    forks = []
    real_fork = forked._fork
    monkeypatch.setattr(forked, "_fork", lambda second: forks.append(1) or real_fork(second))
    outcomes = {}
    for name, parallel in (("first", 1), ("forked", 1), ("alone", 2)):
        outcomes[name] = run_job(cfg, overrides=overrides, tracking_uri=tracking_uri,
                                 output_dir=tmp_path / name, parallel_jobs=parallel)
        assert outcomes[name].status == "FINISHED"
    # the first job made the figures here, the second forked; two jobs at once on two cores
    # leave no core to spare: drawn here
    assert len(forks) == (1 if forked.spare_cores() < 2 else 2)
    for figure in ("learning_curves.png", "layer_diagnostics.png"):
        drawn = {}
        for name, outcome in outcomes.items():
            local = client.download_artifacts(outcome.run_id, figure, str(tmp_path / "dl" / name))
            drawn[name] = open(local, "rb").read()
        assert drawn["forked"] == drawn["alone"] == drawn["first"], figure


@two_cores
def test_the_copy_is_killed_and_reaped_when_ctrl_c_comes_while_waiting_for_it(tmp_path):
    """An interrupt in the wait (this process's part is done, the copy still draws)."""
    pid_file = tmp_path / "copy.pid"

    def slow_figure():
        pid_file.write_text(str(os.getpid()))
        time.sleep(30)

    def interrupt_soon(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt_soon)
    signal.setitimer(signal.ITIMER_REAL, 1.0)  # this process's part takes no time: we wait
    try:
        with pytest.raises(KeyboardInterrupt):
            forked.draw_in_two([lambda: None], [slow_figure])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped: not even a zombie
        os.kill(pid, 0)

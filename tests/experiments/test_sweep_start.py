"""The sweep's start-up savings, against real Hydra and real joblib/loky workers.

- validate_jobs hands each job config it composed to the next two load_sweep_config calls
  (Hydra's BasicSweeper.validate_batch_is_legal, then the launch when the job runs in the
  launching process), then Hydra composes afresh;
- WorkerWarmup starts the loky workers that the joblib launcher's own Parallel call reuses;
- release_workers stops them.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from experiments import sweep
from experiments.config import ConfigError

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.fixture(autouse=True)
def no_kept_configs():
    """Entries are keyed by the master config's id, which a later test's config may reuse."""
    yield
    sweep._COMPOSED.clear()


@pytest.fixture
def master():
    """A master config as Hydra builds it for a joblib multirun (hydra node included)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield compose("config", overrides=["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
                      return_hydra_config=True)


def test_composed_job_configs_are_reused_for_the_check_and_the_launch(master):
    jobs = [["optimizer.lr=0.5"], ["optimizer.lr=0.25", "seed=3"]]
    sweep.validate_jobs(master, jobs)
    loader = GlobalHydra.instance().config_loader()
    cached = sweep._COMPOSED[(id(master), tuple(jobs[1]))][0]
    first = loader.load_sweep_config(master, list(jobs[1]))  # Hydra's check
    assert first is cached  # no second composition
    assert first.optimizer.lr == 0.25 and first.seed == 3 and "hydra" in first
    launched = loader.load_sweep_config(master, list(jobs[1]))  # the launch: no third one
    assert launched is cached
    again = loader.load_sweep_config(master, list(jobs[1]))  # the entry was used up: composed
    assert again is not first and OmegaConf.to_yaml(again) == OmegaConf.to_yaml(first)
    assert (id(master), tuple(jobs[1])) not in sweep._COMPOSED
    other_master = OmegaConf.create(OmegaConf.to_container(master))
    fresh = loader.load_sweep_config(other_master, list(jobs[0]))  # another master: not cached
    assert fresh is not sweep._COMPOSED.get((id(master), tuple(jobs[0])), [None])[0]
    assert fresh.optimizer.lr == 0.5


def test_a_launched_job_gets_the_config_hydra_would_compose(master):
    """What the launch receives from the cache is what Hydra composes for it, hydra node and
    all (the launcher then sets hydra.job.id and .num itself)."""
    job = ["optimizer=adam", "optimizer.lr=0.003", "seed=2"]
    sweep.validate_jobs(master, [job])
    loader = GlobalHydra.instance().config_loader()
    for _ in range(sweep.USES):
        kept = loader.load_sweep_config(master, list(job))
    composed = loader.load_sweep_config(master, list(job))
    assert kept is not composed
    assert OmegaConf.to_yaml(kept) == OmegaConf.to_yaml(composed)


def test_validate_jobs_names_the_bad_job(master):
    with pytest.raises(ConfigError, match="optimizer.lr"):
        sweep.validate_jobs(master, [["optimizer.lr=0.1"], ["optimizer.lr=-1"]])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_warm_workers_are_the_launchers_workers_and_are_released(master, tracking_uri):
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg
    from joblib import Parallel, delayed

    warmup = sweep.WorkerWarmup()
    warmup.start(master, tracking_uri)
    warmup.join()
    assert len(set(warmup.pids)) >= 1 and os.getpid() not in warmup.pids
    # the launcher's own call (hydra_joblib_launcher._core.launch builds its arguments so)
    joblib_cfg = {k: v for k, v in OmegaConf.to_container(master.hydra.launcher).items()
                  if k != "_target_"}
    joblib_cfg["backend"] = "loky"
    process_joblib_cfg(joblib_cfg)
    pids = Parallel(**joblib_cfg)(delayed(os.getpid)() for _ in range(6))
    assert set(pids) <= set(warmup.pids), "the launcher started new workers instead of the warm ones"
    sweep.release_workers()
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in set(pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in set(pids))


def test_no_warmup_without_parallel_joblib(master, tracking_uri):
    basic = OmegaConf.create({"hydra": {"launcher": {
        "_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}}})
    one = OmegaConf.create(OmegaConf.to_container(master))
    one.hydra.launcher.n_jobs = 1  # joblib then runs the jobs in the launching process
    for config in (basic, one):
        warmup = sweep.WorkerWarmup()
        warmup.start(config, tracking_uri)
        assert warmup._thread is None


def test_kept_configs_are_bounded(master, monkeypatch):
    monkeypatch.setattr(sweep, "MAX_KEPT", 2)
    jobs = [[f"optimizer.lr={0.1 * (i + 1):g}"] for i in range(4)]
    sweep.validate_jobs(master, jobs)
    assert sorted(sweep._COMPOSED) == [(id(master), tuple(j)) for j in jobs[:2]]
    loader = GlobalHydra.instance().config_loader()
    assert loader.load_sweep_config(master, list(jobs[3])).optimizer.lr == 0.4  # composed afresh

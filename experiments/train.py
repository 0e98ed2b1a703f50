"""Train one configured network and log it to MLflow (the Hydra entry point).

    python experiments/train.py                                   # MLP on digits, defaults
    python experiments/train.py model.activation=tanh optimizer.lr=0.05
    python experiments/train.py experiment=gd_variants            # a comparison preset
    python experiments/train.py -m optimizer.lr=0.001,0.01,0.1    # an ad-hoc sweep
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.config import ConfigError, describe  # noqa: E402
from experiments.runner import run_job  # noqa: E402
from experiments.sweep import read_sweep_file  # noqa: E402
from experiments.tracking import StoreError  # noqa: E402


def _blas_threads(hc, requested: int | None) -> int:
    """BLAS threads for this job: `trainer.blas_threads` (null = all cores), capped so that
    parallel jobs x threads never exceed the cores (oversubscribed BLAS is many times slower)."""
    cores = os.cpu_count() or 1
    n_jobs = hc.launcher.get("n_jobs") if hc.mode == RunMode.MULTIRUN else None
    per_job = cores if not n_jobs else max(1, cores // (cores if n_jobs < 0 else n_jobs))
    return max(1, min(requested or cores, per_job))


def _compact_config_errors() -> None:
    """Bad overrides (unknown key, unknown group option, bad syntax) end in one line, exit 2.

    Hydra prints these over several lines; everything else keeps Hydra's own report.
    HYDRA_FULL_ERROR=1 still shows the full stack.
    """
    from hydra._internal import utils as hydra_utils
    from hydra.errors import (ConfigCompositionException, MissingConfigException,
                              OverrideParseException)

    original = hydra_utils.run_and_report
    config_errors = (ConfigCompositionException, MissingConfigException, OverrideParseException)

    def run_and_report(func):
        try:
            return func()
        except config_errors as ex:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: invalid config: {describe(ex)}", file=sys.stderr)
            sys.exit(2)
        except Exception as ex:  # noqa: BLE001 - Hydra's report for everything else
            def reraise(error: Exception = ex) -> None:
                raise error
            return original(reraise)

    hydra_utils.run_and_report = run_and_report


def _terminate_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _handle_sigterm() -> None:
    """`kill` (SIGTERM, also what schedulers send) ends runs as KILLED, like Ctrl-C."""
    try:
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    except ValueError:  # not the main thread of the interpreter: leave it alone
        pass


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    _handle_sigterm()
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra/")}
    sweep = read_sweep_file(Path(hc.sweep.dir)) if hc.mode == RunMode.MULTIRUN else None
    kwargs = {}
    if sweep:
        swept = set(sweep["swept_keys"])
        kwargs = dict(parent_run_id=sweep["parent_run_id"], experiment_id=sweep["experiment_id"],
                      tracking_uri=sweep["tracking_uri"],
                      arm_overrides=[o for o in overrides if o.split("=", 1)[0] in swept])
    threads = _blas_threads(hc, cfg.trainer.get("blas_threads"))
    try:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):
            outcome = run_job(cfg, overrides=overrides, choices=choices,
                              output_dir=Path(hc.runtime.output_dir), **kwargs)
    except (ConfigError, StoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if hc.mode != RunMode.MULTIRUN:
        print(f"MLflow run {outcome.run_id}: {outcome.status}"
              + "".join(f" {k}={v:.4g}" for k, v in outcome.metrics.items()
                        if k.startswith("test_")), file=sys.stderr)
        if outcome.status != "FINISHED":
            print(f"error: the run failed: {outcome.tags.get('error', '')}", file=sys.stderr)
            sys.exit(1)
    return outcome.metrics.get("best_val_loss")


if __name__ == "__main__":
    _compact_config_errors()
    main()

"""Train one configured network and log it to MLflow (the Hydra entry point).

    python experiments/train.py                                   # MLP on digits, defaults
    python experiments/train.py model.activation=tanh optimizer.lr=0.05
    python experiments/train.py experiment=gd_variants            # a comparison preset
    python experiments/train.py -m optimizer.lr=0.001,0.01,0.1    # an ad-hoc sweep
    python experiments/train.py experiment=optimizers seeds=5     # every arm over seeds 0..4
    python experiments/train.py experiment=optimizers resume=true # only what has no FINISHED run
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments import heap  # noqa: E402

heap.quiet()  # before the imports: rarer young collections (experiments/heap.py)

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from experiments import signals  # noqa: E402
from experiments.config import ConfigError, expand_seeds  # noqa: E402
from experiments.entry import (compact_config_errors, drop_refused_folder,  # noqa: E402
                               quick_exit)
from experiments.runner import blas_threads, run_job  # noqa: E402
from experiments.sweep import read_sweep_file  # noqa: E402
from experiments.tracking import StoreError  # noqa: E402


def _parallel_jobs(hc) -> int:
    """How many jobs of this sweep run at once on this machine (1 outside a joblib sweep)."""
    n_jobs = hc.launcher.get("n_jobs") if hc.mode == RunMode.MULTIRUN else None
    if not n_jobs:
        return 1
    return (os.cpu_count() or 1) if n_jobs < 0 else n_jobs


def _handle_sigterm() -> None:
    """A job starts: Ctrl-C and `kill` (SIGTERM, also what schedulers send) end its run KILLED.

    In the launching process the handlers are already installed (`__main__`); in a job process
    of a launcher (a loky worker, a submitit task) they are installed here, and that process
    exits once the run is KILLED (experiments/signals.py).
    """
    signals.enter_job(sys._getframe(1))


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    _handle_sigterm()
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    sweep = read_sweep_file(Path(hc.sweep.dir)) if hc.mode == RunMode.MULTIRUN else None
    kwargs = {}
    if cfg.get("resume") is True and hc.mode != RunMode.MULTIRUN:
        drop_refused_folder(Path(hc.runtime.output_dir), hc.job.name)
        print("error: invalid config: resume=true: resumes a sweep (a preset, -m or seeds=N); "
              "a single run has nothing to resume", file=sys.stderr)
        sys.exit(2)
    if sweep:
        reused = sweep.get("reused", {}).get(str(hc.job.num))
        if reused is not None and reused["overrides"] == overrides:
            print(f"job #{hc.job.num} ({','.join(overrides)}): resume: reuses FINISHED run "
                  f"{reused['run_id']}", file=sys.stderr)
            return None
        swept = set(sweep["swept_keys"])
        kwargs = dict(parent_run_id=sweep["parent_run_id"], experiment_id=sweep["experiment_id"],
                      tracking_uri=sweep["tracking_uri"],
                      arm_overrides=[o for o in overrides if o.split("=", 1)[0] in swept])
    parallel = _parallel_jobs(hc)
    threads = blas_threads(cfg.trainer.get("blas_threads"), parallel)
    try:
        outcome = run_job(cfg, overrides=overrides, threads=threads, parallel_jobs=parallel,
                          output_dir=Path(hc.runtime.output_dir), **kwargs)
    except (ConfigError, StoreError) as err:
        if hc.mode != RunMode.MULTIRUN:
            drop_refused_folder(Path(hc.runtime.output_dir), hc.job.name, err)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if hc.mode != RunMode.MULTIRUN:
        diverged = outcome.tags.get("diverged") == "true"
        name = outcome.tags.get("mlflow.runName", "")
        print(f"MLflow run {outcome.run_id} ({name}): {outcome.status}"
              + (f", diverged in epoch {outcome.tags.get('diverged_epoch', '?')} (tagged "
                 "diverged=true)" if diverged else "")
              + "".join(f" {k}={v:.4g}" for k, v in outcome.metrics.items()
                        if k.startswith("test_")), file=sys.stderr)
        if outcome.where:
            print(f"MLflow: {outcome.where}", file=sys.stderr)
        if outcome.status != "FINISHED":
            print(f"error: the run failed: {outcome.tags.get('error', '')}", file=sys.stderr)
            sys.exit(1)
    return outcome.metrics.get("best_val_loss")


if __name__ == "__main__":
    quick_exit()
    signals.install_launcher()  # before Hydra: a sweep's launching process must end it too
    compact_config_errors()
    try:
        sys.argv[1:] = expand_seeds(sys.argv[1:])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the runs are KILLED; one line, no traceback
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            import traceback

            traceback.print_exc()
        sys.exit(signals.finish())

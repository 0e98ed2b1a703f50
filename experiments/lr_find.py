"""A learning-rate range test of the configured model, logged as one MLflow run (Hydra entry).

    python experiments/lr_find.py                                     # the default job
    python experiments/lr_find.py optimizer=sgd schedule=constant model.hidden=[128,64]
    python experiments/lr_find.py lr_find.max_lr=1 lr_find.num_updates=500

Same overrides as train.py (conf/lr_find.yaml is config.yaml plus an `lr_find` block); one
test per command: no -m, no experiment= preset (a preset is a sweep). The run goes to the
experiment `lr_find` unless mlflow.experiment_name= says otherwise. The model's weights are
left untouched (the test builds its own from the seed anyway). One line at the end: the
suggested rate and the run id.
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments import signals  # noqa: E402
from experiments.config import ConfigError  # noqa: E402
from experiments.entry import compact_config_errors, drop_refused_folder  # noqa: E402
from experiments.lr_find_run import run_lr_find  # noqa: E402
from experiments.tracking import StoreError  # noqa: E402

SWEEP_KEYS = ("experiment", "hydra.mode", "seeds")


def refusal(argv: list[str]) -> str | None:
    """Why this command line asks for a sweep (one line), or None."""
    for arg in argv:
        key = arg.split("=", 1)[0].lstrip("+~")
        if arg in ("-m", "--multirun") or ("=" in arg and key in SWEEP_KEYS):
            return (f"lr_find.py runs one range test, not a sweep: {arg} is not allowed; give "
                    "the overrides themselves (e.g. optimizer=sgd schedule=constant "
                    "model.hidden=[128,64] for lr_tuning's model)")
    return None


@hydra.main(config_path="../conf", config_name="lr_find", version_base="1.3")
def main(cfg: DictConfig) -> None:
    signals.enter_job(sys._getframe())
    hc = HydraConfig.get()
    output_dir = Path(hc.runtime.output_dir)
    try:
        outcome = run_lr_find(cfg, overrides=list(hc.overrides.task), output_dir=output_dir)
    except (ConfigError, StoreError) as err:
        drop_refused_folder(output_dir, hc.job.name, err)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if outcome.status != "FINISHED":
        print(f"error: the range test failed (MLflow run {outcome.run_id} FAILED, "
              f"traceback.txt logged): {outcome.error}", file=sys.stderr)
        sys.exit(1)
    result = outcome.result
    found = (f"suggested_lr={result.suggested_lr:.3g}" if result.suggested_lr is not None
             else "no suggested_lr")
    print(f"{found} ({result.method}); stop_reason={result.stop_reason} after "
          f"{result.n_updates} updates; MLflow run {outcome.run_id} in experiment "
          f"'{cfg.mlflow.experiment_name}'")


if __name__ == "__main__":
    signals.install_launcher()
    why = refusal(sys.argv[1:])
    if why:
        print(f"error: {why}", file=sys.stderr)
        sys.exit(2)
    compact_config_errors()
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run is KILLED; one line, no traceback
        sys.exit(signals.finish())

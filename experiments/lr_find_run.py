"""Run the learning-rate range test of a composed config and log it as one MLflow run.

The model, data and optimizer are built exactly as for a training run (runner.prepare), so the
test is that of `python experiments/train.py` with the same overrides; `ann.lr_finder` does
the work. The run holds:

- params: the job's params (config.job_params) plus `lr_find.*`, minus the keys the test does
  not use (UNUSED_KEYS: the optimizer's own rate, the schedule, early stopping, the epoch
  budget and divergence limit of training), and the descriptor params of a training run;
- metrics: `lr_find.lr`, `lr_find.loss`, `lr_find.smoothed_loss` at step = update index
  (0-based), then `suggested_lr` (when there is one), the suggestion of each rule
  (`lr_find.suggestion.minimum`, `.steepest`), `lr_find.lr_at_min`,
  `lr_find.min_smoothed_loss`, `lr_find.n_updates`, sent with the tags in as few `log_batch`
  calls as MLflow allows (runner.send_batch);
- tags: `ann.lr_find.method` (how the rate was chosen, in plain words), `stop_reason`
  (num_updates | diverged | non_finite) and `ann.lr_find.stopped` (in words), the source
  tags, `dataset_digest`, the run's description (the suggestion, for the UI);
- artifacts: config.yaml, lr_find.csv (update, lr, loss, smoothed_loss), lr_find.png.

A run never stays RUNNING: FINISHED, FAILED (with traceback.txt) or KILLED (Ctrl-C, SIGTERM).
"""
from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ann.lr_finder import RangeTestResult, check_settings, lr_range_test
from experiments import tracking
from experiments.config import ConfigError, job_params, validate
from experiments.lr_find_plot import plot_lr_find
from experiments.record import (claim_folder, dataset_inputs, descriptor_params, log_inputs,
                                run_label, source_tags)
from experiments.runner import (blas_threads, end_quietly, prepare, record_failure,
                                send_batch)

SETTINGS = ("min_lr", "max_lr", "num_updates", "stop_factor", "beta", "suggestion")
UNUSED_KEYS = ("optimizer.lr", "schedule", "early_stopping", "trainer.max_epochs",
               "trainer.divergence_factor")
SOURCE = "experiments/lr_find.py"


@dataclass
class LrFindOutcome:
    run_id: str
    status: str  # FINISHED | FAILED
    result: RangeTestResult | None = None
    error: str = ""


def settings(cfg: DictConfig) -> dict:
    """The `lr_find` block as keyword arguments of ann.lr_finder.lr_range_test."""
    node = cfg.get("lr_find")
    if not OmegaConf.is_dict(node):
        raise ConfigError(f"invalid config: lr_find={node!r}: a block of {', '.join(SETTINGS)} "
                          "(conf/lr_find.yaml)")
    values = OmegaConf.to_container(node, resolve=True)
    for key in values:
        if key not in SETTINGS:
            raise ConfigError(f"invalid config: lr_find.{key}={values[key]!r}: unknown key; "
                              f"allowed: {', '.join(SETTINGS)}")
    missing = [k for k in SETTINGS if k not in values]
    if missing:
        raise ConfigError(f"invalid config: lr_find.{missing[0]}=None: missing; "
                          f"conf/lr_find.yaml sets every one of {', '.join(SETTINGS)}")
    return values


def check(cfg: DictConfig) -> dict:
    """validate() of a training job plus the range test's settings; ConfigError, one line."""
    validate(cfg)
    values = settings(cfg)
    try:
        check_settings(**values)
    except ValueError as err:  # "min_lr=0.0 is invalid: must be ..." -> the config key
        text = str(err).replace(" is invalid: ", ": ", 1).replace(" or None", " or null")
        raise ConfigError(f"invalid config: lr_find.{text}") from None
    return values


def lr_find_params(cfg: DictConfig) -> dict[str, str]:
    """The job's params minus UNUSED_KEYS; the `lr_find.*` settings are among them."""
    return {k: v for k, v in job_params(cfg).items()
            if not any(k == u or k.startswith(u + ".") for u in UNUSED_KEYS)}


def run_lr_find(cfg: DictConfig, *, overrides: list[str], output_dir: Path) -> LrFindOutcome:
    """Check `cfg` (ConfigError before any run exists), then test and log it as one run."""
    values = check(cfg)
    uri = tracking.resolve_tracking_uri(cfg.mlflow.tracking_uri)
    claim = claim_folder(output_dir, "hydra.run.dir")
    try:
        experiment_id = tracking.ensure_experiment(uri, cfg.mlflow.experiment_name,
                                                   cfg.mlflow.description)
        threads = blas_threads(cfg.trainer.get("blas_threads"))
        client = tracking.client_for(uri)
        commit, dirty = tracking.git_info()
        name = "lr_find: " + run_label(overrides)
        tags = {"mlflow.runName": name, "ann.role": "lr_find", "ann.overrides": ",".join(overrides),
                **source_tags(commit, SOURCE), "git_dirty": str(dirty).lower(),
                "ann.blas_threads": str(threads)}
        run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        return _run_and_log(cfg, values, client, run_id, output_dir, threads)
    finally:
        claim.close()


def _run_and_log(cfg, values: dict, client, run_id: str, output_dir: Path,
                 threads: int) -> LrFindOutcome:
    from threadpoolctl import threadpool_limits

    try:
        send_batch(client, run_id, params=lr_find_params(cfg))
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        client.log_artifact(run_id, str(output_dir / "config.yaml"))
        with threadpool_limits(limits=threads):
            data, model, objects, rngs = prepare(cfg)
            digest = data.digest()
            client.set_tag(run_id, "dataset_digest", digest)
            send_batch(client, run_id, params=descriptor_params(data, model))
            log_inputs(client, run_id, dataset_inputs(cfg, data, digest))
            result = lr_range_test(model, data, optimizer=objects.optimizer, rng=rngs["shuffle"],
                                   batch_size=cfg.trainer.batch_size,
                                   clip_grad_norm=cfg.trainer.clip_grad_norm, **values)
        _log_result(client, run_id, result, output_dir,
                    title=f"{cfg.model.kind} {_hidden(cfg)} on {cfg.dataset.name}, "
                          f"{_optimizer_name(cfg)}, batch {cfg.trainer.batch_size or 'full'}")
        client.set_terminated(run_id, "FINISHED")
        return LrFindOutcome(run_id, "FINISHED", result)
    except KeyboardInterrupt:
        end_quietly(client, run_id, "KILLED")
        from experiments.signals import note_killed

        note_killed(run_id)
        raise
    except BaseException as err:
        record_failure(client, run_id, output_dir)
        if not isinstance(err, Exception):
            raise
        return LrFindOutcome(run_id, "FAILED", error=f"{type(err).__name__}: {err}")


def _log_result(client, run_id: str, result: RangeTestResult, output_dir: Path,
                title: str) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    series = [Metric(key, float(value), now, i)
              for i in range(result.n_updates)
              for key, value in (("lr_find.lr", result.lrs[i]), ("lr_find.loss", result.losses[i]),
                                 ("lr_find.smoothed_loss", result.smoothed[i]))]
    summary = {"lr_find.n_updates": result.n_updates}
    if result.n_updates:
        best = int(result.smoothed.argmin())
        summary.update({"lr_find.lr_at_min": result.lrs[best],
                        "lr_find.min_smoothed_loss": result.smoothed[best]})
    summary.update({f"lr_find.suggestion.{rule}": lr
                    for rule, (lr, _) in result.suggestions.items() if lr is not None})
    if result.suggested_lr is not None:
        summary["suggested_lr"] = result.suggested_lr
    series += [Metric(k, float(v), now, 0) for k, v in summary.items() if math.isfinite(v)]
    stopped = _stopped_words(result)
    tags = {"ann.lr_find.method": result.method, "stop_reason": result.stop_reason,
            "ann.lr_find.stopped": stopped, "mlflow.note.content": _description(result, stopped)}
    send_batch(client, run_id, metrics=series, tags=tags)
    with open(output_dir / "lr_find.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["update", "lr", "loss", "smoothed_loss"])
        writer.writerows((i, repr(float(result.lrs[i])), repr(float(result.losses[i])),
                          repr(float(result.smoothed[i]))) for i in range(result.n_updates))
    plot_lr_find(result, output_dir / "lr_find.png", title=f"range test: {title}")
    for artifact in ("lr_find.csv", "lr_find.png"):
        client.log_artifact(run_id, str(output_dir / artifact))


def _stopped_words(result: RangeTestResult) -> str:
    n = f"after {result.n_updates} of {result.num_updates} updates"
    if result.stop_reason == "diverged":
        low = float(result.smoothed.min())
        return (f"the smoothed loss {result.smoothed[-1]:.4g} exceeded {result.stop_factor} x "
                f"its minimum {low:.4g} at rate {result.lrs[-1]:.3g}, {n}")
    if result.stop_reason == "non_finite":
        return f"the loss or gradient was not finite at the next rate, {n}"
    return f"all {result.num_updates} updates made, up to rate {result.max_lr:g}"


def _description(result: RangeTestResult, stopped: str) -> str:
    if result.suggested_lr is None:
        head = "No suggested learning rate."
    else:
        head = (f"Suggested learning rate: {result.suggested_lr:.3g} "
                f"(train with optimizer.lr={result.suggested_lr:.2g}).")
    return f"{head}\n\nHow: {result.method}.\n\nStopped: {stopped}."


def _hidden(cfg: DictConfig) -> str:
    hidden = cfg.model.hidden
    return "-".join(str(h) for h in hidden) if OmegaConf.is_list(hidden) else str(hidden)


def _optimizer_name(cfg: DictConfig) -> str:
    return str(cfg.optimizer._target_).rsplit(".", 1)[-1]

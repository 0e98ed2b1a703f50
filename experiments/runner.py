"""Train one configured job and log it as one MLflow run (see docs/architecture.md, Harness).

Everything the run produces is first written to the job's output folder (config, history,
weights, final metrics), then sent to MLflow; a run never stays RUNNING: it ends FINISHED,
FAILED (with `traceback.txt`) or KILLED (Ctrl-C).
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ann.data import load_dataset
from ann.models import build_model
from ann.training import evaluate, fit, make_rngs
from experiments import forked, heap, tracking
from experiments.config import (build_training_objects, config_digest, dataset_options,
                                job_params, model_options, validate)
from experiments.record import (DIVERGED_MARK, arm_label, claim_folder, dataset_inputs,
                                descriptor_params, log_inputs, run_label, source_tags, ui_hint)
from experiments.unsent import Uplink, unsent_message, write_unsent


@dataclass
class JobOutcome:
    run_id: str | None
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    output_dir: Path | None = None
    where: str = ""  # how to open the run in the MLflow UI


def _progress(cfg: DictConfig, total: int, in_sweep: bool):
    """A bar in a terminal; `auto` keeps sweeps (parallel jobs share it) and CI quiet."""
    setting = cfg.trainer.progress
    show = setting is True or (setting == "auto" and sys.stderr.isatty() and not _in_ci()
                               and not in_sweep)
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="epoch", dynamic_ncols=True, leave=True)


def _in_ci() -> bool:
    import os

    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def prepare(cfg: DictConfig):
    """Load the data and build the model and training objects (the config is valid)."""
    rngs = make_rngs(int(cfg.seed))
    dtype = np.dtype(cfg.trainer.dtype)
    data = job_data(cfg, rngs["split"])
    model = build_model(cfg.model.kind, data.n_in, OmegaConf.to_container(cfg.model.hidden)
                        if OmegaConf.is_list(cfg.model.hidden) else cfg.model.hidden,
                        data.n_out, task=data.task, rng=rngs["init"], dtype=dtype,
                        **model_options(cfg), **_recurrent_extras(cfg, data))
    objects = build_training_objects(cfg)
    return data, model, objects, rngs


def job_data(cfg: DictConfig, split_rng=None):
    """The job's data: the config's dataset, split by the `split` stream of its seed (pass
    make_rngs(seed)["split"], or None to draw it here). Reads only `dataset`, `seed` and
    `trainer.dtype`, so resume.data_key's small config will do."""
    rng = make_rngs(int(cfg.seed))["split"] if split_rng is None else split_rng
    return _load_data(cfg.dataset.name, int(cfg.seed), rng, np.dtype(cfg.trainer.dtype),
                      dataset_options(cfg))


_DATA: dict[str, Any] = {}  # the last dataset this process loaded, by _load_data's key


def _load_data(name: str, seed: int, rng, dtype: np.dtype, options: dict[str, Any]):
    """load_dataset(name, rng=rng, dtype=dtype, **options), or a copy of what this process
    loaded last for the same arguments. The jobs of a sweep worker mostly share their data
    (one seed, one dataset): reading and splitting digits costs ~20 ms, a copy ~1 ms. `rng`
    is the split stream of `seed` (make_rngs), independent of the others, so leaving it
    unused changes nothing else; each job gets its own arrays."""
    import copy
    import json

    key = json.dumps([name, seed, dtype.name, options], sort_keys=True, default=repr)
    if key not in _DATA:
        data = load_dataset(name, rng=rng, dtype=dtype, **options)
        _DATA.clear()
        _DATA[key] = data
    return copy.deepcopy(_DATA[key])


def _recurrent_extras(cfg: DictConfig, data) -> dict[str, Any]:
    return {"many_to_many": bool(data.many_to_many)} if cfg.model.kind != "mlp" else {}


def run_job(cfg: DictConfig, *, overrides: list[str], parent_run_id: str | None = None,
            experiment_id: str | None = None, extra_tags: dict[str, str] | None = None,
            output_dir: Path | None = None,
            tracking_uri: str | None = None, arm_overrides: list[str] | None = None,
            threads: int | None = None, run_name: str | None = None,
            source_name: str = "experiments/train.py", parallel_jobs: int = 1) -> JobOutcome:
    """Train `cfg` and log it as one run; config errors raise before any run exists.

    `tracking_uri` defaults to the config's; `arm_overrides` (the swept overrides, in a
    sweep) name the run (`run_name` wins) and its `ann.arm` tag, `overrides` otherwise;
    `source_name` is the entry point shown as the run's Source. `threads` is the
    number of BLAS threads the job runs with (default: that of a single run, see
    `blas_threads`); it is tagged `ann.blas_threads`, since the last bits of the results
    depend on it, and reproduce.py applies the logged value. `parallel_jobs` is how many jobs
    run at once on this machine: with a core to spare, the run's figures are drawn by a
    forked copy while the record is sent (forked.draw_in_two).
    Everything after validation happens inside the run: a failure to load the data or build
    the model is a FAILED run with its traceback, like a failure in training.
    """
    validate(cfg)
    output_dir = Path(output_dir or tempfile.mkdtemp(prefix="ann-job-"))
    claim = claim_folder(output_dir, "hydra.run.dir" if parent_run_id is None else
                         "hydra.sweep.dir")
    if threads is None:
        threads = blas_threads(cfg.trainer.get("blas_threads"))
    try:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):
            return _run_claimed(cfg, overrides=overrides, parent_run_id=parent_run_id,
                                experiment_id=experiment_id,
                                extra_tags={**(extra_tags or {}),
                                            "ann.blas_threads": str(threads)},
                                output_dir=output_dir,
                                tracking_uri=tracking_uri, arm_overrides=arm_overrides,
                                run_name=run_name, source_name=source_name,
                                spare_core=forked.spare_cores() >= max(1, parallel_jobs))
    finally:
        claim.close()
        heap.settle("first job")  # what a job imports (MLflow, matplotlib) and the figures it keeps


def blas_threads(requested: int | None, parallel_jobs: int = 1) -> int:
    """BLAS threads of one job: `trainer.blas_threads` (null = all cores), capped so that
    parallel jobs x threads never exceed the cores (oversubscribed BLAS is many times slower)."""
    cores = os.cpu_count() or 1
    return max(1, min(requested or cores, max(1, cores // max(1, parallel_jobs))))


_GIT: list[tuple[str, bool]] = []


def _git_info() -> tuple[str, bool]:
    """tracking.git_info() once per process: the code a process runs is what it imported when
    it started (a sweep worker's jobs run the same code), and two git commands cost 10-20 ms."""
    if not _GIT:
        _GIT.append(tracking.git_info())
    return _GIT[0]


def _run_claimed(cfg: DictConfig, *, overrides, parent_run_id, experiment_id, extra_tags,
                 output_dir: Path, tracking_uri, arm_overrides, run_name: str | None,
                 source_name: str, spare_core: bool = False) -> JobOutcome:
    uri = tracking_uri or tracking.resolve_tracking_uri(cfg.mlflow.tracking_uri)
    if experiment_id is None:
        experiment_id = tracking.ensure_experiment(uri, cfg.mlflow.experiment_name,
                                                   cfg.mlflow.description)
    commit, dirty = _git_info()
    arm = arm_label(overrides if arm_overrides is None else arm_overrides)
    run_name = run_name or run_label(overrides if arm_overrides is None else arm_overrides)
    tags = {
        "mlflow.runName": run_name,
        "ann.role": "child" if parent_run_id else "single",
        "ann.arm": arm,
        "ann.config_digest": config_digest(cfg),  # what resume=true matches (config.py)
        "ann.overrides": ",".join(overrides),
        **source_tags(commit, source_name),
        "git_dirty": str(dirty).lower(),
        **(extra_tags or {}),
    }
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    params = job_params(cfg)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    # A store failure from here on does not stop training: the Uplink sends nothing more, the
    # results stay in output_dir with an unsent.json marker, and resend.py sends them later.
    client = Uplink(tracking.client_for(uri))
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    run_id = run.info.run_id if run is not None else None
    sent = []  # the job's params, once logged (a run that fails before still gets them)
    try:
        client.log_artifact(run_id, str(output_dir / "config.yaml"))
        data, model, objects, rngs = prepare(cfg)
        tags["dataset_digest"] = data.digest()
        # params, descriptor params and the digest tag in one call
        send_batch(client, run_id, params={**params, **descriptor_params(data, model)},
                   tags={"dataset_digest": tags["dataset_digest"]})
        sent.append(True)
        log_inputs(client, run_id, dataset_inputs(cfg, data, tags["dataset_digest"]))
        outcome = _train_and_log(cfg, client, run_id, data, model, objects, rngs, output_dir,
                                 in_sweep=parent_run_id is not None, run_name=run_name,
                                 experiment_id=experiment_id, spare_core=spare_core)
        if outcome.tags.get("diverged") == "true":  # at a glance, also in a narrow Name column
            tags["mlflow.runName"] = f"{DIVERGED_MARK}{run_name}"  # sent by _train_and_log
        client.set_terminated(run_id, "FINISHED")
        outcome.tags.update(tags)
    except KeyboardInterrupt:
        _params_if_unsent(client, run_id, params, sent)
        end_quietly(client, run_id, "KILLED")
        from experiments.signals import note_killed

        note_killed(run_id)  # a launcher's job process exits here, so its pool stops
        raise
    except BaseException as err:
        _params_if_unsent(client, run_id, params, sent)
        record_failure(client, run_id, output_dir)
        if not isinstance(err, Exception):
            raise
        outcome = JobOutcome(run_id, "FAILED", output_dir=output_dir,
                             tags={"error": f"{type(err).__name__}: {err}"})
    if client.error is not None:
        write_unsent(output_dir, tracking_uri=uri, experiment_id=experiment_id,
                     experiment_name=cfg.mlflow.experiment_name, run_id=run_id,
                     run_name=run_name, tags=tags, status=outcome.status,
                     error=client.error, metrics=outcome.metrics)
        message = unsent_message(uri, output_dir, client.error)
        if parent_run_id is None:
            raise tracking.StoreError(message)
        print(f"error: {message}", file=sys.stderr)  # a sweep's job: the other jobs go on
        outcome.status = "UNSENT"
    outcome.where = ui_hint(uri, experiment_id, run_id) if run_id else ""
    return outcome



def end_quietly(client, run_id: str, status: str) -> None:
    try:
        client.set_terminated(run_id, status)
    except Exception:  # noqa: BLE001
        print(f"warning: could not mark run {run_id} {status}", file=sys.stderr)


def record_failure(client, run_id: str, output_dir: Path) -> None:
    """The exception being handled: its traceback as `traceback.txt` in `output_dir` and on the
    run, which then ends FAILED (quietly: the store itself may be what failed)."""
    (output_dir / "traceback.txt").write_text(traceback.format_exc())
    try:
        client.log_artifact(run_id, str(output_dir / "traceback.txt"))
    except Exception:  # noqa: BLE001 - the store itself may be what failed
        pass
    end_quietly(client, run_id, "FAILED")


def _params_if_unsent(client, run_id: str | None, params: dict[str, str], sent: list) -> None:
    """A run that failed (or was stopped) before its params went out still gets them."""
    if sent or run_id is None:
        return
    try:
        send_batch(client, run_id, params=params)
    except Exception:  # noqa: BLE001 - the store itself may be what failed
        pass


# MLflow's limits per log_batch call: metrics, params, tags, and entities in all
BATCH_LIMITS = {"metrics": 1000, "params": 100, "tags": 100, "total": 1000}


def send_batch(client, run_id: str | None, *, metrics: list | None = None,
               params: dict[str, str] | None = None, tags: dict[str, str] | None = None) -> None:
    """Metrics (mlflow Metric entities), params and tags in as few `log_batch` calls as
    MLflow's limits allow (one, for a job's usual record); each call costs ~5-10 ms on SQLite
    and a request over HTTP, beside ~0.1 ms per metric."""
    from mlflow.entities import Param, RunTag

    queues = {"metrics": list(metrics or []),
              "params": [Param(k, v) for k, v in (params or {}).items()],
              "tags": [RunTag(k, v) for k, v in (tags or {}).items()]}
    while any(queues.values()):
        room, batch = BATCH_LIMITS["total"], {}
        for kind in ("tags", "params", "metrics"):
            n = min(BATCH_LIMITS[kind], room, len(queues[kind]))
            batch[kind], queues[kind] = queues[kind][:n], queues[kind][n:]
            room -= n
        client.log_batch(run_id, synchronous=True, **batch)


def _train_and_log(cfg, client, run_id, data, model, objects, rngs, output_dir, *,
                   in_sweep: bool, run_name: str = "", experiment_id: str | None = None,
                   spare_core: bool = False) -> JobOutcome:
    from ann.boundary import BoundaryRecorder, applies

    # 2-D classification: the learned boundary on a grid, a few dozen times over the run
    boundary = BoundaryRecorder(model, data, cfg.trainer.max_epochs) if applies(data) else None
    bar = _progress(cfg, cfg.trainer.max_epochs, in_sweep)
    wall = [0.0]
    sender = _EpochSender(client, run_id)
    from ann.diagnostics import LayerProbe

    # before training (update_ratio's first base); a config logged before the diagnostics
    # existed has no probe_rows: none, so that such runs reproduce exactly
    rows = int(cfg.trainer.get("probe_rows", 0))
    probe = LayerProbe(model, data.X_train, data.y_train, n_rows=rows) if rows else None
    layer_history: dict[str, dict[int, float]] = {}  # layer{i}.{quantity} -> epoch -> value

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        wall[0] += metrics["epoch_seconds"]
        # finite values only: MLflow stores inf as 1.8e308 and drops NaN
        layers = {} if probe is None else {k: v for k, v in probe.measure().items()
                                           if math.isfinite(v)}
        for key, value in layers.items():
            layer_history.setdefault(key, {})[epoch] = value
        sender.add(epoch, {**metrics, "wall_seconds": wall[0], **layers})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(train_loss=f"{metrics['train_loss']:.4f}",
                            val_loss=f"{metrics['val_loss']:.4f}")
        if boundary is not None:
            boundary.capture(epoch)

    try:
        result = fit(model, data, optimizer=objects.optimizer, schedule=objects.schedule,
                     early_stopping=objects.early_stopping, batch_size=cfg.trainer.batch_size,
                     max_epochs=cfg.trainer.max_epochs, rng=rngs["shuffle"],
                     clip_grad_norm=cfg.trainer.clip_grad_norm,
                     divergence_factor=cfg.trainer.divergence_factor, on_epoch=on_epoch)
    except BaseException:
        sender.flush()  # the epochs completed before the failure
        raise
    finally:
        if bar is not None:
            bar.close()

    final = _final_metrics(data, model, result, wall[0])
    tags = {"stop_reason": result.stop_reason, "diverged": str(result.diverged).lower()}
    if result.divergence is not None:  # where and how: the loss reached may be inf or 1e230
        tags.update({"diverged_epoch": str(result.divergence["epoch"]),
                     "diverged_update": str(result.divergence["update"]),
                     "diverged_loss": f"{result.divergence['loss']:.6g}"})
    # the epochs not sent yet, the final metrics and the tags: one call
    renamed = ({"mlflow.runName": f"{DIVERGED_MARK}{run_name}"} if result.diverged and run_name
               else {})
    epochs = range(1, len(result.history.get("train_loss", [])) + 1)
    layer_columns = {k: [v.get(e, math.nan) for e in epochs] for k, v in layer_history.items()}
    from experiments import plots
    from experiments.mlflow_model import log_model  # runs:/<run_id>/model

    title = f"{cfg.model.kind} on {cfg.dataset.name}"
    figures = {"learning_curves.png": lambda: plots.plot_learning_curves(
        result.history, output_dir / "learning_curves.png", title=title,
        best_epoch=result.best_epoch, diverged=result.diverged, divergence=result.divergence)}
    if layer_history:
        figures["layer_diagnostics.png"] = lambda: plots.plot_layer_diagnostics(
            layer_columns, output_dir / "layer_diagnostics.png",
            title=f"inside each layer: {title}")

    def send() -> None:
        send_batch(client, run_id, tags={**tags, **renamed},
                   metrics=sender.take() + tracking.metrics_batch(final, 0,
                                                                  int(time.time() * 1000)))
        _write_local(output_dir, {**result.history, **layer_columns}, final, tags, model,
                     result.divergence)
        log_model(client, run_id, model, data, cfg, output_dir, experiment_id=experiment_id)

    # With a core to spare (the job runs alone) and once this process has made each figure
    # (a copy then reuses it instead of making its own), a forked copy draws the last figure
    # (the layers', 0.15 s of CPU for the default MLP; else the learning curves) while this
    # process sends the record (~0.13 s) and draws the others (the learning curves, 0.09 s):
    # two even halves, as measured by benchmarks/profile_job.py (a copy draws ~1.3x slower
    # than this process would). The run ends FINISHED once both are done, as before.
    draws = list(figures.values())
    kinds = [name.removesuffix(".png") for name in figures]
    forked.draw_in_two([send, *draws[:-1]], draws[-1:], fork=spare_core and plots.made(*kinds))
    for name in (*figures, "weights.npz", "history.csv"):
        client.log_artifact(run_id, str(output_dir / name))
    if cfg.model.kind != "mlp":
        extra = _log_gradient_flow(client, run_id, model, data, output_dir, title)
        final.update(extra)
    if boundary is not None:  # decision_boundary.png, .gif, .npz
        from experiments.boundary import write_boundary

        boundary.finish(result)
        for path in write_boundary(boundary, output_dir, title=title):
            client.log_artifact(run_id, str(path))
    return JobOutcome(run_id, "FINISHED", final, tags, output_dir)


class _EpochSender:
    """Per-epoch metrics to MLflow in one `log_batch` per FLUSH_SECONDS (and at the end).

    A call costs ~50 ms on SQLite and more over HTTP, longer than a whole epoch of a small MLP:
    one call per epoch would dominate short runs. The first epoch goes out at once, then
    whatever accumulated each second, so the UI's curves still follow a run live.
    """

    FLUSH_SECONDS = 1.0
    MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch

    def __init__(self, client, run_id: str | None) -> None:
        self.client, self.run_id = client, run_id
        self.pending: list = []
        self.last = None

    def add(self, epoch: int, values: dict[str, float]) -> None:
        self.pending.extend(tracking.metrics_batch(values, epoch, int(time.time() * 1000)))
        if self.last is None or time.monotonic() - self.last >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        for start in range(0, len(self.pending), self.MAX_BATCH):
            self.client.log_batch(self.run_id, metrics=self.pending[start:start + self.MAX_BATCH],
                                  synchronous=True)
        self.pending = []
        self.last = time.monotonic()

    def take(self) -> list:
        """The metrics not sent yet (the caller sends them with its own), now off the queue."""
        pending, self.pending = self.pending, []
        return pending


def _final_metrics(data, model, result, wall_seconds: float) -> dict[str, float]:
    """Test metrics and run summaries; only finite values (MLflow stores inf as 1.8e308 and
    drops NaN from the run page). A run that diverged in its first epoch has no best epoch:
    its best is then epoch 0, the initial weights (fit rolled them back)."""
    test = evaluate(model, data.X_test, data.y_test, data.task, y_scale=data.y_scale)
    final = {f"test_{k}": v for k, v in test.items()}
    best_epoch, best_val_loss = result.best_epoch, result.best_val_loss
    if best_epoch is None:
        best_epoch, best_val_loss = 0, result.initial_val_loss
    final.update({
        "best_epoch": best_epoch,
        "best_val_loss": best_val_loss,
        "stopped_epoch": result.stopped_epoch,
        "initial_train_loss": result.initial_train_loss,
        "train_seconds": wall_seconds,
        "n_updates": result.n_updates,
    })
    return {k: float(v) for k, v in final.items() if math.isfinite(v)}


def _write_local(output_dir: Path, history, final, tags, model, divergence=None) -> None:
    """history.csv (one row per completed epoch; a diverged run ends with a row for the
    diverging epoch whose `note` says where and how), weights.npz, final.json."""
    keys = list(history)
    with open(output_dir / "history.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["epoch", *keys, "note"])
        for i in range(len(history[keys[0]]) if keys else 0):
            writer.writerow([i + 1, *(_cell(history[k][i]) for k in keys), ""])
        if divergence is not None:
            writer.writerow([divergence["epoch"], *("" for _ in keys),
                             f"diverged at update {divergence['update']}: loss "
                             f"{divergence['loss']:.6g}"])
    np.savez(output_dir / "weights.npz", **model.get_weights())
    (output_dir / "final.json").write_text(json.dumps({"metrics": final, "tags": tags},
                                                      indent=1, default=float))


def _cell(value: float) -> str:
    """A history.csv cell: the exact value, or empty when it was not logged (not finite)."""
    value = float(value)
    return repr(value) if math.isfinite(value) else ""


def _log_gradient_flow(client, run_id, model, data, output_dir, title) -> dict[str, float]:
    from ann.diagnostics import gradient_flow
    from experiments.plots import plot_gradient_flow

    n = min(256, len(data.X_val))
    flow = gradient_flow(model, data.X_val[:n], data.y_val[:n])
    norms = np.asarray(flow["grad_norms"], dtype=float)
    with open(output_dir / "gradient_flow.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        # not "step"/"grad_norm": MLflow's Step axis and the per-epoch metric use those names
        writer.writerow(["time_step", "dloss_dh_norm"])
        writer.writerows((t + 1, repr(float(v))) for t, v in enumerate(norms))
    plot_gradient_flow(norms, output_dir / "gradient_flow.png", title=f"gradient flow: {title}")
    metrics = {"grad_flow_ratio": float(flow["grad_flow_ratio"])}
    metrics.update({f"gate_mean_{k}": float(v) for k, v in flow.get("gate_means", {}).items()})
    client.log_batch(run_id, metrics=tracking.metrics_batch(metrics, 0, int(time.time() * 1000)),
                     synchronous=True)
    for name in ("gradient_flow.csv", "gradient_flow.png"):
        client.log_artifact(run_id, str(output_dir / name))
    return metrics

"""The training loop: minibatch gradient descent with schedules, clipping and early stopping.

`fit` covers the three gradient-descent variants with one loop: batch (batch_size=None, one
update per epoch), stochastic (batch_size=1) and minibatch. Every epoch draws a fresh
permutation and visits every training sample exactly once, the last partial batch included.
It works in the dtype of the data and the model (float32 or float64) and never upcasts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ann._memory import keep_freed_memory
from ann.early_stopping import EarlyStopping
from ann.optimizers import clip_by_global_norm, global_norm
from ann.schedules import Constant

Array = np.ndarray
STOP_REASONS = ("max_epochs", "early_stopping", "diverged")
EVAL_BATCH = 4096  # rows per forward pass in `evaluate` for tabular data
DIVERGENCE_WINDOW = 100  # updates over which batch losses are averaged for the limit test
EVAL_STEPS = 65536  # sequences: rows x time steps per forward pass (bounds cached activations)


def make_rngs(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators `split`, `init`, `shuffle` from one seed (SeedSequence.spawn(3))."""
    split, init, shuffle = np.random.SeedSequence(seed).spawn(3)
    return {"split": np.random.default_rng(split), "init": np.random.default_rng(init),
            "shuffle": np.random.default_rng(shuffle)}


def _loss_object(model: Any) -> Any:
    """The model's output/loss pair object (the one with forward(z, y) and predict_labels)."""
    for name in ("loss_fn", "criterion", "loss"):
        obj = getattr(model, name, None)
        if obj is not None and hasattr(obj, "forward") and hasattr(obj, "predict"):
            return obj
    raise TypeError(f"{type(model).__name__} exposes no loss object (loss_fn / loss)")


def evaluate(model: Any, X: Array, y: Array, task: str, *, y_scale: float = 1.0,
             batch_size: int | None = None) -> dict[str, float]:
    """Loss and accuracy (classification) or RMSE (regression) of `model` on (X, y).

    loss = the model's training loss (mean over samples); accuracy = mean(labels == y) with
    labels from the loss's predict_labels; rmse = y_scale * sqrt(mean((z - y)^2)) over all
    elements (y_scale converts standardised targets back to their original units).
    Rows go through the model in chunks of `batch_size` (default: EVAL_BATCH rows, or
    EVAL_STEPS // n_steps for sequences, so an LSTM's caches stay small); results are
    row-weighted means. A diverged model scores inf or nan: a result, not a warning.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _evaluate(model, X, y, task, y_scale=y_scale, batch_size=batch_size)


def _evaluate(model: Any, X: Array, y: Array, task: str, *, y_scale: float,
              batch_size: int | None) -> dict[str, float]:
    if batch_size is None:
        batch_size = EVAL_BATCH if X.ndim < 3 else max(16, EVAL_STEPS // X.shape[1])
    if task not in ("classification", "regression"):
        raise ValueError(f"task={task!r} is invalid: must be 'classification' or 'regression'")
    lossf = _loss_object(model)
    n = len(X)
    loss_sum = quality = 0.0
    for start in range(0, n, batch_size):
        xb, yb = X[start:start + batch_size], y[start:start + batch_size]
        z = model.forward(xb)
        loss_sum += float(lossf.forward(z, yb)) * len(xb)
        if task == "classification":
            quality += float(np.count_nonzero(lossf.predict_labels(z) == yb))
        else:
            r = lossf.predict(z) - yb.reshape(z.shape)
            quality += float(np.vdot(r, r))
    if task == "classification":
        return {"loss": loss_sum / n, "accuracy": quality / n}
    return {"loss": loss_sum / n, "rmse": float(y_scale) * math.sqrt(quality / y.size)}


@dataclass
class FitResult:
    """What `fit` returns.

    history[key][i] is metric `key` of epoch i + 1 (the keys of the `on_epoch` metrics).
    Only completed epochs are in the history: the epoch in which training diverged is not.
    best_epoch counts from 1 and is None when no epoch completed (divergence in the first
    epoch); best_val_loss is then inf. initial_train_loss and initial_val_loss are the losses
    before any update (the first is the divergence reference); n_updates counts optimizer
    steps applied; train_seconds sums epoch_seconds; metrics is the last completed epoch's
    metrics dict. divergence is None, or where training diverged: {"epoch": e, "update": u
    (1-based count over the whole run), "loss": the loss reached (a batch's loss before its
    update was applied, or the train loss at the end of the epoch; may be inf or nan)}.
    """

    history: dict[str, list[float]]
    best_epoch: int | None
    best_val_loss: float
    stopped_epoch: int
    stop_reason: str
    diverged: bool
    restored: bool
    initial_train_loss: float
    n_updates: int = 0
    train_seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    initial_val_loss: float = math.nan
    divergence: dict[str, float] | None = None


def _check_args(batch_size: Any, max_epochs: Any, clip_grad_norm: Any, divergence_factor: Any) -> None:
    def is_int(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    def is_pos(v: Any) -> bool:
        return (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                and math.isfinite(v) and v > 0)

    if batch_size is not None and not (is_int(batch_size) and batch_size >= 1):
        raise ValueError(f"batch_size={batch_size!r} is invalid: must be an integer >= 1 or None (full batch)")
    if not (is_int(max_epochs) and max_epochs >= 1):
        raise ValueError(f"max_epochs={max_epochs!r} is invalid: must be an integer >= 1")
    if clip_grad_norm is not None and not is_pos(clip_grad_norm):
        raise ValueError(f"clip_grad_norm={clip_grad_norm!r} is invalid: must be a number > 0 or None")
    if divergence_factor is not None and not is_pos(divergence_factor):
        raise ValueError(f"divergence_factor={divergence_factor!r} is invalid: must be a number > 0 or None")


def fit(model: Any, data: Any, *, optimizer: Any, schedule: Any = None,
        early_stopping: EarlyStopping | None = None, batch_size: int | None = None,
        max_epochs: int = 100, rng: np.random.Generator, clip_grad_norm: float | None = None,
        divergence_factor: float | None = 10.0,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> FitResult:
    """Train `model` on `data.X_train, data.y_train`, validating on `data.X_val, data.y_val`.

    Epoch e (from 1) uses lr = optimizer.lr * schedule(e - 1). Per batch: loss, backward,
    g = global norm (clipped to clip_grad_norm when set), optimizer.step(params, grads, lr).
    After each epoch: metrics `{train,val}_{loss, accuracy|rmse}`, `lr`, `grad_norm` (mean
    pre-clip norm over the epoch's updates), `epoch_seconds` (the updates only, evaluation
    excluded), `wall_seconds` (cumulative), `samples_seen` (cumulative) go to
    `on_epoch(epoch, metrics)` and the history; then schedule.observe(val_loss) and the early
    stopping update. Divergence (stop_reason "diverged") is detected at the update where it
    happens: a batch whose loss or gradient is non-finite, or after which the running mean of
    batch losses (an exponential average over min(DIVERGENCE_WINDOW, batches per epoch)
    updates, starting from the initial train loss) exceeds divergence_factor x the train loss
    before any update (None disables that test), stops training before that update is
    applied; so does a non-finite train/val loss, or a train
    loss above that limit, at the end of an epoch. The diverging epoch is neither reported to
    `on_epoch` nor kept in the history, and the model gets back the weights of the last
    completed epoch (the initial ones if none completed): what is logged stays finite.
    At the end, with early_stopping.restore_best and a best epoch, the model gets the best
    epoch's weights back whatever ended training. early_stopping=None tracks the best epoch only.
    Training starts from fresh state: optimizer, schedule and early stopping are reset first.
    Calls ann._memory.keep_freed_memory() (glibc keeps freed blocks for reuse instead of
    returning them to the OS; a no-op elsewhere), which spares the step's large arrays page faults.
    """
    _check_args(batch_size, max_epochs, clip_grad_norm, divergence_factor)
    keep_freed_memory()
    schedule = Constant() if schedule is None else schedule
    stopper = EarlyStopping(patience=None, restore_best=False) if early_stopping is None else early_stopping
    optimizer.reset()
    schedule.reset()
    stopper.reset()
    X, y = data.X_train, data.y_train
    n = len(X)
    if n < 1 or len(y) != n:
        raise ValueError(f"training split has {n} inputs and {len(y)} targets: need equal, >= 1")
    task = data.task
    y_scale = float(getattr(data, "y_scale", 1.0))
    full_batch = batch_size is None or batch_size >= n
    bs = n if full_batch else int(batch_size)
    metric = "accuracy" if task == "classification" else "rmse"
    weights_fn = model.get_weights if stopper.restore_best else None
    history: dict[str, list[float]] = {}
    samples_seen = n_updates = 0
    wall = 0.0
    stop_reason, diverged, epoch, metrics = "max_epochs", False, 0, {}

    divergence = None
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        initial = evaluate(model, X, y, task, y_scale=y_scale)["loss"]
        initial_val = evaluate(model, data.X_val, data.y_val, task, y_scale=y_scale)["loss"]
        limit = math.inf if divergence_factor is None else divergence_factor * initial
        # Batch losses are smoothed (a running mean over about an epoch's updates, at most
        # DIVERGENCE_WINDOW, starting from the initial loss) before the limit test: one hard
        # sample's loss may exceed 10x the mean without anything diverging.
        window = min(DIVERGENCE_WINDOW, -(-n // bs))
        smoothed = initial
        for epoch in range(1, max_epochs + 1):
            completed = model.get_weights()  # rolled back to if this epoch diverges
            lr = optimizer.lr * schedule(epoch - 1)
            perm = rng.permutation(n)
            if full_batch:
                Xp, yp = X, y  # one batch: order does not change the mean gradient
            else:
                Xp, yp = X[perm], y[perm]
            params = model.params()
            norm_sum, n_steps = 0.0, 0
            t0 = time.perf_counter()
            for start in range(0, n, bs):
                xb, yb = Xp[start:start + bs], yp[start:start + bs]
                batch_loss = model.loss(xb, yb)
                model.backward()
                grads = model.grads()
                norm = global_norm(grads) if clip_grad_norm is None else clip_by_global_norm(grads, clip_grad_norm)
                smoothed += (batch_loss - smoothed) / window
                if not math.isfinite(norm + batch_loss) or smoothed > limit:
                    divergence = {"epoch": epoch, "update": n_updates + n_steps + 1,
                                  "loss": float(batch_loss)}
                    break
                optimizer.step(params, grads, lr)
                norm_sum += norm
                n_steps += 1
                samples_seen += len(xb)
            seconds = time.perf_counter() - t0
            n_updates += n_steps
            if divergence is None:
                train = evaluate(model, X, y, task, y_scale=y_scale)
                val = evaluate(model, data.X_val, data.y_val, task, y_scale=y_scale)
                if (not math.isfinite(train["loss"]) or not math.isfinite(val["loss"])
                        or train["loss"] > limit):
                    divergence = {"epoch": epoch, "update": n_updates,
                                  "loss": float(train["loss"])}
            if divergence is not None:
                stop_reason, diverged = "diverged", True
                model.set_weights(completed)
                break
            wall += seconds
            metrics = {"train_loss": train["loss"], f"train_{metric}": train[metric],
                       "val_loss": val["loss"], f"val_{metric}": val[metric], "lr": lr,
                       "grad_norm": norm_sum / n_steps if n_steps else math.nan,
                       "epoch_seconds": seconds, "wall_seconds": wall, "samples_seen": float(samples_seen)}
            for key, value in metrics.items():
                history.setdefault(key, []).append(value)
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            schedule.observe(val["loss"])
            if stopper.update(epoch, val["loss"], weights_fn):
                stop_reason = "early_stopping"
                break

    restored = False
    if stopper.restore_best and stopper.best_weights is not None:
        model.set_weights(stopper.best_weights)
        restored = True
    return FitResult(history=history, best_epoch=stopper.best_epoch, best_val_loss=stopper.best_val_loss,
                     stopped_epoch=epoch, stop_reason=stop_reason, diverged=diverged, restored=restored,
                     initial_train_loss=initial, n_updates=n_updates, train_seconds=wall, metrics=metrics,
                     initial_val_loss=initial_val, divergence=divergence)

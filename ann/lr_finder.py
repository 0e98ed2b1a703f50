"""The learning-rate range test (the "LR finder" of fastai and Lightning's Tuner).

Train for at most `num_updates` updates while the rate grows exponentially from `min_lr` to
`max_lr`, record the batch loss at every rate, and read a good rate off the curve:

    lr_i       = min_lr * (max_lr / min_lr) ** (i / (num_updates - 1)),   i = 0 .. num_updates-1
    loss_i     = the loss of batch i before update i (which uses lr_i)
    avg_i      = beta * avg_{i-1} + (1 - beta) * loss_i,                  avg_{-1} = 0
    smoothed_i = avg_i / (1 - beta ** (i + 1))                            (bias correction)

It stops early once smoothed_i > stop_factor * min(smoothed_0 .. smoothed_i) (i >= 1, the
point is kept: it shows the blow-up) or when a loss or gradient is not finite (that point is
not kept). Each update is the one `ann.training.fit` makes: forward and loss, backward, the
global gradient norm (clipped to `clip_grad_norm` when set), `optimizer.step(params, grads,
lr_i)`. Batches cycle through the training split in a fresh permutation from `rng` per pass
(batch_size None: the whole split, one update per pass).

The suggestion (`suggest_lr`), read off the smoothed curve by one of two rules:
- "minimum" (the default; fastai's `lr_min`): the rate where the smoothed loss is lowest,
  divided by 10. The minimum sits where the rate is already about to blow the loss up (and the
  smoothing lags behind the raw loss by up to beta / (1 - beta) = 49 updates), so one decade
  below it is a rate that still trains steadily.
- "steepest" (Lightning's default): the rate where the smoothed loss falls fastest per decade
  of rate, between the first `SKIP_BEGIN` points (the bias-corrected average still settles
  there) and the minimum (after it the loss turns up). When the fall is short, as for plain
  SGD on digits (1-2 decades before the blow-up), that point lies just below the minimum,
  i.e. at a rate near divergence; in a short test it can also land on noise in the flat start.
Both rules are computed (`suggestions`); `suggested_lr` is the chosen one's.

The model's weights and the optimizer (its rate and its state) are left exactly as they were:
the test runs a copy of the optimizer and puts the weights back when it ends, also when it
ends by an exception (Ctrl-C included).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ann.optimizers import clip_by_global_norm, global_norm

Array = np.ndarray
SUGGESTIONS = ("minimum", "steepest")
STOP_REASONS = ("num_updates", "diverged", "non_finite")
SKIP_BEGIN = 10  # first points left out of "steepest" (as Lightning's skip_begin)


@dataclass
class RangeTestResult:
    """What `lr_range_test` returns.

    lrs[i], losses[i], smoothed[i]: the rate of update i, the batch loss before it and the
    smoothed loss (all finite, same length = updates recorded). suggested_lr is that of the
    chosen rule, None when the curve is too short or never falls (`method`, how it was chosen
    in plain words, then says why); suggestions[rule] = (rate, method) for every rule.
    stop_reason: "num_updates" (all updates made), "diverged" (smoothed > stop_factor x its
    minimum) or "non_finite".
    """

    lrs: Array
    losses: Array
    smoothed: Array
    suggested_lr: float | None
    method: str
    suggestions: dict[str, tuple[float | None, str]]
    stop_reason: str
    min_lr: float
    max_lr: float
    num_updates: int
    stop_factor: float
    beta: float

    @property
    def n_updates(self) -> int:
        return len(self.lrs)


def _check(name: str, value: Any, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid: must be {allowed}")


def _real(v: Any) -> bool:
    return (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            and math.isfinite(v))


def check_settings(min_lr: Any, max_lr: Any, num_updates: Any, stop_factor: Any, beta: Any,
                   suggestion: Any) -> None:
    """Raise ValueError naming the first invalid setting, its value and what is allowed."""
    _check("min_lr", min_lr, _real(min_lr) and min_lr > 0, "a finite number > 0")
    _check("max_lr", max_lr, _real(max_lr) and max_lr > min_lr,
           f"a finite number > min_lr ({min_lr!r})")
    _check("num_updates", num_updates, isinstance(num_updates, (int, np.integer))
           and not isinstance(num_updates, bool) and num_updates >= 2, "an integer >= 2")
    _check("stop_factor", stop_factor, stop_factor is None or (_real(stop_factor)
           and stop_factor > 1), "a number > 1 or None (never stop early)")
    _check("beta", beta, _real(beta) and 0 <= beta < 1, "a number in [0, 1)")
    _check("suggestion", suggestion, suggestion in SUGGESTIONS,
           "one of " + ", ".join(SUGGESTIONS))


def exponential_rates(min_lr: float, max_lr: float, num_updates: int) -> Array:
    """lr_i = min_lr * (max_lr / min_lr) ** (i / (num_updates - 1)): both bounds included."""
    return min_lr * (max_lr / min_lr) ** (np.arange(num_updates) / (num_updates - 1))


def smooth(losses: Array, beta: float) -> Array:
    """Exponential moving average of `losses` with bias correction (fastai's smooth loss)."""
    out = np.empty(len(losses))
    avg = 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1.0 - beta) * float(loss)
        out[i] = avg / (1.0 - beta ** (i + 1))
    return out


def suggest_lr(lrs: Array, smoothed: Array, rule: str = "minimum") -> tuple[float | None, str]:
    """(suggested rate or None, how it was chosen in plain words) from the smoothed curve."""
    if rule not in SUGGESTIONS:
        raise ValueError(f"rule={rule!r} is invalid: must be one of {', '.join(SUGGESTIONS)}")
    lrs, smoothed = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    if len(lrs) == 0:
        return None, "no suggestion: no update was recorded"
    best = int(np.argmin(smoothed))
    if best == 0:
        return None, "no suggestion: the smoothed loss never falls below its first value"
    if rule == "minimum":
        return (float(lrs[best] / 10),
                f"minimum / 10: the smoothed loss is lowest ({smoothed[best]:.4g}) at rate "
                f"{lrs[best]:.3g}; one decade below it")
    start = min(SKIP_BEGIN, max(0, best - 2))
    if best - start < 2:
        return None, (f"no suggestion: the smoothed loss reaches its minimum after {best + 1} "
                      "update(s), too early to find where it falls fastest")
    slope = np.gradient(smoothed[start:best + 1], np.log10(lrs[start:best + 1]))
    i = start + int(np.argmin(slope))
    if slope[i - start] >= 0:
        return None, "no suggestion: the smoothed loss never falls"
    return (float(lrs[i]),
            f"steepest descent: the smoothed loss falls fastest ({slope[i - start]:.3g} per "
            f"decade of rate) at rate {lrs[i]:.3g}, before its minimum {smoothed[best]:.4g} at "
            f"rate {lrs[best]:.3g}")


def _batches(n: int, batch_size: int | None, rng: np.random.Generator):
    """Index arrays of the batches, pass after pass, each pass in a fresh permutation."""
    bs = n if batch_size is None or batch_size >= n else int(batch_size)
    while True:
        perm = rng.permutation(n)
        for start in range(0, n, bs):
            yield perm[start:start + bs]


def lr_range_test(model: Any, data: Any, *, optimizer: Any, rng: np.random.Generator,
                  batch_size: int | None = None, min_lr: float = 1e-7, max_lr: float = 10.0,
                  num_updates: int = 300, stop_factor: float | None = 4.0, beta: float = 0.98,
                  clip_grad_norm: float | None = None,
                  suggestion: str = "minimum") -> RangeTestResult:
    """Run the range test on `data.X_train, data.y_train` (see the module docstring).

    `optimizer` is copied and reset (its own `lr` is never used: each update gets lr_i);
    `model`'s weights are restored at the end. Returns the recorded curve and the suggestion.
    """
    check_settings(min_lr, max_lr, num_updates, stop_factor, beta, suggestion)
    _check("clip_grad_norm", clip_grad_norm, clip_grad_norm is None or (_real(clip_grad_norm)
           and clip_grad_norm > 0), "a number > 0 or None")
    X, y = data.X_train, data.y_train
    if len(X) < 1 or len(y) != len(X):
        raise ValueError(f"training split has {len(X)} inputs and {len(y)} targets: "
                         "need equal, >= 1")
    rates = exponential_rates(min_lr, max_lr, num_updates)
    opt = copy.deepcopy(optimizer)
    opt.reset()
    saved = model.get_weights()
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    stop_reason, avg, lowest = "num_updates", 0.0, math.inf
    try:
        params = model.params()
        batches = _batches(len(X), batch_size, rng)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for i, lr in enumerate(rates):
                idx = next(batches)
                loss = float(model.loss(X[idx], y[idx]))
                model.backward()
                grads = model.grads()
                norm = (global_norm(grads) if clip_grad_norm is None
                        else clip_by_global_norm(grads, clip_grad_norm))
                if not math.isfinite(loss + norm):
                    stop_reason = "non_finite"
                    break
                avg = beta * avg + (1.0 - beta) * loss
                value = avg / (1.0 - beta ** (i + 1))
                lrs.append(float(lr))
                losses.append(loss)
                smoothed.append(value)
                lowest = min(lowest, value)
                if stop_factor is not None and i > 0 and value > stop_factor * lowest:
                    stop_reason = "diverged"
                    break
                opt.step(params, grads, float(lr))
    finally:
        model.set_weights(saved)
    lr_arr, smooth_arr = np.asarray(lrs), np.asarray(smoothed)
    suggestions = {rule: suggest_lr(lr_arr, smooth_arr, rule) for rule in SUGGESTIONS}
    suggested, method = suggestions[suggestion]
    return RangeTestResult(lrs=lr_arr, losses=np.asarray(losses), smoothed=smooth_arr,
                           suggested_lr=suggested, method=method, suggestions=suggestions,
                           stop_reason=stop_reason,
                           min_lr=float(min_lr), max_lr=float(max_lr),
                           num_updates=int(num_updates), stop_factor=stop_factor, beta=float(beta))

"""Learning-rate schedules: multipliers of the base rate as a function of the epoch.

A schedule is called with the 0-based epoch and returns the multiplier; the rate used in epoch
e is `optimizer.lr * schedule(e)`. Every schedule has `observe(val_loss)` (called by `fit` after
each epoch) and `reset()`; both are no-ops for the stateless, frozen-dataclass schedules. Only
`ReduceOnPlateau` keeps state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _check(name: str, value: object, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid: must be {allowed}")


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and math.isfinite(value))


class _Stateless:
    """Mixin: stateless schedules ignore observations."""

    def observe(self, val_loss: float) -> None:
        """No-op: this schedule depends on the epoch only."""

    def reset(self) -> None:
        """No-op: this schedule has no state."""


@dataclass(frozen=True)
class Constant(_Stateless):
    """Multiplier 1 at every epoch."""

    def __call__(self, epoch: int) -> float:
        return 1.0


@dataclass(frozen=True)
class StepDecay(_Stateless):
    """Multiplier gamma ** floor(epoch / step_size)."""

    step_size: int = 10
    gamma: float = 0.5

    def __post_init__(self) -> None:
        _check("step_size", self.step_size, _is_int(self.step_size) and self.step_size >= 1,
               "an integer >= 1")
        _check("gamma", self.gamma, _is_real(self.gamma) and 0 < self.gamma <= 1, "a number in (0, 1]")

    def __call__(self, epoch: int) -> float:
        return float(self.gamma ** (epoch // self.step_size))


@dataclass(frozen=True)
class ExponentialDecay(_Stateless):
    """Multiplier decay_rate ** epoch."""

    decay_rate: float = 0.95

    def __post_init__(self) -> None:
        _check("decay_rate", self.decay_rate,
               _is_real(self.decay_rate) and 0 < self.decay_rate <= 1, "a number in (0, 1]")

    def __call__(self, epoch: int) -> float:
        return float(self.decay_rate ** epoch)


@dataclass(frozen=True)
class InverseTimeDecay(_Stateless):
    """Multiplier 1 / (1 + decay_rate * epoch)."""

    decay_rate: float = 0.1

    def __post_init__(self) -> None:
        _check("decay_rate", self.decay_rate, _is_real(self.decay_rate) and self.decay_rate >= 0,
               "a finite number >= 0")

    def __call__(self, epoch: int) -> float:
        return 1.0 / (1.0 + self.decay_rate * epoch)


@dataclass(frozen=True)
class CosineDecay(_Stateless):
    """Cosine annealing from 1 to min_factor over t_max epochs, then constant at min_factor.

    multiplier = min_factor + (1 - min_factor) * (1 + cos(pi * min(epoch, t_max) / t_max)) / 2
    """

    t_max: int = 100
    min_factor: float = 0.0

    def __post_init__(self) -> None:
        _check("t_max", self.t_max, _is_int(self.t_max) and self.t_max >= 1, "an integer >= 1")
        _check("min_factor", self.min_factor,
               _is_real(self.min_factor) and 0 <= self.min_factor <= 1, "a number in [0, 1]")

    def __call__(self, epoch: int) -> float:
        progress = min(epoch, self.t_max) / self.t_max
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class ReduceOnPlateau:
    """Multiply the rate by `factor` when val_loss has not improved for `patience` epochs.

    improvement: val_loss < best - min_delta (a non-finite val_loss never improves).
    After each non-improving observation `wait` grows by 1; when wait >= patience the multiplier
    becomes max(multiplier * factor, min_factor) and wait restarts from 0. The multiplier
    does not depend on the epoch passed to `__call__`: it is the current state.
    """

    def __init__(self, factor: float = 0.5, patience: int = 5, min_delta: float = 0.0,
                 min_factor: float = 1e-4) -> None:
        _check("factor", factor, _is_real(factor) and 0 < factor < 1, "a number in (0, 1)")
        _check("patience", patience, _is_int(patience) and patience >= 0, "an integer >= 0")
        _check("min_delta", min_delta, _is_real(min_delta) and min_delta >= 0, "a finite number >= 0")
        _check("min_factor", min_factor, _is_real(min_factor) and 0 < min_factor <= 1,
               "a number in (0, 1]")
        self.factor = float(factor)
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.min_factor = float(min_factor)
        self.reset()

    def reset(self) -> None:
        """Back to multiplier 1, no best loss, no waiting."""
        self.multiplier = 1.0
        self.best = math.inf
        self.wait = 0

    def observe(self, val_loss: float) -> None:
        """Record one epoch's validation loss and reduce the multiplier on a plateau."""
        val_loss = float(val_loss)
        if math.isfinite(val_loss) and val_loss < self.best - self.min_delta:
            self.best = val_loss
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.multiplier = max(self.multiplier * self.factor, self.min_factor)
            self.wait = 0

    def __call__(self, epoch: int) -> float:
        return self.multiplier

    def __repr__(self) -> str:
        return (f"ReduceOnPlateau(factor={self.factor}, patience={self.patience}, "
                f"min_delta={self.min_delta}, min_factor={self.min_factor})")


SCHEDULES: dict[str, type] = {
    "constant": Constant,
    "step": StepDecay,
    "exponential": ExponentialDecay,
    "inverse_time": InverseTimeDecay,
    "cosine": CosineDecay,
    "plateau": ReduceOnPlateau,
}


def make_schedule(name: str, **kwargs: float):
    """Build a registered schedule by name, e.g. make_schedule("step", step_size=5, gamma=0.5)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid names: {', '.join(sorted(SCHEDULES))}")
    return SCHEDULES[name](**kwargs)

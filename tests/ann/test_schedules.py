"""Schedules: multipliers at known epochs, ReduceOnPlateau sequences, validation."""

import dataclasses
import math

import pytest

from ann.schedules import (SCHEDULES, Constant, CosineDecay, ExponentialDecay, InverseTimeDecay,
                           ReduceOnPlateau, StepDecay, make_schedule)


def test_constant():
    assert [Constant()(e) for e in (0, 1, 100)] == [1.0, 1.0, 1.0]


def test_step_decay():
    s = StepDecay(step_size=3, gamma=0.5)
    assert [s(e) for e in range(7)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_exponential_decay():
    s = ExponentialDecay(decay_rate=0.9)
    assert s(0) == 1.0
    assert s(1) == pytest.approx(0.9)
    assert s(3) == pytest.approx(0.729)


def test_inverse_time_decay():
    s = InverseTimeDecay(decay_rate=0.5)
    assert [s(e) for e in (0, 1, 2, 6)] == pytest.approx([1.0, 1 / 1.5, 0.5, 0.25])


def test_cosine_decay():
    s = CosineDecay(t_max=10, min_factor=0.1)
    assert s(0) == pytest.approx(1.0)
    assert s(5) == pytest.approx(0.1 + 0.9 * 0.5)
    assert s(10) == pytest.approx(0.1)
    assert s(25) == pytest.approx(0.1)  # constant after t_max
    assert CosineDecay(t_max=4)(2) == pytest.approx(0.5)
    assert all(s(e) >= s(e + 1) for e in range(12))


@pytest.mark.parametrize("name", sorted(set(SCHEDULES) - {"plateau"}))
def test_stateless_are_frozen_and_ignore_observe(name):
    s = make_schedule(name)
    before = [s(e) for e in range(20)]
    for v in (1.0, 2.0, math.nan, 3.0):
        s.observe(v)
    s.reset()
    assert [s(e) for e in range(20)] == before
    assert dataclasses.is_dataclass(s)
    if dataclasses.fields(s):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(s, dataclasses.fields(s)[0].name, 1)


def test_plateau_reduces_after_patience():
    s = ReduceOnPlateau(factor=0.5, patience=2, min_delta=0.0, min_factor=0.1)
    seen = []
    for v in [1.0, 0.9, 0.95, 0.95, 0.9, 0.91, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]:
        s.observe(v)
        seen.append(s(0))
    # bad epochs: 0.95 (w1), 0.95 (w2 -> x0.5), 0.9 (w1: not < 0.9), 0.91 (w2 -> x0.25), 0.5 best,
    # then 0.6 x8: reductions at the 2nd, 4th, 6th, 8th -> 0.125, then floor 0.1
    assert seen == pytest.approx([1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125, 0.1, 0.1, 0.1, 0.1, 0.1])
    s.reset()
    assert s(7) == 1.0 and s.wait == 0 and s.best == math.inf


def test_plateau_min_delta_nan_and_patience_zero():
    s = ReduceOnPlateau(factor=0.5, patience=0, min_delta=0.1)
    s.observe(1.0)
    assert s(0) == 1.0
    s.observe(0.95)  # not better by more than min_delta -> reduce at once with patience 0
    assert s(0) == 0.5
    s.observe(0.8)  # 0.8 < 1.0 - 0.1: improvement
    assert s(0) == 0.5
    s.observe(math.nan)  # never an improvement
    assert s(0) == 0.25


@pytest.mark.parametrize("make, arg", [
    (lambda: StepDecay(step_size=0, gamma=0.5), "step_size"),
    (lambda: StepDecay(step_size=2.5, gamma=0.5), "step_size"),
    (lambda: StepDecay(step_size=2, gamma=0.0), "gamma"),
    (lambda: StepDecay(step_size=2, gamma=1.5), "gamma"),
    (lambda: ExponentialDecay(decay_rate=0.0), "decay_rate"),
    (lambda: ExponentialDecay(decay_rate=1.1), "decay_rate"),
    (lambda: InverseTimeDecay(decay_rate=-0.1), "decay_rate"),
    (lambda: CosineDecay(t_max=0), "t_max"),
    (lambda: CosineDecay(t_max=10, min_factor=1.5), "min_factor"),
    (lambda: ReduceOnPlateau(factor=1.0), "factor"),
    (lambda: ReduceOnPlateau(patience=-1), "patience"),
    (lambda: ReduceOnPlateau(min_delta=-0.1), "min_delta"),
    (lambda: ReduceOnPlateau(min_factor=0.0), "min_factor"),
])
def test_validation(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


def test_registry():
    assert set(SCHEDULES) >= {"constant", "step", "exponential", "inverse_time", "cosine", "plateau"}
    with pytest.raises(ValueError, match="constant.*cosine"):
        make_schedule("linear_warmup_nope")

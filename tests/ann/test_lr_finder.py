"""The learning-rate range test: rates, smoothing, stopping, suggestion, weights left alone."""

import math

import numpy as np
import pytest

from ann.data import load_dataset
from ann.lr_finder import (SKIP_BEGIN, check_settings, exponential_rates, lr_range_test, smooth,
                           suggest_lr)
from ann.models import build_model
from ann.optimizers import SGD, Adam, Momentum
from ann.training import fit, make_rngs


def _iris(seed: int = 0, name: str = "iris"):
    rngs = make_rngs(seed)
    data = load_dataset(name, rng=rngs["split"], scaling="standard")
    model = build_model("mlp", data.n_in, [8], data.n_out, activation="tanh",
                        task=data.task, rng=rngs["init"])
    return data, model, rngs


def _snapshot(model, optimizer):
    weights = {k: v.tobytes() for k, v in model.params().items()}
    state = {k: tuple(a.tobytes() for a in slots) for k, slots in optimizer.state.items()}
    return weights, state, optimizer.t, optimizer.lr


def test_weights_and_optimizer_state_bitwise_unchanged():
    data, model, rngs = _iris()
    optimizer = Adam(lr=0.01)
    fit(model, data, optimizer=optimizer, batch_size=16, max_epochs=2, rng=rngs["shuffle"])
    assert optimizer.state and optimizer.t > 0  # state worth keeping
    live = {k: id(v) for k, v in model.params().items()}
    before = _snapshot(model, optimizer)
    result = lr_range_test(model, data, optimizer=optimizer, rng=np.random.default_rng(1),
                           batch_size=16, min_lr=1e-4, max_lr=1.0, num_updates=60,
                           stop_factor=None)
    # the test did train: the loss moved a lot over 60 updates at growing rates
    assert result.n_updates == 60 and abs(result.losses[-1] - result.losses[0]) > 0.05
    assert _snapshot(model, optimizer) == before
    assert {k: id(v) for k, v in model.params().items()} == live  # the same arrays, refilled


def test_weights_restored_when_interrupted():
    data, model, _ = _iris()
    before = {k: v.copy() for k, v in model.params().items()}

    class Interrupting:
        """The model, but Ctrl-C arrives in its 20th loss."""

        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def loss(self, x, y):
            self.calls += 1
            if self.calls == 20:
                assert any(not np.array_equal(v, before[k]) for k, v in model.params().items())
                raise KeyboardInterrupt
            return self.inner.loss(x, y)

    with pytest.raises(KeyboardInterrupt):
        lr_range_test(Interrupting(model), data, optimizer=SGD(lr=0.1),
                      rng=np.random.default_rng(0), batch_size=8, min_lr=1e-2, max_lr=1.0,
                      num_updates=50, stop_factor=None)
    for k, v in model.params().items():
        assert np.array_equal(v, before[k]), k


def test_rates_grow_exponentially_between_the_bounds():
    rates = exponential_rates(1e-7, 10.0, 301)
    assert rates[0] == 1e-7 and math.isclose(rates[-1], 10.0, rel_tol=1e-12)
    ratios = rates[1:] / rates[:-1]
    np.testing.assert_allclose(ratios, 10 ** (8 / 300), rtol=1e-12)


def test_each_update_uses_its_rate():
    class Recording(SGD):
        rates: list = []

        def step(self, params, grads, lr=None):
            Recording.rates.append(lr)
            super().step(params, grads, lr)

    data, model, _ = _iris()
    optimizer = Recording(lr=0.5)
    result = lr_range_test(model, data, optimizer=optimizer, rng=np.random.default_rng(0),
                           batch_size=32, min_lr=1e-5, max_lr=1e-1, num_updates=40,
                           stop_factor=None)
    expected = exponential_rates(1e-5, 1e-1, 40)
    assert result.stop_reason == "num_updates"
    np.testing.assert_array_equal(result.lrs, expected)
    np.testing.assert_array_equal(Recording.rates, expected)  # never the optimizer's own 0.5
    assert optimizer.lr == 0.5


def test_smoothed_loss_is_the_bias_corrected_average():
    np.testing.assert_allclose(smooth(np.array([1.0, 2.0]), 0.98),
                               [1.0, (0.98 * 0.02 + 0.02 * 2.0) / (1 - 0.98 ** 2)])
    np.testing.assert_allclose(smooth(np.full(50, 3.0), 0.98), 3.0)  # no bias towards 0
    data, model, _ = _iris()
    result = lr_range_test(model, data, optimizer=SGD(lr=0.1), rng=np.random.default_rng(0),
                           batch_size=16, num_updates=80, min_lr=1e-4, max_lr=1.0)
    np.testing.assert_allclose(result.smoothed, smooth(result.losses, 0.98))


def test_stops_once_the_smoothed_loss_exceeds_stop_factor_times_its_minimum():
    data, model, _ = _iris()
    result = lr_range_test(model, data, optimizer=SGD(lr=0.1), rng=np.random.default_rng(0),
                           batch_size=16, min_lr=1e-3, max_lr=1e6, num_updates=300,
                           stop_factor=4.0)
    assert result.stop_reason == "diverged" and result.n_updates < 300
    assert result.smoothed[-1] > 4.0 * result.smoothed.min()
    assert np.all(result.smoothed[:-1] <= 4.0 * np.minimum.accumulate(result.smoothed)[:-1])
    assert np.all(np.isfinite(result.losses))


def test_stops_on_a_non_finite_loss_without_keeping_it():
    data, model, _ = _iris(name="diabetes")  # squared error: overflows at such rates
    result = lr_range_test(model, data, optimizer=SGD(lr=0.1), rng=np.random.default_rng(0),
                           batch_size=16, min_lr=1e-3, max_lr=1e30, num_updates=300,
                           stop_factor=None)
    assert result.stop_reason == "non_finite" and result.n_updates < 300
    assert np.all(np.isfinite(result.losses)) and np.all(np.isfinite(result.smoothed))


def test_batches_follow_the_seed():
    def run(seed):
        data, model, _ = _iris()
        return lr_range_test(model, data, optimizer=Momentum(lr=0.1),
                             rng=np.random.default_rng(seed), batch_size=8, num_updates=50,
                             min_lr=1e-3, max_lr=0.5, stop_factor=None).losses

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_full_batch_gives_one_loss_per_pass_over_the_split():
    data, model, _ = _iris()
    result = lr_range_test(model, data, optimizer=SGD(lr=0.1), rng=np.random.default_rng(0),
                           batch_size=None, num_updates=2, min_lr=1e-9, max_lr=2e-9)
    from ann.training import evaluate
    assert math.isclose(result.losses[0], evaluate(model, data.X_train, data.y_train,
                                                   data.task)["loss"], rel_tol=1e-12)


def _hand_made_curve():
    """Flat at 2, a fall steepest at lr 10^-1.5, lowest at lr 1, then a sharp rise."""
    lrs = 10.0 ** np.linspace(-4, 1, 101)  # 20 points per decade
    x = np.log10(lrs)
    smoothed = 2.0 - 1.0 / (1.0 + np.exp(-(x + 1.5) / 0.2)) + np.where(x > 0, 5 * x ** 2, 0.0)
    smoothed[x > 0] += 0.01  # the minimum is exactly at x = 0
    return lrs, smoothed


def test_minimum_rule_is_one_decade_below_the_lowest_smoothed_loss():
    lrs, smoothed = _hand_made_curve()
    lr, method = suggest_lr(lrs, smoothed, "minimum")
    assert math.isclose(lr, 0.1, rel_tol=1e-9)
    assert method.startswith("minimum / 10")


def test_steepest_rule_finds_where_the_loss_falls_fastest():
    lrs, smoothed = _hand_made_curve()
    lr, method = suggest_lr(lrs, smoothed, "steepest")
    assert math.isclose(lr, 10 ** -1.5, rel_tol=1e-9)
    assert method.startswith("steepest descent")
    # the steep rise after the minimum, and noise in the first points, are not descents
    noisy = smoothed.copy()
    noisy[:SKIP_BEGIN] = np.linspace(5.0, 2.0, SKIP_BEGIN)
    assert suggest_lr(lrs, noisy, "steepest")[0] == lr


def test_no_suggestion_when_the_loss_never_falls():
    lrs = exponential_rates(1e-3, 1.0, 50)
    rising = np.linspace(1.0, 3.0, 50)
    for rule in ("minimum", "steepest"):
        lr, method = suggest_lr(lrs, rising, rule)
        assert lr is None and method.startswith("no suggestion")
    with pytest.raises(ValueError, match="rule='valley'"):
        suggest_lr(lrs, rising, "valley")


@pytest.mark.parametrize("kwargs, name", [
    (dict(min_lr=0.0), "min_lr"), (dict(min_lr=-1e-3), "min_lr"),
    (dict(max_lr=1e-8), "max_lr"), (dict(max_lr=math.inf), "max_lr"),
    (dict(num_updates=1), "num_updates"), (dict(num_updates=2.5), "num_updates"),
    (dict(stop_factor=1.0), "stop_factor"), (dict(beta=1.0), "beta"),
    (dict(suggestion="valley"), "suggestion"),
])
def test_invalid_settings_are_refused(kwargs, name):
    settings = dict(min_lr=1e-7, max_lr=10.0, num_updates=100, stop_factor=4.0, beta=0.98,
                    suggestion="minimum")
    check_settings(**settings)
    with pytest.raises(ValueError, match=f"^{name}="):
        check_settings(**{**settings, **kwargs})

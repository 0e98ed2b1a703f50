"""Per-layer diagnostics against hand-built cases: dead and saturated units, gradient norms,
update ratios; the probe leaves weights, gradients and training untouched."""

import math

import numpy as np
import pytest

from ann.activations import make_activation
from ann.diagnostics import PROBE_ROWS, SATURATION_LEVEL, LayerProbe, layer_stats
from ann.gradcheck import numerical_grad
from ann.layers import Dense
from ann.losses import SoftmaxCrossEntropy
from ann.models import Sequential, build_model
from ann.optimizers import Adam
from ann.training import fit

N_IN, N_HIDDEN, N_OUT = 3, 4, 2


def _net(activation: str, rng) -> Sequential:
    """Dense(3, 4) + activation + Dense(4, 2), softmax cross-entropy."""
    return Sequential([Dense(N_IN, N_HIDDEN, rng=rng),
                       make_activation(activation, n_units=N_HIDDEN),
                       Dense(N_HIDDEN, N_OUT, rng=rng)], SoftmaxCrossEntropy())


def _batch(rng, n=20):
    return rng.standard_normal((n, N_IN)), rng.integers(0, N_OUT, n)


def test_keys_per_layer():
    rng = np.random.default_rng(0)
    model = _net("tanh", rng)
    stats = layer_stats(model, *_batch(rng))
    assert set(stats) == {"layer1.grad_norm", "layer1.act_mean", "layer1.act_std",
                          "layer1.saturated_fraction", "layer1.dead_fraction",
                          "layer2.grad_norm"}  # the output layer: no activation statistics
    assert "layer1.update_ratio" in LayerProbe(model, *_batch(rng)).measure()


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "prelu", "elu"])
def test_a_very_negative_bias_kills_relu_units_only(activation):
    """Units 0 and 1 get bias -1000: their input is negative for every sample."""
    rng = np.random.default_rng(1)
    model = _net(activation, rng)
    assert activation != "relu" or model.layers[1].inplace  # the in-place path is exercised
    model.layers[0].params["b"][:2] = -1000.0
    X, y = _batch(rng)
    stats = layer_stats(model, X, y)
    z = X @ model.layers[0].params["W"] + model.layers[0].params["b"]
    dead_by_hand = {"relu": 0.5, "leaky_relu": 0.0, "prelu": 0.0, "elu": 0.5}[activation]
    # elu: exp(-1000) underflows to 0, so output -1 and derivative exactly 0 on every sample
    assert stats["layer1.dead_fraction"] == dead_by_hand
    # saturated: f'(z) < 10% of max f' on most samples; leaky_relu's slope 0.01 is below it,
    # prelu's 0.25 is not; units 2 and 3 have a z of either sign
    slope = {"relu": 0.0, "leaky_relu": 0.01, "prelu": 0.25, "elu": 0.0}[activation]
    d = np.where(z > 0, 1.0, slope)
    if activation == "elu":
        d = np.where(z > 0, 1.0, np.exp(z))
    by_hand = np.mean(np.mean(d < SATURATION_LEVEL, axis=0) > 0.5)
    assert stats["layer1.saturated_fraction"] == by_hand
    assert stats["layer1.saturated_fraction"] >= (0.0 if activation == "prelu" else 0.5)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_large_weights_saturate_sigmoid_and_tanh_units(activation):
    """Units 0 and 1 get weights of +-10 on every input, units 2 and 3 weights of 0.1."""
    rng = np.random.default_rng(2)
    model = _net(activation, rng)
    W, b = model.layers[0].params["W"], model.layers[0].params["b"]
    W[:] = 0.1
    W[:, :2] = [10.0, -10.0]
    X = rng.uniform(0.2, 1.0, (30, N_IN))  # z of units 0, 1: +-(6 .. 30); of 2, 3: 0.06 .. 0.3
    y = rng.integers(0, N_OUT, 30)
    stats = layer_stats(model, X, y)
    # at |z| >= 6: sigmoid' <= 0.0025 < 10% of 0.25, tanh' <= 2.5e-5 < 10% of 1; never 0
    assert stats["layer1.saturated_fraction"] == 0.5
    assert stats["layer1.dead_fraction"] == 0.0
    z = X @ W + b
    a = 1 / (1 + np.exp(-z)) if activation == "sigmoid" else np.tanh(z)
    assert stats["layer1.act_mean"] == pytest.approx(a.mean(), rel=1e-12)
    assert stats["layer1.act_std"] == pytest.approx(a.std(), rel=1e-12)


def test_tanh_units_saturated_beyond_rounding_are_dead():
    """|z| >= 60: tanh(z) rounds to +-1, so its derivative 1 - tanh^2 is exactly 0."""
    rng = np.random.default_rng(2)
    model = _net("tanh", rng)
    W = model.layers[0].params["W"]
    W[:] = 0.1
    W[:, :2] = [100.0, -100.0]
    stats = layer_stats(model, rng.uniform(0.2, 1.0, (30, N_IN)), rng.integers(0, N_OUT, 30))
    assert stats["layer1.dead_fraction"] == 0.5
    assert stats["layer1.saturated_fraction"] == 0.5


def test_a_moderately_saturated_sigmoid_unit_is_saturated_not_dead():
    rng = np.random.default_rng(3)
    model = _net("sigmoid", rng)
    model.layers[0].params["W"][:] = 0.0
    model.layers[0].params["b"][:] = [10.0, -10.0, 0.0, 0.0]  # s' = 4.5e-5 < 0.025, but > 0
    stats = layer_stats(model, *_batch(rng))
    assert stats["layer1.saturated_fraction"] == 0.5
    assert stats["layer1.dead_fraction"] == 0.0
    s = 1 / (1 + np.exp(-np.array([10.0, -10.0, 0.0, 0.0])))
    assert stats["layer1.act_mean"] == pytest.approx(s.mean(), rel=1e-12)
    assert stats["layer1.act_std"] == pytest.approx(s.std(), rel=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "relu", "prelu"])
def test_grad_norm_matches_central_differences_and_the_models_own_grads(activation):
    rng = np.random.default_rng(4)
    model = Sequential([Dense(N_IN, 5, rng=rng), make_activation(activation, n_units=5),
                        Dense(5, 4, rng=rng), make_activation(activation, n_units=4),
                        Dense(4, N_OUT, rng=rng)], SoftmaxCrossEntropy())
    X, y = _batch(rng, 7)
    stats = layer_stats(model, X, y)
    model.loss(X, y)
    model.backward()
    for i, j in enumerate((0, 2, 4), start=1):
        W = model.layers[j].params["W"]
        own = np.linalg.norm(model.layers[j].grads["W"])
        numeric = np.linalg.norm(numerical_grad(lambda _: model.loss(X, y), W))
        assert stats[f"layer{i}.grad_norm"] == pytest.approx(own, rel=1e-12)
        assert stats[f"layer{i}.grad_norm"] == pytest.approx(numeric, rel=1e-6)


def test_update_ratio_of_a_known_weight_change():
    rng = np.random.default_rng(5)
    model = _net("tanh", rng)
    X, y = _batch(rng)
    probe = LayerProbe(model, X, y)
    W1, W2 = model.layers[0].params["W"], model.layers[2].params["W"]
    W1 *= 1.1  # ||1.1 W - W|| / ||W|| = 0.1
    W2[0, 0] += 3.0  # ||delta|| = 3
    first = probe.measure()
    assert first["layer1.update_ratio"] == pytest.approx(0.1, rel=1e-12)
    W2_before = W2.copy()
    W2_before[0, 0] -= 3.0
    assert first["layer2.update_ratio"] == pytest.approx(3.0 / np.linalg.norm(W2_before),
                                                         rel=1e-12)
    second = probe.measure()  # against the weights at the first measurement: unchanged
    assert second["layer1.update_ratio"] == 0.0 and second["layer2.update_ratio"] == 0.0


def test_the_probe_changes_no_weight_and_restores_the_gradients():
    rng = np.random.default_rng(6)
    model = _net("prelu", rng)
    X, y = _batch(rng)
    model.loss(X[:5], y[:5])
    model.backward()
    grads = {k: v.copy() for k, v in model.grads().items()}
    weights = model.get_weights()
    LayerProbe(model, X, y).measure()
    for k, v in model.params().items():
        np.testing.assert_array_equal(v, weights[k])
    for k, v in model.grads().items():
        np.testing.assert_array_equal(v, grads[k])


@pytest.mark.parametrize("kind", ["mlp", "lstm"])
def test_training_with_the_probe_every_epoch_is_identical_to_training_without(kind):
    from types import SimpleNamespace

    def train(with_probe: bool) -> list[float]:
        rng = np.random.default_rng(7)
        shape = (300, 6) if kind == "mlp" else (300, 5, 6)
        X, y = rng.standard_normal(shape), rng.integers(0, 3, 300)
        data = SimpleNamespace(X_train=X[:200], y_train=y[:200], X_val=X[200:], y_val=y[200:],
                               task="classification")
        # mlp: 64 x 300 buffers, the Dense/ReLU scratch arrays are in use, the ReLU works in
        # place; lstm: work buffers reused while the batch shape stays the same
        hidden = [300, 64] if kind == "mlp" else 16
        model = build_model(kind, 6, hidden, 3, activation="relu" if kind == "mlp" else "tanh",
                            task="classification", rng=np.random.default_rng(8))
        probe = LayerProbe(model, data.X_train, data.y_train, n_rows=64)
        losses = []

        def on_epoch(epoch, metrics):
            losses.append(metrics["val_loss"])
            if with_probe:
                probe.measure()

        fit(model, data, optimizer=Adam(lr=0.01), batch_size=64, max_epochs=3,
            rng=np.random.default_rng(9), on_epoch=on_epoch)
        return losses + [float(v.sum()) for v in model.params().values()]

    assert train(True) == train(False)


def test_probe_rows_and_float32():
    rng = np.random.default_rng(10)
    model = build_model("mlp", N_IN, [8, 8], N_OUT, activation="swish",
                        task="classification", rng=rng, dtype=np.float32)
    X = rng.standard_normal((PROBE_ROWS + 10, N_IN)).astype(np.float32)
    y = rng.integers(0, N_OUT, PROBE_ROWS + 10)
    probe = LayerProbe(model, X, y)
    assert len(probe.X) == PROBE_ROWS
    assert len(LayerProbe(model, X[:5], y[:5]).X) == 5
    stats = probe.measure()
    assert {f"layer{i}.grad_norm" for i in (1, 2, 3)} <= set(stats)
    assert "layer3.act_mean" not in stats
    assert all(isinstance(v, float) and math.isfinite(v) for v in stats.values())


def test_recurrent_models_get_grad_norm_and_update_ratio_per_layer():
    rng = np.random.default_rng(11)
    model = build_model("lstm", 2, 5, 1, activation="tanh", task="regression", rng=rng)
    X, y = rng.standard_normal((6, 4, 2)), rng.standard_normal((6, 1))
    stats = LayerProbe(model, X, y).measure()
    assert set(stats) == {"layer1.grad_norm", "layer1.update_ratio", "layer2.grad_norm",
                          "layer2.update_ratio"}
    model.loss(X, y)
    model.backward()
    lstm = model.layers[0]
    own = math.sqrt(sum(np.sum(lstm.grads[k] ** 2) for k in ("W_x", "W_h")))  # biases excluded
    assert stats["layer1.grad_norm"] == pytest.approx(own, rel=1e-12)

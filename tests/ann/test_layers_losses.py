"""Initializers, Dense and the losses: gradients, reference values and stability."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ann.gradcheck import check_layer, numerical_grad, relative_error
from ann.initializers import INITIALIZERS, get_initializer, glorot_uniform, he_normal, lecun_normal, orthogonal
from ann.layers import Dense
from ann.losses import (
    LOSSES,
    MeanSquaredError,
    SigmoidBinaryCrossEntropy,
    SoftmaxCrossEntropy,
    loss_for_task,
    make_loss,
)

TOL = 1e-6


# ----------------------------------------------------------------------------- initializers


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_initializers_shape_dtype_determinism(name, dtype):
    init = INITIALIZERS[name]
    w = init(np.random.default_rng(5), 6, 4, dtype)
    assert w.shape == (6, 4) and w.dtype == dtype
    np.testing.assert_array_equal(w, init(np.random.default_rng(5), 6, 4, dtype))
    assert not np.array_equal(w, init(np.random.default_rng(6), 6, 4, dtype))


def test_initializer_statistics():
    rng = np.random.default_rng(0)
    w = glorot_uniform(rng, 300, 200)
    limit = math.sqrt(6 / 500)
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    assert abs(he_normal(rng, 400, 300).std() - math.sqrt(2 / 400)) < 0.02 * math.sqrt(2 / 400)
    assert abs(lecun_normal(rng, 400, 300).std() - math.sqrt(1 / 400)) < 0.02 * math.sqrt(1 / 400)


@pytest.mark.parametrize("n, m", [(5, 3), (3, 5), (4, 4)])
def test_orthogonal_is_orthonormal(n, m):
    q = orthogonal(np.random.default_rng(1), n, m)
    assert q.shape == (n, m)
    gram = q.T @ q if n >= m else q @ q.T
    np.testing.assert_allclose(gram, np.eye(min(n, m)), atol=1e-12)


def test_initializer_errors():
    with pytest.raises(ValueError, match="valid names: glorot_uniform, he_normal, lecun_normal, orthogonal"):
        get_initializer("xavier")
    with pytest.raises(ValueError, match="n_out=0"):
        glorot_uniform(np.random.default_rng(0), 3, 0)


# ----------------------------------------------------------------------------------- Dense


@pytest.mark.parametrize("shape", [(1, 3), (4, 3), (2, 5, 3)])
def test_dense_gradients(shape):
    rng = np.random.default_rng(2)
    layer = Dense(3, 2, rng=rng)
    layer.params["b"][:] = rng.standard_normal(2)
    errors = check_layer(layer, rng.standard_normal(shape), rng)
    assert set(errors) == {"W", "b", "x"}
    assert max(errors.values()) < TOL, errors


def test_dense_values_shapes_and_in_place_grads():
    rng = np.random.default_rng(3)
    layer = Dense(3, 2, rng=rng, init="he_normal")
    W, b = layer.params["W"], layer.params["b"]
    b[:] = [1.0, -1.0]
    x = rng.standard_normal((2, 4, 3))
    y = layer.forward(x)
    assert y.shape == (2, 4, 2)
    np.testing.assert_allclose(y, np.einsum("bti,io->bto", x, W) + b)
    gW, gb = layer.grads["W"], layer.grads["b"]
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    assert dx.shape == x.shape
    assert layer.grads["W"] is gW and layer.grads["b"] is gb
    np.testing.assert_allclose(gW, np.einsum("bti,bto->io", x, dy))
    np.testing.assert_allclose(gb, dy.sum(axis=(0, 1)))
    layer.forward(x[:, :1])
    assert layer.backward(dy[:, :1], need_dx=False) is None
    np.testing.assert_allclose(gW, np.einsum("bti,bto->io", x[:, :1], dy[:, :1]))


def test_dense_float32_and_errors():
    layer = Dense(4, 3, rng=np.random.default_rng(0), dtype=np.float32)
    assert layer.params["W"].dtype == np.float32 and layer.params["b"].dtype == np.float32
    x = np.ones((2, 4), dtype=np.float32)
    assert layer.forward(x).dtype == np.float32
    assert layer.backward(np.ones((2, 3), dtype=np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="n_in=0"):
        Dense(0, 3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="valid names"):
        Dense(2, 3, rng=np.random.default_rng(0), init="zeros")


# ---------------------------------------------------------------------------------- losses


def _loss_case(name, rng, shape=(4, 3)):
    if name == "softmax_cross_entropy":
        return rng.standard_normal(shape), rng.integers(0, shape[-1], size=shape[:-1])
    if name == "sigmoid_binary_cross_entropy":
        return rng.standard_normal((shape[0], 1)), rng.integers(0, 2, size=shape[0])
    return rng.standard_normal(shape), rng.standard_normal(shape)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_gradients(name):
    rng = np.random.default_rng(4)
    loss = make_loss(name)
    z, y = _loss_case(name, rng)
    loss.forward(z, y)
    dz = loss.backward()
    numeric = numerical_grad(lambda zz: loss.forward(zz, y), z)
    assert dz.shape == z.shape
    assert relative_error(dz, numeric) < TOL


def test_softmax_cross_entropy_on_sequences():
    rng = np.random.default_rng(5)
    z, y = rng.standard_normal((2, 3, 4)), rng.integers(0, 4, size=(2, 3))
    loss = SoftmaxCrossEntropy()
    value = loss.forward(z, y)
    flat = SoftmaxCrossEntropy().forward(z.reshape(6, 4), y.reshape(6))
    assert value == pytest.approx(flat)
    numeric = numerical_grad(lambda zz: loss.forward(zz, y), z)
    loss.forward(z, y)
    assert relative_error(loss.backward(), numeric) < TOL


def test_loss_values_against_direct_formulas():
    rng = np.random.default_rng(6)
    z, y = rng.standard_normal((5, 3)), np.array([0, 2, 1, 1, 0])
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert SoftmaxCrossEntropy().forward(z, y) == pytest.approx(-np.mean(np.log(p[np.arange(5), y])), rel=1e-12)

    zb, yb = rng.standard_normal((5, 1)), np.array([0, 1, 1, 0, 1])
    s = 1.0 / (1.0 + np.exp(-zb[:, 0]))
    direct = -np.mean(yb * np.log(s) + (1 - yb) * np.log(1 - s))
    assert SigmoidBinaryCrossEntropy().forward(zb, yb) == pytest.approx(direct, rel=1e-12)

    zm, ym = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    assert MeanSquaredError().forward(zm, ym) == pytest.approx(np.mean((zm - ym) ** 2), rel=1e-12)
    # a (n,) target against (n, 1) outputs is reshaped, never broadcast to (n, n)
    assert MeanSquaredError().forward(zm[:, :1], ym[:, 0]) == pytest.approx(np.mean((zm[:, 0] - ym[:, 0]) ** 2))


def test_known_extreme_values():
    z = np.array([[1000.0, -1000.0]])
    assert SoftmaxCrossEntropy().forward(z, np.array([0])) == pytest.approx(0.0)
    assert SoftmaxCrossEntropy().forward(z, np.array([1])) == pytest.approx(2000.0)
    assert SigmoidBinaryCrossEntropy().forward(np.array([[1000.0]]), np.array([0])) == pytest.approx(1000.0)
    assert SigmoidBinaryCrossEntropy().forward(np.array([[-1000.0]]), np.array([0])) == pytest.approx(0.0)


@settings(max_examples=50, deadline=None)
@given(
    arrays(np.float64, (3, 4), elements=st.floats(-1e6, 1e6)),
    st.lists(st.integers(0, 3), min_size=3, max_size=3),
)
def test_classification_losses_finite_for_huge_logits(z, labels):
    y = np.array(labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            for loss, zz, yy in (
                (SoftmaxCrossEntropy(), z, y),
                (SigmoidBinaryCrossEntropy(), z[:, :1], y % 2),
            ):
                value = loss.forward(zz, yy)
                dz = loss.backward()
                assert math.isfinite(value) and value >= 0.0
                assert np.all(np.isfinite(dz)) and np.all(np.abs(dz) <= 1.0)


def test_predictions():
    z = np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0]])
    ce = SoftmaxCrossEntropy()
    np.testing.assert_allclose(ce.predict(z).sum(axis=1), 1.0)
    np.testing.assert_array_equal(ce.predict_labels(z), [0, 1])
    bce = SigmoidBinaryCrossEntropy()
    zb = np.array([[-2.0], [0.5]])
    np.testing.assert_allclose(bce.predict(zb), 1.0 / (1.0 + np.exp(-zb)))
    np.testing.assert_array_equal(bce.predict_labels(zb), [0, 1])
    assert MeanSquaredError().predict(z) is z


def test_loss_registry_and_errors():
    assert isinstance(loss_for_task("classification", 2), SoftmaxCrossEntropy)
    assert isinstance(loss_for_task("classification", 10), SoftmaxCrossEntropy)
    assert isinstance(loss_for_task("regression", 0), MeanSquaredError)
    with pytest.raises(ValueError, match="valid tasks: classification, regression"):
        loss_for_task("ranking", 3)
    with pytest.raises(ValueError, match="n_classes=1"):
        loss_for_task("classification", 1)
    with pytest.raises(ValueError, match="valid names: mean_squared_error, sigmoid_binary_cross_entropy"):
        make_loss("hinge")
    with pytest.raises(ValueError, match="do not match"):
        SoftmaxCrossEntropy().forward(np.zeros((3, 2)), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="do not match"):
        MeanSquaredError().forward(np.zeros((3, 2)), np.zeros(3))

"""The gradient checker itself: it must pass correct gradients and catch wrong ones."""

import numpy as np
import pytest

from ann.gradcheck import check_layer, check_model, numerical_grad, relative_error
from ann.layers import Dense
from ann.losses import MeanSquaredError
from ann.models import Sequential


def test_numerical_grad_of_a_known_function_restores_x():
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    x0 = x.copy()
    g = numerical_grad(lambda v: float(np.sum(v**3)), x)
    np.testing.assert_allclose(g, 3 * x0**2, rtol=1e-8)
    np.testing.assert_array_equal(x, x0)


def test_relative_error():
    a = np.array([1.0, -2.0, 3.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(a, 2 * a) == pytest.approx(0.5)
    assert relative_error(1e6 * a, 1e6 * a * (1 + 1e-9)) < 1e-8  # scale free
    assert relative_error(np.full(3, 1e-13), np.full(3, -1e-13)) < 1e-8  # noise around 0
    with pytest.raises(ValueError, match="shapes differ"):
        relative_error(a, a[:2])


class _WrongDense(Dense):
    """A Dense whose input gradient is off by a factor 1.01."""

    def backward(self, dy, need_dx=True):
        return 1.01 * super().backward(dy)


class _AccumulatingDense(Dense):
    """A Dense that adds into grads instead of overwriting them."""

    def backward(self, dy, need_dx=True):
        gW = self.grads["W"].copy()
        dx = super().backward(dy)
        self.grads["W"] += gW
        return dx


def test_check_layer_passes_a_correct_layer_and_catches_wrong_ones():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    assert max(check_layer(Dense(4, 2, rng=rng), x, rng).values()) < 1e-6
    errors = check_layer(_WrongDense(4, 2, rng=rng), x, rng)
    assert errors["W"] < 1e-6 and errors["x"] > 1e-3
    errors = check_layer(_AccumulatingDense(4, 2, rng=rng), x, rng)
    assert errors["W"] > 1e-2 and errors["b"] < 1e-6


def test_check_model_catches_a_wrong_gradient():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 1))
    model = Sequential([Dense(4, 3, rng=rng), _WrongDense(3, 1, rng=rng)], MeanSquaredError())
    errors = check_model(model, x, y)
    assert errors["1.W"] < 1e-6 and errors["1.b"] < 1e-6
    assert errors["0.W"] > 1e-3 and errors["0.b"] > 1e-3


def test_checks_require_float64():
    rng = np.random.default_rng(2)
    layer = Dense(2, 2, rng=rng, dtype=np.float32)
    with pytest.raises(ValueError, match="float64"):
        check_layer(layer, np.ones((1, 2)), rng)

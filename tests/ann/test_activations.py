"""Activations: gradients against central differences, stability, and independent references."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ann.activations import (
    ACTIVATIONS,
    ELEMENTWISE,
    ELU,
    GELU,
    SELU,
    LeakyReLU,
    PReLU,
    Softmax,
    default_initializer,
    make_activation,
)
from ann.gradcheck import check_layer, numerical_grad, relative_error
from ann.initializers import INITIALIZERS

TOL = 1e-6


def _make(name, n_units=4, dtype=np.float64):
    return make_activation(name, n_units=n_units, dtype=dtype)


def _away_from_kinks(rng, shape):
    """Standard normal inputs kept at least 1e-3 from 0 (ReLU-family kinks)."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 1e-3, 0.5, x)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4)])
def test_gradients_match_central_differences(name, shape):
    rng = np.random.default_rng(0)
    layer = _make(name)
    if name == "prelu":  # give each unit its own slope so a mixed-up axis would show
        layer.params["alpha"][:] = rng.uniform(0.05, 0.5, size=4)
    errors = check_layer(layer, _away_from_kinks(rng, shape), rng)
    expected_keys = {"x", "alpha"} if name == "prelu" else {"x"}
    assert set(errors) == expected_keys
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_pure_functions_agree_with_layer_and_numerics(name):
    rng = np.random.default_rng(1)
    act = _make(name)
    x = _away_from_kinks(rng, (5, 3))
    y = act.apply(x)
    np.testing.assert_array_equal(y, act.forward(x.copy()))
    numeric = np.empty_like(x)
    eps = 1e-6
    numeric[:] = (act.apply(x + eps) - act.apply(x - eps)) / (2 * eps)
    assert relative_error(act.derivative(x, y), numeric) < TOL


def test_elementwise_set_and_default_initializers():
    assert ELEMENTWISE == frozenset(ACTIVATIONS) - {"softmax", "prelu"}
    for name in ACTIVATIONS:
        assert default_initializer(name) in INITIALIZERS
    assert default_initializer("tanh") == "glorot_uniform"
    assert default_initializer("sigmoid") == "glorot_uniform"
    assert default_initializer("softmax") == "glorot_uniform"
    assert default_initializer("relu") == "he_normal"
    assert default_initializer("prelu") == "he_normal"
    assert default_initializer("selu") == "lecun_normal"


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_for_huge_inputs_and_keeps_dtype(name, dtype):
    x = np.array([[-1000.0, -100.0, -20.0, -1.0, 0.0, 1.0, 20.0, 100.0, 1000.0]], dtype=dtype)
    layer = _make(name, n_units=x.shape[1], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            y = layer.forward(x)
            dx = layer.backward(np.ones_like(y))
            d = layer.derivative(x, layer.apply(x)) if name in ELEMENTWISE else dx
    for out in (y, dx, d):
        assert out.dtype == dtype
        assert np.all(np.isfinite(out))


def test_known_values_at_the_extremes():
    x = np.array([-1000.0, 1000.0])
    np.testing.assert_allclose(_make("sigmoid").apply(x), [0.0, 1.0])
    np.testing.assert_allclose(_make("softplus").apply(x), [0.0, 1000.0])
    np.testing.assert_allclose(_make("swish").apply(x), [0.0, 1000.0])
    np.testing.assert_allclose(_make("mish").apply(x), [0.0, 1000.0])
    np.testing.assert_allclose(_make("elu").apply(x), [-1.0, 1000.0])
    np.testing.assert_allclose(Softmax().forward(np.array([[1000.0, -1000.0, 1000.0]])), [[0.5, 0.0, 0.5]])


def test_gelu_is_the_tanh_approximation_of_the_erf_form():
    from scipy.special import erf

    x = np.linspace(-8, 8, 4001)
    exact = 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    exact_d = 0.5 * (1.0 + erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    gelu = GELU()
    y = gelu.apply(x)
    assert np.max(np.abs(y - exact)) < 5e-4  # the approximation's known error (~4.7e-4)
    assert np.max(np.abs(y - exact)) > 1e-5  # ... and it is the approximation, not erf itself
    assert np.max(np.abs(gelu.derivative(x, y) - exact_d)) < 1e-3
    assert "tanh approximation" in GELU.__doc__


def test_selu_constants_self_normalise():
    """For x ~ N(0, 1), SELU's constants make E[selu(x)] = 0 and E[selu(x)^2] = 1."""
    from scipy import integrate

    selu = SELU()

    def moment(k):
        f = lambda t: float(selu.apply(np.array(t))) ** k * math.exp(-t * t / 2) / math.sqrt(2 * math.pi)  # noqa: E731
        return integrate.quad(f, -np.inf, 0)[0] + integrate.quad(f, 0, np.inf)[0]

    assert abs(moment(1)) < 1e-7
    assert abs(moment(2) - 1.0) < 1e-7


def test_leaky_relu_and_elu_values():
    x = np.array([-2.0, 3.0])
    np.testing.assert_allclose(LeakyReLU(0.1).apply(x), [-0.2, 3.0])
    np.testing.assert_allclose(ELU(0.5).apply(x), [0.5 * (math.exp(-2) - 1), 3.0])


def test_prelu_slope_is_per_unit_and_overwritten_gradient():
    layer = PReLU(3, alpha_init=0.2)
    layer.params["alpha"][:] = [0.1, 0.2, 0.3]
    x = np.array([[-1.0, -1.0, 2.0], [-2.0, 1.0, -3.0]])
    np.testing.assert_allclose(layer.forward(x), [[-0.1, -0.2, 2.0], [-0.2, 1.0, -0.9]])
    g = layer.grads["alpha"]
    layer.backward(np.ones_like(x))
    layer.backward(np.ones_like(x))
    assert layer.grads["alpha"] is g
    np.testing.assert_allclose(g, [-3.0, -1.0, -3.0])  # sum of x where x <= 0, not accumulated
    assert PReLU(2, dtype=np.float32).params["alpha"].dtype == np.float32


def test_softmax_matches_naive_formula():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5))
    naive = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(Softmax().forward(x), naive, rtol=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    arrays(np.float64, (3, 4), elements=st.floats(-1e4, 1e4)),
    st.floats(-1e3, 1e3),
)
def test_softmax_rows_sum_to_one_and_ignore_shifts(x, shift):
    y = Softmax().forward(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(Softmax().forward(x + shift), y, atol=1e-9)


def test_numerical_grad_agrees_for_a_prelu_parameter_directly():
    layer = PReLU(2)
    x = np.array([[-1.5, 2.0], [-0.5, -3.0]])
    R = np.array([[1.0, 2.0], [3.0, 4.0]])
    layer.forward(x)
    layer.backward(R)
    numeric = numerical_grad(lambda _: float(np.sum(R * layer.forward(x))), layer.params["alpha"])
    np.testing.assert_allclose(layer.grads["alpha"], numeric, atol=1e-8)
    np.testing.assert_allclose(numeric, [-1.5 - 1.5, -12.0], atol=1e-8)


def test_unknown_names_and_bad_arguments_raise():
    with pytest.raises(ValueError, match="valid names: .*relu.*tanh"):
        make_activation("relux")
    with pytest.raises(ValueError, match="valid names"):
        default_initializer("nope")
    with pytest.raises(ValueError, match="n_units"):
        make_activation("prelu")
    with pytest.raises(ValueError, match="n_units=0"):
        PReLU(0)
    with pytest.raises(ValueError, match="alpha=-0.1"):
        LeakyReLU(-0.1)
    with pytest.raises(ValueError, match="alpha=0"):
        ELU(0.0)

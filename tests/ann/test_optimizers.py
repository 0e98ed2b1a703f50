"""Optimizers: hand-worked steps, weight decay, state handling, validation, clipping."""

import math

import numpy as np
import pytest

from ann.optimizers import (OPTIMIZERS, SGD, Adam, Momentum, Nesterov, RMSProp, clip_by_global_norm,
                            global_norm, make_optimizer)


def run(opt, p0, grads, lr=None):
    """Apply one step per gradient to a 1-element parameter; return the trajectory."""
    params = {"w": np.array([p0])}
    out = []
    for g in grads:
        opt.step(params, {"w": np.array([g])}, lr)
        out.append(float(params["w"][0]))
    return out


def test_sgd_two_steps():
    # p1 = 1 - 0.1 * 0.5 = 0.95 ; p2 = 0.95 - 0.1 * 0.25 = 0.925
    assert run(SGD(lr=0.1), 1.0, [0.5, 0.25]) == pytest.approx([0.95, 0.925], abs=1e-15)


def test_momentum_two_steps():
    # v1 = 0.5, p1 = 1 - 0.1 * 0.5 = 0.95 ; v2 = 0.9 * 0.5 + 0.25 = 0.7, p2 = 0.95 - 0.07 = 0.88
    assert run(Momentum(lr=0.1, momentum=0.9), 1.0, [0.5, 0.25]) == pytest.approx([0.95, 0.88], abs=1e-15)


def test_nesterov_two_steps_lookahead_form():
    # v <- mu v + g ; p <- p - lr (g + mu v)
    # v1 = 0.5, p1 = 1 - 0.1 * (0.5 + 0.45) = 0.905
    # v2 = 0.45 + 0.25 = 0.7, p2 = 0.905 - 0.1 * (0.25 + 0.63) = 0.817
    assert run(Nesterov(lr=0.1, momentum=0.9), 1.0, [0.5, 0.25]) == pytest.approx([0.905, 0.817], abs=1e-15)


def test_adam_two_steps_with_bias_correction():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 0.01  # a large eps makes its placement matter
    # step 1: m = 0.05, v = 0.00025 ; m_hat = 0.5, v_hat = 0.25
    p1 = 1.0 - lr * 0.5 / (math.sqrt(0.25) + eps)
    # step 2: m = 0.9 * 0.05 + 0.1 * 0.25 = 0.07 ; v = 0.999 * 0.00025 + 0.001 * 0.0625 = 0.00031225
    m_hat = 0.07 / (1 - 0.9**2)
    v_hat = 0.00031225 / (1 - 0.999**2)
    p2 = p1 - lr * m_hat / (math.sqrt(v_hat) + eps)
    got = run(Adam(lr=lr, beta1=b1, beta2=b2, eps=eps), 1.0, [0.5, 0.25])
    assert got == pytest.approx([p1, p2], rel=1e-12)
    assert p1 == pytest.approx(1 - 0.1 * 0.5 / 0.51)  # sanity of the hand computation


def test_rmsprop_two_steps():
    lr, rho, eps = 0.1, 0.9, 0.01
    s1 = 0.1 * 0.25
    p1 = 1.0 - lr * 0.5 / (math.sqrt(s1) + eps)
    s2 = 0.9 * s1 + 0.1 * 0.0625
    p2 = p1 - lr * 0.25 / (math.sqrt(s2) + eps)
    assert run(RMSProp(lr=lr, rho=rho, eps=eps), 1.0, [0.5, 0.25]) == pytest.approx([p1, p2], rel=1e-12)


def test_sgd_weight_decay_by_hand():
    # p1 = 1 - 0.1 * (0.5 + 0.1 * 1) = 0.94
    assert run(SGD(lr=0.1, weight_decay=0.1), 1.0, [0.5]) == pytest.approx([0.94], abs=1e-15)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_weight_decay_equals_l2_gradient(name):
    """opt(wd) with grads g == opt(0) with grads g + wd * p, on every parameter; grads untouched."""
    rng = np.random.default_rng(0)
    wd = 0.05
    p_a = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    p_b = {k: v.copy() for k, v in p_a.items()}
    decayed, plain = make_optimizer(name, lr=0.01, weight_decay=wd), make_optimizer(name, lr=0.01)
    for _ in range(3):
        g = {k: rng.normal(size=v.shape) for k, v in p_a.items()}
        g_copy = {k: v.copy() for k, v in g.items()}
        decayed.step(p_a, g)
        plain.step(p_b, {k: g[k] + wd * p_b[k] for k in g})
        for k in g:
            np.testing.assert_array_equal(g[k], g_copy[k])
    for k in p_a:
        np.testing.assert_allclose(p_a[k], p_b[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_minimises_a_quadratic(name):
    """f(p) = 0.5 ||p - c||^2 has gradient p - c; every optimizer gets close to c."""
    c = np.array([1.0, -2.0, 0.5])
    params = {"p": np.zeros(3)}
    opt = make_optimizer(name, lr=0.05)
    for _ in range(2000):
        opt.step(params, {"p": params["p"] - c})
    np.testing.assert_allclose(params["p"], c, atol=1e-2)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_by_name_reset_and_lr_override(name):
    opt = make_optimizer(name, lr=0.1)
    params = {"a": np.ones(2), "b": np.ones((2, 2))}
    before = {k: v.copy() for k, v in params.items()}
    ids = {k: id(v) for k, v in params.items()}
    opt.step(params, {"a": np.ones(2), "b": np.ones((2, 2))}, lr=0.01)
    assert {k: id(v) for k, v in params.items()} == ids  # in place
    assert all((params[k] < before[k]).all() for k in params)
    if name != "sgd":
        assert set(opt.state) == {"a", "b"}
        assert all(s.shape == params[k].shape for k in opt.state for s in opt.state[k])
    opt.reset()
    assert opt.state == {} and opt.t == 0
    # a fresh optimizer and a reset one take the same step
    p1, p2 = {"a": np.ones(2)}, {"a": np.ones(2)}
    opt.step(p1, {"a": np.full(2, 0.3)})
    make_optimizer(name, lr=0.1).step(p2, {"a": np.full(2, 0.3)})
    np.testing.assert_array_equal(p1["a"], p2["a"])


def test_lr_argument_scales_sgd_step():
    params = {"w": np.array([1.0])}
    SGD(lr=0.5).step(params, {"w": np.array([1.0])}, lr=0.01)
    assert params["w"][0] == pytest.approx(0.99)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_stays_float32(name):
    params = {"w": np.ones((2, 3), dtype=np.float32)}
    opt = make_optimizer(name, lr=0.1, weight_decay=0.01)
    opt.step(params, {"w": np.ones((2, 3), dtype=np.float32)})
    assert params["w"].dtype == np.float32
    assert all(s.dtype == np.float32 for s in opt.state.get("w", ()))


@pytest.mark.parametrize("kwargs, arg", [
    ({"lr": 0}, "lr"), ({"lr": -1.0}, "lr"), ({"lr": float("nan")}, "lr"), ({"lr": True}, "lr"),
    ({"lr": 0.1, "weight_decay": -0.1}, "weight_decay"),
])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_common_validation(name, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        make_optimizer(name, **kwargs)


@pytest.mark.parametrize("cls, kwargs, arg", [
    (Momentum, {"momentum": 1.0}, "momentum"), (Momentum, {"momentum": -0.1}, "momentum"),
    (Nesterov, {"momentum": 1.5}, "momentum"), (Adam, {"beta1": 1.0}, "beta1"),
    (Adam, {"beta2": -0.5}, "beta2"), (Adam, {"eps": 0.0}, "eps"), (RMSProp, {"rho": 1.0}, "rho"),
])
def test_specific_validation(cls, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        cls(lr=0.1, **kwargs)


def test_unknown_optimizer_lists_names():
    with pytest.raises(ValueError, match="adam.*momentum.*nesterov.*sgd"):
        make_optimizer("adamw2", lr=0.1)


def test_global_norm_and_clipping():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert global_norm(grads) == pytest.approx(5.0)
    assert clip_by_global_norm(grads, 10.0) == pytest.approx(5.0)
    np.testing.assert_array_equal(grads["a"], [3.0, 0.0])  # below the limit: untouched
    assert clip_by_global_norm(grads, 1.0) == pytest.approx(5.0)  # returns the pre-clip norm
    np.testing.assert_allclose(grads["a"], [0.6, 0.0])
    np.testing.assert_allclose(grads["b"], [[0.8]])
    assert global_norm(grads) == pytest.approx(1.0)


def test_clipping_nan_and_validation():
    grads = {"a": np.array([np.nan, 1.0])}
    assert math.isnan(clip_by_global_norm(grads, 1.0))
    assert grads["a"][1] == 1.0
    with pytest.raises(ValueError, match="max_norm"):
        clip_by_global_norm({"a": np.ones(1)}, 0.0)

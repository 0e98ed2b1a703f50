"""Finite-difference gradient checking of layers and models (use float64)."""

from __future__ import annotations

from typing import Callable

import numpy as np

Array = np.ndarray


def numerical_grad(f: Callable[[Array], float], x: Array, eps: float = 1e-6) -> Array:
    """Central-difference gradient of the scalar f at x.

    df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps).  ``x`` is perturbed *in place*, one
    entry at a time, and restored exactly; ``f`` is called as ``f(x)`` and may equally ignore its
    argument and read x through a closure (e.g. a layer's parameter array).
    Returns a float64 array shaped like x.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        i = it.multi_index
        old = x[i].copy()
        x[i] = old + eps
        f_plus = float(f(x))
        x[i] = old - eps
        f_minus = float(f(x))
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2.0 * eps)
    return grad


def relative_error(a: Array, b: Array, floor: float = 1e-4) -> float:
    """Scale-free distance of two arrays: max|a - b| / max(max|a|, max|b|, floor).

    The ``floor`` makes it an absolute error when both arrays are tiny (finite-difference noise,
    ~1e-10 with eps = 1e-6, would otherwise look like a large relative error); two all-zero
    arrays give 0. Shapes must match.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"relative_error: shapes differ, {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    diff = float(np.max(np.abs(a - b)))
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), floor)
    return diff / scale


def _require_float64(where: str, arrays: dict[str, Array]) -> None:
    for k, v in arrays.items():
        if v.dtype != np.float64:
            raise ValueError(f"{where}: {k!r} has dtype {v.dtype}; gradient checks need float64")


def check_layer(layer, x: Array, rng: np.random.Generator, eps: float = 1e-6) -> dict[str, float]:
    """Relative errors of a layer's analytic gradients against central differences.

    Uses a random linear functional of the output, L = sum(R * layer.forward(x)) with
    R ~ N(0, 1) drawn from ``rng``, so backward receives dy = R. Returns
    {param key: error, ..., "x": error for dL/dx}. A first forward/backward with a different
    R runs beforehand, so a backward that accumulates into ``grads`` instead of overwriting fails.
    """
    x = np.array(x, dtype=np.float64)
    _require_float64("check_layer", layer.params)
    y = layer.forward(x)
    layer.backward(rng.standard_normal(y.shape))  # warm-up: grads must be overwritten after this
    R = rng.standard_normal(y.shape)
    layer.forward(x)
    dx = layer.backward(R)
    analytic = {k: g.copy() for k, g in layer.grads.items()}

    def objective(_=None) -> float:
        return float(np.sum(R * layer.forward(x)))

    errors = {k: relative_error(analytic[k], numerical_grad(objective, p, eps)) for k, p in layer.params.items()}
    errors["x"] = relative_error(dx, numerical_grad(objective, x, eps))
    return errors


def check_model(model, x: Array, y: Array, eps: float = 1e-6) -> dict[str, float]:
    """Relative errors of ``model.grads()`` after ``loss(x, y)`` + ``backward()`` against central
    differences of ``model.loss(x, y)``, one entry per parameter key ("0.W", ...)."""
    params = model.params()
    _require_float64("check_model", params)
    model.loss(x, y)
    model.backward()
    analytic = {k: g.copy() for k, g in model.grads().items()}

    def objective(_=None) -> float:
        return model.loss(x, y)

    return {k: relative_error(analytic[k], numerical_grad(objective, p, eps)) for k, p in params.items()}

"""Activation layers: elementwise nonlinearities, the learnable PReLU and softmax.

Every activation is a layer with ``params``/``grads`` dicts (empty except for PReLU), a
``forward(x) -> y`` that caches what backward needs and a ``backward(dy) -> dx``. The
elementwise, parameter-free ones also offer the pure functions ``apply(x) -> y`` and
``derivative(x, y) -> dy/dx`` (elementwise), which recurrent layers call directly.

Shapes: any ``x`` of shape ``(..., n)`` maps to ``y`` of the same shape (softmax normalises
over the last axis). All formulas are written so that inputs of +-1000 (float32 or float64)
neither overflow nor produce NaN; values that are smaller than the smallest float round to 0
(a silent underflow, ignored by NumPy's default error state).
"""

from __future__ import annotations

import math

import numpy as np

from ann._memory import MIN_ELEMENTS, scratch

Array = np.ndarray


def _sigmoid(x: Array) -> Array:
    """Logistic function s = 1 / (1 + exp(-x)) computed as 0.5 + 0.5 * tanh(x / 2) (never overflows)."""
    y = np.tanh(x * 0.5)
    y *= 0.5
    y += 0.5
    return y


class _Elementwise:
    """Base class of the parameter-free elementwise activations: backward = dy * derivative."""

    name = ""

    def __init__(self) -> None:
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}

    def apply(self, x: Array) -> Array:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def derivative(self, x: Array, y: Array) -> Array:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: Array) -> Array:
        y = self.apply(x)
        self._x, self._y = x, y
        return y

    def backward(self, dy: Array) -> Array:
        return dy * self.derivative(self._x, self._y)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Sigmoid(_Elementwise):
    """y = 1 / (1 + exp(-x));  dy/dx = y (1 - y)."""

    name = "sigmoid"

    def apply(self, x: Array) -> Array:
        return _sigmoid(x)

    def derivative(self, x: Array, y: Array) -> Array:
        return y * (1.0 - y)


class Tanh(_Elementwise):
    """y = tanh(x);  dy/dx = 1 - y^2."""

    name = "tanh"

    def apply(self, x: Array) -> Array:
        return np.tanh(x)

    def derivative(self, x: Array, y: Array) -> Array:
        return 1.0 - y * y


class ReLU(_Elementwise):
    """y = max(x, 0);  dy/dx = 1 if x > 0 else 0.

    With ``reuse_buffers`` True (``Sequential`` sets it on its layers) forward writes y and
    backward writes dx into arrays the layer owns, reused by its next call of the same shape
    (the caller must not keep them across calls); False (standalone default): fresh arrays.
    With ``inplace`` True as well, forward overwrites x and backward overwrites dy: Sequential
    sets it between two Dense layers, whose forward output and backward dx buffers these are.
    """

    name = "relu"
    reuse_buffers = False
    inplace = False

    def __init__(self) -> None:
        super().__init__()
        self._bufs: tuple[dict, dict, dict] = ({}, {}, {})  # y, mask, dx

    def apply(self, x: Array) -> Array:
        return np.maximum(x, 0.0)

    def derivative(self, x: Array, y: Array) -> Array:
        return (x > 0).astype(x.dtype)

    def forward(self, x: Array) -> Array:
        if self.reuse_buffers and x.size >= MIN_ELEMENTS and x.dtype.kind == "f":
            y = np.maximum(x, 0.0, out=x if self.inplace else scratch(self._bufs[0], x.shape, x.dtype))
        else:
            y = np.maximum(x, 0.0)
        self._x, self._y = x, y
        return y

    def backward(self, dy: Array) -> Array:
        y = self._y  # y > 0 exactly where x > 0
        if self.reuse_buffers and dy.size >= MIN_ELEMENTS and dy.dtype == y.dtype:
            mask = np.greater(y, 0.0, out=scratch(self._bufs[1], y.shape, np.bool_))  # 1/8 the bytes
            return np.multiply(dy, mask, out=dy if self.inplace else scratch(self._bufs[2], dy.shape, dy.dtype))
        return dy * (y > 0)


def _check_alpha(cls: str, alpha: float, positive: bool) -> float:
    ok = math.isfinite(alpha) and (alpha > 0 if positive else alpha >= 0)
    if not ok:
        allowed = "a finite number > 0" if positive else "a finite number >= 0"
        raise ValueError(f"{cls}: alpha={alpha!r} is invalid; allowed: {allowed}")
    return float(alpha)


class LeakyReLU(_Elementwise):
    """y = x if x > 0 else alpha * x;  dy/dx = 1 if x > 0 else alpha.  Fixed slope alpha >= 0."""

    name = "leaky_relu"

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = _check_alpha("LeakyReLU", alpha, positive=False)

    def apply(self, x: Array) -> Array:
        return np.where(x > 0, x, self.alpha * x)

    def derivative(self, x: Array, y: Array) -> Array:
        return np.where(x > 0, 1.0, self.alpha).astype(x.dtype, copy=False)


class ELU(_Elementwise):
    """y = x if x > 0 else alpha (exp(x) - 1);  dy/dx = 1 if x > 0 else y + alpha."""

    name = "elu"

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = _check_alpha("ELU", alpha, positive=True)

    def apply(self, x: Array) -> Array:
        return np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0.0)))

    def derivative(self, x: Array, y: Array) -> Array:
        return np.where(x > 0, 1.0, y + self.alpha)


class SELU(_Elementwise):
    """y = lam * (x if x > 0 else alpha (exp(x) - 1));  dy/dx = lam if x > 0 else y + lam alpha.

    The self-normalising constants of Klambauer et al. (2017):
    alpha = 1.6732632423543772, lam = 1.0507009873554805.
    """

    name = "selu"
    alpha = 1.6732632423543772848170429916717
    lam = 1.0507009873554804934193349852946

    def apply(self, x: Array) -> Array:
        return self.lam * np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0.0)))

    def derivative(self, x: Array, y: Array) -> Array:
        return np.where(x > 0, self.lam, y + self.lam * self.alpha)


class Swish(_Elementwise):
    """Swish / SiLU: y = x s(x) with s the sigmoid;  dy/dx = s (1 + x (1 - s))."""

    name = "swish"

    def apply(self, x: Array) -> Array:
        return x * _sigmoid(x)

    def derivative(self, x: Array, y: Array) -> Array:
        s = _sigmoid(x)
        return s * (1.0 + x * (1.0 - s))


class GELU(_Elementwise):
    """GELU, tanh approximation (Hendrycks & Gimpel): not the exact x Phi(x) with erf.

    y = 0.5 x (1 + t),  t = tanh(u),  u = c (x + 0.044715 x^3),  c = sqrt(2 / pi);
    dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2).
    Differs from the exact erf form by less than ~5e-4 in absolute value.
    """

    name = "gelu"
    c = math.sqrt(2.0 / math.pi)
    k = 0.044715

    def _t(self, x: Array) -> Array:
        return np.tanh(self.c * (x + self.k * x * x * x))

    def apply(self, x: Array) -> Array:
        return 0.5 * x * (1.0 + self._t(x))

    def derivative(self, x: Array, y: Array) -> Array:
        t = self._t(x)
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * self.c * (1.0 + 3.0 * self.k * x * x)


class Softplus(_Elementwise):
    """y = log(1 + exp(x)) (computed as logaddexp(0, x));  dy/dx = s(x), the sigmoid."""

    name = "softplus"

    def apply(self, x: Array) -> Array:
        return np.logaddexp(0.0, x)

    def derivative(self, x: Array, y: Array) -> Array:
        return _sigmoid(x)


class Mish(_Elementwise):
    """y = x tanh(softplus(x));  dy/dx = t + x (1 - t^2) s(x) with t = tanh(softplus(x))."""

    name = "mish"

    def apply(self, x: Array) -> Array:
        return x * np.tanh(np.logaddexp(0.0, x))

    def derivative(self, x: Array, y: Array) -> Array:
        t = np.tanh(np.logaddexp(0.0, x))
        return t + x * (1.0 - t * t) * _sigmoid(x)


class Identity(_Elementwise):
    """y = x;  dy/dx = 1."""

    name = "identity"

    def apply(self, x: Array) -> Array:
        return x

    def derivative(self, x: Array, y: Array) -> Array:
        return np.ones_like(x)

    def forward(self, x: Array) -> Array:
        return x

    def backward(self, dy: Array) -> Array:
        return dy


class PReLU:
    """Parametric ReLU with one learnable slope per unit.

    y = x if x > 0 else alpha * x   (alpha broadcast over the last axis);
    dL/dalpha = sum over leading axes of dy * x * [x <= 0];  dx = dy * (1 if x > 0 else alpha).
    Shapes: x (..., n_units) -> y (..., n_units); param alpha (n_units,).
    """

    name = "prelu"

    def __init__(self, n_units: int, alpha_init: float = 0.25, dtype=np.float64) -> None:
        if isinstance(n_units, bool) or not isinstance(n_units, (int, np.integer)) or n_units < 1:
            raise ValueError(f"PReLU: n_units={n_units!r} is invalid; allowed: an integer >= 1")
        if not math.isfinite(alpha_init):
            raise ValueError(f"PReLU: alpha_init={alpha_init!r} is invalid; allowed: a finite number")
        self.params = {"alpha": np.full(int(n_units), alpha_init, dtype=dtype)}
        self.grads = {"alpha": np.zeros_like(self.params["alpha"])}

    def forward(self, x: Array) -> Array:
        self._pos = x > 0
        self._x = x
        return np.where(self._pos, x, self.params["alpha"] * x)

    def backward(self, dy: Array) -> Array:
        neg = np.where(self._pos, 0.0, dy * self._x)
        self.grads["alpha"][...] = neg.reshape(-1, neg.shape[-1]).sum(axis=0)
        return np.where(self._pos, dy, dy * self.params["alpha"])

    def __repr__(self) -> str:
        return f"PReLU(n_units={self.params['alpha'].shape[0]})"


class Softmax:
    """Softmax over the last axis: y_i = exp(x_i - m) / sum_j exp(x_j - m), m = max_j x_j.

    Backward is the Jacobian-vector product dx = y * (dy - sum_j dy_j y_j).
    Shapes: x (..., n) -> y (..., n). Use it as a hidden/standalone layer; for classification the
    output softmax is fused into ``SoftmaxCrossEntropy``.
    """

    name = "softmax"

    def __init__(self) -> None:
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}

    def forward(self, x: Array) -> Array:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        e /= e.sum(axis=-1, keepdims=True)
        self._y = e
        return e

    def backward(self, dy: Array) -> Array:
        y = self._y
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))

    def __repr__(self) -> str:
        return "Softmax()"


ACTIVATIONS: dict[str, type] = {
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "prelu": PReLU,
    "elu": ELU,
    "selu": SELU,
    "swish": Swish,
    "gelu": GELU,
    "softplus": Softplus,
    "mish": Mish,
    "identity": Identity,
    "softmax": Softmax,
}

ELEMENTWISE: frozenset[str] = frozenset(ACTIVATIONS) - {"softmax", "prelu"}

_INITIALIZER_FOR = {
    **dict.fromkeys(["sigmoid", "tanh", "softmax", "identity", "softplus"], "glorot_uniform"),
    **dict.fromkeys(["relu", "leaky_relu", "prelu", "elu", "swish", "gelu", "mish"], "he_normal"),
    "selu": "lecun_normal",
}


def _check_name(name: str) -> None:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid names: {', '.join(sorted(ACTIVATIONS))}")


def make_activation(name: str, n_units: int | None = None, dtype=np.float64, **kwargs):
    """Build the activation layer registered as ``name``.

    ``n_units`` is required by (and only used for) ``prelu``; ``dtype`` sets PReLU's parameter
    dtype; ``kwargs`` go to the constructor (e.g. ``alpha`` for leaky_relu / elu).
    """
    _check_name(name)
    if name == "prelu":
        if n_units is None:
            raise ValueError("make_activation: n_units=None is invalid for 'prelu'; allowed: an integer >= 1")
        return PReLU(n_units, dtype=dtype, **kwargs)
    return ACTIVATIONS[name](**kwargs)


def default_initializer(name: str) -> str:
    """Weight initializer suited to a layer followed by activation ``name``.

    glorot_uniform for sigmoid/tanh/softmax/identity/softplus, he_normal for the ReLU family
    (relu, leaky_relu, prelu, elu and the smooth ReLU-likes swish, gelu, mish), lecun_normal
    for selu.
    """
    _check_name(name)
    return _INITIALIZER_FOR[name]

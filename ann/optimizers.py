"""First-order optimizers that update parameter dicts in place, and gradient clipping.

Every optimizer has `step(params, grads, lr)`: `params` and `grads` are dicts with the same keys
(e.g. `Sequential.params()` / `Sequential.grads()`), `lr` is this step's rate (base rate x
schedule; `None` means the optimizer's own `lr`). The update happens in place on the arrays of
`params`; `grads` is never modified. Optimizer state (velocities, moments, the step counter) is
keyed by parameter name and kept inside the optimizer, apart from the parameters; `reset()`
forgets it.

Weight decay is L2 regularisation added to the gradient, g <- g + weight_decay * p, applied to
*every* parameter (biases and PReLU slopes included), before momentum / moment estimates (so
for Adam this is L2, not the decoupled AdamW decay).

Batch-1 training is per-call overhead, so each update is a handful of NumPy calls per parameter
with in-place `out=` arithmetic and per-parameter scratch buffers (no large temporaries).
"""

from __future__ import annotations

import math

import numpy as np

Array = np.ndarray


def _check(name: str, value: float, ok: bool, allowed: str) -> float:
    """Raise ValueError naming the argument, its value and what is allowed unless `ok`."""
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid: must be {allowed}")
    return float(value)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _positive(name: str, value: float) -> float:
    return _check(name, value, _is_real(value) and math.isfinite(value) and value > 0, "a finite number > 0")


def _non_negative(name: str, value: float) -> float:
    return _check(name, value, _is_real(value) and math.isfinite(value) and value >= 0, "a finite number >= 0")


def _unit_interval(name: str, value: float) -> float:
    return _check(name, value, _is_real(value) and 0 <= value < 1, "a number in [0, 1)")


class Optimizer:
    """Base class: holds the base rate `lr`, `weight_decay` and the per-parameter `state`."""

    def __init__(self, lr: float, weight_decay: float = 0.0) -> None:
        self.lr = _positive("lr", lr)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self.state: dict[str, tuple[Array, ...]] = {}
        self.t = 0  # number of steps taken since the last reset

    def reset(self) -> None:
        """Forget all state (velocities, moments, step counter)."""
        self.state = {}
        self.t = 0

    def _slots(self, name: str, p: Array, n: int) -> tuple[Array, ...]:
        """The `n` state arrays of parameter `name`, created as zeros shaped like `p`."""
        slots = self.state.get(name)
        if slots is None or slots[0].shape != p.shape or slots[0].dtype != p.dtype:
            slots = tuple(np.zeros_like(p) for _ in range(n))
            self.state[name] = slots
        return slots

    def _decayed(self, g: Array, p: Array, buf: Array) -> Array:
        """The L2-decayed gradient g + weight_decay * p, written into `buf` (g itself when 0)."""
        if not self.weight_decay:
            return g
        np.multiply(p, self.weight_decay, out=buf)
        buf += g
        return buf

    def step(self, params: dict[str, Array], grads: dict[str, Array], lr: float | None = None) -> None:
        """Update every array of `params` in place from `grads` with rate `lr`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def config(self) -> dict[str, float]:
        """Constructor arguments (the names used in YAML and MLflow params)."""
        return {"lr": self.lr, "weight_decay": self.weight_decay}


class SGD(Optimizer):
    """Plain gradient descent.   p <- p - lr * (g + wd * p)."""

    def step(self, params: dict[str, Array], grads: dict[str, Array], lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        wd = self.weight_decay
        self.t += 1
        if wd:
            shrink = 1.0 - lr * wd  # p - lr*(g + wd*p) = (1 - lr*wd) * p - lr * g
            for name, p in params.items():
                p *= shrink
                p -= lr * grads[name]
        else:
            for name, p in params.items():
                p -= lr * grads[name]


class Momentum(Optimizer):
    """Heavy-ball momentum (PyTorch form).   v <- mu * v + g ;  p <- p - lr * v.

    With a constant rate this equals the classic v <- mu * v - lr * g ; p <- p + v.
    State per parameter: the velocity `v` (and a scratch buffer when weight decay is on).
    """

    def __init__(self, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay)
        self.momentum = _unit_interval("momentum", momentum)

    def config(self) -> dict[str, float]:
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay}

    def _velocity(self, params: dict[str, Array], grads: dict[str, Array]):
        """Yield (p, g, v) after updating v <- mu * v + (g + wd * p)."""
        mu, wd = self.momentum, self.weight_decay
        for name, p in params.items():
            v, buf = self._slots(name, p, 2)
            g = grads[name]
            v *= mu
            v += g
            if wd:
                np.multiply(p, wd, out=buf)
                v += buf
                np.add(g, buf, out=buf)  # buf = g + wd * p, the decayed gradient
                g = buf
            yield p, g, v, buf

    def step(self, params: dict[str, Array], grads: dict[str, Array], lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        self.t += 1
        for p, _, v, buf in self._velocity(params, grads):
            np.multiply(v, lr, out=buf)
            p -= buf


class Nesterov(Momentum):
    """Nesterov accelerated gradient, in the lookahead-free form of Sutskever et al. / PyTorch.

        v <- mu * v + g ;  p <- p - lr * (g + mu * v)

    The stored `p` is the lookahead point, so the gradient is taken at the current parameters
    (no extra forward pass). g includes weight decay: g = grad + wd * p.
    """

    def step(self, params: dict[str, Array], grads: dict[str, Array], lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        self.t += 1
        lr_mu = lr * self.momentum
        for p, g, v, buf in self._velocity(params, grads):
            np.multiply(g, lr, out=buf)  # safe when g is buf: elementwise in place
            p -= buf
            np.multiply(v, lr_mu, out=buf)
            p -= buf


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with L2 weight decay added to the gradient.

        g <- g + wd * p ;  m <- b1 * m + (1 - b1) * g ;  v <- b2 * v + (1 - b2) * g^2
        p <- p - lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)

    computed in the equivalent form p <- p - a_t * m / (sqrt(v) + eps * sqrt(1 - b2^t)) with
    a_t = lr * sqrt(1 - b2^t) / (1 - b1^t). `t` counts steps from 1 (shared by all parameters).
    """

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay)
        self.beta1 = _unit_interval("beta1", beta1)
        self.beta2 = _unit_interval("beta2", beta2)
        self.eps = _positive("eps", eps)

    def config(self) -> dict[str, float]:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay}

    def step(self, params: dict[str, Array], grads: dict[str, Array], lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        c2 = math.sqrt(1.0 - b2 ** self.t)
        a_t = lr * c2 / (1.0 - b1 ** self.t)
        eps_t = self.eps * c2
        for name, p in params.items():
            m, v, buf = self._slots(name, p, 3)
            g = self._decayed(grads[name], p, buf)
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            np.multiply(g, g, out=buf)
            buf *= 1.0 - b2
            v += buf
            np.sqrt(v, out=buf)
            buf += eps_t
            np.divide(m, buf, out=buf)
            buf *= a_t
            p -= buf


class RMSProp(Optimizer):
    """RMSProp (Hinton 2012).   s <- rho * s + (1 - rho) * g^2 ;  p <- p - lr * g / (sqrt(s) + eps)."""

    def __init__(self, lr: float = 0.001, rho: float = 0.9, eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay)
        self.rho = _unit_interval("rho", rho)
        self.eps = _positive("eps", eps)

    def config(self) -> dict[str, float]:
        return {"lr": self.lr, "rho": self.rho, "eps": self.eps, "weight_decay": self.weight_decay}

    def step(self, params: dict[str, Array], grads: dict[str, Array], lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        self.t += 1
        rho = self.rho
        for name, p in params.items():
            s, buf, gbuf = self._slots(name, p, 3)
            g = self._decayed(grads[name], p, gbuf)
            s *= rho
            np.multiply(g, g, out=buf)
            buf *= 1.0 - rho
            s += buf
            np.sqrt(s, out=buf)
            buf += self.eps
            np.divide(g, buf, out=buf)
            buf *= lr
            p -= buf


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adam": Adam,
    "rmsprop": RMSProp,
}


def make_optimizer(name: str, **kwargs: float) -> Optimizer:
    """Build a registered optimizer by name, e.g. make_optimizer("adam", lr=1e-3)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid names: {', '.join(sorted(OPTIMIZERS))}")
    return OPTIMIZERS[name](**kwargs)


def global_norm(grads: dict[str, Array]) -> float:
    """Euclidean norm of all gradients taken together: sqrt(sum_k ||g_k||^2)."""
    total = 0.0
    for g in grads.values():
        total += float(np.vdot(g, g))
    return math.sqrt(total)


def clip_by_global_norm(grads: dict[str, Array], max_norm: float) -> float:
    """Scale every gradient in place by min(1, max_norm / norm); return the pre-clip norm.

    norm = global_norm(grads). A non-finite norm is returned unchanged without scaling
    (the caller decides what a NaN gradient means).
    """
    _positive("max_norm", max_norm)
    norm = global_norm(grads)
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            g *= scale
    return norm

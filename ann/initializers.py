"""Weight initializers: functions of a ``np.random.Generator`` returning an ``(n_in, n_out)`` matrix.

Draws are made in float64 and then cast to ``dtype``, so one seed gives the same weights (up to
rounding) whatever the dtype.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

Array = np.ndarray


def _check_sizes(fn: str, **sizes: int) -> None:
    for arg, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{fn}: {arg}={value!r} is invalid; allowed: an integer >= 1")


def glorot_uniform(rng: np.random.Generator, n_in: int, n_out: int, dtype=np.float64) -> Array:
    """Glorot/Xavier uniform: W ~ U(-a, a), a = sqrt(6 / (n_in + n_out)).  Shape (n_in, n_out)."""
    _check_sizes("glorot_uniform", n_in=n_in, n_out=n_out)
    a = math.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-a, a, size=(n_in, n_out)).astype(dtype, copy=False)


def he_normal(rng: np.random.Generator, n_in: int, n_out: int, dtype=np.float64) -> Array:
    """He/Kaiming normal: W ~ N(0, 2 / n_in).  Shape (n_in, n_out)."""
    _check_sizes("he_normal", n_in=n_in, n_out=n_out)
    w = rng.standard_normal((n_in, n_out))
    w *= math.sqrt(2.0 / n_in)
    return w.astype(dtype, copy=False)


def lecun_normal(rng: np.random.Generator, n_in: int, n_out: int, dtype=np.float64) -> Array:
    """LeCun normal: W ~ N(0, 1 / n_in) (the initializer SELU's self-normalisation assumes)."""
    _check_sizes("lecun_normal", n_in=n_in, n_out=n_out)
    w = rng.standard_normal((n_in, n_out))
    w *= math.sqrt(1.0 / n_in)
    return w.astype(dtype, copy=False)


def orthogonal(rng: np.random.Generator, n: int, m: int, dtype=np.float64) -> Array:
    """Random (semi-)orthogonal matrix, shape (n, m): orthonormal columns if n >= m, else rows.

    Q from the QR decomposition of a standard normal (max(n, m), min(n, m)) matrix, with the
    signs of R's diagonal folded in so that Q is uniformly (Haar) distributed.
    """
    _check_sizes("orthogonal", n=n, m=m)
    a = rng.standard_normal((max(n, m), min(n, m)))
    q, r = np.linalg.qr(a)
    q *= np.where(np.diag(r) < 0, -1.0, 1.0)
    if n < m:
        q = q.T
    return np.ascontiguousarray(q, dtype=dtype)


INITIALIZERS: dict[str, Callable[..., Array]] = {
    "glorot_uniform": glorot_uniform,
    "he_normal": he_normal,
    "lecun_normal": lecun_normal,
    "orthogonal": orthogonal,
}


def get_initializer(name: str) -> Callable[..., Array]:
    """The initializer registered as ``name``; unknown names raise ValueError listing valid ones."""
    try:
        return INITIALIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown initializer {name!r}; valid names: {', '.join(sorted(INITIALIZERS))}"
        ) from None

"""Sequence tasks: digits read row by row, the adding problem, noisy sine forecasting.

All generators take their randomness from an np.random.Generator and return batch-first
arrays X (n_samples, n_steps, n_in).
"""

from __future__ import annotations

import numpy as np

from ann.bundled import load_bundled

Array = np.ndarray


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} is invalid: allowed is an integer >= {minimum}")
    return int(value)


def make_digits_seq() -> tuple[Array, Array]:
    """scikit-learn's 8x8 digits read row by row: X (1797, 8, 8) pixels / 16, y (1797,) int64.

    Step t is image row t (8 features). The table comes from ``ann.bundled.load_bundled``
    (the file scikit-learn ships, read without importing scikit-learn), so ann.sequences stays
    NumPy-only.
    """
    flat, target = load_bundled("digits")
    X = np.asarray(flat, dtype=np.float64).reshape(-1, 8, 8) / 16.0
    return X, np.asarray(target, dtype=np.int64)


def make_adding(n_samples: int, seq_len: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015).

    X (n_samples, seq_len, 2): channel 0 values ~ U[0, 1], channel 1 a marker with exactly two
    1s, one in the first half [0, seq_len // 2) and one in the second half [seq_len // 2,
    seq_len). y (n_samples, 1) = the sum of the two marked values. Predicting the mean (1.0)
    scores MSE = Var(u1 + u2) = 1/6.
    """
    n = _check_int("n_samples", n_samples, 1)
    T = _check_int("seq_len", seq_len, 2)
    values = rng.uniform(0.0, 1.0, size=(n, T))
    half = T // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, T, size=n)
    markers = np.zeros((n, T))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    X = np.stack([values, markers], axis=2)
    y = (values[rows, first] + values[rows, second])[:, None]
    return X, y


def make_sine(n_samples: int, seq_len: int, horizon: int, noise: float,
              rng: np.random.Generator) -> tuple[Array, Array]:
    """Noisy sine waves for many-to-many forecasting of the next `horizon` values.

    s_n(tau) = sin(omega_n * tau + phi_n) + noise * eps,  omega ~ U[0.1, 0.5] (periods of about
    13 to 63 steps), phi ~ U[0, 2 pi), eps ~ N(0, 1), tau = 0 .. seq_len + horizon - 1.
    X (n_samples, seq_len, 1) with X[n, t, 0] = s_n(t); Y (n_samples, seq_len, horizon) with
    Y[n, t, k] = s_n(t + 1 + k).
    """
    n = _check_int("n_samples", n_samples, 1)
    T = _check_int("seq_len", seq_len, 1)
    k = _check_int("horizon", horizon, 1)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise={noise!r} is invalid: allowed is a finite float >= 0")
    omega = rng.uniform(0.1, 0.5, size=(n, 1))
    phi = rng.uniform(0.0, 2 * np.pi, size=(n, 1))
    tau = np.arange(T + k)[None, :]
    series = np.sin(omega * tau + phi) + noise * rng.standard_normal((n, T + k))
    X = series[:, :T, None]
    steps = np.arange(T)[:, None] + 1 + np.arange(k)[None, :]   # (T, horizon)
    Y = series[:, steps]
    return np.ascontiguousarray(X), Y

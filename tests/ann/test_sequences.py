"""Sequence task generators: digits read row by row, the adding problem, noisy sines."""

from __future__ import annotations

import numpy as np
import pytest

from ann.sequences import make_adding, make_digits_seq, make_sine


def test_digits_seq_shapes_and_scale():
    X, y = make_digits_seq()
    assert X.shape == (1797, 8, 8) and y.shape == (1797,)
    assert X.dtype == np.float64 and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    from sklearn.datasets import load_digits
    np.testing.assert_array_equal(X[5, 3], load_digits().data[5, 24:32] / 16.0)  # row 3 = step 3


@pytest.mark.parametrize("seq_len", [2, 3, 10, 101])
def test_adding_markers_and_target(seq_len):
    X, y = make_adding(500, seq_len, np.random.default_rng(0))
    assert X.shape == (500, seq_len, 2) and y.shape == (500, 1)
    values, markers = X[..., 0], X[..., 1]
    assert np.all((values >= 0) & (values <= 1))
    assert set(np.unique(markers)) <= {0.0, 1.0}
    half = seq_len // 2
    np.testing.assert_array_equal(markers[:, :half].sum(1), 1)
    np.testing.assert_array_equal(markers[:, half:].sum(1), 1)
    np.testing.assert_allclose(y[:, 0], (values * markers).sum(1))


def test_adding_baseline_and_determinism():
    X, y = make_adding(40000, 20, np.random.default_rng(1))
    assert np.mean((y - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.005)
    X2, y2 = make_adding(40000, 20, np.random.default_rng(1))
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    # both markers are spread over their halves
    first = np.argmax(X[:, :10, 1], axis=1)
    assert len(np.unique(first)) == 10


def test_sine_targets_are_the_next_values():
    X, Y = make_sine(6, 12, 3, 0.1, np.random.default_rng(2))
    assert X.shape == (6, 12, 1) and Y.shape == (6, 12, 3)
    for k in range(3):                     # Y[:, t, k] = s(t + 1 + k) = X[:, t + 1 + k]
        np.testing.assert_array_equal(Y[:, : 12 - 1 - k, k], X[:, 1 + k:, 0])
    np.testing.assert_array_equal(Y[:, :-1, 1:], Y[:, 1:, :-1])


def test_sine_noise_free_is_a_sine():
    X, _ = make_sine(4, 50, 1, 0.0, np.random.default_rng(3))
    s = X[..., 0]
    assert np.all(np.abs(s) <= 1.0)
    # a pure sine satisfies s(t+1) + s(t-1) = 2 cos(omega) s(t) with one omega per series
    ratio = (s[:, 2:] + s[:, :-2])[:, ::7] / s[:, 1:-1][:, ::7]
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones_like(ratio), rtol=1e-6)


@pytest.mark.parametrize("call, arg", [
    (lambda r: make_adding(0, 10, r), "n_samples"),
    (lambda r: make_adding(5, 1, r), "seq_len"),
    (lambda r: make_adding(5, 2.5, r), "seq_len"),
    (lambda r: make_sine(5, 0, 1, 0.1, r), "seq_len"),
    (lambda r: make_sine(5, 10, 0, 0.1, r), "horizon"),
    (lambda r: make_sine(0, 10, 1, 0.1, r), "n_samples"),
    (lambda r: make_sine(5, 10, 1, -0.1, r), "noise"),
])
def test_invalid_arguments(call, arg):
    with pytest.raises(ValueError, match=arg):
        call(np.random.default_rng(0))

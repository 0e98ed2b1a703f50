"""The two-spirals set: shape, balanced classes, seeded determinism, a stable generator."""
import hashlib

import numpy as np
import pytest

from ann.data import DATASETS, load_dataset


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_shape_task_and_balanced_classes():
    d = load_dataset("spirals", rng=rng())
    assert (d.task, d.n_in, d.n_out, d.n_classes, d.is_sequence) == ("classification", 2, 2, 2,
                                                                     False)
    assert len(d.X_train) + len(d.X_val) + len(d.X_test) == 1000
    assert d.X_train.shape == (700, 2) and d.y_train.dtype == np.int64
    for y in (d.y_train, d.y_val, d.y_test):  # stratified splits of a balanced set
        assert abs(int(np.sum(y == 0)) - int(np.sum(y == 1))) <= 1
    X, y, task, kind = DATASETS["spirals"](rng(), n_samples=101)
    assert X.shape == (101, 2) and np.bincount(y).tolist() == [51, 50]


def test_the_arms_are_spirals():
    """Without noise every point lies on its class's arm: r = t, angle = 2 pi turns t + k pi."""
    X, y, _, _ = DATASETS["spirals"](rng(), n_samples=400, noise=0.0, turns=2.0)
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.min() >= 0 and r.max() <= 1
    expected = 2 * np.pi * 2.0 * r + np.pi * y
    assert np.allclose(np.cos(expected) * r, X[:, 0]) and np.allclose(np.sin(expected) * r, X[:, 1])


def test_seeded_determinism():
    a, b = load_dataset("spirals", rng=rng(5)), load_dataset("spirals", rng=rng(5))
    assert a.digest() == b.digest()
    assert load_dataset("spirals", rng=rng(6)).digest() != a.digest()
    assert load_dataset("spirals", rng=rng(5), noise=0.1).digest() != a.digest()


def test_generator_output_is_stable():
    """The generator's points for seed 0 (before splitting and scaling), as first released."""
    X, y, _, _ = DATASETS["spirals"](rng(0))
    h = hashlib.sha256(np.ascontiguousarray(X).tobytes() + y.astype(np.int64).tobytes())
    assert h.hexdigest() == "316658a1ade565829cbe70f1f73ba9c0db09d85f8eb542459d74b2372193617f"


@pytest.mark.parametrize("kwargs", [{"n_samples": 10}, {"noise": -1}, {"turns": 0},
                                    {"turns": float("nan")}, {"arms": 3}])
def test_bad_options_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        load_dataset("spirals", rng=rng(), **kwargs)

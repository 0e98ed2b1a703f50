"""Dataset.x_mean / x_scale: the fitted input scaling, so a model can be applied to raw features."""

import numpy as np
import pytest

from ann.data import DATASETS, _split, load_dataset


def raw_splits(name: str, seed, val_fraction: float = 0.15, test_fraction: float = 0.15,
               **options):
    """The unscaled (X_train, X_val, X_test) that load_dataset(name, rng=...) splits: the same
    loader and split, on the same random stream (`seed`: an int for default_rng, or a fresh
    Generator in the state load_dataset got it)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    X, y, task, _ = DATASETS[name](rng, **options)
    classification = task == "classification"
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(np.int64) if classification else np.asarray(y, dtype=np.float64)
    X_tr, _, X_va, _, X_te, _ = _split(X, y, classification, val_fraction, test_fraction, rng)
    return X_tr, X_va, X_te


@pytest.mark.parametrize("name", ["iris", "wine", "digits", "diabetes", "moons"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_raw_inputs_scaled_by_x_mean_x_scale_give_the_splits(name, dtype):
    d = load_dataset(name, rng=np.random.default_rng(3), dtype=dtype)
    assert d.x_mean.shape == d.x_scale.shape == (d.n_in,) and np.all(d.x_scale > 0)
    for raw, X in zip(raw_splits(name, 3), (d.X_train, d.X_val, d.X_test)):
        assert np.array_equal(((raw - d.x_mean) / d.x_scale).astype(dtype), X)


def test_the_training_split_alone_fits_the_scaling():
    d = load_dataset("wine", rng=np.random.default_rng(2))
    X_tr = raw_splits("wine", 2)[0]
    assert np.array_equal(d.x_mean, X_tr.mean(axis=0)) and np.array_equal(d.x_scale, X_tr.std(axis=0))


@pytest.mark.parametrize("name, options", [("adding", {"n_samples": 200, "seq_len": 5}),
                                           ("sine", {"n_samples": 200, "seq_len": 6}),
                                           ("digits_seq", {})])
def test_sequences_are_not_scaled(name, options):
    d = load_dataset(name, rng=np.random.default_rng(0), **options)
    assert np.array_equal(d.x_mean, np.zeros(d.n_in)) and np.array_equal(d.x_scale, np.ones(d.n_in))
    for raw, X in zip(raw_splits(name, 0, **options), (d.X_train, d.X_val, d.X_test)):
        assert np.array_equal((raw - d.x_mean) / d.x_scale, X)

"""Dataset.x_mean / x_scale (and x_low / x_high): the fitted input scaling, so a model can be
applied to raw features; the scaling choices, fitted on the training split alone, safe for
constant and near-constant features; `legacy` (the default) is the scaling of before, bit for bit."""

import hashlib

import numpy as np
import pytest

from ann.data import DATASETS, MAX_ABS_Z, SCALINGS, _split, fit_scaling, load_dataset, scale_inputs


def raw_splits(name: str, seed, val_fraction: float = 0.15, test_fraction: float = 0.15,
               **options):
    """The unscaled (X_train, X_val, X_test) that load_dataset(name, rng=...) splits: the same
    loader and split, on the same random stream (`seed`: an int for default_rng, or a fresh
    Generator in the state load_dataset got it)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    options = {k: v for k, v in options.items() if k != "scaling"}  # not the loader's
    X, y, task, _ = DATASETS[name](rng, **options)
    classification = task == "classification"
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(np.int64) if classification else np.asarray(y, dtype=np.float64)
    X_tr, _, X_va, _, X_te, _ = _split(X, y, classification, val_fraction, test_fraction, rng)
    return X_tr, X_va, X_te


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("name", ["iris", "wine", "digits", "diabetes", "moons"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_raw_inputs_scaled_by_x_mean_x_scale_give_the_splits(name, dtype, scaling):
    d = load_dataset(name, rng=np.random.default_rng(3), dtype=dtype, scaling=scaling)
    assert d.x_mean.shape == d.x_scale.shape == (d.n_in,) and np.all(d.x_scale > 0)
    assert d.scaling == scaling and (d.x_low is None) == (d.x_high is None)
    assert (d.x_low is None) == (scaling in ("none", "legacy"))
    for raw, X in zip(raw_splits(name, 3), (d.X_train, d.X_val, d.X_test)):
        z = (raw - d.x_mean) / d.x_scale
        if d.x_low is not None:
            z = np.clip(z, d.x_low, d.x_high)
        assert np.array_equal(z.astype(dtype), X)
        assert np.array_equal(scale_inputs(raw, d.x_mean, d.x_scale, d.x_low, d.x_high).astype(dtype), X)


def test_the_training_split_alone_fits_the_scaling():
    d = load_dataset("wine", rng=np.random.default_rng(2))
    X_tr = raw_splits("wine", 2)[0]
    assert np.array_equal(d.x_mean, X_tr.mean(axis=0)) and np.array_equal(d.x_scale, X_tr.std(axis=0))


@pytest.mark.parametrize("scaling", ["legacy", "none"])
@pytest.mark.parametrize("name, options", [("adding", {"n_samples": 200, "seq_len": 5}),
                                           ("sine", {"n_samples": 200, "seq_len": 6}),
                                           ("digits_seq", {})])
def test_sequences_are_not_scaled(name, options, scaling):
    d = load_dataset(name, rng=np.random.default_rng(0), scaling=scaling, **options)
    assert np.array_equal(d.x_mean, np.zeros(d.n_in)) and np.array_equal(d.x_scale, np.ones(d.n_in))
    assert d.x_low is None and d.x_high is None
    for raw, X in zip(raw_splits(name, 0, **options), (d.X_train, d.X_val, d.X_test)):
        assert np.array_equal((raw - d.x_mean) / d.x_scale, X)


def test_sequences_asked_to_scale_are_scaled_along_the_last_axis():
    d = load_dataset("adding", rng=np.random.default_rng(0), scaling="standard", n_samples=200,
                     seq_len=5)
    raw = raw_splits("adding", 0, n_samples=200, seq_len=5)
    rows = raw[0].reshape(-1, d.n_in)
    assert np.array_equal(d.x_mean, rows.mean(axis=0)) and np.array_equal(d.x_scale, rows.std(axis=0))
    for r, X in zip(raw, (d.X_train, d.X_val, d.X_test)):
        assert np.array_equal(np.clip((r - d.x_mean) / d.x_scale, d.x_low, d.x_high), X)


# ------------------------------------------------------------------ fitted on the training split
def toy_loader(X: np.ndarray, y: np.ndarray):
    def load(rng):
        return X, y, "classification", "tabular"
    return load


def toy(monkeypatch, X, y, **kwargs):
    monkeypatch.setitem(DATASETS, "toy", toy_loader(X, y))
    return load_dataset("toy", rng=np.random.default_rng(4), **kwargs)


def toy_table(n: int = 400):
    """Features on very different scales; column 0 is the row number (to find a row's split)."""
    g = np.random.default_rng(11)
    X = np.column_stack([np.arange(n, dtype=float), g.normal(50, 20, n), g.normal(0, 1e-3, n),
                         g.exponential(3.0, n)])
    return X, (g.random(n) < 0.4).astype(np.int64)


@pytest.mark.parametrize("scaling", SCALINGS)
def test_changing_the_val_and_test_rows_leaves_the_fitted_scaling_alone(monkeypatch, scaling):
    X, y = toy_table()
    a = toy(monkeypatch, X, y, scaling=scaling)
    train_rows = np.rint(a.X_train[:, 0] * a.x_scale[0] + a.x_mean[0]).astype(int)
    held_out = np.setdiff1d(np.arange(len(X)), train_rows)
    assert len(held_out) == len(a.X_val) + len(a.X_test)
    X2 = X.copy()
    X2[held_out, 1:] = X2[held_out, 1:] * 1000.0 - 5e4  # far outside the training range
    b = toy(monkeypatch, X2, y, scaling=scaling)
    assert np.array_equal(a.X_train, b.X_train)
    for key in ("x_mean", "x_scale", "x_low", "x_high"):
        va, vb = getattr(a, key), getattr(b, key)
        assert (va is None and vb is None) or np.array_equal(va, vb), key
    assert not np.array_equal(a.X_test, b.X_test)
    if scaling != "legacy":  # the fit is fit_scaling on the raw training rows
        shift, scale, low, high = fit_scaling(X[train_rows], scaling)
        assert np.array_equal(a.x_mean, shift) and np.array_equal(a.x_scale, scale)
    if scaling == "standard":
        assert np.all(np.abs(np.concatenate([b.X_val, b.X_test])) <= MAX_ABS_Z)
    if scaling == "minmax":
        assert b.X_val.min() >= 0 and b.X_test.max() <= 1


def test_the_training_split_alone_fits_the_standard_scaling():
    d = load_dataset("wine", rng=np.random.default_rng(2), scaling="standard")
    X_tr = raw_splits("wine", 2)[0]
    assert np.array_equal(d.x_mean, X_tr.mean(axis=0)) and np.array_equal(d.x_scale, X_tr.std(axis=0))
    np.testing.assert_allclose(d.X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(d.X_train.std(axis=0), 1, atol=1e-12)
    m = load_dataset("wine", rng=np.random.default_rng(2), scaling="minmax")
    assert np.array_equal(m.x_mean, X_tr.min(axis=0))
    assert np.array_equal(m.x_scale, X_tr.max(axis=0) - X_tr.min(axis=0))
    assert m.X_train.min() == 0 and m.X_train.max() == 1


# ------------------------------------------------------------------ constant and near-constant
@pytest.mark.parametrize("scaling", ["standard", "minmax"])
def test_constant_and_near_constant_features_never_blow_up(monkeypatch, scaling):
    """Column 1: constant 7 on the training rows, 7e6 / -3 on held-out ones; column 2: zero but
    one training row (a 3), 8 on held-out rows (digits' pixel 48); column 3: 0.1 everywhere in
    training (its float mean is not exactly 0.1)."""
    n = 500
    X, y = toy_table(n)[0][:, :1].repeat(4, axis=1), (np.arange(n) % 2).astype(np.int64)
    X[:, 1:] = [7.0, 0.0, 0.1]
    a = toy(monkeypatch, X, y, scaling=scaling)
    train_rows = np.rint(a.X_train[:, 0] * a.x_scale[0] + a.x_mean[0]).astype(int)
    held_out = np.setdiff1d(np.arange(n), train_rows)
    X[train_rows[0], 2] = 3.0
    X[held_out[::2], 1], X[held_out[1::2], 1] = 7e6, -3.0
    X[held_out, 2] = 8.0
    X[held_out, 3] = 1e9
    d = toy(monkeypatch, X, y, scaling=scaling)
    splits = np.concatenate([d.X_train, d.X_val, d.X_test])
    assert np.isfinite(splits).all() and np.isfinite(d.x_scale).all() and np.all(d.x_scale > 0)
    assert np.all(d.X_train[:, 1] == 0) and np.all(splits[:, 1] == 0)  # constant -> 0, unseen too
    assert np.all(splits[:, 3] == splits[0, 3]) and abs(splits[0, 3]) <= 1  # constant, as in training
    bound = MAX_ABS_Z if scaling == "standard" else 1.0
    assert np.abs(splits).max() <= bound
    assert np.abs(np.concatenate([d.X_val, d.X_test])[:, 2]).max() == np.abs(d.X_train[:, 2]).max()


def test_digits_pixel_48_stays_within_the_training_range():
    """The issue's defect: legacy standardises test sample 161's pixel 48 (an 8; training max 3)
    to 89.7; standard keeps it within MAX_ABS_Z, minmax within [0, 1]."""
    from ann.training import make_rngs

    def rng():  # the default run's split stream (seed 0)
        return make_rngs(0)["split"]

    old = load_dataset("digits", rng=rng())
    assert old.X_test[161, 48] > 80
    std = load_dataset("digits", rng=rng(), scaling="standard")
    assert np.abs(std.X_test).max() <= MAX_ABS_Z and np.abs(std.X_train).max() <= MAX_ABS_Z
    mm = load_dataset("digits", rng=rng(), scaling="minmax")
    assert mm.X_test[161, 48] == 1.0 and 0 <= mm.X_test.min() and mm.X_test.max() <= 1


# ------------------------------------------------------------------ legacy: the data of before
def legacy_digest(name: str, rng, dtype=np.float64, **options) -> str:
    """Dataset.digest() of what load_dataset returned before the scaling choice existed: the
    raw splits standardised with the training mean and std (1 where std = 0), tabular only,
    cast to dtype, hashed split by split (name, dtype, shape, bytes). `rng()`: a fresh
    Generator in the state load_dataset gets it."""
    d = load_dataset(name, rng=rng(), scaling="none", **options)
    X = list(raw_splits(name, rng(), **options))
    if not d.is_sequence:
        mean, std = X[0].mean(axis=0), X[0].std(axis=0)
        std = np.where(std > 0, std, 1.0)
        X = [(a - mean) / std for a in X]
    X = [np.ascontiguousarray(a, dtype=dtype) for a in X]
    ys = [d.y_train, d.y_val, d.y_test]
    if d.task == "regression":
        ys = [np.ascontiguousarray(a, dtype=dtype) for a in ys]
    h = hashlib.sha256()
    for key, a in zip(("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"),
                      (X[0], ys[0], X[1], ys[1], X[2], ys[2])):
        a = np.ascontiguousarray(a)
        h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("name, dtype, options", [
    ("digits", np.float64, {}), ("digits", np.float32, {}), ("wine", np.float64, {}),
    ("breast_cancer", np.float32, {}), ("diabetes", np.float64, {}), ("moons", np.float64, {}),
    ("adding", np.float64, {"n_samples": 200, "seq_len": 5})])
def test_legacy_is_the_default_and_the_data_of_before(name, dtype, options):
    expected = legacy_digest(name, lambda: np.random.default_rng(0), dtype, **options)
    assert load_dataset(name, rng=np.random.default_rng(0), dtype=dtype, **options).digest() == expected
    assert load_dataset(name, rng=np.random.default_rng(0), dtype=dtype, scaling="legacy",
                        **options).digest() == expected
    if name == "digits":  # the guard acts here (on moons, say, standard = legacy: nothing to guard)
        assert load_dataset(name, rng=np.random.default_rng(0), dtype=dtype, scaling="standard",
                            **options).digest() != expected


def test_an_unknown_scaling_is_refused():
    with pytest.raises(ValueError, match="scaling='zscore' is invalid: must be one of standard, minmax"):
        load_dataset("iris", rng=np.random.default_rng(0), scaling="zscore")

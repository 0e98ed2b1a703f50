"""load_dataset: splits, stratification, train-only standardisation, determinism, validation."""

import math

import numpy as np
import pytest
from sklearn import datasets as skd

from ann.data import DATASETS, SEQUENCE_DATASETS, load_dataset

TABULAR = ["iris", "wine", "breast_cancer", "digits", "diabetes", "moons", "circles", "spirals"]


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("name", TABULAR)
def test_tabular_shapes_and_types(name):
    d = load_dataset(name, rng=rng())
    n = len(d.X_train) + len(d.X_val) + len(d.X_test)
    assert len(d.X_val) == pytest.approx(0.15 * n, abs=1.5) and len(d.X_test) == pytest.approx(0.15 * n, abs=1.5)
    assert d.n_in == d.X_train.shape[1] and d.X_train.dtype == np.float64
    assert not d.is_sequence and not d.many_to_many and d.name == name
    if d.task == "classification":
        assert d.y_train.dtype == np.int64 and d.y_train.ndim == 1
        assert d.n_out == d.n_classes == len(np.unique(np.concatenate([d.y_train, d.y_val, d.y_test])))
        assert 0 < d.baseline["test_accuracy"] < 1
    else:
        assert name == "diabetes" and d.n_classes == 0 and d.n_out == 1
        assert d.y_train.shape == (len(d.X_train), 1) and d.y_train.dtype == np.float64


@pytest.mark.parametrize("name", ["iris", "wine", "digits", "breast_cancer"])
def test_stratified(name):
    d = load_dataset(name, rng=rng(1))
    y_all = np.concatenate([d.y_train, d.y_val, d.y_test])
    total = np.bincount(y_all) / len(y_all)
    for y in (d.y_train, d.y_val, d.y_test):
        counts = np.bincount(y, minlength=d.n_classes)
        assert np.all(np.abs(counts - total * len(y)) <= 1.0 + 1e-9)


def test_standardised_with_training_statistics_only():
    d = load_dataset("wine", rng=rng(2))
    np.testing.assert_allclose(d.X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(d.X_train.std(axis=0), 1, atol=1e-12)
    pooled = np.concatenate([d.X_train, d.X_val, d.X_test])
    assert np.abs(pooled.mean(axis=0)).max() > 1e-3  # not the statistics of all the data
    # Recover the affine map raw -> standardised from the pooled data and apply it to the raw table:
    # every val / test row must be a transformed raw row under the same (training) map.
    raw = skd.load_wine().data
    scale = raw.std(axis=0) / pooled.std(axis=0)
    shift = raw.mean(axis=0) - scale * pooled.mean(axis=0)
    transformed = (raw - shift) / scale
    for X in (d.X_train, d.X_val, d.X_test):
        dist = np.abs(X[:, None, :] - transformed[None, :, :]).max(axis=2).min(axis=1)
        assert dist.max() < 1e-9


def test_constant_feature_divides_by_one():
    d = load_dataset("digits", rng=rng())
    const = d.X_train.std(axis=0) == 0
    assert const.any()
    assert np.all(d.X_train[:, const] == 0) and np.isfinite(d.X_val).all() and np.isfinite(d.X_test).all()


def test_diabetes_target_scaled_by_training_split():
    d = load_dataset("diabetes", rng=rng(3))
    assert d.y_train.mean() == pytest.approx(0, abs=1e-12) and d.y_train.std() == pytest.approx(1)
    raw = skd.load_diabetes().target
    assert d.y_scale == pytest.approx(raw.std(), rel=0.2) and d.y_scale != pytest.approx(raw.std(), rel=1e-9)
    back = np.sort((np.concatenate([d.y_train, d.y_val, d.y_test]) * d.y_scale + d.y_mean).ravel())
    np.testing.assert_allclose(back, np.sort(raw), atol=1e-9)
    mse = float(np.mean((d.y_test - d.y_train.mean()) ** 2))
    assert d.baseline["test_mse"] == pytest.approx(mse)
    assert d.baseline["test_rmse"] == pytest.approx(math.sqrt(mse) * d.y_scale)


def test_determinism_and_digest():
    a, b = load_dataset("moons", rng=rng(5)), load_dataset("moons", rng=rng(5))
    assert a.digest() == b.digest()
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert load_dataset("moons", rng=rng(6)).digest() != a.digest()
    assert load_dataset("iris", rng=rng(6)).digest() != load_dataset("iris", rng=rng(7)).digest()
    assert len(a.digest()) == 64


def test_options_dtype_and_fractions():
    d = load_dataset("circles", rng=rng(), n_samples=200, noise=0.05, factor=0.3, val_fraction=0.2,
                     test_fraction=0.1, dtype=np.float32)
    assert len(d.X_train) + len(d.X_val) + len(d.X_test) == 200
    assert len(d.X_val) == 40 and len(d.X_test) == 20
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.options == {"n_samples": 200, "noise": 0.05, "factor": 0.3}
    assert load_dataset("moons", rng=rng(), n_samples=100).n_train == 70


@pytest.mark.parametrize("kwargs, arg", [
    ({"val_fraction": 0.0}, "val_fraction"), ({"val_fraction": 1.0}, "val_fraction"),
    ({"test_fraction": -0.1}, "test_fraction"), ({"test_fraction": math.nan}, "test_fraction"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "sum"), ({"n_samples": 0}, "n_samples"),
    ({"noise": -1.0}, "noise"), ({"factor": 1.0}, "factor"), ({"dtype": np.int32}, "dtype"),
    ({"seq_len": 10}, "seq_len"),
])
def test_bad_arguments_raise(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        load_dataset("circles", rng=rng(), **kwargs)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="adding.*breast_cancer.*circles"):
        load_dataset("mnist", rng=rng())
    assert set(DATASETS) == set(TABULAR) | SEQUENCE_DATASETS


def test_majority_baseline():
    d = load_dataset("breast_cancer", rng=rng())
    majority = np.bincount(d.y_train).argmax()
    assert d.baseline["test_accuracy"] == pytest.approx(np.mean(d.y_test == majority))


# ---- sequence tasks (generated by ann.sequences) -----------------------------------------------

pytest.importorskip("ann.sequences")


def test_digits_seq():
    d = load_dataset("digits_seq", rng=rng())
    assert d.X_train.shape[1:] == (8, 8) and d.is_sequence and not d.many_to_many
    assert d.task == "classification" and d.n_classes == d.n_out == 10 and d.n_in == 8
    assert 0 <= d.X_train.min() and d.X_train.max() <= 1  # pixels, not standardised


def test_adding():
    d = load_dataset("adding", rng=rng(), n_samples=300, seq_len=12, val_fraction=0.1, test_fraction=0.1)
    assert d.X_train.shape == (240, 12, 2) and d.y_train.shape == (240, 1)
    assert d.task == "regression" and d.is_sequence and d.n_out == 1 and d.n_in == 2
    mse = float(np.mean((d.y_test - d.y_train.mean()) ** 2))
    assert d.baseline["test_mse"] == pytest.approx(mse)
    assert 0.05 < mse < 0.4  # ~1/6 for the standard task
    a2 = load_dataset("adding", rng=rng(), n_samples=300, seq_len=12, val_fraction=0.1, test_fraction=0.1)
    assert a2.digest() == d.digest()


def test_sine():
    d = load_dataset("sine", rng=rng(), n_samples=100, seq_len=15, horizon=3, noise=0.0)
    assert d.many_to_many and d.is_sequence and d.task == "regression"
    assert d.X_train.shape == (70, 15, 1) and d.y_train.shape == (70, 15, 3) and d.n_out == 3
    with pytest.raises(ValueError, match="horizon"):
        load_dataset("sine", rng=rng(), horizon=0)


# --- scikit-learn as the reference: ann reads the bundled tables and splits without importing it
@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits", "diabetes"])
def test_bundled_tables_equal_sklearn_loaders(name):
    from ann.data import load_bundled

    X, y = load_bundled(name)
    X_ref, y_ref = getattr(skd, f"load_{name}")(return_X_y=True)
    assert X.dtype == X_ref.dtype and y.dtype == y_ref.dtype
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(y, y_ref)


def test_digits_seq_is_sklearn_digits_images():
    from ann.sequences import make_digits_seq

    X, y = make_digits_seq()
    ref = skd.load_digits()
    np.testing.assert_array_equal(X, ref.images / 16.0)
    np.testing.assert_array_equal(y, ref.target)


@pytest.mark.parametrize("stratify", [True, False])
def test_split_indices_equal_train_test_split(stratify):
    from sklearn.model_selection import train_test_split

    from ann.data import split_indices

    for seed in range(150):
        r = np.random.default_rng(seed)
        n, k = int(r.integers(20, 400)), int(r.integers(2, 9))
        y = r.integers(0, k, n)
        y[:2 * k] = np.repeat(np.arange(k), 2)  # every class at least twice
        if seed % 3 == 0:
            y = y + 10 * (y % 2)  # labels that are not 0..k-1
        n_test = int(r.integers(k, n - k))
        train, test = split_indices(y, n_test, seed, stratify)
        ref_train, ref_test = train_test_split(np.arange(n), test_size=n_test, random_state=seed,
                                               stratify=y if stratify else None)
        np.testing.assert_array_equal(train, ref_train)
        np.testing.assert_array_equal(test, ref_test)


def test_split_indices_refuses_what_sklearn_refuses():
    from ann.data import split_indices

    with pytest.raises(ValueError, match="only 1 member"):
        split_indices(np.array([0, 0, 1, 2, 2, 2]), 2, 0, True)
    with pytest.raises(ValueError, match="fewer than the 3 classes"):
        split_indices(np.repeat([0, 1, 2], 4), 2, 0, True)


def test_loading_a_bundled_table_does_not_import_sklearn():
    # scikit-learn costs ~1.2 s to import, more than a digits training run: keep it out of runs
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from ann.data import load_dataset\n"
            "for name in ('digits', 'iris', 'wine', 'breast_cancer', 'digits_seq'):\n"
            "    load_dataset(name, rng=np.random.default_rng(0))\n"
            "print('sklearn' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"

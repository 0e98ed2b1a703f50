"""Datasets: scikit-learn's bundled tables and toy sets, and the sequence tasks, split three ways.

`load_dataset(name, rng=..., scaling=...)` returns a `Dataset` with train / val / test splits
(stratified for classification), inputs scaled per feature with the training split's statistics
only (`fit_scaling`, the val / test rows never enter the fit). Nothing is downloaded.

- `scaling` (x_model = clip((x - shift) / scale, low, high), per feature):
  `standard`  shift = training mean, scale = max(training std, training range / MAX_ABS_Z);
  `minmax`    shift = training min, scale = training range: training rows land in [0, 1];
  `none`      the raw features (shift 0, scale 1, no clipping);
  `legacy`    (the default) the scaling of every run before the choice existed, bit for bit:
              tabular inputs (x - mean) / std with no guard, sequences not scaled.
  The guard of standard and minmax: a feature constant on the training split gets scale 1
  (it maps to 0), and every value, seen or unseen, is clipped to the feature's training range
  [low, high] in model units. With the floor on the standard scale, no value can then land
  farther than MAX_ABS_Z from the training mean: a near-constant feature (digits' pixel 48,
  non-zero in 2 training rows) no longer standardises an unseen 8 to 89.7, but to at most 10.
  Sequences are scaled along their last axis, over all time steps.

- Classification labels are int64 class indices (n,); n_out = n_classes (softmax output, binary
  included).
- Regression targets are float (n, 1) (sine: (n, n_steps, horizon)). For diabetes the target is
  standardised with the training split's mean and std as well; `y_mean` and `y_scale` record
  them (y_original = y * y_scale + y_mean), so an RMSE times `y_scale` is in original units.
- Sequence tasks (digits_seq, adding, sine) come from `ann.sequences` and are not standardised
  (digits_seq pixels are already scaled to [0, 1] by the generator).
- `x_mean` and `x_scale` (n_in,) record the input scaling as a shift and a scale per feature,
  `x_low` and `x_high` (n_in,) its clipping bounds in model units (None: no clipping):
  x_model = clip((x_raw - x_mean) / x_scale, x_low, x_high) (the last axis of sequences); zeros
  and ones where no scaling is applied. A model applied to raw inputs applies them first
  (`scale_inputs`).
- `baseline`: a reference score on the test split from the training split alone: for regression
  {"test_mse", "test_rmse"} of predicting the training mean (rmse in original units), for
  classification {"test_accuracy"} of predicting the majority training class.

scikit-learn is the source of the tables but is not imported to read them (see
``ann.bundled.load_bundled``) nor to split them (``split_indices`` reproduces ``train_test_split``).
"""

from __future__ import annotations

import hashlib
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ann.bundled import load_bundled

Array = np.ndarray
SPLITS = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")


@dataclass
class Dataset:
    """Three splits plus what a model builder needs to know (n_in, n_out, task)."""

    name: str
    X_train: Array
    y_train: Array
    X_val: Array
    y_val: Array
    X_test: Array
    y_test: Array
    task: str  # "classification" | "regression"
    n_classes: int  # 0 for regression
    n_in: int
    n_out: int
    is_sequence: bool = False
    many_to_many: bool = False
    baseline: dict[str, float] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    y_mean: float = 0.0
    y_scale: float = 1.0
    x_mean: Array | None = None  # (n_in,) input shift; None: no scaling (zeros)
    x_scale: Array | None = None  # (n_in,) input scale; None: no scaling (ones)
    x_low: Array | None = None  # (n_in,) lower clipping bound in model units; None: no clipping
    x_high: Array | None = None  # (n_in,) upper clipping bound in model units; None: no clipping
    scaling: str = "legacy"  # the `scaling` choice that produced x_mean ... x_high

    def digest(self) -> str:
        """sha256 over every split's name, dtype, shape and bytes (in SPLITS order)."""
        h = hashlib.sha256()
        for key in SPLITS:
            a = np.ascontiguousarray(getattr(self, key))
            h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
            h.update(a.tobytes())
        return h.hexdigest()

    @property
    def n_train(self) -> int:
        return len(self.X_train)


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _int_opt(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r} is invalid: must be an integer >= {low}")
    return int(value)


def _real_opt(name: str, value: Any, ok: Callable[[float], bool], allowed: str) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not math.isfinite(value) or not ok(value)):
        raise ValueError(f"{name}={value!r} is invalid: must be {allowed}")
    return float(value)


# Each loader: (rng, options) -> (X, y, task, kind) with kind "tabular" | "sequence" | "many_to_many".
def _bundled_loader(name: str, task: str) -> Callable:
    def load(rng: np.random.Generator) -> tuple[Array, Array, str, str]:
        X, y = load_bundled(name)
        return X, y, task, "tabular"
    return load


def _moons(rng: np.random.Generator, n_samples: int = 1000, noise: float = 0.2):
    n_samples = _int_opt("n_samples", n_samples, 20)
    noise = _real_opt("noise", noise, lambda v: v >= 0, "a number >= 0")
    from sklearn import datasets as skd

    X, y = skd.make_moons(n_samples=n_samples, noise=noise, random_state=_seed(rng))
    return X, y, "classification", "tabular"


def _circles(rng: np.random.Generator, n_samples: int = 1000, noise: float = 0.1, factor: float = 0.5):
    n_samples = _int_opt("n_samples", n_samples, 20)
    noise = _real_opt("noise", noise, lambda v: v >= 0, "a number >= 0")
    factor = _real_opt("factor", factor, lambda v: 0 < v < 1, "a number in (0, 1)")
    from sklearn import datasets as skd

    X, y = skd.make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=_seed(rng))
    return X, y, "classification", "tabular"


def _spirals(rng: np.random.Generator, n_samples: int = 1000, noise: float = 0.05,
             turns: float = 1.5):
    """Two interleaved spirals in the plane, one class each (the TensorFlow Playground's set).

    Class k (0, 1), t ~ U(0, 1): r = t, angle = 2 pi turns t + k pi,
    x = (r cos angle, r sin angle) + noise * N(0, I). Arms one turn apart are 1 / turns apart
    radially, so the two classes are 1 / (2 turns) apart. Class 1 gets n_samples // 2 points.
    """
    n_samples = _int_opt("n_samples", n_samples, 20)
    noise = _real_opt("noise", noise, lambda v: v >= 0, "a number >= 0")
    turns = _real_opt("turns", turns, lambda v: v > 0, "a number > 0")
    y = np.repeat([0, 1], [n_samples - n_samples // 2, n_samples // 2])
    t = rng.uniform(0.0, 1.0, n_samples)
    angle = 2 * np.pi * turns * t + np.pi * y
    X = t[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
    X += noise * rng.standard_normal((n_samples, 2))
    return X, y, "classification", "tabular"


def _digits_seq(rng: np.random.Generator):
    from ann.sequences import make_digits_seq

    X, y = make_digits_seq()
    return X, y, "classification", "sequence"


def _adding(rng: np.random.Generator, n_samples: int = 10000, seq_len: int = 50):
    from ann.sequences import make_adding

    n_samples = _int_opt("n_samples", n_samples, 20)
    seq_len = _int_opt("seq_len", seq_len, 2)
    X, y = make_adding(n_samples=n_samples, seq_len=seq_len, rng=rng)
    return X, y, "regression", "sequence"


def _sine(rng: np.random.Generator, n_samples: int = 2000, seq_len: int = 40, horizon: int = 1,
          noise: float = 0.05):
    from ann.sequences import make_sine

    n_samples = _int_opt("n_samples", n_samples, 20)
    seq_len = _int_opt("seq_len", seq_len, 2)
    horizon = _int_opt("horizon", horizon, 1)
    noise = _real_opt("noise", noise, lambda v: v >= 0, "a number >= 0")
    X, y = make_sine(n_samples=n_samples, seq_len=seq_len, horizon=horizon, noise=noise, rng=rng)
    return X, y, "regression", "many_to_many"


DATASETS: dict[str, Callable] = {
    "iris": _bundled_loader("iris", "classification"),
    "wine": _bundled_loader("wine", "classification"),
    "breast_cancer": _bundled_loader("breast_cancer", "classification"),
    "digits": _bundled_loader("digits", "classification"),
    "diabetes": _bundled_loader("diabetes", "regression"),
    "moons": _moons,
    "circles": _circles,
    "spirals": _spirals,
    "digits_seq": _digits_seq,
    "adding": _adding,
    "sine": _sine,
}
SEQUENCE_DATASETS = frozenset({"digits_seq", "adding", "sine"})
STANDARDISED_TARGETS = frozenset({"diabetes"})


def _approximate_mode(class_counts: Array, n_draws: int, rng: np.random.RandomState) -> Array:
    """Samples per class for a stratified draw: scikit-learn's
    ``sklearn.utils.extmath._approximate_mode`` (floor of the proportional share, the rest given
    by largest remainder, ties broken at random), same arithmetic and random draws."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def split_indices(y: Array, n_test: int, seed: int, stratify: bool) -> tuple[Array, Array]:
    """(train, test) row indices, the same as ``sklearn.model_selection.train_test_split(...,
    test_size=n_test, random_state=seed, stratify=y if stratify else None)`` picks: a
    ShuffleSplit or StratifiedShuffleSplit on ``np.random.RandomState(seed)``.

    Stratified: every class needs >= 2 members and both parts >= one row per class; otherwise
    ValueError (scikit-learn's conditions).
    """
    n = len(y)
    n_train = n - n_test
    rng = np.random.RandomState(seed)
    if not stratify:
        permutation = rng.permutation(n)
        return permutation[n_test:n_test + n_train], permutation[:n_test]
    classes, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    n_classes = len(classes)
    if class_counts.min() < 2:
        raise ValueError(f"the least populated classes {classes[class_counts < 2].tolist()} have only 1 "
                         "member, too few to stratify")
    for part, size in (("train", n_train), ("test", n_test)):
        if size < n_classes:
            raise ValueError(f"the {part} part would have {size} rows, fewer than the {n_classes} classes")
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list = []
    test: list = []
    for i in range(n_classes):
        members = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(members[:n_i[i]])
        test.extend(members[n_i[i]:n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def _split(X: Array, y: Array, classification: bool, val_fraction: float, test_fraction: float,
           rng: np.random.Generator) -> tuple[Array, ...]:
    """(X_train, y_train, X_val, y_val, X_test, y_test); stratified on y for classification.

    Split sizes: n_test = round(test_fraction * n), n_val = round(val_fraction * n) (halves up,
    at least 1 each), the rest is training data.
    """
    n = len(X)
    n_test = max(1, math.floor(test_fraction * n + 0.5))
    n_val = max(1, math.floor(val_fraction * n + 0.5))
    if n - n_test - n_val < 1:
        raise ValueError(f"val_fraction={val_fraction!r}, test_fraction={test_fraction!r} leave no "
                         f"training samples out of {n}")
    try:
        rest, test = split_indices(y, n_test, _seed(rng), classification)
        X_rest, X_test, y_rest, y_test = X[rest], X[test], y[rest], y[test]
        train, val = split_indices(y_rest, n_val, _seed(rng), classification)
        X_train, X_val, y_train, y_val = X_rest[train], X_rest[val], y_rest[train], y_rest[val]
    except ValueError as err:  # e.g. a split smaller than the number of classes
        raise ValueError(f"val_fraction={val_fraction!r}, test_fraction={test_fraction!r} cannot split "
                         f"{len(X)} samples: {err}") from err
    return X_train, y_train, X_val, y_val, X_test, y_test


def _standardise(train: Array, *others: Array) -> tuple[tuple[Array, ...], Array, Array]:
    """Subtract the training mean and divide by the training std (per feature, 1 where std = 0):
    the `legacy` scaling, kept exactly as it was (no guard against near-constant features).

    Returns (the arrays transformed, mean, std): x <- (x - mean) / std.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return tuple((a - mean) / std for a in (train, *others)), mean, std


SCALINGS = ("standard", "minmax", "none", "legacy")
# standard: the scale is at least the training range / MAX_ABS_Z, so (with the clipping to the
# training range) no standardised value exceeds MAX_ABS_Z in magnitude. A bell-shaped feature
# spans ~6.5 stds over 1000 rows (breast_cancer's heaviest tail 13.6): the floor binds on
# near-constant features (e.g. a 0/1 feature with fewer than ~1% ones), and barely elsewhere.
MAX_ABS_Z = 10.0


def fit_scaling(X_train: Array, scaling: str) -> tuple[Array, Array, Array | None, Array | None]:
    """(shift, scale, low, high) per feature (the last axis) fitted on the training rows alone.

    x_model = clip((x - shift) / scale, low, high); low / high None: no clipping (`none`).
    standard: shift = mean, scale = max(std, (max - min) / MAX_ABS_Z); minmax: shift = min,
    scale = max - min; a feature constant on the training rows: scale 1. low / high are the
    training min and max in model units, so training rows are never clipped.
    Shapes: X_train (n, n_in) or (n, n_steps, n_in) -> four (n_in,) arrays.
    """
    rows = X_train.reshape(-1, X_train.shape[-1])
    if scaling == "none":
        return np.zeros(rows.shape[1]), np.ones(rows.shape[1]), None, None
    lo, hi = rows.min(axis=0), rows.max(axis=0)
    if scaling == "minmax":
        shift, scale = lo, hi - lo
    elif scaling == "standard":
        shift, scale = rows.mean(axis=0), np.maximum(rows.std(axis=0), (hi - lo) / MAX_ABS_Z)
    else:
        raise ValueError(f"scaling={scaling!r} is invalid: must be one of {', '.join(SCALINGS)}")
    scale = np.where(hi > lo, scale, 1.0)
    return shift, scale, (lo - shift) / scale, (hi - shift) / scale


def scale_inputs(x: Array, shift: Array, scale: Array, low: Array | None = None,
                 high: Array | None = None) -> Array:
    """clip((x - shift) / scale, low, high) per feature (the last axis), in float64."""
    z = (np.asarray(x, dtype=np.float64) - shift) / scale
    return z if low is None else np.clip(z, low, high)


def load_dataset(name: str, *, rng: np.random.Generator, val_fraction: float = 0.15,
                 test_fraction: float = 0.15, dtype: Any = np.float64, scaling: str = "legacy",
                 **options: Any) -> Dataset:
    """Load `name`, split it train / val / test and scale it (see the module docstring).

    options: moons `n_samples, noise`; circles `n_samples, noise, factor`; adding `n_samples,
    seq_len`; sine `n_samples, seq_len, horizon, noise`; the others take none. All randomness
    (generation and splits) comes from `rng`. Inputs and regression targets have `dtype`.
    `scaling` defaults to `legacy`: code and configs written before the choice existed (a logged
    config.yaml without `dataset.scaling`) keep their data bit for bit; conf/dataset/*.yaml
    name each dataset's scaling.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}")
    if scaling not in SCALINGS:
        raise ValueError(f"scaling={scaling!r} is invalid: must be one of {', '.join(SCALINGS)}")
    val_fraction = _real_opt("val_fraction", val_fraction, lambda v: 0 < v < 1, "a number in (0, 1)")
    test_fraction = _real_opt("test_fraction", test_fraction, lambda v: 0 < v < 1, "a number in (0, 1)")
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction={val_fraction!r} + test_fraction={test_fraction!r} is invalid: "
                         "the sum must be < 1")
    try:
        dtype = np.dtype(dtype)
    except TypeError as err:
        raise ValueError(f"dtype={dtype!r} is invalid: must be float32 or float64") from err
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype={dtype!r} is invalid: must be float32 or float64")
    loader = DATASETS[name]
    allowed = [p for p in inspect.signature(loader).parameters if p != "rng"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for dataset {name!r}; allowed: {allowed or 'none'}")
    X, y, task, kind = loader(rng, **options)
    classification = task == "classification"
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(np.int64) if classification else np.asarray(y, dtype=np.float64)
    if not classification and y.ndim == 1:
        y = y[:, None]
    X_tr, y_tr, X_va, y_va, X_te, y_te = _split(X, y, classification, val_fraction, test_fraction, rng)
    x_mean, x_scale, x_low, x_high = np.zeros(X.shape[-1]), np.ones(X.shape[-1]), None, None
    if scaling != "legacy":
        x_mean, x_scale, x_low, x_high = fit_scaling(X_tr, scaling)
        X_tr, X_va, X_te = (scale_inputs(a, x_mean, x_scale, x_low, x_high) for a in (X_tr, X_va, X_te))
    elif kind == "tabular":
        (X_tr, X_va, X_te), x_mean, x_scale = _standardise(X_tr, X_va, X_te)
    y_mean, y_scale = 0.0, 1.0
    if name in STANDARDISED_TARGETS:
        y_mean, y_scale = float(y_tr.mean()), float(y_tr.std()) or 1.0
        y_tr, y_va, y_te = ((a - y_mean) / y_scale for a in (y_tr, y_va, y_te))
    if classification:
        n_classes = int(y.max()) + 1
        counts = np.bincount(y_tr, minlength=n_classes)
        baseline = {"test_accuracy": float(np.mean(y_te == counts.argmax()))}
        n_out = n_classes
    else:
        n_classes = 0
        mse = float(np.mean((y_te - y_tr.mean(axis=0)) ** 2))
        baseline = {"test_mse": mse, "test_rmse": math.sqrt(mse) * y_scale}
        n_out = int(y.shape[-1])
    X_tr, X_va, X_te = (np.ascontiguousarray(a, dtype=dtype) for a in (X_tr, X_va, X_te))
    if not classification:
        y_tr, y_va, y_te = (np.ascontiguousarray(a, dtype=dtype) for a in (y_tr, y_va, y_te))
    else:
        y_tr, y_va, y_te = (np.ascontiguousarray(a) for a in (y_tr, y_va, y_te))
    return Dataset(name=name, X_train=X_tr, y_train=y_tr, X_val=X_va, y_val=y_va, X_test=X_te, y_test=y_te,
                   task=task, n_classes=n_classes, n_in=int(X.shape[-1]), n_out=n_out,
                   is_sequence=kind != "tabular", many_to_many=kind == "many_to_many", baseline=baseline,
                   options=dict(options), y_mean=y_mean, y_scale=y_scale, x_mean=x_mean,
                   x_scale=x_scale, x_low=x_low, x_high=x_high, scaling=scaling)

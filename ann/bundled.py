"""scikit-learn's bundled tables (iris, wine, breast_cancer, digits), read without importing it.

`load_bundled(name)` returns (X, y) equal to `sklearn.datasets.load_<name>(return_X_y=True)`.
Shared by ann.data (the tabular sets) and ann.sequences (digits read row by row).
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
from pathlib import Path

import numpy as np

Array = np.ndarray


# scikit-learn takes ~1.2 s to import (scipy.stats, pandas), several times a digits training run,
# and every run and sweep worker paid it. The bundled tables are read here straight from the
# files scikit-learn ships, parsed as its loaders parse them (tests check equality with
# sklearn.datasets), and the splits reproduce train_test_split index for index (tests check that
# too). scikit-learn is imported only by the loaders that compute their data (diabetes' scaling,
# moons, circles) and as a fallback when a data file is not where scikit-learn 1.x keeps it.
def _sklearn_data_file(file_name: str) -> Path | None:
    """The path of a data file bundled with scikit-learn, found without importing it."""
    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root) / "datasets" / "data" / file_name
        if path.is_file():
            return path
    return None


def _read_csv_table(path: Path) -> tuple[Array, Array]:
    """sklearn.datasets.load_csv_data's format: a header "n_samples,n_features,names...", then
    rows of features and an integer target."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        header = next(rows)
        n_samples, n_features = int(header[0]), int(header[1])
        data = np.empty((n_samples, n_features))
        target = np.empty((n_samples,), dtype=int)
        for i, row in enumerate(rows):
            data[i] = np.asarray(row[:-1], dtype=np.float64)
            target[i] = np.asarray(row[-1], dtype=int)
    return data, target


def _read_digits(path: Path) -> tuple[Array, Array]:
    """sklearn.datasets.load_digits: a gzipped comma-separated table, 64 pixels then the label."""
    with gzip.open(path, mode="rt", encoding="utf-8") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1], data[:, -1].astype(int)


_BUNDLED = {"iris": ("iris.csv", _read_csv_table), "wine": ("wine_data.csv", _read_csv_table),
            "breast_cancer": ("breast_cancer.csv", _read_csv_table),
            "digits": ("digits.csv.gz", _read_digits)}


def load_bundled(name: str) -> tuple[Array, Array]:
    """(X, y) of scikit-learn's bundled table ``name`` (iris, wine, breast_cancer, digits,
    diabetes), equal to ``sklearn.datasets.load_<name>(return_X_y=True)``."""
    file_name, reader = _BUNDLED.get(name, (None, None))
    path = _sklearn_data_file(file_name) if file_name else None
    if path is not None:
        return reader(path)
    from sklearn import datasets as skd

    return getattr(skd, f"load_{name}")(return_X_y=True)

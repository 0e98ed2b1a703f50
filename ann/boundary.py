"""Decision boundaries of a classifier on 2-D inputs: its predictions on a grid over the data.

The grid spans the data's raw units (the generator's own coordinates, before the input scaling
fitted on the training split), `margin` x the data's span beyond every split's points; the
model sees each grid point as it sees any raw input:

    x_model = clip((x_raw - x_mean) / x_scale, x_low, x_high)     (per feature; no clipping
                                                                   when the dataset has none)

so beyond the training range the grid shows what the model does with such inputs. Raw units
keep a picture's geometry (a circle stays round) and make runs with different scalings
comparable. Shapes: a grid of n_y x n_x points, row-major (y, x), x varying fastest;
probabilities (n_y, n_x, n_classes), labels (n_y, n_x).

A `BoundaryRecorder` takes the grid predictions before training (epoch 0), at up to
n_frames - 2 epochs spread over the run, denser early where the boundary moves most,

    epoch_i = round(1 + (max_epochs - 1) * (i / (n - 1))^2),   i = 0 .. n - 1,

and once more at the end (the weights the run ends with: the best epoch's when early stopping
rolled them back). Frames use a coarser grid than the end state (a quarter of the cost).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

Array = np.ndarray
N_GRID = 100  # grid points per axis of the end state
N_GRID_FRAMES = 50  # grid points per axis of the frames taken during training
N_FRAMES = 30  # frames in all, epoch 0 and the end state included
MARGIN = 0.1  # padding around the data, as a fraction of its span


def applies(data) -> bool:
    """True for classification on tabular data with two input features."""
    return data.task == "classification" and data.n_in == 2 and not data.is_sequence


def input_scaling(data) -> tuple[Array, Array, Array, Array]:
    """(x_mean, x_scale, x_low, x_high) of the dataset, (2,) each; +-inf bounds: no clipping."""
    n = data.n_in
    mean = np.zeros(n) if data.x_mean is None else np.asarray(data.x_mean, dtype=np.float64)
    scale = np.ones(n) if data.x_scale is None else np.asarray(data.x_scale, dtype=np.float64)
    low, high = getattr(data, "x_low", None), getattr(data, "x_high", None)
    low = np.full(n, -np.inf) if low is None else np.asarray(low, dtype=np.float64)
    high = np.full(n, np.inf) if high is None else np.asarray(high, dtype=np.float64)
    return mean, scale, low, high


def raw_inputs(data, X: Array) -> Array:
    """Model inputs back in raw units: x_raw = x_model * x_scale + x_mean (a clipped val/test
    point comes back at the edge of the training range)."""
    mean, scale, _, _ = input_scaling(data)
    return np.asarray(X, dtype=np.float64) * scale + mean


@dataclass(frozen=True)
class Grid:
    """An n_y x n_x grid in raw units and the scaling that takes it to the model's inputs."""

    xs: Array  # (n_x,) raw units
    ys: Array  # (n_y,)
    x_mean: Array  # (2,)
    x_scale: Array  # (2,)
    x_low: Array  # (2,) -inf: no clipping
    x_high: Array  # (2,) +inf: no clipping

    def raw_points(self) -> Array:
        """(n_y * n_x, 2): every (x, y) of the grid, x varying fastest."""
        gx, gy = np.meshgrid(self.xs, self.ys)
        return np.column_stack([gx.ravel(), gy.ravel()])

    def points(self, dtype=np.float64) -> Array:
        """(n_y * n_x, 2): the grid in the model's input units."""
        z = np.clip((self.raw_points() - self.x_mean) / self.x_scale, self.x_low, self.x_high)
        return z.astype(dtype)


def make_grid(data, n_grid: int = N_GRID, margin: float = MARGIN) -> Grid:
    """An n_grid x n_grid grid over every split's points (raw units), `margin` x their span
    beyond them on each side."""
    raw = raw_inputs(data, np.concatenate([data.X_train, data.X_val, data.X_test]))
    low, high = raw.min(axis=0), raw.max(axis=0)
    pad = margin * np.maximum(high - low, 1e-12)
    xs, ys = (np.linspace(low[k] - pad[k], high[k] + pad[k], n_grid) for k in (0, 1))
    return Grid(xs, ys, *input_scaling(data))


def grid_predictions(model, grid: Grid, dtype=np.float64) -> tuple[Array, Array]:
    """(proba (n_y, n_x, n_classes) float32, labels (n_y, n_x) int64): the model's loss's
    predict and predict_labels of one forward pass over the grid (what model.predict and
    model.predict_labels return). Non-finite probabilities become 0."""
    z = model.forward(grid.points(dtype))
    with np.errstate(all="ignore"):
        proba = np.nan_to_num(np.asarray(model.loss_fn.predict(z), dtype=np.float32),
                              nan=0.0, posinf=0.0, neginf=0.0)
    labels = np.asarray(model.loss_fn.predict_labels(z), dtype=np.int64)
    shape = (len(grid.ys), len(grid.xs))
    return proba.reshape(*shape, -1), labels.reshape(shape)


def frame_epochs(max_epochs: int, n: int) -> list[int]:
    """Up to `n` distinct epochs in 1..max_epochs, denser early (see the module docstring)."""
    if max_epochs < 1 or n < 1:
        return []
    if n == 1:
        return [max_epochs]
    i = np.arange(n) / (n - 1)
    return sorted({int(round(e)) for e in 1 + (max_epochs - 1) * i ** 2})


def end_epoch(result) -> int:
    """The epoch whose weights a model holds after `fit` (its FitResult): the best epoch when
    they were rolled back to it, else the last completed one (a diverged epoch never is)."""
    if result.restored and result.best_epoch is not None:
        return int(result.best_epoch)
    return int(result.stopped_epoch) - (1 if result.diverged else 0)


class BoundaryRecorder:
    """Grid predictions of a model over its training: built before training (epoch 0), then
    `capture(epoch)` from the per-epoch callback (it keeps the scheduled epochs only) and
    `finish(result)` after `fit`. `frames[i]` is the probabilities at `epochs[i]`; `seconds`
    the time spent evaluating the grid."""

    def __init__(self, model, data, max_epochs: int, *, n_frames: int = N_FRAMES,
                 n_grid: int = N_GRID, n_grid_frames: int = N_GRID_FRAMES) -> None:
        self.model, self.data = model, data
        self.grid = make_grid(data, n_grid)
        self.frame_grid = make_grid(data, n_grid_frames)
        self.dtype = data.X_train.dtype
        self.scheduled = frozenset(frame_epochs(max_epochs, max(0, n_frames - 2)))
        self.epochs: list[int] = []
        self.frames: list[Array] = []
        self.labels: Array | None = None  # the end state's, on `grid`
        self.final_epoch: int | None = None
        self.seconds = 0.0
        self._take(0, self.frame_grid)

    def _take(self, epoch: int, grid: Grid) -> Array:
        start = time.perf_counter()
        proba, labels = grid_predictions(self.model, grid, self.dtype)
        self.seconds += time.perf_counter() - start
        self.epochs.append(epoch)
        self.frames.append(proba)
        return labels

    def capture(self, epoch: int) -> None:
        if epoch in self.scheduled:
            self._take(epoch, self.frame_grid)

    def finish(self, result) -> None:
        """The end state, on the finer grid: the model as `fit` left it (see `end_epoch`); it
        replaces a frame already taken of the same epoch."""
        self.final_epoch = end_epoch(result)
        if self.epochs[-1] == self.final_epoch:
            self.epochs.pop()
            self.frames.pop()
        self.labels = self._take(self.final_epoch, self.grid)

    def arrays(self) -> dict[str, Array]:
        """The end state as plain arrays (after `finish`): the grid and its scaling, the
        probabilities and labels, and the training and test points in raw units."""
        d, g = self.data, self.grid
        return {"xs": g.xs, "ys": g.ys, "x_mean": g.x_mean, "x_scale": g.x_scale,
                "x_low": g.x_low, "x_high": g.x_high, "proba": self.frames[-1],
                "labels": self.labels, "epoch": np.int64(self.final_epoch),
                "X_train": raw_inputs(d, d.X_train), "y_train": np.asarray(d.y_train),
                "X_test": raw_inputs(d, d.X_test), "y_test": np.asarray(d.y_test)}

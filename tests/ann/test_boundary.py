"""ann.boundary: a model's decision boundary is its own predictions on a grid over the data."""
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from ann.boundary import (BoundaryRecorder, applies, end_epoch, frame_epochs, grid_predictions,
                          make_grid, raw_inputs)
from ann.data import load_dataset
from ann.models import build_model
from ann.optimizers import Adam
from ann.training import fit, make_rngs


def moons(n_samples=200, **kw):
    rngs = make_rngs(0)
    data = load_dataset("moons", rng=rngs["split"], n_samples=n_samples, **kw)
    model = build_model("mlp", 2, [8], 2, task="classification", rng=rngs["init"],
                        activation="tanh", dtype=data.X_train.dtype)
    return data, model, rngs


def train(model, data, rngs, epochs, on_epoch=None):
    return fit(model, data, optimizer=Adam(0.05), schedule=None, early_stopping=None,
               batch_size=32, max_epochs=epochs, rng=rngs["shuffle"], on_epoch=on_epoch)


def test_grid_covers_every_split_in_raw_units():
    data, _, _ = moons()
    grid = make_grid(data, n_grid=20, margin=0.1)
    raw = raw_inputs(data, np.concatenate([data.X_train, data.X_val, data.X_test]))
    span = raw.max(axis=0) - raw.min(axis=0)
    assert np.allclose([grid.xs[0], grid.ys[0]], raw.min(axis=0) - 0.1 * span)
    assert np.allclose([grid.xs[-1], grid.ys[-1]], raw.max(axis=0) + 0.1 * span)
    # raw units: the moons' own coordinates (x in about [-1, 2]), not standardised ones
    assert raw[:, 0].min() < -0.5 and raw[:, 0].max() > 1.5
    assert np.allclose((raw - data.x_mean) / data.x_scale, np.concatenate(
        [data.X_train, data.X_val, data.X_test]))
    pts = grid.points()
    assert pts.shape == (400, 2)
    assert np.allclose(pts[:20, 0], (grid.xs - data.x_mean[0]) / data.x_scale[0])  # x fastest
    assert np.allclose(pts[::20, 1], (grid.ys - data.x_mean[1]) / data.x_scale[1])


def test_grid_points_clip_like_the_datasets_scaling():
    data, _, _ = moons()
    grid = replace(make_grid(data, 10), x_low=np.array([-1.0, -0.5]), x_high=np.array([1.0, 0.5]))
    pts = grid.points()
    assert pts[:, 0].min() == -1 and pts[:, 0].max() == 1 and np.abs(pts[:, 1]).max() == 0.5


def test_grid_predictions_are_the_models_own_predictions():
    data, model, rngs = moons()
    train(model, data, rngs, 5)
    grid = make_grid(data, n_grid=30)
    proba, labels = grid_predictions(model, grid)
    assert proba.shape == (30, 30, 2) and labels.shape == (30, 30)
    points = grid.points()
    assert np.array_equal(labels.ravel(), model.predict_labels(points))
    assert np.allclose(proba.reshape(-1, 2), model.predict(points), atol=1e-6)
    assert 0 < labels.mean() < 1  # the boundary crosses the grid
    # grid row j, column i is the point (xs[i], ys[j])
    j, i = 7, 21
    point = (np.array([[grid.xs[i], grid.ys[j]]]) - data.x_mean) / data.x_scale
    assert labels[j, i] == model.predict_labels(point)[0]


def test_frame_epochs_spread_over_the_run_denser_early():
    epochs = frame_epochs(100, 28)
    assert epochs[0] == 1 and epochs[-1] == 100 and len(epochs) <= 28
    assert epochs == sorted(set(epochs))
    assert np.diff(epochs)[0] < np.diff(epochs)[-1]
    assert frame_epochs(3, 28) == [1, 2, 3]
    assert frame_epochs(50, 1) == [50] and frame_epochs(0, 5) == [] and frame_epochs(5, 0) == []


@pytest.mark.parametrize("restored, best, stopped, diverged, expected", [
    (False, 7, 10, False, 10),  # max epochs, last weights
    (True, 7, 10, False, 7),  # rolled back to the best epoch
    (False, 4, 6, True, 5),  # diverged in epoch 6: the weights of epoch 5
    (False, None, 1, True, 0),  # diverged in its first epoch: the initial weights
])
def test_end_epoch(restored, best, stopped, diverged, expected):
    result = SimpleNamespace(restored=restored, best_epoch=best, stopped_epoch=stopped,
                             diverged=diverged)
    assert end_epoch(result) == expected


def test_recorder_takes_epoch_0_the_scheduled_epochs_and_the_end_state():
    data, model, rngs = moons()
    rec = BoundaryRecorder(model, data, 12, n_frames=6, n_grid=40, n_grid_frames=20)
    result = train(model, data, rngs, 12, on_epoch=lambda e, m: rec.capture(e))
    rec.finish(result)
    assert frame_epochs(12, 4)[-1] == 12  # taken on the way, then replaced by the end state
    assert rec.epochs == [0, *frame_epochs(12, 4)]
    assert [f.shape for f in rec.frames] == [(20, 20, 2)] * 4 + [(40, 40, 2)]
    arrays = rec.arrays()
    assert np.array_equal(arrays["labels"].ravel(), model.predict_labels(rec.grid.points()))
    assert np.array_equal(arrays["proba"], rec.frames[-1]) and arrays["epoch"] == 12
    assert np.allclose(arrays["X_test"], raw_inputs(data, data.X_test))
    assert rec.seconds > 0


def test_end_state_after_a_rollback_is_the_best_epochs():
    data, model, rngs = moons()
    rec = BoundaryRecorder(model, data, 12, n_frames=6)
    for epoch in range(1, 13):
        rec.capture(epoch)
    rec.finish(SimpleNamespace(restored=True, best_epoch=9, stopped_epoch=12, diverged=False))
    assert rec.epochs == [0, *frame_epochs(12, 4), 9] and rec.final_epoch == 9


def test_recording_does_not_change_training():
    data, model, rngs = moons()
    plain = train(model, data, rngs, 6)
    data, model, rngs = moons()
    rec = BoundaryRecorder(model, data, 6)
    recorded = train(model, data, rngs, 6, on_epoch=lambda e, m: rec.capture(e))
    for key in ("train_loss", "val_loss", "val_accuracy", "grad_norm"):
        assert recorded.history[key] == plain.history[key], key


def test_applies_to_2d_classification_only():
    rng = np.random.default_rng
    assert applies(load_dataset("moons", rng=rng(0), n_samples=100))
    assert applies(load_dataset("spirals", rng=rng(0), n_samples=100))
    assert not applies(load_dataset("iris", rng=rng(0)))
    assert not applies(load_dataset("adding", rng=rng(0), n_samples=100, seq_len=5))
    regression = SimpleNamespace(task="regression", n_in=2, is_sequence=False)
    assert not applies(regression)


def test_float32_models_get_float32_grids():
    data, model, rngs = moons(dtype=np.float32)
    rec = BoundaryRecorder(model, data, 2, n_grid=10, n_grid_frames=10)
    result = train(model, data, rngs, 2, on_epoch=lambda e, m: rec.capture(e))
    rec.finish(result)
    points = rec.grid.points(np.float32)
    assert np.array_equal(rec.labels.ravel(), model.predict_labels(points))

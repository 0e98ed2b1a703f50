"""Decision-boundary figures: per run (png, gif, npz), in the comparison report, end to end."""
from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from ann.boundary import BoundaryRecorder
from ann.data import Dataset, load_dataset
from ann.models import build_model
from ann.optimizers import Adam
from ann.training import fit, make_rngs
from experiments.boundary import BoundaryView, plot_boundary_panels, write_boundary
from tests.experiments.conftest import all_runs, parent_and_children, run_train


def recorded(activation: str = "tanh", epochs: int = 8, data=None):
    """A small MLP trained on moons (or `data`) with a recorder attached, finished."""
    rngs = make_rngs(0)
    data = data or load_dataset("moons", rng=rngs["split"], n_samples=200)
    model = build_model("mlp", 2, [8], data.n_out, task="classification", rng=rngs["init"],
                        activation=activation)
    rec = BoundaryRecorder(model, data, epochs)
    result = fit(model, data, optimizer=Adam(0.05), schedule=None, early_stopping=None,
                 batch_size=32, max_epochs=epochs, rng=rngs["shuffle"],
                 on_epoch=lambda e, m: rec.capture(e))
    rec.finish(result)
    return rec, model


def test_per_run_files_show_the_models_own_predictions(tmp_path):
    rec, model = recorded()
    png, gif, npz = write_boundary(rec, tmp_path, title="mlp on moons")
    assert [p.name for p in (png, gif, npz)] == ["decision_boundary.png", "decision_boundary.gif",
                                                 "decision_boundary.npz"]
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 300
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == len(rec.frames) == 9  # epochs 0-7, end (8)
    with np.load(npz) as z:
        # the grid rebuilt from the file alone, through the saved scaling, into the model
        gx, gy = np.meshgrid(z["xs"], z["ys"])
        raw = np.column_stack([gx.ravel(), gy.ravel()])
        points = np.clip((raw - z["x_mean"]) / z["x_scale"], z["x_low"], z["x_high"])
        assert np.array_equal(z["labels"].ravel(), model.predict_labels(points))
        assert np.allclose(z["proba"].reshape(-1, 2), model.predict(points), atol=1e-6)
        assert np.array_equal(z["labels"], z["proba"].argmax(axis=-1))
        assert int(z["epoch"]) == 8 and len(z["X_train"]) == len(z["y_train"]) == 140
    view = BoundaryView.load(npz)
    assert view.proba.shape == (100, 100, 2) and view.epoch == 8


def test_three_classes_and_report_panels(tmp_path):
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])

    def split(n):
        y = np.arange(n) % 3
        return centres[y] + rng.normal(size=(n, 2)), y

    (Xtr, ytr), (Xva, yva), (Xte, yte) = split(90), split(30), split(30)
    blobs = Dataset("blobs", Xtr, ytr, Xva, yva, Xte, yte, task="classification", n_classes=3,
                    n_in=2, n_out=3)
    rec, model = recorded("relu", 6, data=blobs)
    assert rec.frames[-1].shape == (100, 100, 3)
    png, gif, _ = write_boundary(rec, tmp_path, title="three blobs")
    view = BoundaryView.load(tmp_path / "decision_boundary.npz")
    assert set(np.unique(view.proba.argmax(-1))) == {0, 1, 2}
    views = {f"arm{i}": view for i in range(5)}
    out = plot_boundary_panels(views, tmp_path / "panels.png", title="five arms",
                               subtitles={"arm0": "test accuracy 1.000"})
    with Image.open(out) as im:  # 5 panels: 2 rows of 3
        assert im.width > im.height > 300


def _child_with_boundary(client, exp_id, parent_id, arm, tmp_path, npz=None):
    from mlflow.entities import Metric

    run = client.create_run(exp_id, tags={"mlflow.parentRunId": parent_id, "ann.role": "child",
                                          "ann.arm": arm})
    rid = run.info.run_id
    now = int(time.time() * 1000)
    client.log_batch(rid, metrics=[Metric("val_loss", 0.5, now, 1),
                                   Metric("val_accuracy", 0.8, now, 1),
                                   Metric("best_val_loss", 0.5, now, 0),
                                   Metric("test_accuracy", 0.8, now, 0)])
    if npz is not None:
        client.log_artifact(rid, str(npz))
    client.set_terminated(rid, "FINISHED")
    return rid


def test_report_draws_one_panel_per_arm_from_the_logged_npz(client, tracking_uri, tmp_path):
    from experiments.comparison import build_report

    rec, _ = recorded(epochs=3)
    _, _, npz = write_boundary(rec, tmp_path, title="t")
    exp_id = client.create_experiment("b", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp_id, tags={"ann.role": "parent"}).info.run_id
    for arm in ("model.activation=tanh", "model.activation=relu"):
        _child_with_boundary(client, exp_id, parent, arm, tmp_path, npz)
    _child_with_boundary(client, exp_id, parent, "dataset=iris", tmp_path)  # no boundary
    client.set_terminated(parent, "FINISHED")
    out = build_report(tracking_uri, parent, tmp_path / "report")
    assert (out / "decision_boundaries.png").is_file()
    arts = {a.path for a in client.list_artifacts(parent, "report")}
    assert "report/decision_boundaries.png" in arts
    with Image.open(out / "decision_boundaries.png") as im:  # two panels side by side
        assert im.width > 1.4 * im.height


def test_report_without_2d_data_has_no_boundary_figure(client, tracking_uri, tmp_path):
    from experiments.comparison import build_report

    exp_id = client.create_experiment("c", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp_id, tags={"ann.role": "parent"}).info.run_id
    _child_with_boundary(client, exp_id, parent, "a", tmp_path)
    client.set_terminated(parent, "FINISHED")
    out = build_report(tracking_uri, parent, tmp_path / "report")
    assert not (out / "decision_boundaries.png").exists()


@pytest.mark.slow
def test_a_run_on_moons_logs_its_boundary(tracking_uri, client, tmp_path):
    proc = run_train(["dataset=moons", "dataset.n_samples=200", "trainer.max_epochs=5",
                      "model.hidden=[8]"], tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = all_runs(client)
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"decision_boundary.png", "decision_boundary.gif", "decision_boundary.npz"} <= arts
    gif = client.download_artifacts(run.info.run_id, "decision_boundary.gif", str(tmp_path))
    with Image.open(gif) as im:
        assert im.n_frames == 6  # epoch 0, epochs 1-4, the end state (epoch 5)
    # the picture is the logged model's: its pyfunc form predicts the same labels on raw points
    import mlflow

    npz = client.download_artifacts(run.info.run_id, "decision_boundary.npz", str(tmp_path))
    with np.load(npz) as z:
        gx, gy = np.meshgrid(z["xs"], z["ys"])
        raw, labels = np.column_stack([gx.ravel(), gy.ravel()]), z["labels"].ravel()
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert np.array_equal(np.asarray(model.predict(raw)).ravel(), labels)


@pytest.mark.slow
def test_a_sweep_on_2d_data_reports_decision_boundaries(tracking_uri, client, tmp_path):
    proc = run_train(["-m", "dataset=spirals", "dataset.n_samples=200", "model.hidden=[8]",
                      "model.activation=relu,tanh", "trainer.max_epochs=3"], tracking_uri,
                     tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parent, children, _ = parent_and_children(client)
    assert len(children) == 2
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/decision_boundaries.png" in arts
    for child in children:
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert "decision_boundary.gif" in names


def test_resend_sends_the_boundary_files(client, tracking_uri, tmp_path):
    """A run whose store failed keeps its files; resend.py uploads the boundary ones too."""
    from experiments.unsent import resend, write_unsent

    rec, _ = recorded(epochs=2)
    write_boundary(rec, tmp_path, title="t")
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    (tmp_path / "history.csv").write_text("epoch,val_loss,note\n1,0.5,\n")
    write_unsent(tmp_path, tracking_uri=tracking_uri, experiment_id=None,
                 experiment_name="lost", run_id=None, run_name="r", tags={}, status="FINISHED",
                 error="OSError: gone")
    run_id, counts = resend(tmp_path)
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"decision_boundary.png", "decision_boundary.gif", "decision_boundary.npz"} <= names

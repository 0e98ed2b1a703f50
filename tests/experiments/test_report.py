"""The comparison report on a hand-made sweep: arms, seeds, a diverged and a FAILED child."""
from __future__ import annotations

import csv
import math
import subprocess
import sys
import time

import pytest

from experiments.report import ReportError, build_report, main
from tests.experiments.conftest import ROOT

REPORT = ROOT / "experiments" / "report.py"


def _child(client, exp_id, parent_id, arm, seed, curve, *, status="FINISHED", diverged=False,
           test_accuracy=0.9, restore_best=False, best_epoch=None):
    """A child run logging `curve` as val_loss per epoch (plus the other harness metrics)."""
    from mlflow.entities import Metric, Param, RunTag

    run = client.create_run(exp_id, tags={"mlflow.parentRunId": parent_id, "ann.role": "child",
                                          "ann.arm": arm})
    rid = run.info.run_id
    now = int(time.time() * 1000)
    metrics = []
    for epoch, loss in enumerate(curve, start=1):
        metrics += [Metric("val_loss", loss, now, epoch), Metric("train_loss", loss, now, epoch),
                    Metric("val_accuracy", 1.0 / (1.0 + loss), now, epoch),
                    Metric("samples_seen", 100.0 * epoch, now, epoch),
                    Metric("wall_seconds", 0.5 * epoch, now, epoch),
                    Metric("lr", 0.1, now, epoch)]
    if status == "FINISHED":
        finite = [v for v in curve if math.isfinite(v)]
        best = best_epoch or (curve.index(min(finite)) + 1)
        metrics += [Metric("best_val_loss", min(finite), now, 0),
                    Metric("best_epoch", best, now, 0),
                    Metric("stopped_epoch", len(curve), now, 0),
                    Metric("test_loss", min(finite) + 0.01, now, 0),
                    Metric("test_accuracy", test_accuracy, now, 0),
                    Metric("train_seconds", 0.5 * len(curve), now, 0)]
    tags = [RunTag("diverged", str(diverged).lower()),
            RunTag("stop_reason", "diverged" if diverged else "max_epochs")]
    params = [Param("seed", str(seed)),
              Param("early_stopping.restore_best", str(restore_best))]
    client.log_batch(rid, metrics=metrics, params=params,
                     tags=tags if status == "FINISHED" else [])
    client.set_terminated(rid, status)
    return rid


@pytest.fixture
def sweep(client, tmp_path):
    """A parent with arms: lr=0.1 (3 seeds), lr=0.01 (worse), lr=10 (diverged), lr=1 (FAILED)."""
    exp_id = client.create_experiment("lr_tuning", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp_id, tags={"ann.role": "parent"}).info.run_id
    ids = {}
    for seed, shift in enumerate((0.0, 0.02, 0.04)):
        ids[f"good{seed}"] = _child(client, exp_id, parent, "optimizer.lr=0.1", seed,
                                    [1.0 + shift, 0.5 + shift, 0.3 + shift, 0.35 + shift],
                                    test_accuracy=0.90 + shift, restore_best=True)
    ids["slow"] = _child(client, exp_id, parent, "optimizer.lr=0.01", 0, [1.0, 0.9, 0.8, 0.7],
                         test_accuracy=0.7)
    # diverged with the lowest loss seen before blowing up: must not be the best arm
    ids["diverged"] = _child(client, exp_id, parent, "optimizer.lr=10.0", 0,
                             [0.1, 5.0, float("nan")], diverged=True, test_accuracy=0.1)
    ids["failed"] = _child(client, exp_id, parent, "optimizer.lr=1.0", 0, [0.9], status="FAILED")
    client.set_terminated(parent, "FINISHED")
    return exp_id, parent, ids


def _read_csv(path):
    with open(path, newline="") as fh:
        return {row["arm"]: row for row in csv.DictReader(fh)}


def test_report_groups_arms_and_picks_the_best(client, tracking_uri, sweep, tmp_path):
    exp_id, parent, ids = sweep
    out = build_report(tracking_uri, parent, tmp_path / "report")
    assert out == tmp_path / "report"
    for name in ("comparison.png", "curves_vs_epoch.png", "curves_vs_samples.png",
                 "curves_vs_seconds.png", "summary.csv", "summary.md"):
        assert (out / name).stat().st_size > 0, name

    rows = _read_csv(out / "summary.csv")
    assert list(rows) == ["optimizer.lr=0.1", "optimizer.lr=0.01", "optimizer.lr=10.0",
                          "optimizer.lr=1.0"]  # order of first appearance
    good = rows["optimizer.lr=0.1"]
    assert good["n_seeds"] == "3" and good["status"] == "FINISHED"
    assert float(good["best_val_loss"]) == pytest.approx(0.32)
    assert float(good["best_val_loss_std"]) == pytest.approx(0.0163299, rel=1e-4)
    assert float(good["test_accuracy"]) == pytest.approx(0.92)
    assert float(good["final_val_loss"]) == pytest.approx(0.37)
    assert float(good["best_epoch"]) == 3 and float(good["stopped_epoch"]) == 4
    assert good["diverged"] == "false" and good["stop_reason"] == "max_epochs"
    assert rows["optimizer.lr=10.0"]["diverged"] == "true"
    assert rows["optimizer.lr=10.0"]["stop_reason"] == "diverged"
    failed = rows["optimizer.lr=1.0"]
    assert failed["status"] == "FAILED" and failed["n_seeds"] == "0"
    assert failed["n_failed"] == "1" and failed["best_val_loss"] == ""
    assert ids["failed"] in failed["run_ids"]

    md = (out / "summary.md").read_text()
    assert "**optimizer.lr=0.1**" in md and "0.32 ± 0.01633" in md and "FAILED" in md

    # logged to the parent: artifacts, best arm metrics and tag, description
    run = client.get_run(parent)
    assert run.data.tags["best_arm"] == "optimizer.lr=0.1"
    assert run.data.metrics["best_val_loss"] == pytest.approx(0.32)
    assert run.data.metrics["best_test_accuracy"] == pytest.approx(0.92)
    # The description: plain lines, the best arm first, every arm ranked (full table in md)
    note = run.data.tags["mlflow.note.content"]
    assert note == (out / "overview.md").read_text() and not note.startswith("#")
    assert note.startswith("Best arm: optimizer.lr=0.1 (best val loss 0.32 ± 0.01633")
    ranked = [line.split(":")[0] for line in note.splitlines() if line[:1].isdigit()]
    assert ranked == ["1. optimizer.lr=0.1", "2. optimizer.lr=0.01", "3. optimizer.lr=10.0",
                      "4. optimizer.lr=1.0"]
    assert "diverged" in note and "FAILED" in note and "|" not in note
    assert parent not in note  # the run's own page needs no id
    logged = {a.path for a in client.list_artifacts(parent, "report")}
    assert {"report/comparison.png", "report/summary.csv", "report/summary.md",
            "report/curves_vs_seconds.png"} <= logged


def test_regression_report_uses_rmse(client, tracking_uri, tmp_path):
    from mlflow.entities import Metric

    exp_id = client.create_experiment("rnn_vs_lstm", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp_id, tags={"ann.role": "parent"}).info.run_id
    for arm, rmse in (("model=rnn", 0.4), ("model=lstm", 0.1)):
        rid = client.create_run(exp_id, tags={"mlflow.parentRunId": parent,
                                              "ann.arm": arm}).info.run_id
        client.log_batch(rid, metrics=[Metric("val_loss", rmse ** 2, 0, 1),
                                       Metric("val_rmse", rmse, 0, 1),
                                       Metric("best_val_loss", rmse ** 2, 0, 0),
                                       Metric("test_rmse", rmse, 0, 0)])
        client.set_terminated(rid, "FINISHED")
    build_report(tracking_uri, parent, tmp_path / "r")
    run = client.get_run(parent)
    assert run.data.tags["best_arm"] == "model=lstm"
    assert run.data.metrics["best_test_rmse"] == pytest.approx(0.1)
    assert "best_test_accuracy" not in run.data.metrics
    assert "test_rmse" in _read_csv(tmp_path / "r" / "summary.csv")["model=lstm"]


def test_cli_latest_parent_of_an_experiment(client, tracking_uri, sweep, tmp_path, capsys):
    exp_id, parent, _ = sweep
    assert main(["--experiment", "lr_tuning", "--tracking-uri", tracking_uri,
                 "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "summary.md").is_file()
    assert parent in capsys.readouterr().out
    assert client.get_run(parent).data.tags["best_arm"] == "optimizer.lr=0.1"


@pytest.mark.parametrize("args, message", [
    (["--experiment", "no_such_experiment"], "no experiment named 'no_such_experiment'"),
    (["--run-id", "0123456789abcdef0123456789abcdef"], "no run with id"),
])
def test_cli_bad_input_is_one_line_and_exit_2(client, tracking_uri, sweep, tmp_path, capsys,
                                             args, message):
    _, parent, _ = sweep
    before = client.get_run(parent).data
    assert main([*args, "--tracking-uri", tracking_uri, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "x").exists()
    assert client.get_run(parent).data.tags == before.tags  # nothing logged


def test_child_run_is_not_a_parent(client, tracking_uri, sweep, tmp_path):
    _, _, ids = sweep
    with pytest.raises(ReportError, match="no child runs"):
        build_report(tracking_uri, ids["slow"], tmp_path / "x")
    assert "best_arm" not in client.get_run(ids["slow"]).data.tags


def test_cli_unreachable_stores(tmp_path):
    """A fresh process: a missing SQLite file and a server that does not answer."""
    for uri in (f"sqlite:///{tmp_path}/missing/mlflow.db", "http://127.0.0.1:9"):
        proc = subprocess.run([sys.executable, str(REPORT), "--experiment", "x",
                               "--tracking-uri", uri], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert not (tmp_path / "missing").exists()

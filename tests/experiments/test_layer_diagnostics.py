"""Per-layer diagnostics in the harness: logged every epoch by a real run, the per-run figure,
the config switch, and the comparison report's columns and figure on hand-made children."""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import pytest

from experiments.comparison import build_report, layer_keys
from tests.experiments.conftest import all_runs, run_train

CONF = Path(__file__).resolve().parents[2] / "conf"
QUANTITIES = ("grad_norm", "update_ratio", "act_mean", "act_std", "saturated_fraction",
              "dead_fraction")


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides)


def test_a_run_logs_every_layer_every_epoch(tracking_uri, client, tmp_path):
    proc = run_train(["dataset=iris", "trainer.max_epochs=3", "early_stopping=off",
                      "model.hidden=[8,6]"], tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = all_runs(client)
    expected = {f"layer{i}.{q}" for i in (1, 2) for q in QUANTITIES}
    expected |= {"layer3.grad_norm", "layer3.update_ratio"}  # the output layer
    logged = {k for k in run.data.metrics if k.startswith("layer")}
    assert logged == expected
    for key in expected:
        hist = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in hist) == [1, 2, 3], key
        assert all(math.isfinite(m.value) for m in hist), key
    assert "trainer.probe_rows" not in run.data.params  # a harness setting: config.yaml only
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "layer_diagnostics.png" in arts
    with open(tmp_path / "outputs" / "run" / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and expected <= set(rows[0])  # resend.py sends them from here


@pytest.mark.parametrize("switch", ["trainer.probe_rows=0", "~trainer.probe_rows"])
def test_no_probe_rows_no_diagnostics(switch, tracking_uri, client, tmp_path):
    """0 turns them off; a config without the key (logged before they existed) has none, so
    such runs reproduce exactly."""
    proc = run_train(["dataset=iris", "trainer.max_epochs=2", "early_stopping=off",
                      "model.hidden=[4]", switch], tracking_uri, tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = all_runs(client)
    assert not [k for k in run.data.metrics if k.startswith("layer")]
    assert "layer_diagnostics.png" not in {a.path for a in client.list_artifacts(run.info.run_id)}


@pytest.mark.parametrize("value", ["-1", "2.5"])
def test_bad_probe_rows_is_one_line(value):
    from experiments.config import ConfigError, validate

    with pytest.raises(ConfigError) as info:
        validate(_compose([f"trainer.probe_rows={value}"]))
    assert "\n" not in str(info.value) and f"trainer.probe_rows={value}" in str(info.value)


# ---------------------------------------------------------------- the report
def _child(client, exp_id, parent_id, arm, layers: dict[int, dict[str, list[float]]],
           epoch_seconds: float = 0.5):
    """A finished child with 3 epochs of val_loss / wall_seconds and the given layer series."""
    from mlflow.entities import Metric, RunTag

    rid = client.create_run(exp_id, tags={"mlflow.parentRunId": parent_id,
                                          "ann.arm": arm}).info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric("best_val_loss", 0.5, now, 0), Metric("test_accuracy", 0.9, now, 0)]
    for epoch in (1, 2, 3):
        metrics += [Metric("val_loss", 1.0 / epoch, now, epoch),
                    Metric("val_accuracy", 0.5, now, epoch),
                    Metric("wall_seconds", epoch_seconds * epoch, now, epoch)]
    for i, series in layers.items():
        for q, values in series.items():
            metrics += [Metric(f"layer{i}.{q}", v, now, e) for e, v in enumerate(values, 1)]
    client.log_batch(rid, metrics=metrics, tags=[RunTag("diverged", "false")])
    client.set_terminated(rid, "FINISHED")
    return rid


def _hidden(grad, dead, sat=(0.0, 0.0, 0.0)):
    return {"grad_norm": grad, "update_ratio": [0.1, 0.05, 0.02], "act_mean": [0.5] * 3,
            "act_std": [0.2] * 3, "saturated_fraction": list(sat), "dead_fraction": dead}


def _read(path):
    with open(path, newline="") as fh:
        return {row["arm"]: row for row in csv.DictReader(fh)}


def test_report_gives_seconds_per_epoch_grad_ratio_and_dead_units(client, tracking_uri,
                                                                  tmp_path):
    exp_id = client.create_experiment("layers", artifact_location=(tmp_path / "a").as_uri())
    parent = client.create_run(exp_id).info.run_id
    # deep: 3 hidden layers + output; layer 1's gradient 1e-4 then 1e-3 of the output's
    _child(client, exp_id, parent, "deep", {
        1: _hidden([1e-4, 1e-4, 2e-3], [0.0, 0.0, 0.0], sat=(0.5, 0.5, 0.5)),
        2: _hidden([1e-2] * 3, [0.0, 0.5, 0.5]),
        3: _hidden([1e-1] * 3, [0.0, 0.25, 1.0]),
        4: {"grad_norm": [1.0, 1.0, 2.0], "update_ratio": [0.1, 0.1, 0.1]}}, 0.25)
    _child(client, exp_id, parent, "shallow", {
        1: _hidden([2.0, 2.0, 2.0], [0.0, 0.0, 0.0]),
        2: {"grad_norm": [1.0, 1.0, 1.0], "update_ratio": [0.1, 0.1, 0.1]}})
    out = build_report(tracking_uri, parent, tmp_path / "r")
    rows = _read(out / "summary.csv")
    deep, shallow = rows["deep"], rows["shallow"]
    assert float(deep["seconds_per_epoch"]) == pytest.approx(0.25)
    assert float(shallow["seconds_per_epoch"]) == pytest.approx(0.5)
    assert float(deep["grad_ratio_epoch1"]) == pytest.approx(1e-4)
    assert float(deep["grad_ratio_final"]) == pytest.approx(1e-3)
    assert float(shallow["grad_ratio_final"]) == pytest.approx(2.0)
    assert float(deep["dead_fraction"]) == pytest.approx((0.0 + 0.5 + 1.0) / 3)
    assert float(deep["saturated_fraction"]) == pytest.approx(0.5 / 3)
    assert (out / "layer_diagnostics.png").stat().st_size > 0
    assert "grad_ratio = layer1.grad_norm / layerL.grad_norm" in (out / "summary.md").read_text()
    logged = {a.path for a in client.list_artifacts(parent, "report")}
    assert "report/layer_diagnostics.png" in logged


def test_a_report_without_diagnostics_has_seconds_per_epoch_only(client, tracking_uri,
                                                                 tmp_path):
    exp_id = client.create_experiment("plain", artifact_location=(tmp_path / "a").as_uri())
    parent = client.create_run(exp_id).info.run_id
    _child(client, exp_id, parent, "a", {})
    _child(client, exp_id, parent, "b", {}, 1.0)
    out = build_report(tracking_uri, parent, tmp_path / "r")
    rows = _read(out / "summary.csv")
    assert float(rows["b"]["seconds_per_epoch"]) == pytest.approx(1.0)
    assert "grad_ratio_final" not in rows["a"] and "dead_fraction" not in rows["a"]
    assert not (out / "layer_diagnostics.png").exists()


def test_layer_keys_pick_the_first_and_last_hidden_layers_and_the_output():
    metrics = {f"layer{i}.{q}": 0.0 for i in (1, 2, 3) for q in QUANTITIES}
    metrics.update({"layer4.grad_norm": 1.0, "layer4.update_ratio": 0.1, "val_loss": 1.0})
    keys = layer_keys(metrics)
    assert keys["first.dead_fraction"] == "layer1.dead_fraction"
    assert keys["last.dead_fraction"] == "layer3.dead_fraction"
    assert keys["output.grad_norm"] == "layer4.grad_norm"
    assert len(set(keys.values())) == 13  # what the report fetches per child, at most
    recurrent = layer_keys({"layer1.grad_norm": 1.0, "layer1.update_ratio": 0.1,
                            "layer2.grad_norm": 1.0, "layer2.update_ratio": 0.1})
    assert recurrent["first.grad_norm"] == "layer1.grad_norm"
    assert recurrent["last.grad_norm"] == "layer2.grad_norm"
    assert layer_keys({"val_loss": 1.0}) == {}

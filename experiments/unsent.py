"""Results a job could not send to its tracking store: the marker it leaves, and sending them.

When the store fails while a job runs, the runner keeps training, writes everything to the
job's output folder (config.yaml, history.csv, weights.npz, final.json, plots) and leaves
`unsent.json` there: the store, the experiment, the run id (when the run was created) and
its tags. `resend` sends what the store lacks: it creates the run if it never existed or
completes the existing one, adds only the params and (metric, step) pairs not there yet,
uploads the artifacts, sets the final status and renames the marker to `sent.json`. Sending
twice sends nothing twice. The command line is experiments/resend.py.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from experiments import tracking
from experiments.config import job_params

UNSENT_FILE = "unsent.json"
SENT_FILE = "sent.json"
ARTIFACTS = ("config.yaml", "history.csv", "weights.npz", "learning_curves.png",
             "gradient_flow.csv", "gradient_flow.png", "layer_diagnostics.png", "traceback.txt")
ARTIFACTS += ("decision_boundary.png", "decision_boundary.gif", "decision_boundary.npz")  # 2-D
BATCH = 1000  # MLflow's limit of metrics per log_batch


def one_line(err: BaseException, limit: int = 200) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:limit] if text else ''}"


class Uplink:
    """An MlflowClient that stops at the first failure: later calls are skipped, not raised.

    `error` holds the first failure (one line), or None while everything has been sent.
    """

    def __init__(self, client: Any, error: str | None = None) -> None:
        self._client = client
        self.error = error

    def __getattr__(self, name: str):
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.error is not None:
                return None
            try:
                return method(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - any store failure: keep results locally
                self.error = one_line(err)
                return None
        return call


def write_unsent(output_dir: Path, *, tracking_uri: str, experiment_id: str | None,
                 experiment_name: str, run_id: str | None, run_name: str | None,
                 tags: dict[str, str], status: str, error: str,
                 metrics: dict[str, float] | None = None) -> Path:
    """Leave the marker that `resend` reads; returns its path."""
    path = Path(output_dir) / UNSENT_FILE
    path.write_text(json.dumps({
        "tracking_uri": tracking_uri, "experiment_id": experiment_id,
        "experiment_name": experiment_name, "run_id": run_id, "run_name": run_name,
        "tags": tags, "status": status, "error": error, "final_metrics": metrics or {},
    }, indent=1, default=float))
    return path


def unsent_message(uri: str, output_dir: Path, error: str) -> str:
    return (f"lost the MLflow tracking store {uri} during the run ({error}); the results are "
            f"saved in {output_dir}; send them once it is back: "
            f"python experiments/resend.py {output_dir}")


def _history(output_dir: Path) -> list[tuple[int, dict[str, float]]]:
    """Per-epoch metrics as logged by the runner (the history plus cumulative wall_seconds)."""
    path = output_dir / "history.csv"
    if not path.exists():
        return []
    rows, wall = [], 0.0
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row.pop("note", ""):  # the diverging epoch: not a completed one, not logged
                continue
            epoch = int(row.pop("epoch"))
            values = {k: float(v) for k, v in row.items() if v != ""}  # "": not logged
            wall += values.get("epoch_seconds", 0.0)
            rows.append((epoch, {**values, "wall_seconds": wall}))
    return rows


def _final(output_dir: Path, marker: dict) -> tuple[dict[str, float], dict[str, str]]:
    path = output_dir / "final.json"
    final = json.loads(path.read_text()) if path.exists() else {"metrics": {}, "tags": {}}
    return {**final["metrics"], **marker.get("final_metrics", {})}, final["tags"]


def _find_or_create_run(client, uri: str, marker: dict, marker_path: Path) -> str:
    if marker.get("run_id"):
        try:
            client.get_run(marker["run_id"])
            return marker["run_id"]
        except Exception:  # noqa: BLE001 - not in this store: create it below
            pass
    experiment_id = tracking.ensure_experiment(uri, marker["experiment_name"])
    run = client.create_run(experiment_id, run_name=marker.get("run_name"), tags=marker["tags"])
    marker["run_id"] = run.info.run_id  # a second attempt completes this run, not a new one
    marker_path.write_text(json.dumps(marker, indent=1))
    return run.info.run_id


def resend(output_dir: Path, tracking_uri: str | None = None) -> tuple[str, dict[str, int]]:
    """Send one job folder's unsent results; returns (run id, counts of what was sent)."""
    from mlflow.entities import Metric, Param, RunTag

    output_dir = Path(output_dir)
    marker_path = output_dir / UNSENT_FILE
    marker = json.loads(marker_path.read_text())
    uri = tracking_uri or marker["tracking_uri"]
    tracking.check_reachable(uri)
    client = tracking.client_for(uri)
    run_id = _find_or_create_run(client, uri, marker, marker_path)
    run = client.get_run(run_id)

    from omegaconf import OmegaConf

    params = job_params(OmegaConf.load(output_dir / "config.yaml"))
    new_params = [Param(k, v) for k, v in params.items() if k not in run.data.params]
    for start in range(0, len(new_params), 100):
        client.log_batch(run_id, params=new_params[start:start + 100], synchronous=True)

    final, final_tags = _final(output_dir, marker)
    tags = {**marker["tags"], **final_tags}
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()],
                     synchronous=True)

    now = int(time.time() * 1000)
    wanted = [(k, v, step) for step, values in _history(output_dir) for k, v in values.items()]
    wanted += [(k, v, 0) for k, v in final.items()]
    have = {k: {m.step for m in client.get_metric_history(run_id, k)}
            for k in {k for k, _, _ in wanted}}
    metrics = [Metric(k, float(v), now, step) for k, v, step in wanted if step not in have[k]]
    for start in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[start:start + BATCH], synchronous=True)

    artifacts = [name for name in ARTIFACTS if (output_dir / name).exists()]
    for name in artifacts:
        client.log_artifact(run_id, str(output_dir / name))
    client.set_terminated(run_id, marker.get("status", "FINISHED"))
    marker_path.rename(output_dir / SENT_FILE)
    return run_id, {"params": len(new_params), "metrics": len(metrics),
                    "artifacts": len(artifacts)}


def find_unsent(paths: list[Path]) -> list[Path]:
    """Job folders holding an unsent marker: the folders given, or any folder below them."""
    found = []
    for path in paths:
        if (path / UNSENT_FILE).exists():
            found.append(path)
        else:
            found.extend(sorted(p.parent for p in path.rglob(UNSENT_FILE)))
    return found



"""What a run is called, tagged and described with in MLflow, and the folder it owns.

The pieces of a run's record that are not training: its readable name (`run_label`, the
`diverged: ` mark), its arm (`arm_label`), MLflow's own source tags, the descriptor params, the
splits as dataset inputs, where to open it in the UI, and the exclusive claim on its output
folder. Used by the job runner and the sweep callback.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from omegaconf import DictConfig

from experiments import tracking
from experiments.config import ConfigError, dataset_options
from experiments.unsent import UNSENT_FILE


def arm_label(overrides: list[str]) -> str:
    """The job's identity within a comparison: its overrides minus the seed."""
    keep = [o for o in overrides
            if not o.split("=", 1)[0].lstrip("+~").startswith(("seed", "hydra", "experiment"))]
    return ",".join(keep) or "default"


def claim_folder(folder: Path, key: str):
    """Hold `folder` for this process: an exclusive lock on `folder/.ann.lock`, kept until the
    returned file is closed (or the process ends). Two runs or sweeps writing into one folder
    would log each other's artifacts; the second is refused with one line naming `key`.
    A folder holding results that never reached the store (unsent.json) is refused too."""
    import fcntl

    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / ".ann.lock", "a+")
    except OSError as err:
        raise ConfigError(f"invalid config: {key}={str(folder)!r}: cannot create the output "
                          f"folder: {err.strerror or err}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        raise ConfigError(f"invalid config: {key}={str(folder)!r}: the folder is in use by "
                          f"another run or sweep (pid {holder}); give each its own folder"
                          ) from None
    if (folder / UNSENT_FILE).exists():
        lock.close()
        raise ConfigError(f"invalid config: {key}={str(folder)!r}: the folder holds results "
                          f"not yet sent to the store; send them first: python "
                          f"experiments/resend.py {folder}")
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


DIVERGED_MARK = "diverged: "  # first in a diverged run's name: the UI cuts long names short


def ui_hint(uri: str, experiment_id: str, run_id: str) -> str:
    """Where a run is in the MLflow UI: its full URL on a tracking server, else the command
    that serves the store and the page to open."""
    link = tracking.run_link(uri, experiment_id, run_id)
    if link:
        return f"open {link}"
    page = f"#/experiments/{experiment_id}/runs/{run_id}"
    if uri == tracking.default_tracking_uri():
        return f"open it with: make ui, then http://127.0.0.1:5000/{page}"
    return (f"open it with: mlflow ui --backend-store-uri {uri}, then "
            f"http://127.0.0.1:5000/{page}")


def run_label(overrides: list[str]) -> str:
    """A run's readable name: its overrides (a sweep child: its swept values, seed included)
    minus where it logs and Hydra's own settings; "default" when none is left."""
    keep = [o for o in overrides
            if not o.split("=", 1)[0].lstrip("+~").startswith(("hydra", "mlflow", "experiment"))]
    return ",".join(keep) or "default"


def source_tags(commit: str, source_name: str) -> dict[str, str]:
    """MLflow's own source tags, which fill the UI's User, Source and Version columns."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    tags = {"mlflow.user": user, "mlflow.source.name": source_name,
            "mlflow.source.type": "LOCAL"}
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit
    return tags


def descriptor_params(data, model) -> dict[str, str]:
    """Numbers that describe the job rather than result from training: params, not metrics."""
    out = {"model.n_params": str(sum(p.size for p in model.params().values())),
           "dataset.n_train": str(len(data.X_train)), "dataset.n_val": str(len(data.X_val)),
           "dataset.n_test": str(len(data.X_test))}
    out.update({f"dataset.baseline_{k}": repr(float(v)) for k, v in (data.baseline or {}).items()})
    return out


def dataset_inputs(cfg: DictConfig, data, digest: str) -> list:
    """The three splits as MLflow dataset inputs (contexts train / validation / test), so the
    UI's Datasets column and filter work. Their digest is the run's `dataset_digest` tag cut to
    MLflow's 36 characters; MLflow keeps one input per (name, digest), hence a name per split."""
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag

    source = json.dumps({"loader": "ann.data.load_dataset", "name": cfg.dataset.name,
                         "seed": int(cfg.seed), **dataset_options(cfg)}, default=str)
    inputs = []
    for context, X, y in (("train", data.X_train, data.y_train),
                          ("validation", data.X_val, data.y_val),
                          ("test", data.X_test, data.y_test)):
        schema = {"mlflow_tensorspec": {
            "features": json.dumps([{"type": "tensor", "tensor-spec": {
                "dtype": str(X.dtype), "shape": [-1, *X.shape[1:]]}}]),
            "targets": json.dumps([{"type": "tensor", "tensor-spec": {
                "dtype": str(y.dtype), "shape": [-1, *y.shape[1:]]}}])}}
        profile = {"features_shape": list(X.shape), "targets_shape": list(y.shape)}
        dataset = Dataset(name=f"{cfg.dataset.name}-{context}", digest=digest[:36],
                          source_type="code", source=source, schema=json.dumps(schema),
                          profile=json.dumps(profile))
        inputs.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)]))
    return inputs


def log_inputs(client, run_id: str, inputs: list, attempts: int = 3) -> None:
    """log_inputs through the Uplink, retrying a collision with a concurrent writer.

    MLflow's SQL store looks the dataset (experiment, name, digest) up, then inserts it: the
    jobs of a parallel sweep log the same dataset at the same moment, and all but one insert
    fail on its unique key (sqlite3.IntegrityError, seen with 4 joblib workers). A retry finds
    the dataset the other job created. Any other failure is the Uplink's (results kept)."""
    raw = getattr(client, "_client", client)
    for _ in range(attempts - 1):
        if getattr(client, "error", None) is not None:
            return
        try:
            raw.log_inputs(run_id, datasets=inputs)
            return
        except Exception as err:  # noqa: BLE001 - only the collision is retried here
            if "UNIQUE constraint failed" not in str(err) and "IntegrityError" not in str(err):
                break
            time.sleep(0.05)
    client.log_inputs(run_id, datasets=inputs)

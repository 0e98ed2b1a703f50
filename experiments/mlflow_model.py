"""The trained network as an MLflow model of its run: `runs:/<run_id>/model`.

`log_model` saves the model into the job's output folder (`model/`), then sends it as an
MLflow 3 logged model named "model" whose source run is the run, listed in the run's outputs:

    model/MLmodel                  pyfunc flavour, "models from code", signature, example
    model/pyfunc_model.py          experiments/pyfunc_model.py: rebuilds and predicts
    model/code/ann/                the ann package (the model loads where ann is not installed)
    model/artifacts/spec.json      model_spec(): what rebuilds the network and undoes the scaling
    model/artifacts/weights.npz    the parameters (no pickled object anywhere)
    model/requirements.txt ...     numpy (and mlflow), pinned to the versions installed

`runs:/<run_id>/model` resolves to the logged model named "model" of that run (MLflow's
RunsArtifactRepository searches the run's experiment for it), which is also what the UI's
Models column and the run page's logged-models section list: a source run, and the run's
model outputs. Everything goes through the client given (no fluent active run), and nothing
is inferred at run time: requirements are explicit and the signature is written, not probed.

Cost (default job, local SQLite store): 0.12-0.17 s per run, most of it importing
mlflow.pyfunc and four store writes; over an HTTP server 0.28-0.37 s (one request per file,
27 files). Measured against: mlflow.pyfunc.log_model inside mlflow.start_run(run_id=...)
(it needs the fluent run and tracking URI, copies the run's params and metric history onto
the model and loads the model to validate the example): 1.0 s; and the design here with
save_model's environment check left on (see `_quiet_save`): 0.6-1.0 s.
"""
from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

import ann
from experiments.config import model_options

MODEL_NAME = "model"  # runs:/<run_id>/model
CODE_FILE = Path(__file__).with_name("pyfunc_model.py")
N_EXAMPLE = 2  # rows of the input example


def model_spec(cfg: DictConfig, data, model) -> dict[str, Any]:
    """Everything experiments/pyfunc_model.py needs beside the weights, as JSON values:
    build_model's arguments (as runner.prepare passes them), the input scaling (x_mean,
    x_scale; the clipping bounds x_low, x_high, null when not clipped), the class labels
    (index k -> labels[k]) and the target scaling (y_mean, y_scale)."""
    hidden = cfg.model.hidden
    options = model_options(cfg)
    if cfg.model.kind != "mlp":
        options["many_to_many"] = bool(data.many_to_many)
    labels = list(range(data.n_classes)) if data.task == "classification" else None
    return {
        "format": 1,
        "kind": str(cfg.model.kind),
        "n_in": int(data.n_in),
        "hidden": [int(h) for h in hidden] if not isinstance(hidden, int) else int(hidden),
        "n_out": int(data.n_out),
        "options": options,
        "dtype": np.dtype(data.X_train.dtype).name,
        "task": data.task,
        "dataset": str(cfg.dataset.name),
        "is_sequence": bool(data.is_sequence),
        "many_to_many": bool(data.many_to_many),
        "x_mean": np.asarray(data.x_mean, dtype=np.float64).tolist(),
        "x_scale": np.asarray(data.x_scale, dtype=np.float64).tolist(),
        "x_low": _bound(data.x_low),
        "x_high": _bound(data.x_high),
        "scaling": str(data.scaling),
        "labels": labels,
        "y_mean": float(data.y_mean),
        "y_scale": float(data.y_scale),
        "n_params": int(model.n_params),
    }


def _bound(bound) -> list[float] | None:
    """A clipping bound of the input scaling as JSON (None: no clipping)."""
    return None if bound is None else np.asarray(bound, dtype=np.float64).tolist()


def signature_and_example(spec: dict[str, Any], data):
    """A tensor signature (raw float64 features in; labels or values in original units out)
    and a small input example: the first training rows in original units."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    sequence = spec["is_sequence"]
    in_shape = (-1, -1, spec["n_in"]) if sequence else (-1, spec["n_in"])
    steps = (-1,) if spec["many_to_many"] else ()
    if spec["task"] == "classification":
        out = TensorSpec(np.dtype(np.int64), (-1, *steps))
    else:
        out = TensorSpec(np.dtype(spec["dtype"]), (-1, *steps, spec["n_out"]))
    signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float64), in_shape)]),
                               outputs=Schema([out]))
    rows = np.asarray(data.X_train[:N_EXAMPLE], dtype=np.float64)
    example = rows * np.asarray(spec["x_scale"]) + np.asarray(spec["x_mean"])
    return signature, example


def requirements() -> list[str]:
    """The model's pip requirements, pinned to what is installed (MLflow adds itself)."""
    return [f"numpy=={np.__version__}"]


def save_model(path: Path, spec: dict[str, Any], weights: Path, data, *, run_id: str | None,
               logged=None) -> Path:
    """Save the pyfunc model into the (new or empty) folder `path`; `logged` is the MLflow
    LoggedModel it becomes (its id and location are recorded in MLmodel)."""
    import mlflow.pyfunc
    from mlflow.models import Model

    signature, example = signature_and_example(spec, data)
    mlflow_model = Model(run_id=run_id, artifact_path=logged.artifact_location if logged else None,
                         model_uuid=logged.model_id if logged else None,
                         model_id=logged.model_id if logged else None)
    with tempfile.TemporaryDirectory(prefix="ann-model-") as tmp, _quiet_save():
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec, indent=1))
        mlflow.pyfunc.save_model(
            path=str(path), python_model=str(CODE_FILE), mlflow_model=mlflow_model,
            artifacts={"spec": str(spec_path), "weights": str(weights)},
            code_paths=[str(Path(ann.__file__).parent)], signature=signature,
            input_example=example, pip_requirements=requirements())
    return path


@contextlib.contextmanager
def _quiet_save():
    """mlflow.pyfunc.save_model without its environment check and its INFO line.

    save_model checks that this environment satisfies the requirements it writes, for which
    it first maps every installed distribution's files to modules: 0.5-0.6 s, once per
    process, most of the cost of logging a model. The requirements are pinned to what is
    installed here (MLflow pins itself the same way), so the check cannot fail: it is skipped.
    """
    from mlflow.utils import environment

    check = environment.warn_dependency_requirement_mismatches
    quiet = logging.getLogger("mlflow.pyfunc")  # "Validating input example against ..."
    level = quiet.level
    environment.warn_dependency_requirement_mismatches = lambda requirements: None
    quiet.setLevel(logging.WARNING)
    try:
        yield
    finally:
        environment.warn_dependency_requirement_mismatches = check
        quiet.setLevel(level)


def log_model(client, run_id: str | None, model, data, cfg: DictConfig, output_dir: Path, *,
              experiment_id: str | None = None) -> None:
    """Log the trained `model` (its weights already in output_dir/weights.npz) as the MLflow
    model of run `run_id`, loadable as runs:/<run_id>/model; the saved copy stays in
    output_dir/model. `client` is an MlflowClient or an Uplink (whose calls return None once
    the store failed: the model is then saved locally only). `experiment_id` is the run's
    (looked up when not given: get_run reads every metric of the run, 10-50 ms)."""
    from mlflow.entities import LoggedModelOutput

    output_dir = Path(output_dir)
    spec = model_spec(cfg, data, model)
    if run_id is not None and experiment_id is None:
        run = client.get_run(run_id)
        experiment_id = run.info.experiment_id if run is not None else None
    logged = None
    if run_id is not None and experiment_id is not None:
        logged = client.create_logged_model(experiment_id, name=MODEL_NAME,
                                            source_run_id=run_id, model_type=f"ann.{spec['kind']}")
    folder = output_dir / MODEL_NAME
    shutil.rmtree(folder, ignore_errors=True)
    try:
        save_model(folder, spec, output_dir / "weights.npz", data, run_id=run_id, logged=logged)
    except BaseException:
        if logged is not None:
            client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    if logged is None:
        return
    client.log_model_artifacts(logged.model_id, str(folder))
    client.finalize_logged_model(logged.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])

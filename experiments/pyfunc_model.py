"""A trained ann network as an MLflow pyfunc model (a "models from code" file).

experiments/mlflow_model.py logs this file as the model's code: MLflow runs it when the model
is loaded, in a process that may hold nothing of this project but the `ann` package shipped in
the model's `code/` folder. It reads two artifacts, rebuilds the network and predicts on raw
inputs, as the dataset provides them:

    spec.json     kind, sizes, build options, dtype, task, the input scaling, labels, y scaling
    weights.npz   the parameters, keyed as Sequential.get_weights()

    x = clip((x_raw - x_mean) / x_scale, x_low, x_high)   per feature (the last axis of
                                                sequences); no clipping when x_low is null
    classification: labels[argmax_k z_k]        (n,) or (n, n_steps) for many-to-many
    regression:     y = z * y_scale + y_mean    (n, n_out) or (n, n_steps, n_out)

Shapes: x_raw (n, n_in), or (n, n_steps, n_in) for the sequence tasks.
"""
from __future__ import annotations

import json

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

from ann.models import build_model
from ann.training import EVAL_BATCH, EVAL_STEPS


class AnnNetwork(PythonModel):
    """Predictions of the network described by the `spec` and `weights` artifacts."""

    def load_context(self, context) -> None:
        with open(context.artifacts["spec"]) as fh:
            spec = json.load(fh)
        self.dtype = np.dtype(spec["dtype"])
        self.network = build_model(spec["kind"], spec["n_in"], spec["hidden"], spec["n_out"],
                                   task=spec["task"], rng=np.random.default_rng(0),
                                   dtype=self.dtype, **spec["options"])
        with np.load(context.artifacts["weights"], allow_pickle=False) as weights:
            self.network.set_weights({k: weights[k] for k in weights.files})
        self.task = spec["task"]
        self.x_mean = np.asarray(spec["x_mean"], dtype=np.float64)
        self.x_scale = np.asarray(spec["x_scale"], dtype=np.float64)
        low, high = spec.get("x_low"), spec.get("x_high")  # absent in format-1 specs of before
        self.x_low = None if low is None else np.asarray(low, dtype=np.float64)
        self.x_high = None if high is None else np.asarray(high, dtype=np.float64)
        self.labels = np.asarray(spec["labels"]) if spec["labels"] is not None else None
        self.y_mean, self.y_scale = float(spec["y_mean"]), float(spec["y_scale"])

    # np.ndarray is a hint MLflow derives no signature from: the logged tensor signature
    # (float64, (n, n_in) or (n, n_steps, n_in)) describes and checks the input.
    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        x = np.asarray(model_input, dtype=np.float64)
        x = (x - self.x_mean) / self.x_scale
        if self.x_low is not None:
            x = np.clip(x, self.x_low, self.x_high)
        x = x.astype(self.dtype, copy=False)
        rows = EVAL_BATCH if x.ndim < 3 else max(16, EVAL_STEPS // max(1, x.shape[1]))
        parts = [self._predict(x[start:start + rows]) for start in range(0, len(x), rows)]
        return np.concatenate(parts) if parts else self._predict(x)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            return self.labels[self.network.predict_labels(x)]
        return self.network.predict(x) * self.y_scale + self.y_mean


mlflow.models.set_model(AnnNetwork())

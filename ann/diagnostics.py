"""Diagnostics: what happens inside each layer, and how much error signal reaches each step.

layer_stats / LayerProbe: per weight layer i (1 at the input side), on a fixed probe batch
    grad_norm[i]    = ||dLoss/dW_i||_F   (the mean loss over the probe rows; for a recurrent
                      layer W_i is every weight matrix W_* of the layer, biases excluded)
    update_ratio[i] = ||W_i(t) - W_i(t-1)||_F / ||W_i(t-1)||_F   (t-1: the previous measurement)
  and for every hidden layer (a weight layer followed by an activation layer, z = its output,
  a = f(z) the activation, shapes (n_probe, n_units)):
    act_mean[i], act_std[i] = mean and std of a over all probe rows and units
    saturated_fraction[i]   = fraction of units with f'(z) < SATURATION_LEVEL x max f' on more
                              than half of the probe rows (ReLU and leaky ReLU: units off, z < 0,
                              on most rows; ELU: z < -2.3)
    dead_fraction[i]        = fraction of units whose output a is exactly 0 on every probe row,
                              or whose derivative f'(z) is exactly 0 on every probe row
gradient_flow: per-step norms of dLoss/dh_t in a recurrent model's first recurrent layer.
None of them changes the weights or the optimizer state; the model's gradients are restored.
"""

from __future__ import annotations

import math

import numpy as np

from ann.activations import PReLU
from ann.recurrent import LSTM, RecurrentBase

Array = np.ndarray

# Rows of the probe batch: the first min(PROBE_ROWS, n_train) training rows (a random sample:
# the split is shuffled). 32 rows cost about one training step of the default run (measured:
# 0.7 ms against 20 ms of updates per epoch, 3.4-3.7%); 64 rows already cost 5-6% there. Few
# rows count a unit that fires on few inputs as dead: presets about dead units probe 256.
PROBE_ROWS = 32
SATURATION_LEVEL = 0.1  # saturated: f'(z) below this fraction of the activation's max f'


def gradient_flow(model, X: Array, y: Array) -> dict:
    """Per-step norms of dLoss/dh_t in the recurrent layer nearest the input, for one batch.

    Runs model.loss(X, y) and model.backward(), then reads that layer's grad_flow:
        grad_norms[t] = ||dLoss/dh_t||  (Frobenius over the batch),  shape (n_steps,)
        grad_flow_ratio = grad_norms[0] / grad_norms[-1]  (nan when the last norm is 0)
        gate_means = {"f", "i", "o", "g"} -> mean gate activation of that layer if it is an
                     LSTM, {} for an RNN
        loss = the batch loss
    Weights and optimizer state are untouched; the model's gradients are restored afterwards.
    A diverged model gives inf/nan norms: a result, so NumPy's overflow warnings are silenced.
    """
    layers = getattr(model, "layers", None)
    recurrent = [layer for layer in (layers or []) if isinstance(layer, RecurrentBase)]
    if not recurrent:
        raise ValueError("gradient_flow needs a model with a recurrent layer (rnn or lstm)")
    first = recurrent[0]
    saved = [{k: v.copy() for k, v in layer.grads.items()} for layer in layers]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:
            loss = float(model.loss(X, y))
            model.backward()
            norms = np.array(first.grad_flow, dtype=np.float64, copy=True)
            gates = first.gate_means if isinstance(first, LSTM) else {}
        finally:
            for layer, grads in zip(layers, saved):
                for k, v in grads.items():
                    layer.grads[k][...] = v
    last = norms[-1]
    ratio = float(norms[0] / last) if last > 0 else float("nan")
    return {"grad_norms": norms, "grad_flow_ratio": ratio, "gate_means": dict(gates),
            "loss": loss}


def weight_layers(model) -> list[int]:
    """Indices into model.layers of the weight layers (those with a parameter named W*)."""
    return [j for j, layer in enumerate(model.layers) if _weight_keys(layer)]


def _weight_keys(layer) -> list[str]:
    return [k for k in getattr(layer, "params", {}) if k.startswith("W")]


def weight_snapshot(model) -> list[dict[str, Array]]:
    """Copies of every weight layer's W* arrays, in layer order (for update_ratio)."""
    return [{k: model.layers[j].params[k].copy() for k in _weight_keys(model.layers[j])}
            for j in weight_layers(model)]


def _sq_norm(a: Array) -> float:
    flat = a.reshape(-1)
    return float(np.dot(flat, flat))


_MAX_DERIVATIVE: dict[tuple, float] = {}


def _max_derivative(act) -> float:
    """sup f' of an elementwise activation, from a grid over [-30, 30] (cached per kind)."""
    key = (type(act), getattr(act, "alpha", None))
    if key not in _MAX_DERIVATIVE:
        x = np.linspace(-30.0, 30.0, 6001)
        _MAX_DERIVATIVE[key] = float(np.max(act.derivative(x, act.apply(x))))
    return _MAX_DERIVATIVE[key]


def _activation_stats(act, x: Array, a: Array) -> dict[str, float]:
    """act_mean, act_std, saturated_fraction, dead_fraction of activation `act` with input x
    and output a (from its own forward), both (..., n_units).

    The derivative comes from the formula on these arrays (a fresh result; nothing is written
    into the layer; PReLU's from its current slopes).
    """
    a = a.reshape(-1, a.shape[-1])
    x = x.reshape(a.shape)
    if isinstance(act, PReLU):
        alpha = act.params["alpha"]
        d = np.where(x > 0, 1.0, alpha)
        top = np.maximum(1.0, np.abs(alpha))
    elif hasattr(act, "derivative"):
        d = act.derivative(x, a)
        top = _max_derivative(act)
    else:  # e.g. a hidden softmax: no elementwise derivative
        d = None
    flat = a.reshape(-1)
    mean = float(np.sum(flat)) / flat.size
    centred = flat - mean
    out = {"act_mean": mean, "act_std": math.sqrt(float(np.dot(centred, centred)) / flat.size)}
    if d is not None:
        low = np.abs(d) < SATURATION_LEVEL * top
        out["saturated_fraction"] = float(np.mean(low.sum(axis=0) > 0.5 * a.shape[0]))
        out["dead_fraction"] = float(np.mean(~(a.any(axis=0) & d.any(axis=0))))
    return out


def layer_stats(model, X: Array, y: Array,
                previous: list[dict[str, Array]] | None = None) -> dict[str, float]:
    """Per-layer diagnostics on the batch (X, y): {"layer{i}.{quantity}": value} (see above).

    Runs the model's forward layer by layer, reading each activation's input and output
    before the next layer runs (Dense and ReLU reuse their buffers), then model.backward().
    `previous` (a weight_snapshot) adds update_ratio and is advanced to the current weights
    in place (the base of the next measurement). Weights and optimizer state are
    untouched, the model's gradients are restored afterwards. Values may be inf or nan for a
    diverged model (NumPy's warnings are silenced); the caller filters them.
    """
    layers = model.layers
    index = {j: i for i, j in enumerate(weight_layers(model), start=1)}
    saved = [{k: v.copy() for k, v in layer.grads.items()} for layer in layers]
    out: dict[str, float] = {}
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        try:
            h = X
            for j, layer in enumerate(layers):
                x, h = h, layer.forward(h)
                i = index.get(j - 1)
                if i is not None and j not in index:  # the activation of hidden layer i
                    # read before the next layer runs; an in-place ReLU has overwritten x with
                    # h, and h > 0 exactly where x > 0
                    pre = h if getattr(layer, "inplace", False) else x
                    stats = _activation_stats(layer, pre, h)
                    out.update({f"layer{i}.{k}": v for k, v in stats.items()})
            model.loss_fn.forward(h, y)
            model.backward()
            for j, i in index.items():
                grads = layers[j].grads
                out[f"layer{i}.grad_norm"] = math.sqrt(sum(_sq_norm(grads[k])
                                                           for k in _weight_keys(layers[j])))
        finally:
            for layer, grads in zip(layers, saved):
                for k, v in grads.items():
                    layer.grads[k][...] = v
        if previous is not None:
            for (j, i), before in zip(index.items(), previous):
                params, moved, size = layers[j].params, 0.0, 0.0
                for k, w in before.items():  # in place: no temporaries
                    size += _sq_norm(w)
                    moved += _sq_norm(np.subtract(params[k], w, out=w))
                    np.copyto(w, params[k])  # advanced to the current weights
                out[f"layer{i}.update_ratio"] = math.sqrt(moved / size) if size > 0 else math.nan
    return dict(sorted(out.items(), key=_order))


QUANTITIES = ("grad_norm", "update_ratio", "act_mean", "act_std", "saturated_fraction",
              "dead_fraction")


def _order(item: tuple[str, float]) -> tuple[int, int]:
    """layer1.grad_norm, layer1.update_ratio, ..., layer2.grad_norm, ..."""
    layer, quantity = item[0].split(".", 1)
    return int(layer[5:]), QUANTITIES.index(quantity)


class LayerProbe:
    """layer_stats of one model on a fixed probe batch, measured after each epoch.

    The probe batch is the first min(n_rows, len(X)) rows of (X, y) (pass the training split);
    update_ratio compares the weights with those at the previous measurement (at the first,
    with those the probe was created with: create it before training).
    """

    def __init__(self, model, X: Array, y: Array, n_rows: int = PROBE_ROWS) -> None:
        self.model = model
        self.X, self.y = X[:n_rows], y[:n_rows]
        self._previous = weight_snapshot(model)

    def measure(self) -> dict[str, float]:
        return layer_stats(self.model, self.X, self.y, previous=self._previous)

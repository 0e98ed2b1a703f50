"""Gradient-flow diagnostics for recurrent models: how much error signal reaches each step."""

from __future__ import annotations

import numpy as np

from ann.recurrent import LSTM, RecurrentBase

Array = np.ndarray


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

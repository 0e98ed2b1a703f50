"""Recurrent layers (RNN, LSTM) and the builder of recurrent sequence models.

The layers live in ann/rnn.py and ann/lstm.py; this module is their public home.

build_recurrent stacks recurrent layers and a Dense head:
    x (n_batch, n_steps, n_in) -> [RNN|LSTM] x len(hidden) -> Dense -> z
Every recurrent layer but the last returns its whole sequence; the last returns the last state
(many-to-one: z (n_batch, n_out)) or every state (many-to-many: z (n_batch, n_steps, n_out), the
Dense head applied per step).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ann.layers import Dense
from ann.losses import loss_for_task
from ann.lstm import GATES, LSTM
from ann.rnn import RNN, RecurrentBase
from ann.sequential import Sequential

__all__ = ["RNN", "LSTM", "GATES", "RecurrentBase", "RECURRENT", "build_recurrent"]

RECURRENT: dict[str, type] = {"rnn": RNN, "lstm": LSTM}


def _hidden_sizes(hidden: int | Sequence[int]) -> list[int]:
    sizes = [hidden] if isinstance(hidden, (int, np.integer)) else list(hidden)
    if not sizes or any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1
                        for h in sizes):
        raise ValueError(f"hidden={hidden!r} is invalid: allowed is an integer >= 1 or a "
                         "non-empty list of them")
    return [int(h) for h in sizes]


def build_recurrent(kind: str, n_in: int, hidden: int | Sequence[int], n_out: int, *,
                    task: str, rng: np.random.Generator, dtype=np.float64,
                    activation: str | None = "tanh", many_to_many: bool = False,
                    forget_bias: float = 1.0, truncate: int | None = None,
                    n_classes: int | None = None):
    """Build a Sequential of stacked recurrent layers and a Dense head, with the task's loss.

    kind: "rnn" or "lstm". hidden: an int, or a list of ints for stacked layers.
    activation: the RNN's activation by name (ann.activations.ELEMENTWISE). The LSTM's
    nonlinearities are fixed (sigmoid gates, tanh candidate and cell output), so for
    kind="lstm" activation must be "tanh" or None; anything else raises ValueError rather
    than being silently ignored. forget_bias applies to LSTMs only.
    Loss: ann.losses.loss_for_task(task, n_classes) (softmax cross-entropy for
    classification, n_classes defaulting to n_out; mean squared error for regression).
    """
    if kind not in RECURRENT:
        raise ValueError(f"kind={kind!r} is invalid: allowed are {sorted(RECURRENT)}")
    sizes = _hidden_sizes(hidden)
    if kind == "lstm" and activation not in (None, "tanh"):
        raise ValueError(f"activation={activation!r} is invalid for an LSTM: allowed is 'tanh' "
                         "(its gate nonlinearities are fixed)")
    layers = []
    size_in = n_in
    for depth, size in enumerate(sizes):
        seq = many_to_many or depth < len(sizes) - 1
        if kind == "rnn":
            layer = RNN(size_in, size, rng=rng, activation=activation or "tanh",
                        return_sequences=seq, truncate=truncate, dtype=dtype)
        else:
            layer = LSTM(size_in, size, rng=rng, forget_bias=forget_bias,
                         return_sequences=seq, truncate=truncate, dtype=dtype)
        layers.append(layer)
        size_in = size
    layers.append(Dense(size_in, n_out, rng=rng, dtype=dtype))
    if task == "classification" and n_classes is None:
        n_classes = n_out
    return Sequential(layers, loss_for_task(task, n_classes))

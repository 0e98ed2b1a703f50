"""The builders that assemble Sequential models (ann.sequential) from plain arguments."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ann.activations import default_initializer, make_activation
from ann.layers import Dense
from ann.losses import loss_for_task
from ann.sequential import Sequential

Array = np.ndarray

MODEL_KINDS = ("mlp", "rnn", "lstm")


def _check_positive_int(arg: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{arg}={value!r} is invalid; allowed: an integer >= 1")
    return int(value)


def build_mlp(
    n_in: int,
    hidden: Sequence[int],
    n_out: int,
    *,
    activation: str,
    task: str,
    rng: np.random.Generator,
    dtype=np.float64,
) -> Sequential:
    """Multi-layer perceptron: [Dense(h) + activation] for each h in ``hidden``, then Dense(n_out).

    Hidden Dense layers use ``default_initializer(activation)``, the output layer glorot_uniform;
    the loss is ``loss_for_task(task, n_out)`` (softmax cross-entropy with n_out = n_classes, or
    MSE). ``hidden`` may be empty (a linear / softmax-regression model); an int means [int].
    """
    n_in = _check_positive_int("n_in", n_in)
    n_out = _check_positive_int("n_out", n_out)
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
        hidden = [hidden]
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise ValueError(f"hidden={hidden!r} is invalid; allowed: a list of integers >= 1")
    sizes = [_check_positive_int("hidden", h) for h in hidden]
    loss = loss_for_task(task, n_out)
    init = default_initializer(activation)
    layers: list = []
    for h in sizes:
        layers.append(Dense(n_in, h, rng=rng, init=init, dtype=dtype))
        layers.append(make_activation(activation, n_units=h, dtype=dtype))
        n_in = h
    layers.append(Dense(n_in, n_out, rng=rng, init="glorot_uniform", dtype=dtype))
    return Sequential(layers, loss)


def build_model(
    kind: str,
    n_in: int,
    hidden,
    n_out: int,
    *,
    activation: str,
    task: str,
    rng: np.random.Generator,
    dtype=np.float64,
    **kwargs,
) -> Sequential:
    """Build a model of ``kind`` in mlp / rnn / lstm.

    mlp -> ``build_mlp`` (no extra keyword arguments allowed); rnn / lstm ->
    ``ann.recurrent.build_recurrent`` with ``activation`` and ``kwargs`` passed through
    (e.g. ``many_to_many``, ``truncate``, ``forget_bias``).
    """
    if kind == "mlp":
        if kwargs:
            raise ValueError(f"build_model: unexpected arguments for kind='mlp': {sorted(kwargs)}")
        return build_mlp(n_in, hidden, n_out, activation=activation, task=task, rng=rng, dtype=dtype)
    if kind in ("rnn", "lstm"):
        from ann.recurrent import build_recurrent

        return build_recurrent(
            kind, n_in, hidden, n_out, task=task, rng=rng, dtype=dtype, activation=activation, **kwargs
        )
    raise ValueError(f"unknown model kind {kind!r}; valid kinds: {', '.join(MODEL_KINDS)}")

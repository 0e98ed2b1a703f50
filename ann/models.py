"""Sequential models and the builders that assemble them from plain arguments."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ann.activations import default_initializer, make_activation
from ann.layers import Dense
from ann.losses import loss_for_task

Array = np.ndarray

MODEL_KINDS = ("mlp", "rnn", "lstm")


class Sequential:
    """A stack of layers followed by a loss fused with the output activation.

    z = layer_k(... layer_1(layer_0(x)));  loss(x, y) = loss_fn.forward(z, y).
    Parameters are exposed as one flat dict keyed "{layer index}.{param key}" (e.g. "0.W").
    Layers that can (Dense, ReLU) get ``reuse_buffers = True``: their outputs and input
    gradients live in buffers reused by the next call, which only the next layer reads; a ReLU
    between two Dense layers also gets ``inplace = True`` (it works in their buffers);
    ``forward`` and ``predict`` return fresh arrays.
    """

    def __init__(self, layers: Sequence, loss) -> None:
        self.layers = list(layers)
        self.loss_fn = loss
        self.task = getattr(loss, "task", None)
        for i, layer in enumerate(self.layers):
            if hasattr(type(layer), "reuse_buffers"):
                layer.reuse_buffers = True
            if hasattr(type(layer), "inplace") and 0 < i < len(self.layers) - 1:
                # its input is the Dense output buffer below, its dy the Dense dx buffer above
                layer.inplace = isinstance(self.layers[i - 1], Dense) and isinstance(self.layers[i + 1], Dense)

    def _forward(self, x: Array) -> Array:
        """z, possibly a buffer of the last layer that its next call overwrites."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def forward(self, x: Array) -> Array:
        """Raw outputs z of the last layer (each layer caches what its backward needs)."""
        z = self._forward(x)
        if self.layers and getattr(self.layers[-1], "reuse_buffers", False):
            z = z.copy()
        return z

    def loss(self, x: Array, y: Array) -> float:
        """Forward pass plus the mean loss; caches everything ``backward`` needs."""
        return self.loss_fn.forward(self._forward(x), y)

    def backward(self) -> None:
        """Back-propagate the cached loss through every layer, overwriting every layer's grads."""
        d = self.loss_fn.backward()
        layers = self.layers
        for layer in layers[:0:-1]:
            d = layer.backward(d)
        first = layers[0] if layers else None
        if isinstance(first, Dense):
            first.backward(d, need_dx=False)  # the input's gradient is never used
        elif first is not None:
            first.backward(d)

    def predict(self, x: Array) -> Array:
        """Probabilities (classification) or values (regression) for inputs x."""
        return self.loss_fn.predict(self.forward(x))

    def predict_labels(self, x: Array) -> Array:
        """Predicted class labels (classification losses only)."""
        return self.loss_fn.predict_labels(self._forward(x))

    def params(self) -> dict[str, Array]:
        """The live parameter arrays, keyed "{i}.{key}"; optimizers update them in place."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    def grads(self) -> dict[str, Array]:
        """The live gradient arrays, same keys as ``params()``."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()}

    @property
    def n_params(self) -> int:
        """Total number of scalar parameters."""
        return sum(v.size for layer in self.layers for v in layer.params.values())

    def get_weights(self) -> dict[str, Array]:
        """Copies of every parameter array, keyed like ``params()``."""
        return {k: v.copy() for k, v in self.params().items()}

    def set_weights(self, weights: dict[str, Array]) -> None:
        """Copy ``weights`` (keys and shapes as ``get_weights()``) into the live parameters."""
        params = self.params()
        if set(weights) != set(params):
            missing, extra = sorted(set(params) - set(weights)), sorted(set(weights) - set(params))
            raise ValueError(f"set_weights: keys do not match the model (missing {missing}, unexpected {extra})")
        for k, p in params.items():
            w = np.asarray(weights[k])
            if w.shape != p.shape:
                raise ValueError(f"set_weights: {k!r} has shape {w.shape}, the model expects {p.shape}")
            np.copyto(p, w, casting="same_kind")

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}], loss={type(self.loss_fn).__name__}())"


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

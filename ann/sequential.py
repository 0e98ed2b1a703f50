"""The Sequential model: a stack of layers followed by a loss fused with the output activation.

Its own module so that ann.recurrent (which stacks recurrent layers into one) and ann.models
(the builders, which dispatch to ann.recurrent) both import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ann.layers import Dense

Array = np.ndarray


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

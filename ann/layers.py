"""Dense (fully connected) layer."""

from __future__ import annotations

import numpy as np

from ann._memory import MIN_ELEMENTS, ones, scratch
from ann.initializers import get_initializer

Array = np.ndarray


class Dense:
    """Affine map y = x @ W + b.

    Shapes: x (..., n_in) -> y (..., n_out) (leading axes are flattened, so it also applies per
    time step to (n_batch, n_steps, n_in)); params W (n_in, n_out), b (n_out,).
    Backward: dW = x^T dy, db = sum over rows of dy, dx = dy W^T, with x and dy flattened to 2-D.
    ``grads`` arrays are written in place, so references to them stay valid across steps.
    With ``reuse_buffers`` True (``Sequential`` sets it on its layers) forward writes y and
    backward writes dx into arrays the layer owns and reuses on its next call of the same shape:
    no allocation per step, but the caller must not keep them across calls. False (the default
    for a standalone layer): fresh arrays every call.
    """

    reuse_buffers = False

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        rng: np.random.Generator,
        init: str = "glorot_uniform",
        dtype=np.float64,
    ) -> None:
        for arg, value in (("n_in", n_in), ("n_out", n_out)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Dense: {arg}={value!r} is invalid; allowed: an integer >= 1")
        W = get_initializer(init)(rng, int(n_in), int(n_out), dtype)
        self.n_in, self.n_out, self.init = int(n_in), int(n_out), init
        self.params = {"W": W, "b": np.zeros(n_out, dtype=W.dtype)}
        self.grads = {"W": np.zeros_like(W), "b": np.zeros(n_out, dtype=W.dtype)}
        self._y_bufs: dict = {}
        self._dx_bufs: dict = {}
        self._ones: dict = {}

    def forward(self, x: Array) -> Array:
        self._x = x
        W = self.params["W"]
        x2 = x if x.ndim == 2 else x.reshape(-1, self.n_in)
        rows = x2.shape[0]
        if self.reuse_buffers and rows * self.n_out >= MIN_ELEMENTS and x2.dtype == W.dtype:
            y = np.matmul(x2, W, out=scratch(self._y_bufs, (rows, self.n_out), W.dtype))
        else:
            y = x2 @ W
        y += self.params["b"]
        return y if x.ndim == 2 else y.reshape(*x.shape[:-1], self.n_out)

    def backward(self, dy: Array, need_dx: bool = True) -> Array | None:
        """Write dW, db into ``grads``; return dx (or None when ``need_dx`` is False)."""
        x = self._x
        if x.ndim != 2:
            x = x.reshape(-1, self.n_in)
            dy = dy.reshape(-1, self.n_out)
        g = self.grads
        if dy.shape[0] == 1:  # an outer product: broadcasting beats a BLAS call
            np.multiply(x.T, dy, out=g["W"])
            g["b"][...] = dy[0]
        else:
            np.matmul(x.T, dy, out=g["W"])
            if dy.dtype == g["b"].dtype and dy.flags.c_contiguous:
                # db = 1^T dy: one BLAS call, 3-7x faster than a reduction over rows
                np.dot(ones(self._ones, dy.shape[0], dy.dtype), dy, out=g["b"])
            else:
                np.sum(dy, axis=0, out=g["b"])
        if not need_dx:
            return None
        W = self.params["W"]
        if self.reuse_buffers and dy.shape[0] * self.n_in >= MIN_ELEMENTS and dy.dtype == W.dtype:
            dx = np.matmul(dy, W.T, out=scratch(self._dx_bufs, (dy.shape[0], self.n_in), W.dtype))
        else:
            dx = dy @ W.T
        return dx if self._x.ndim == 2 else dx.reshape(self._x.shape)

    def __repr__(self) -> str:
        return f"Dense(n_in={self.n_in}, n_out={self.n_out}, init={self.init!r})"

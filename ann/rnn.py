"""Vanilla recurrent layer trained by (truncated) backpropagation through time.

Shared machinery for the recurrent layers also lives here (`RecurrentBase`): argument
validation, work buffers reused across calls while shapes stay the same, the truncation windows
and grad_flow. Internally sequences are time-major, `(n_steps, n_batch, ...)` here (the LSTM
uses `(n_steps, features, n_batch)`), so the slice of one step is contiguous; the public
interface stays batch-first, `(n_batch, n_steps, n_in)`. Outputs and dx are always fresh arrays,
never views of the work buffers.
"""

from __future__ import annotations

import numpy as np

from ann.activations import ELEMENTWISE, make_activation
from ann.initializers import glorot_uniform, orthogonal

Array = np.ndarray

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r} is invalid: allowed is an integer >= 1")
    return int(value)


class RecurrentBase:
    """Validation, work buffers and truncation windows shared by RNN and LSTM."""

    def __init__(self, n_in: int, n_hidden: int, *, return_sequences: bool,
                 truncate: int | None, dtype) -> None:
        self.n_in = _check_positive_int("n_in", n_in)
        self.n_hidden = _check_positive_int("n_hidden", n_hidden)
        self.truncate = None if truncate is None else _check_positive_int("truncate", truncate)
        self.return_sequences = bool(return_sequences)
        self.dtype = np.dtype(dtype)
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype={dtype!r} is invalid: allowed are float32, float64")
        self.grad_flow: Array | None = None
        self._buf: dict[str, Array] = {}
        self._shape: tuple[int, int] | None = None

    def _buffer(self, name: str, shape: tuple[int, ...]) -> Array:
        """A work array reused across calls while its shape stays the same (never zeroed)."""
        buf = self._buf.get(name)
        if buf is None or buf.shape != shape:
            buf = np.empty(shape, dtype=self.dtype)
            self._buf[name] = buf
        return buf

    def _check_input(self, x: Array) -> Array:
        """x as an array of shape (n_batch, n_steps, n_in); records (n_steps, n_batch)."""
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != self.n_in or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"x has shape {x.shape}: expected (n_batch, n_steps, {self.n_in})"
                             " with n_batch >= 1 and n_steps >= 1")
        self._shape = (x.shape[1], x.shape[0])
        return x

    def _time_major_input(self, x: Array) -> Array:
        """Copy x (n_batch, n_steps, n_in) into the time-major buffer (n_steps, n_batch, n_in)."""
        x = self._check_input(x)
        n_steps, n_batch = self._shape
        xt = self._buffer("x", (n_steps, n_batch, self.n_in))
        np.copyto(xt, x.transpose(1, 0, 2))
        return xt

    def _init_dh(self, dy: Array, *, feature_major: bool = False) -> Array:
        """dH holding the gradient from the layer's own output: (n_steps, n_batch, H), or
        (n_steps, H, n_batch) with ``feature_major`` (the LSTM's layout)."""
        if self._shape is None:
            raise RuntimeError("backward called before forward")
        n_steps, n_batch = self._shape
        H = self.n_hidden
        dy = np.asarray(dy)
        shape = (n_steps, H, n_batch) if feature_major else (n_steps, n_batch, H)
        dh = self._buffer("dh", shape)
        if self.return_sequences:
            if dy.shape != (n_batch, n_steps, H):
                raise ValueError(f"dy has shape {dy.shape}: expected {(n_batch, n_steps, H)}")
            np.copyto(dh, dy.transpose((1, 2, 0) if feature_major else (1, 0, 2)))
        else:
            if dy.shape != (n_batch, H):
                raise ValueError(f"dy has shape {dy.shape}: expected {(n_batch, H)}")
            dh[:-1] = 0.0
            dh[-1] = dy.T if feature_major else dy
        return dh

    def _carries(self, n_steps: int) -> list[bool]:
        """carries[t]: does the error signal flow from step t back into step t-1?

        Full BPTT: yes for every t >= 1. Truncated BPTT with window k: the windows are
        [T-k, T), [T-2k, T-k), ... (aligned to the end); the signal is cut at each window start.
        """
        carries = [t > 0 for t in range(n_steps)]
        if self.truncate is not None:
            for start in range(n_steps - self.truncate, 0, -self.truncate):
                carries[start] = False
        return carries

    def _finish_backward(self, dh: Array) -> None:
        """grad_flow[t] = ||dLoss/dh_t|| (Frobenius over the batch) for every step."""
        flat = dh.reshape(dh.shape[0], -1)
        self.grad_flow = np.sqrt(np.einsum("ij,ij->i", flat, flat)).astype(np.float64)

    def _output(self, hs: Array) -> Array:
        """Fresh batch-first output from the time-major hidden states hs (n_steps, n_batch, H)."""
        if self.return_sequences:
            return np.ascontiguousarray(hs.transpose(1, 0, 2))
        return hs[-1].copy()


class RNN(RecurrentBase):
    """Vanilla (Elman) recurrent layer.

    h_t = act(x_t @ W_xh + h_{t-1} @ W_hh + b_h),  h_{-1} = 0.
    Shapes: x (n_batch, n_steps, n_in) -> h_T (n_batch, n_hidden), or every h_t
    (n_batch, n_steps, n_hidden) with return_sequences. Params W_xh (n_in, H) glorot uniform,
    W_hh (H, H) orthogonal, b_h (H,) zeros. `activation` names an elementwise activation
    (ann.activations.ELEMENTWISE). BPTT: dz_t = (dy_t + dz_{t+1} @ W_hh.T) * act'(z_t);
    `truncate=k` cuts the signal at windows of k steps aligned to the end of the sequence.
    """

    def __init__(self, n_in: int, n_hidden: int, *, rng: np.random.Generator,
                 activation: str = "tanh", return_sequences: bool = False,
                 truncate: int | None = None, dtype=np.float64) -> None:
        super().__init__(n_in, n_hidden, return_sequences=return_sequences,
                         truncate=truncate, dtype=dtype)
        if activation not in ELEMENTWISE:
            raise ValueError(f"activation={activation!r} is invalid for RNN: allowed are "
                             f"{sorted(ELEMENTWISE)}")
        self.activation = activation
        self._act = make_activation(activation, dtype=self.dtype)
        H, dt = self.n_hidden, self.dtype
        self.params = {
            "W_xh": np.asarray(glorot_uniform(rng, self.n_in, H, dtype=dt), dtype=dt),
            "W_hh": np.asarray(orthogonal(rng, H, H, dtype=dt), dtype=dt),
            "b_h": np.zeros(H, dtype=dt),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _activate(self, z: Array, out: Array) -> None:
        if self.activation == "tanh":
            np.tanh(z, out=out)
        elif self.activation == "relu":
            np.maximum(z, 0.0, out=out)
        else:
            out[...] = self._act.apply(z)

    def forward(self, x: Array) -> Array:
        xt = self._time_major_input(x)
        n_steps, n_batch = self._shape
        H = self.n_hidden
        W_xh, W_hh, b_h = self.params["W_xh"], self.params["W_hh"], self.params["b_h"]
        z = self._buffer("z", (n_steps, n_batch, H))
        hs = self._buffer("h", (n_steps, n_batch, H))
        tmp = self._buffer("tmp", (n_batch, H))
        np.matmul(xt.reshape(-1, self.n_in), W_xh, out=z.reshape(-1, H))
        z += b_h
        self._activate(z[0], hs[0])
        for t in range(1, n_steps):
            np.matmul(hs[t - 1], W_hh, out=tmp)
            z[t] += tmp
            self._activate(z[t], hs[t])
        return self._output(hs)

    def _derivative(self, z: Array, hs: Array) -> Array:
        """act'(z) for every step, vectorised over time."""
        if self.activation == "tanh":
            d = self._buffer("d", z.shape)
            np.multiply(hs, hs, out=d)
            np.subtract(1.0, d, out=d)
            return d
        if self.activation == "relu":
            d = self._buffer("d", z.shape)
            np.greater(z, 0.0, out=d, casting="unsafe")
            return d
        return np.asarray(self._act.derivative(z, hs), dtype=self.dtype)

    def backward(self, dy: Array) -> Array:
        dh = self._init_dh(dy)
        n_steps, n_batch = self._shape
        H = self.n_hidden
        z, hs, xt = self._buf["z"], self._buf["h"], self._buf["x"]
        d = self._derivative(z, hs)
        dz = self._buffer("dz", (n_steps, n_batch, H))
        tmp = self._buffer("tmp", (n_batch, H))
        W_hhT = self._buffer("W_hhT", (H, H))
        np.copyto(W_hhT, self.params["W_hh"].T)          # contiguous: a faster product per step
        carries = self._carries(n_steps)
        for t in range(n_steps - 1, -1, -1):
            if t + 1 < n_steps and carries[t + 1]:
                if self.return_sequences:
                    np.matmul(dz[t + 1], W_hhT, out=tmp)
                    dh[t] += tmp
                else:
                    np.matmul(dz[t + 1], W_hhT, out=dh[t])
            np.multiply(dh[t], d[t], out=dz[t])
        # dW_hh = sum_t h_{t-1}^T dz_t: a cut stops the signal into h_{t-1}, but W_hh still
        # acts on that (constant) state, so every step t >= 1 contributes.
        self._finish_backward(dh)
        dz2 = dz.reshape(-1, H)
        np.matmul(hs[:-1].reshape(-1, H).T, dz[1:].reshape(-1, H), out=self.grads["W_hh"])
        np.matmul(xt.reshape(-1, self.n_in).T, dz2, out=self.grads["W_xh"])
        np.sum(dz2, axis=0, out=self.grads["b_h"])
        dx = dz2 @ self.params["W_xh"].T
        return np.ascontiguousarray(dx.reshape(n_steps, n_batch, self.n_in).transpose(1, 0, 2))

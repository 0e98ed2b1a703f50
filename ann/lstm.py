"""Long short-term memory layer with fused gates, trained by (truncated) BPTT.

Forward, per step (gate blocks in the order f, i, o, g; H = n_hidden):
    z_t = x_t @ W_x + h_{t-1} @ W_h + b                      (n_batch, 4H)
    f_t, i_t, o_t = sigmoid(z_t[f]), sigmoid(z_t[i]), sigmoid(z_t[o]);  g_t = tanh(z_t[g])
    c_t = f_t * c_{t-1} + i_t * g_t;   h_t = o_t * tanh(c_t);   h_{-1} = c_{-1} = 0
Backward, per step (dh_t = dy_t + dz_{t+1} @ W_h.T, dc carried from step t+1):
    dc_t = dc_{t+1} * f_{t+1} + dh_t * o_t * (1 - tanh(c_t)^2)
    dz_t = [dc_t * c_{t-1}, dc_t * g_t, dh_t * tanh(c_t), dc_t * i_t] * act'(z_t)

Speed: the input projection of every step is one matmul; each step does one h @ W_h and a
handful of elementwise calls on contiguous time-major buffers reused across calls. The sigmoid is
computed as 0.5 * (1 + tanh(z / 2)), so a single tanh covers all four gates of a step: the
f, i, o columns of the weights are pre-scaled by 1/2 and the result mapped by a*s + c.
dW_h and dW_x are single matmuls over all steps after the loop.
"""

from __future__ import annotations

import numpy as np

from ann.initializers import glorot_uniform, orthogonal
from ann.rnn import Array, RecurrentBase

GATES = ("f", "i", "o", "g")


class LSTM(RecurrentBase):
    """LSTM layer: params W_x (n_in, 4H) glorot uniform, W_h (H, 4H) orthogonal, b (4H,).

    b is zero except the forget block, set to `forget_bias`. Shapes: x (n_batch, n_steps, n_in)
    -> h_T (n_batch, H), or every h_t (n_batch, n_steps, H) with return_sequences.
    `truncate=k`: the error signal is cut at windows of k steps aligned to the end of the
    sequence (the forward state still carries over). After backward, `grad_flow` (n_steps,)
    holds ||dLoss/dh_t||; `gate_means` gives the mean f, i, o, g over the last forward.
    """

    def __init__(self, n_in: int, n_hidden: int, *, rng: np.random.Generator,
                 forget_bias: float = 1.0, return_sequences: bool = False,
                 truncate: int | None = None, dtype=np.float64) -> None:
        super().__init__(n_in, n_hidden, return_sequences=return_sequences,
                         truncate=truncate, dtype=dtype)
        if not np.isfinite(forget_bias):
            raise ValueError(f"forget_bias={forget_bias!r} is invalid: allowed is a finite float")
        self.forget_bias = float(forget_bias)
        H, dt = self.n_hidden, self.dtype
        b = np.zeros(4 * H, dtype=dt)
        b[:H] = self.forget_bias
        self.params = {
            "W_x": np.asarray(glorot_uniform(rng, self.n_in, 4 * H, dtype=dt), dtype=dt),
            "W_h": np.asarray(orthogonal(rng, H, 4 * H, dtype=dt), dtype=dt),
            "b": b,
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        # a = tanh(z * scale) * scale + shift is sigmoid on f, i, o and tanh on g.
        self._scale = np.full(4 * H, 0.5, dtype=dt)
        self._scale[3 * H:] = 1.0
        self._shift = np.full(4 * H, 0.5, dtype=dt)
        self._shift[3 * H:] = 0.0

    @property
    def gate_means(self) -> dict[str, float]:
        """Mean activation of each gate over batch, steps and units of the last forward."""
        if self._shape is None:
            return {}
        n_steps, n_batch = self._shape
        a = self._buf["a"].reshape(n_steps * n_batch, 4, self.n_hidden)
        means = a.mean(axis=(0, 2), dtype=np.float64)
        return {name: float(m) for name, m in zip(GATES, means)}

    def forward(self, x: Array) -> Array:
        xt = self._time_major_input(x)
        n_steps, n_batch = self._shape
        H = self.n_hidden
        scale, shift = self._scale, self._shift
        W_x = self._buffer("W_xs", self.params["W_x"].shape)
        W_h = self._buffer("W_hs", self.params["W_h"].shape)
        np.multiply(self.params["W_x"], scale, out=W_x)
        np.multiply(self.params["W_h"], scale, out=W_h)
        b = self.params["b"] * scale
        a = self._buffer("a", (n_steps, n_batch, 4 * H))      # gate activations f, i, o, g
        c = self._buffer("c", (n_steps, n_batch, H))
        tc = self._buffer("tc", (n_steps, n_batch, H))        # tanh(c_t)
        hs = self._buffer("h", (n_steps, n_batch, H))
        tmp4 = self._buffer("tmp4", (n_batch, 4 * H))
        tmp = self._buffer("tmp", (n_batch, H))
        np.matmul(xt.reshape(-1, self.n_in), W_x, out=a.reshape(-1, 4 * H))
        a += b
        for t in range(n_steps):
            at = a[t]
            if t > 0:
                np.matmul(hs[t - 1], W_h, out=tmp4)
                at += tmp4
            np.tanh(at, out=at)
            at *= scale
            at += shift
            f, i, o, g = at[:, :H], at[:, H:2 * H], at[:, 2 * H:3 * H], at[:, 3 * H:]
            if t > 0:
                np.multiply(f, c[t - 1], out=c[t])
                np.multiply(i, g, out=tmp)
                c[t] += tmp
            else:
                np.multiply(i, g, out=c[t])
            np.tanh(c[t], out=tc[t])
            np.multiply(o, tc[t], out=hs[t])
        return self._output(hs)

    def _backward_factors(self) -> tuple[Array, Array]:
        """Per-step factors, vectorised over time.

        q (n_steps, n_batch, 4, H) = [c_{t-1}, g_t, tanh(c_t), i_t] * act'(z_t) so that
        dz_t = [dc_t, dc_t, dh_t, dc_t] * q_t;  p (n_steps, n_batch, H) = o_t * (1 - tanh(c_t)^2).
        """
        n_steps, n_batch = self._shape
        H = self.n_hidden
        a4 = self._buf["a"].reshape(n_steps, n_batch, 4, H)
        c, tc = self._buf["c"], self._buf["tc"]
        q = self._buffer("q", (n_steps, n_batch, 4, H))
        sig, qs = a4[:, :, :3], q[:, :, :3]
        np.subtract(1.0, sig, out=qs)                          # sigmoid' = a (1 - a)
        qs *= sig
        g, qg = a4[:, :, 3], q[:, :, 3]
        np.multiply(g, g, out=qg)                              # tanh' = 1 - g^2
        np.subtract(1.0, qg, out=qg)
        q[0, :, 0] = 0.0                                       # c_{-1} = 0
        q[1:, :, 0] *= c[:-1]
        q[:, :, 1] *= g
        q[:, :, 2] *= tc
        q[:, :, 3] *= a4[:, :, 1]
        p = self._buffer("p", (n_steps, n_batch, H))
        np.multiply(tc, tc, out=p)
        np.subtract(1.0, p, out=p)
        p *= a4[:, :, 2]
        return q, p

    def backward(self, dy: Array) -> Array:
        dh = self._init_dh(np.asarray(dy))
        n_steps, n_batch = self._shape
        H = self.n_hidden
        q, p = self._backward_factors()
        a4 = self._buf["a"].reshape(n_steps, n_batch, 4, H)
        hs, xt = self._buf["h"], self._buf["x"]
        dz = self._buffer("dz", (n_steps, n_batch, 4 * H))
        dz4 = dz.reshape(n_steps, n_batch, 4, H)
        dc = self._buffer("dc", (n_batch, H))
        tmp = self._buffer("tmp", (n_batch, H))
        W_hT = self.params["W_h"].T
        carries = self._carries(n_steps)
        for t in range(n_steps - 1, -1, -1):
            dht = dh[t]
            if t + 1 < n_steps and carries[t + 1]:
                if self.return_sequences:
                    np.matmul(dz[t + 1], W_hT, out=tmp)
                    dht += tmp
                else:
                    np.matmul(dz[t + 1], W_hT, out=dht)
                dc *= a4[t + 1, :, 0]
                np.multiply(dht, p[t], out=tmp)
                dc += tmp
            else:
                np.multiply(dht, p[t], out=dc)
            np.multiply(dc[:, None, :], q[t], out=dz4[t])
            np.multiply(dht, q[t, :, 2], out=dz4[t, :, 2])
        self._finish_backward(dh)
        dz2 = dz.reshape(-1, 4 * H)
        np.matmul(hs[:-1].reshape(-1, H).T, dz[1:].reshape(-1, 4 * H), out=self.grads["W_h"])
        np.matmul(xt.reshape(-1, self.n_in).T, dz2, out=self.grads["W_x"])
        np.sum(dz2, axis=0, out=self.grads["b"])
        dx = dz2 @ self.params["W_x"].T
        return np.ascontiguousarray(dx.reshape(n_steps, n_batch, self.n_in).transpose(1, 0, 2))

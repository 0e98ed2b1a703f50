"""Long short-term memory layer with fused gates, trained by (truncated) BPTT.

Forward, per step (gate blocks in the order f, i, o, g; H = n_hidden):
    z_t = x_t @ W_x + h_{t-1} @ W_h + b                      (n_batch, 4H)
    f_t, i_t, o_t = sigmoid(z_t[f]), sigmoid(z_t[i]), sigmoid(z_t[o]);  g_t = tanh(z_t[g])
    c_t = f_t * c_{t-1} + i_t * g_t;   h_t = o_t * tanh(c_t);   h_{-1} = c_{-1} = 0
Backward, per step (dh_t = dy_t + dz_{t+1} @ W_h.T, dc carried from step t+1):
    dc_t = dc_{t+1} * f_{t+1} + dh_t * o_t * (1 - tanh(c_t)^2)
    dz_t = [dc_t * c_{t-1}, dc_t * g_t, dh_t * tanh(c_t), dc_t * i_t] * act'(z_t)

Speed. Internally every per-step array is feature-major, (features, n_batch), inside
time-major buffers reused across calls: the gates of a step form a contiguous (4H, n_batch)
block whose f, i, o, g slices are themselves contiguous, so each elementwise call runs on
contiguous memory. Per step: one W_h product and about ten elementwise calls forward, one
product and about twelve calls backward. The input projection (bias included) of all steps is
one batched product before the loop. The sigmoid is 0.5 * (1 + tanh(z / 2)): the f, i, o rows of
the weights are pre-scaled by 1/2, so one tanh covers the four gates of a step; backward uses
act'(z) = scale^2 * (1 - tanh(scale * z)^2), with scale^2 folded into the small weight matrices.
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
        # tanh(scale * z) * scale + (1 - scale) is sigmoid(z) on f, i, o and tanh(z) on g.
        self._scale = np.full(4 * H, 0.5, dtype=dt)
        self._scale[3 * H:] = 1.0

    @property
    def gate_means(self) -> dict[str, float]:
        """Mean activation of each gate over batch, steps and units of the last forward."""
        if self._shape is None:
            return {}
        n_steps, n_batch = self._shape
        H = self.n_hidden
        fio = self._buf["a"].reshape(n_steps, 3, H * n_batch).mean(axis=(0, 2), dtype=np.float64)
        g = self._buf["t"][:, 3 * H:].mean(dtype=np.float64)
        return {"f": float(fio[0]), "i": float(fio[1]), "o": float(fio[2]), "g": float(g)}

    def _output_fm(self, hs: Array) -> Array:
        """Batch-first output from feature-major states hs (n_steps, H, n_batch)."""
        if self.return_sequences:
            return np.ascontiguousarray(hs.transpose(2, 0, 1))
        return np.ascontiguousarray(hs[-1].T)

    def forward(self, x: Array) -> Array:
        x = self._check_input(x)
        n_batch, n_steps, n_in = x.shape
        H = self.n_hidden
        scale = self._scale[:, None]
        # inputs feature-major with a row of ones for the bias: (n_steps, n_in + 1, n_batch)
        xa = self._buffer("x", (n_steps, n_in + 1, n_batch))
        np.copyto(xa[:, :n_in], x.transpose(1, 2, 0))
        xa[:, n_in] = 1.0
        W_xb = self._buffer("W_xb", (4 * H, n_in + 1))          # [W_x; b].T * scale
        np.multiply(self.params["W_x"].T, scale, out=W_xb[:, :n_in])
        np.multiply(self.params["b"], self._scale, out=W_xb[:, n_in])
        W_hT = self._buffer("W_hT", (4 * H, H))                  # W_h.T * scale
        np.multiply(self.params["W_h"].T, scale, out=W_hT)
        th = self._buffer("t", (n_steps, 4 * H, n_batch))        # tanh(scale * z_t)
        a = self._buffer("a", (n_steps, 3 * H, n_batch))         # f, i, o
        c = self._buffer("c", (n_steps, H, n_batch))
        tc = self._buffer("tc", (n_steps, H, n_batch))           # tanh(c_t)
        hs = self._buffer("h", (n_steps, H, n_batch))
        tmp4 = self._buffer("tmp4", (4 * H, n_batch))
        tmp = self._buffer("tmp", (H, n_batch))
        np.matmul(W_xb, xa, out=th)
        for t in range(n_steps):
            tt, at = th[t], a[t]
            if t > 0:
                np.matmul(W_hT, hs[t - 1], out=tmp4)
                tt += tmp4
            np.tanh(tt, out=tt)
            np.multiply(tt[:3 * H], 0.5, out=at)
            at += 0.5
            f, i, o, g = at[:H], at[H:2 * H], at[2 * H:], tt[3 * H:]
            if t > 0:
                np.multiply(f, c[t - 1], out=c[t])
                np.multiply(i, g, out=tmp)
                c[t] += tmp
            else:
                np.multiply(i, g, out=c[t])
            np.tanh(c[t], out=tc[t])
            np.multiply(o, tc[t], out=hs[t])
        return self._output_fm(hs)

    def backward(self, dy: Array) -> Array:
        dh = self._init_dh(dy, feature_major=True)
        n_steps, n_batch = self._shape
        H, n_in = self.n_hidden, self.n_in
        th, a, c, tc, hs, xa = (self._buf[k] for k in ("t", "a", "c", "tc", "h", "x"))
        s2 = self._scale * self._scale
        W_h2 = self._buffer("W_h2", (H, 4 * H))                  # W_h * scale^2
        np.multiply(self.params["W_h"], s2, out=W_h2)
        dz = self._buffer("dz", (n_steps, 4 * H, n_batch))       # dz_t / scale^2
        dc = self._buffer("dc", (H, n_batch))
        dc_new = self._buffer("dc_new", (H, n_batch))
        tmp = self._buffer("tmp", (H, n_batch))
        deriv = self._buffer("deriv", (4 * H, n_batch))
        gW_h = self.grads["W_h"]
        gW_h[...] = 0.0
        gW_step = self._buffer("gW_step", (H, 4 * H))
        carries = self._carries(n_steps)
        for t in range(n_steps - 1, -1, -1):
            dht, dzt, at, tt = dh[t], dz[t], a[t], th[t]
            carry = t + 1 < n_steps and carries[t + 1]
            if carry:
                if self.return_sequences:
                    np.matmul(W_h2, dz[t + 1], out=tmp)
                    dht += tmp
                else:
                    np.matmul(W_h2, dz[t + 1], out=dht)
            dz_f, dz_i, dz_o, dz_g = dzt[:H], dzt[H:2 * H], dzt[2 * H:3 * H], dzt[3 * H:]
            # dc_t = dc_{t+1} f_{t+1} + dh_t o_t (1 - tc_t^2);  dh o (1 - tc^2) = dh o - dh tc h
            np.multiply(dht, tc[t], out=dz_o)
            np.multiply(dz_o, hs[t], out=tmp)
            np.multiply(dht, at[2 * H:], out=dc_new)
            dc_new -= tmp
            if carry:
                dc *= a[t + 1, :H]
                dc += dc_new
            else:
                dc, dc_new = dc_new, dc
            if t > 0:
                np.multiply(dc, c[t - 1], out=dz_f)
            else:
                dz_f[...] = 0.0
            np.multiply(dc, tt[3 * H:], out=dz_i)
            np.multiply(dc, at[H:2 * H], out=dz_g)
            np.multiply(tt, tt, out=deriv)
            np.subtract(1.0, deriv, out=deriv)
            dzt *= deriv
            if t > 0:                                            # dW_h += h_{t-1} dz_t^T
                np.matmul(hs[t - 1], dzt.T, out=gW_step)
                gW_h += gW_step
        self._finish_backward(dh)
        gW_h *= s2
        # input weights and bias: sum over steps of x_t dz_t^T (the ones row gives db)
        gW_xb = np.matmul(xa, dz.transpose(0, 2, 1)).sum(axis=0)  # (n_in + 1, 4H)
        np.multiply(gW_xb[:n_in], s2, out=self.grads["W_x"])
        np.multiply(gW_xb[n_in], s2, out=self.grads["b"])
        W_x2 = self.params["W_x"] * s2
        dx = np.matmul(W_x2, dz)                                 # (n_steps, n_in, n_batch)
        return np.ascontiguousarray(dx.transpose(2, 0, 1))

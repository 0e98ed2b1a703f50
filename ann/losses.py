"""Losses fused with their output activation, working on the last layer's raw output z.

Pairs: softmax + cross-entropy, sigmoid + binary cross-entropy, identity + mean squared error.
Each loss has ``forward(z, y) -> float`` (the mean, caching what backward needs),
``backward() -> dz`` (the gradient of that mean), ``predict(z)`` (probabilities or values) and,
for classifiers, ``predict_labels(z)``. Computed stably: logits of +-1000 give finite losses.
"""

from __future__ import annotations

import numpy as np

from ann._memory import scratch

Array = np.ndarray


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(z) against integer labels.

    L = mean_n [ logsumexp(z_n) - z_n[y_n] ];  dL/dz = (softmax(z) - onehot(y)) / N.
    Shapes: z (n_batch, n_classes) or (..., n_classes), y int (n_batch,) or (...); N = number
    of label positions.
    """

    task = "classification"

    def __init__(self) -> None:
        self._bufs: dict = {}  # exp(z - max), reused across calls (never returned)

    def forward(self, z: Array, y: Array) -> float:
        n_classes = z.shape[-1]
        z2 = z.reshape(-1, n_classes)
        y = np.asarray(y)
        if y.shape != z.shape[:-1]:
            raise ValueError(f"SoftmaxCrossEntropy: labels of shape {y.shape} do not match logits {z.shape}")
        y = y.reshape(-1)
        n = z2.shape[0]
        if n >= 256 and n_classes <= 16 and z2.dtype.kind == "f":
            # a large batch: max over the short class axis by a loop over columns (faster than
            # a reduction along rows), exp in place in a reused buffer, row sums as e @ 1
            m = np.maximum(z2[:, 0], z2[:, 1 % n_classes])
            for j in range(2, n_classes):
                np.maximum(m, z2[:, j], out=m)
            e = np.subtract(z2, m[:, None], out=scratch(self._bufs, z2.shape, z2.dtype))
        else:
            e = z2 - z2.max(axis=1, keepdims=True)
            if e.dtype.kind != "f":
                e = e.astype(np.float64)
        flat = np.arange(0, n * n_classes, n_classes)
        np.add(flat, y, out=flat, casting="unsafe")  # flat index of (row, label)
        picked = e.reshape(-1)[flat].sum()  # sum of z[n, y_n] - max_n
        np.exp(e, out=e)
        total = np.dot(e, np.ones(n_classes, e.dtype)) if n >= 256 and n_classes <= 16 else e.sum(axis=1)
        loss = np.log(total).sum() - picked
        self._e, self._total, self._flat, self._shape = e, total, flat, z.shape
        return float(loss) / n

    @property
    def _p(self) -> Array:
        """softmax(z) of the last forward (a fresh array)."""
        return self._e / self._total[:, None]

    def backward(self) -> Array:
        dz = self._e / self._total[:, None]  # softmax(z), a fresh array
        dz.reshape(-1)[self._flat] -= 1.0
        dz *= 1.0 / dz.shape[0]
        return dz.reshape(self._shape)

    def predict(self, z: Array) -> Array:
        """Class probabilities softmax(z), same shape as z."""
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        e /= e.sum(axis=-1, keepdims=True)
        return e

    def predict_labels(self, z: Array) -> Array:
        """Most probable class, shape z.shape[:-1]."""
        return z.argmax(axis=-1)


def _log_sigmoid_terms(z: Array) -> Array:
    """softplus(z) = log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)), elementwise and stable."""
    return np.logaddexp(0.0, z)


class SigmoidBinaryCrossEntropy:
    """Mean binary cross-entropy of sigmoid(z) against labels in {0, 1} (logits form).

    L = mean [ softplus(z) - y z ]  (= -y log s - (1 - y) log(1 - s), s = sigmoid(z));
    dL/dz = (s - y) / N.  Shapes: z (n_batch, 1), y (n_batch,) (or y shaped like z).
    """

    task = "classification"

    def forward(self, z: Array, y: Array) -> float:
        y = np.asarray(y)
        if y.size != z.size:
            raise ValueError(f"SigmoidBinaryCrossEntropy: labels of shape {y.shape} do not match logits {z.shape}")
        y = y.reshape(z.shape).astype(z.dtype, copy=False)
        self._z, self._y = z, y
        return float((_log_sigmoid_terms(z) - y * z).mean())

    def backward(self) -> Array:
        dz = self.predict(self._z)
        dz -= self._y
        dz *= 1.0 / dz.size
        return dz

    def predict(self, z: Array) -> Array:
        """Probability of class 1, sigmoid(z), same shape as z."""
        s = np.tanh(z * 0.5)
        s *= 0.5
        s += 0.5
        return s

    def predict_labels(self, z: Array) -> Array:
        """1 where z > 0 (probability > 0.5) else 0, shape z.shape[:-1]."""
        return (z > 0).astype(np.int64).reshape(z.shape[:-1])


class MeanSquaredError:
    """Mean squared error over all elements: L = mean((z - y)^2);  dL/dz = 2 (z - y) / z.size.

    Shapes: y shaped like z (a y with the same number of elements, e.g. (n_batch,) against
    z (n_batch, 1), is reshaped to z's shape; anything else raises ValueError).
    """

    task = "regression"

    def forward(self, z: Array, y: Array) -> float:
        y = np.asarray(y)
        if y.shape != z.shape:
            if y.size != z.size:
                raise ValueError(f"MeanSquaredError: targets of shape {y.shape} do not match outputs {z.shape}")
            y = y.reshape(z.shape)
        r = z - y
        self._r = r
        return float(np.vdot(r, r)) / r.size

    def backward(self) -> Array:
        return self._r * (2.0 / self._r.size)

    def predict(self, z: Array) -> Array:
        """The outputs themselves (identity output)."""
        return z


LOSSES: dict[str, type] = {
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "sigmoid_binary_cross_entropy": SigmoidBinaryCrossEntropy,
    "mean_squared_error": MeanSquaredError,
}

TASKS = ("classification", "regression")


def make_loss(name: str):
    """Build the loss registered as ``name``; unknown names raise ValueError listing valid ones."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]()


def loss_for_task(task: str, n_classes: int = 0):
    """The loss paired with a task: softmax cross-entropy for every classification (binary
    included, with n_classes outputs), mean squared error for regression."""
    if task == "classification":
        if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
            raise ValueError(
                f"loss_for_task: n_classes={n_classes!r} is invalid for classification; allowed: an integer >= 2"
            )
        return SoftmaxCrossEntropy()
    if task == "regression":
        return MeanSquaredError()
    raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")

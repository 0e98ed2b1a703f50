"""MLP 64-128-64-10 (ReLU, softmax cross-entropy) on digits: seconds per training epoch.

    .venv/bin/python benchmarks/bench_mlp.py [--quick] [--threads N] [--markdown]

Peers, all on the same standardised digits training split (ann.data.load_dataset("digits"),
1257 samples), plain SGD (no momentum, no weight decay), every peer pinned to the same number
of BLAS / torch threads (default 1):

- ann: `ann.training.fit` itself; its `epoch_seconds` metric times the updates of one epoch
  (evaluation excluded). The permutation gather X[perm], y[perm] that fit does just before its
  timer is measured separately and added, so every peer pays for its shuffling.
- scikit-learn: MLPClassifier(solver="sgd", hidden_layer_sizes=(128, 64), momentum=0,
  alpha=0, shuffle=True), one `partial_fit` call = one epoch (sklearn iterates max_iter=1 epoch).
- PyTorch CPU (when installed): nn.Sequential(Linear, ReLU, ...), CrossEntropyLoss,
  torch.optim.SGD, manual batching over torch.randperm; the loop a user would write.
- floor: the matrix products of one epoch alone, each timed on the spot with np.dot on
  matrices of exactly the shapes ann multiplies (forward x@W for 3 layers; backward x^T@dy for 3
  layers and dy@W^T for the 2 upper layers, the input's gradient is never needed), summed over
  the epoch's batches (the last partial batch included).
- numpy (full batch only): one SGD step on the whole split as straight-line NumPy, every buffer
  preallocated once outside the timing, no layer objects: what plain NumPy does with each
  elementwise operation (bias adds, ReLU and its mask, softmax cross-entropy gradient, SGD update)
  as its own unfused pass. Its gradients are checked equal to ann's before timing.

Allocator: `fit` calls `ann._memory.keep_freed_memory()` (glibc keeps freed blocks in the heap);
the setting is process-wide, so `run` applies it before the first measurement and every peer
(sklearn, torch, the floor) runs under it too.

Targets (issue 5): batch 32 and batch 1 at most 0.5x both peers; full batch float64 within 1.2x
of the floor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (add_common_args, machine_summary,  # noqa: E402
                               per_call_time, pinned_threads, print_table, ratio, torch_available)

SIZES = (64, 128, 64, 10)
HIDDEN = (128, 64)
LR = 0.01
SEED = 0
BATCHES = (1, 32, None)  # None = full batch
DTYPES = ("float64", "float32")


def load_digits(dtype: str):
    """The standardised digits training split (the one fit trains on), in `dtype`."""
    from ann.data import load_dataset

    return load_dataset("digits", rng=np.random.default_rng(SEED), dtype=np.dtype(dtype))


# ----------------------------------------------------------------------------------------- ann
def ann_epoch(data, batch_size: int | None):
    """A callable running one epoch of `ann.training.fit` (max_epochs=1, continuing from the
    current weights) and returning its seconds: fit's epoch_seconds (updates only, evaluation
    excluded) plus the permutation gather X[perm], y[perm] that fit does just before its timer."""
    from ann.models import build_mlp
    from ann.optimizers import SGD
    from ann.training import fit

    dtype = data.X_train.dtype
    model = build_mlp(data.n_in, list(HIDDEN), data.n_out, activation="relu", task="classification",
                      rng=np.random.default_rng(SEED), dtype=dtype)
    optimizer, rng = SGD(LR), np.random.default_rng(SEED + 1)
    n = len(data.X_train)
    gather_s = 0.0
    if batch_size is not None and batch_size < n:
        X, y, grng = data.X_train, data.y_train, np.random.default_rng(0)

        def gather():
            perm = grng.permutation(n)
            return X[perm], y[perm]

        gather_s = per_call_time(gather, min_seconds=0.01, repeats=3)

    def epoch() -> float:
        result = fit(model, data, optimizer=optimizer, batch_size=batch_size, max_epochs=1, rng=rng,
                     divergence_factor=None)
        return result.history["epoch_seconds"][0] + gather_s

    return epoch


def timed(fn):
    """Wrap fn() into a callable returning its wall seconds."""
    def call() -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    return call


# ------------------------------------------------------------------------------------- sklearn
def sklearn_epoch(data, batch_size: int | None):
    """A callable running one MLPClassifier.partial_fit call (= one SGD epoch), returning seconds."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X, y = data.X_train, data.y_train
    n = len(X)
    clf = MLPClassifier(hidden_layer_sizes=HIDDEN, activation="relu", solver="sgd",
                        batch_size=n if batch_size is None else batch_size, learning_rate_init=LR,
                        learning_rate="constant", momentum=0.0, nesterovs_momentum=False, alpha=0.0,
                        max_iter=1, shuffle=True, tol=0.0, random_state=SEED)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    clf.partial_fit(X, y, classes=np.arange(data.n_classes))  # initialisation + a first epoch
    if clf.coefs_[0].dtype != X.dtype:
        raise RuntimeError(f"sklearn trains in {clf.coefs_[0].dtype}, not {X.dtype}")
    return timed(lambda: clf.partial_fit(X, y))


# --------------------------------------------------------------------------------------- torch
def torch_epoch(data, batch_size: int | None):
    """A callable running one epoch of a plain PyTorch CPU loop, returning seconds (None
    without torch)."""
    if not torch_available():
        return None
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    tdtype = torch.float64 if data.X_train.dtype == np.float64 else torch.float32
    X = torch.from_numpy(np.ascontiguousarray(data.X_train)).to(tdtype)
    y = torch.from_numpy(data.y_train.astype(np.int64))
    n = len(X)
    layers: list[nn.Module] = []
    for a, b in zip(SIZES[:-2], SIZES[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(SIZES[-2], SIZES[-1]))
    model = nn.Sequential(*layers).to(tdtype)
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    bs = n if batch_size is None else min(batch_size, n)

    def epoch() -> None:
        if bs >= n:  # full batch: order is irrelevant (ann does not permute either)
            opt.zero_grad()
            loss_fn(model(X), y).backward()
            opt.step()
            return
        perm = torch.randperm(n)
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()

    return timed(epoch)


# --------------------------------------------------------------------------------------- floor
def product_shapes(b: int) -> list[tuple[str, tuple[int, int], tuple[int, int], bool]]:
    """(name, shape of A, shape of B, A is a transposed view) for every product ann does on a
    batch of b rows: forward x@W, backward x^T@dy and dy@W^T (no dx for the input layer)."""
    shapes = []
    for i, (a, o) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        shapes.append((f"fwd{i}", (b, a), (a, o), False))
        shapes.append((f"dW{i}", (a, b), (b, o), True))
        if i > 0:
            shapes.append((f"dx{i}", (b, o), (o, a), True))
    return shapes


def floor_epoch(n: int, batch_size: int | None, dtype: str):
    """A callable returning (seconds, FLOPs) of the matrix products alone over one epoch of n
    samples: each product of a full batch (and of the last partial batch) timed with np.dot on
    matrices of its shape and layout, times the number of such batches."""
    rng = np.random.default_rng(SEED)
    bs = n if batch_size is None or batch_size >= n else batch_size
    n_full, rest = divmod(n, bs)
    groups = [(bs, n_full)] + ([(rest, 1)] if rest else [])
    cases = []  # (count, A, B, out, flops)
    for b, count in groups:
        for _name, (m, k), (k2, n_cols), transposed_a in product_shapes(b):
            A = rng.standard_normal((k, m) if transposed_a else (m, k)).astype(dtype)
            A = A.T if transposed_a else A  # x^T and W^T are views, as in ann.layers.Dense
            B = rng.standard_normal((k2, n_cols)).astype(dtype)
            cases.append((count, A, B, np.empty((m, n_cols), dtype=dtype), 2.0 * m * k * n_cols))

    def epoch() -> tuple[float, float]:
        seconds = flops = 0.0
        for count, A, B, out, f in cases:
            seconds += count * per_call_time(lambda: np.dot(A, B, out=out), min_seconds=0.004, repeats=3)
            flops += count * f
        return seconds, flops

    return epoch


# --------------------------------------------------------------------------------------- numpy
class NumpyStep:
    """One full-batch SGD step of the MLP written as straight-line NumPy: every buffer
    (activations, masks, softmax, gradients, update temporaries) is allocated here, once, and
    each call of ``step`` only writes into them. Same math and the same products (shapes,
    layouts) as ann: forward A = relu(X@W + b) for the hidden layers, Z = A2@W4 + b4;
    dz = (softmax(Z) - onehot(y)) / N in place; backward g = A^T@d, gb = 1^T@d, d = (d@W^T) *
    (A > 0) through a boolean mask; W -= lr * g for the 6 parameters. The loss value itself is
    not computed (the gradient does not need it), nor a gradient norm. ``weights`` (keyed like
    ann's ``model.params()``, copied) are trained in place across calls."""

    KEYS = ("0.W", "0.b", "2.W", "2.b", "4.W", "4.b")

    def __init__(self, X: np.ndarray, y: np.ndarray, weights: dict[str, np.ndarray], lr: float) -> None:
        dtype = X.dtype
        self.X = np.ascontiguousarray(X)
        n = len(X)
        self.n, self.lr = n, lr
        self.params = {k: np.array(weights[k], dtype=dtype, copy=True) for k in self.KEYS}
        h1, h2, c = self.params["0.W"].shape[1], self.params["2.W"].shape[1], self.params["4.W"].shape[1]
        e = np.empty
        self.A1, self.A2, self.Z = e((n, h1), dtype), e((n, h2), dtype), e((n, c), dtype)
        self.D1, self.D2 = e((n, h1), dtype), e((n, h2), dtype)
        self.M1, self.M2 = e((n, h1), np.bool_), e((n, h2), np.bool_)
        self.m, self.s = e(n, dtype), e(n, dtype)  # row max, row sums of exp
        self.ones_n, self.ones_c = np.ones(n, dtype), np.ones(c, dtype)
        self.flat = np.arange(n) * c + np.asarray(y, dtype=np.intp)  # flat index of (row, label)
        self.grads = {k: np.empty_like(v) for k, v in self.params.items()}
        self.tmp = {k: np.empty_like(v) for k, v in self.params.items()}  # lr * g

    def step(self) -> None:
        X, p, g, mm = self.X, self.params, self.grads, np.matmul
        W0, b0, W2, b2, W4, b4 = (p[k] for k in self.KEYS)
        A1, A2, Z, D1, D2, M1, M2 = self.A1, self.A2, self.Z, self.D1, self.D2, self.M1, self.M2
        # forward
        mm(X, W0, out=A1)
        A1 += b0
        np.maximum(A1, 0.0, out=A1)
        mm(A1, W2, out=A2)
        A2 += b2
        np.maximum(A2, 0.0, out=A2)
        mm(A2, W4, out=Z)
        Z += b4
        # dz = (softmax(Z) - onehot) / N, in Z
        m = self.m
        np.maximum(Z[:, 0], Z[:, 1], out=m)  # row max by columns: ~4x faster than max(axis=1)
        for j in range(2, Z.shape[1]):
            np.maximum(m, Z[:, j], out=m)
        np.subtract(Z, m[:, None], out=Z)
        np.exp(Z, out=Z)
        mm(Z, self.ones_c, out=self.s)
        np.divide(Z, self.s[:, None], out=Z)
        Z.reshape(-1)[self.flat] -= 1.0
        Z *= 1.0 / self.n
        # backward
        mm(A2.T, Z, out=g["4.W"])
        mm(self.ones_n, Z, out=g["4.b"])
        mm(Z, W4.T, out=D2)
        np.greater(A2, 0.0, out=M2)
        np.multiply(D2, M2, out=D2)
        mm(A1.T, D2, out=g["2.W"])
        mm(self.ones_n, D2, out=g["2.b"])
        mm(D2, W2.T, out=D1)
        np.greater(A1, 0.0, out=M1)
        np.multiply(D1, M1, out=D1)
        mm(X.T, D1, out=g["0.W"])
        mm(self.ones_n, D1, out=g["0.b"])
        # SGD
        lr, tmp = self.lr, self.tmp
        for k in self.KEYS:
            np.multiply(g[k], lr, out=tmp[k])
            np.subtract(p[k], tmp[k], out=p[k])

    def loss(self, y: np.ndarray) -> float:
        """Mean cross-entropy of the current weights on the whole split (fresh arrays; untimed)."""
        p = self.params
        a = np.maximum(self.X @ p["0.W"] + p["0.b"], 0.0)
        a = np.maximum(a @ p["2.W"] + p["2.b"], 0.0)
        z = a @ p["4.W"] + p["4.b"]
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(z)), y]))


def ann_initial_weights(data) -> dict[str, np.ndarray]:
    """The initial weights of the model ann_epoch builds (same seed), copied."""
    from ann.models import build_mlp

    model = build_mlp(data.n_in, list(HIDDEN), data.n_out, activation="relu", task="classification",
                      rng=np.random.default_rng(SEED), dtype=data.X_train.dtype)
    return model.get_weights()


def check_numpy_step(data) -> None:
    """Untimed: from identical weights, one NumpyStep step's gradients equal ann's
    (model.loss + model.backward, model.grads()) to rtol 1e-10 (float64 data); raises if not."""
    from ann.models import build_mlp

    X, y = data.X_train, data.y_train
    model = build_mlp(data.n_in, list(HIDDEN), data.n_out, activation="relu", task="classification",
                      rng=np.random.default_rng(SEED), dtype=X.dtype)
    ref = NumpyStep(X, y, model.get_weights(), LR)
    model.loss(X, y)
    model.backward()
    ref.step()
    grads = model.grads()
    if set(grads) != set(NumpyStep.KEYS):
        raise RuntimeError(f"ann's MLP has parameters {sorted(grads)}, expected {list(NumpyStep.KEYS)}")
    for k in NumpyStep.KEYS:
        if not np.allclose(ref.grads[k], grads[k], rtol=1e-10, atol=0.0):
            err = np.max(np.abs(ref.grads[k] - grads[k]) / np.maximum(np.abs(grads[k]), 1e-300))
            raise RuntimeError(f"numpy reference: gradient {k} differs from ann's "
                               f"(max rel. error {err:.3g})")


def numpy_epoch(data, batch_size: int | None):
    """A callable running one NumpyStep step (= one full-batch epoch) and returning its seconds,
    plus the reference itself (to check its loss afterwards); (None, None) unless full batch."""
    n = len(data.X_train)
    if batch_size is not None and batch_size < n:
        return None, None
    ref = NumpyStep(data.X_train, data.y_train, ann_initial_weights(data), LR)
    return timed(ref.step), ref


# ---------------------------------------------------------------------------------------- main
TARGETS = {1: ("peers", 0.5), 32: ("peers", 0.5), None: ("floor", 1.2)}


def verdict(batch: int | None, dtype: str, r_sk, r_torch, r_floor) -> str:
    """'ok' / 'MISS' against the issue's target for this configuration ('' when none)."""
    kind, limit = TARGETS[batch]
    if kind == "peers":
        ratios = [r for r in (r_sk, r_torch) if r is not None]
        return "ok" if ratios and max(ratios) <= limit else "MISS"
    if dtype != "float64":
        return ""
    return "ok" if r_floor is not None and r_floor <= limit else "MISS"


def run(quick: bool = False, threads: int = 1, repeats: int | None = None,
        markdown: bool = False) -> list[list]:
    """Measure every configuration and print the table; returns its rows.

    The peers are timed round-robin (one epoch of each per round, after a warm-up round) so
    that load from other processes on the machine hits them alike; each figure is the median
    over the rounds."""
    rounds = repeats or (3 if quick else 7)
    headers = ["config", "ann s/ep", "sklearn s/ep", "torch s/ep", "numpy s/ep", "floor s/ep",
               "GEMM GF/s", "ann/sklearn", "ann/torch", "ann/floor", "numpy/floor", "target"]
    rows = []
    n = 0
    from ann._memory import keep_freed_memory

    keep_freed_memory()  # what fit does; process-wide, so every peer gets it from the start
    with pinned_threads(threads):
        check_numpy_step(load_digits("float64"))  # the numpy reference does ann's work (untimed)
        for dtype in DTYPES:
            data = load_digits(dtype)
            n = len(data.X_train)
            for batch in BATCHES:
                np_epoch, np_ref = numpy_epoch(data, batch)
                peers = {"ann": ann_epoch(data, batch), "sklearn": sklearn_epoch(data, batch),
                         "torch": torch_epoch(data, batch), "numpy": np_epoch}
                floor = floor_epoch(n, batch, dtype)
                times: dict[str, list[float]] = {k: [] for k in peers}
                floors: list[tuple[float, float]] = []
                n_rounds = max(2, rounds // 2) if batch == 1 else rounds  # an epoch = n steps
                for r in range(n_rounds + 1):
                    for name, epoch in peers.items():
                        if epoch is not None:
                            seconds = epoch()
                            if r:  # round 0 is the warm-up
                                times[name].append(seconds)
                    floors.append(floor())
                if np_ref is not None and not np.isfinite(np_ref.loss(data.y_train)):
                    raise RuntimeError(f"numpy reference diverged (loss {np_ref.loss(data.y_train)})")
                med = {k: statistics.median(v) if v else None for k, v in times.items()}
                t_floor = statistics.median(f[0] for f in floors)
                gflops = floors[0][1] / t_floor / 1e9
                r_sk, r_t = ratio(med["ann"], med["sklearn"]), ratio(med["ann"], med["torch"])
                r_f, r_np = ratio(med["ann"], t_floor), ratio(med["numpy"], t_floor)
                label = f"b={'full' if batch is None else batch} {dtype}"
                rows.append([label, med["ann"], med["sklearn"], med["torch"], med["numpy"], t_floor,
                             gflops, r_sk, r_t, r_f, r_np, verdict(batch, dtype, r_sk, r_t, r_f)])
                print(f"  measured {label}", file=sys.stderr, flush=True)
    print_table(f"MLP 64-128-64-10 on digits ({n} training samples), seconds per epoch, "
                f"{threads} thread(s), SGD lr={LR}, median of {rounds} rounds "
                f"({max(2, rounds // 2)} at b=1)", headers, rows, markdown=markdown)
    print("targets: b=1 and b=32 ann/sklearn and ann/torch <= 0.5; b=full float64 ann/floor <= 1.2")
    print("numpy: the full-batch step as straight-line NumPy, buffers preallocated (a reference, "
          "not a target; '-' at b=1 and b=32)")
    return rows


def main(argv: list[str] | None = None) -> list[list]:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    if not torch_available():
        print("PyTorch not installed: the torch column is skipped", file=sys.stderr)
    with pinned_threads(args.threads):
        print(machine_summary())
    return run(quick=args.quick, threads=args.threads, repeats=args.repeats, markdown=args.markdown)


if __name__ == "__main__":
    main()

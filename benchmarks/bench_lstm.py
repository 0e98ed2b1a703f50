"""One epoch of LSTM / RNN training: ann (NumPy) against torch.nn.LSTM / nn.RNN.

Work per epoch: n_seq sequences of the adding problem (T=100 steps, 2 inputs) in batches of 32,
a recurrent layer of 64 units, a linear head on the last state, mean squared error, and one
plain SGD update per batch (forward + backward + update). Same dtype, same thread count, same
data for both sides; the figure is the median over several epochs after a warm-up epoch,
ann and torch epochs timed alternately.

    .venv/bin/python benchmarks/bench_lstm.py            # full run
    .venv/bin/python benchmarks/bench_lstm.py --quick    # about half a minute
Targets (issue 5): LSTM float64 <= 0.8x torch, float32 <= 1.5x torch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (add_common_args, machine_summary, pinned_threads, print_table,  # noqa: E402
                    ratio, torch_available)

from ann.optimizers import SGD  # noqa: E402
from ann.recurrent import build_recurrent  # noqa: E402
from ann.sequences import make_adding  # noqa: E402

T, HIDDEN, BATCH, N_IN, LR = 100, 64, 32, 2, 0.01


def ann_epoch(kind: str, X: np.ndarray, y: np.ndarray, dtype):
    """A closure running one training epoch of an ann recurrent model."""
    model = build_recurrent(kind, N_IN, HIDDEN, 1, task="regression",
                            rng=np.random.default_rng(0), dtype=dtype)
    opt = SGD(lr=LR)
    params, grads = model.params(), model.grads()
    X, y = X.astype(dtype), y.astype(dtype)
    batches = [(X[s:s + BATCH], y[s:s + BATCH]) for s in range(0, len(X), BATCH)]

    def epoch():
        for xb, yb in batches:
            model.loss(xb, yb)
            model.backward()
            opt.step(params, grads)
    return epoch


def torch_epoch(kind: str, X: np.ndarray, y: np.ndarray, dtype):
    """The same epoch with torch.nn.LSTM / nn.RNN + Linear + MSELoss + optim.SGD."""
    import torch

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    torch.manual_seed(0)
    cls = torch.nn.LSTM if kind == "lstm" else torch.nn.RNN
    rnn = cls(N_IN, HIDDEN, batch_first=True, dtype=tdtype)
    head = torch.nn.Linear(HIDDEN, 1, dtype=tdtype)
    opt = torch.optim.SGD(list(rnn.parameters()) + list(head.parameters()), lr=LR)
    loss_fn = torch.nn.MSELoss()
    Xt = torch.tensor(X, dtype=tdtype)
    yt = torch.tensor(y, dtype=tdtype)
    batches = [(Xt[s:s + BATCH], yt[s:s + BATCH]) for s in range(0, len(X), BATCH)]

    def epoch():
        for xb, yb in batches:
            opt.zero_grad(set_to_none=False)
            out, _ = rnn(xb)
            loss = loss_fn(head(out[:, -1]), yb)
            loss.backward()
            opt.step()
    return epoch


def interleaved_medians(fn_a, fn_b, repeats: int) -> tuple[float, float | None]:
    """Median seconds of fn_a and fn_b, timed alternately (a, b, a, b, ...) after one warm-up
    call each, so that a load change on a shared machine hits both sides alike."""
    fns = [fn for fn in (fn_a, fn_b) if fn is not None]
    times: list[list[float]] = [[] for _ in fns]
    for fn in fns:
        fn()
    for _ in range(repeats):
        for fn, acc in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    medians = [statistics.median(acc) for acc in times]
    return medians[0], (medians[1] if fn_b is not None else None)


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--n-seq", type=int, default=None, help="sequences per epoch")
    parser.add_argument("--kinds", default="lstm,rnn", help="comma-separated: lstm,rnn")
    args = parser.parse_args(argv)
    n_seq = args.n_seq or (256 if args.quick else 1024)
    repeats = args.repeats or (3 if args.quick else 5)
    X, y = make_adding(n_seq, T, np.random.default_rng(0))
    have_torch = torch_available()
    print(machine_summary())
    print(f"work: {n_seq} sequences/epoch, T={T}, hidden={HIDDEN}, batch={BATCH}, "
          f"n_in={N_IN}, threads={args.threads}, median of {repeats} epochs")
    rows = []
    with pinned_threads(args.threads):
        for kind in args.kinds.split(","):
            for dtype in (np.float64, np.float32):
                t_ann, t_torch = interleaved_medians(
                    ann_epoch(kind, X, y, dtype),
                    torch_epoch(kind, X, y, dtype) if have_torch else None, repeats)
                r = ratio(t_ann, t_torch)
                target = {"lstm": {np.float64: 0.8, np.float32: 1.5}}.get(kind, {}).get(dtype)
                verdict = ("-" if r is None or target is None
                           else "met" if r <= target else "missed")
                rows.append([kind, np.dtype(dtype).name, t_ann, t_torch, r, target, verdict])
                print(f"  {kind} {np.dtype(dtype).name}: ann {t_ann:.4g}s"
                      + (f", torch {t_torch:.4g}s, ratio {r:.2f}" if r is not None else ""),
                      flush=True)
    print_table("one training epoch (seconds)",
                ["model", "dtype", "ann s", "torch s", "ann/torch", "target", "verdict"],
                rows, markdown=args.markdown)


if __name__ == "__main__":
    main()

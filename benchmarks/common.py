"""Shared benchmark helpers: timing, BLAS/thread information and pinning, table printing.

Timing is the median of `repeats` measurements with time.perf_counter after `warmup` untimed
calls. Thread pinning applies one count to every BLAS/OpenMP pool (threadpoolctl) and to
PyTorch (torch.set_num_threads) so that every peer runs with the same number of threads.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np  # loaded first so that its BLAS is among the pools pinned_threads limits
from threadpoolctl import threadpool_info, threadpool_limits


def median_time(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time in seconds of fn() over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def per_call_time(fn: Callable[[], Any], *, min_seconds: float = 0.02, repeats: int = 5) -> float:
    """Median seconds per call of a fast fn: each measurement loops fn enough times to last
    about `min_seconds` (the loop count is calibrated once), median over `repeats`."""
    fn()
    n, elapsed = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds / 4 or n >= 1 << 20:
            break
        n *= 4
    n = max(1, int(n * min_seconds / max(elapsed, 1e-9)))
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def blas_info() -> list[dict[str, Any]]:
    """The thread pools NumPy (and torch, once imported) use: api, version, kernel, threads."""
    rows = []
    for pool in threadpool_info():
        rows.append({
            "user_api": pool.get("user_api"),
            "internal_api": pool.get("internal_api"),
            "version": pool.get("version"),
            "kernel": pool.get("architecture") or pool.get("coretype") or "",
            "num_threads": pool.get("num_threads"),
            "library": os.path.basename(pool.get("filepath", "")),
        })
    return rows


def machine_summary() -> str:
    """One paragraph: CPU count, Python, NumPy BLAS and kernel, OPENBLAS_CORETYPE, torch."""
    lines = [f"machine: {os.cpu_count()} logical cores, {platform.machine()}, "
             f"Python {platform.python_version()}, NumPy {np.__version__}"]
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    lines.append(f"OPENBLAS_CORETYPE={coretype if coretype is not None else '(unset)'}")
    for row in blas_info():
        lines.append(f"  {row['user_api']}: {row['internal_api']} {row['version']} "
                     f"kernel={row['kernel'] or '?'} threads={row['num_threads']} ({row['library']})")
    try:
        import torch

        lines.append(f"torch {torch.__version__}, intra-op threads={torch.get_num_threads()}")
    except ImportError:
        lines.append("torch: not installed (its columns are skipped)")
    return "\n".join(lines)


def blas_kernel() -> str:
    """Short label of NumPy's BLAS: e.g. 'openblas 0.3.27 Haswell'."""
    for row in blas_info():
        if row["user_api"] == "blas":
            return f"{row['internal_api']} {row['version']} {row['kernel']}".strip()
    return "unknown BLAS"


@contextlib.contextmanager
def pinned_threads(n: int) -> Iterator[int]:
    """Limit every BLAS/OpenMP pool and PyTorch's intra-op pool to `n` threads inside the block."""
    torch = None
    try:
        import torch  # noqa: F811
    except ImportError:
        pass
    old = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=n):
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield n
        finally:
            if torch is not None and old is not None:
                torch.set_num_threads(old)


def torch_available() -> bool:
    """True when PyTorch imports."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--quick, --threads, --repeats, --markdown shared by every bench script."""
    parser.add_argument("--quick", action="store_true", help="fewer repeats / epochs (about a minute)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS and torch threads for every peer (default 1: fair and stable)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (median reported)")
    parser.add_argument("--markdown", action="store_true", help="print tables as Markdown too")
    return parser


def fmt(value: Any, digits: int = 4) -> str:
    """Format numbers compactly: seconds with `digits` significant digits, ratios with 2 decimals."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.{digits}g}"
    return str(value)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, markdown: bool = False) -> str:
    """A plain-text table with aligned columns, or a Markdown pipe table."""
    cells = [[fmt(c) for c in row] for row in rows]
    if markdown:
        out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        out += ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join(out)
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in cells]
    return "\n".join(out)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], *,
                markdown: bool = False) -> None:
    """Print a titled plain table (and its Markdown form when asked)."""
    print(f"\n== {title} ==")
    print(format_table(headers, rows))
    if markdown:
        print()
        print(format_table(headers, rows, markdown=True))
    print(flush=True)

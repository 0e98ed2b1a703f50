"""Memory helpers for the training hot path: reusable scratch buffers and the allocator setting.

A full-batch step on digits works on (1257, 128) float64 arrays (1.3 MB each). Allocating them
afresh every step is slow on Linux: glibc serves blocks that large with mmap and gives them back
on free, so every new array is page-faulted in again on first touch (see benchmarks/README.md).
Two remedies live here:

- ``scratch(store, shape, dtype)``: an array owned by a layer and reused by its next call with
  the same shape and dtype (the layer writes into it with ``out=``); layers use it only for
  arrays of at least MIN_ELEMENTS elements (small ones are cheaper fresh). Whoever receives
  such an array must not keep it across the owner's next call; ``Sequential`` turns buffers
  on only for its own layers and copies what it returns to the user.
- ``keep_freed_memory()``: raises glibc's mmap and trim thresholds once per process, so freed
  blocks stay in the heap and are reused without page faults. A no-op without glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import numpy as np

Array = np.ndarray

MIN_ELEMENTS = 1 << 14  # below this (128 KB of float64) fresh arrays are cheaper than a lookup
MAX_BUFFERS = 4  # distinct (shape, dtype) kept per store: train, last partial batch, eval splits

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 128 * 1024 * 1024
_kept = None  # None = not tried yet; then True (applied) or False (unavailable)


def scratch(store: dict, shape: tuple, dtype) -> Array:
    """An uninitialised array of ``shape`` and ``dtype``, reused from ``store`` when possible.

    ``store`` is a dict owned by the caller (one per buffer role); it keeps at most MAX_BUFFERS
    arrays (cleared when full, so alternating shapes do not grow it without bound).
    """
    key = (shape, dtype)
    buf = store.get(key)
    if buf is None:
        if len(store) >= MAX_BUFFERS:
            store.clear()
        buf = store[key] = np.empty(shape, dtype=dtype)
    return buf


def ones(store: dict, n: int, dtype) -> Array:
    """A vector of n ones in ``dtype``, cached in ``store`` (for sums as products: 1^T A)."""
    vec = store.get(((n,), dtype))
    if vec is None:
        vec = scratch(store, (n,), dtype)
        vec.fill(1)
    return vec


def keep_freed_memory() -> bool:
    """Keep freed memory in the process heap instead of returning it to the OS (glibc only).

    Calls mallopt(M_MMAP_THRESHOLD, 32 MB) and mallopt(M_TRIM_THRESHOLD, 128 MB) through ctypes,
    once per process: blocks up to 32 MB then come from the heap and are reused after free, and
    the heap is trimmed only when more than 128 MB are free at its top. The same as setting
    MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the environment. It costs at most that
    much resident memory and changes no result. Returns True when the setting is in effect,
    False where it is unavailable (not Linux, not glibc, or mallopt refused): a no-op there.
    """
    global _kept
    if _kept is None:
        _kept = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt"):
                    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
                    libc.mallopt.restype = ctypes.c_int
                    _kept = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                                 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
            except (OSError, AttributeError):
                _kept = False
    return _kept

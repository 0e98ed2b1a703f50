"""The garbage collector kept out of the harness's way: rarer young collections, and the
long-lived objects out of its sight.

A sweep's process holds ~400,000 objects once Hydra, MLflow, SQLAlchemy and matplotlib are
imported, nearly all of them modules, classes and functions that live as long as the process.
With Python's default thresholds (a collection every 700 net allocations) importing those
modules runs ~900 collections, the later ones walking the whole heap: 0.75 s of a 3.2 s import
(measured: `import hydra, mlflow, matplotlib, sklearn.datasets` + the SQL store). After start-up,
allocating code (composing the jobs' configs, drawing figures, MLflow's entities) keeps
triggering full collections: benchmarks/profile_job.py measured ~1 s of collection before the
second job of a 16-job sweep, ~0.04 s per job after it and 0.7 s of the report's 3 s of figures.

`quiet()` (at the top of an entry point or worker) collects the young generation every 10,000
allocations instead: 61 collections, 0.2 s, for the same imports, and the same objects freed.
`settle()` calls gc.freeze(): every object alive now moves to a generation the collector never
walks, and objects made later are collected as before. What is frozen and later becomes cyclic
garbage is not freed before the process ends, so the harness freezes only where what exists is
long-lived: the sweep's start and its end (the report, its last work), a worker after its
warm-up, a job process after its first job.
"""
from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between collections of the youngest generation

_DONE: set[str] = set()


def quiet() -> None:
    """Collect the youngest generation every YOUNG_THRESHOLD allocations (default 700)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def settle(stage: str | None = None) -> None:
    """gc.freeze() now (once per `stage` name when one is given)."""
    if stage is not None:
        if stage in _DONE:
            return
        _DONE.add(stage)
    gc.freeze()

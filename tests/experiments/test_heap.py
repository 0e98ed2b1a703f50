"""heap.py: the collector's thresholds and freezes, as a harness process sets them."""
from __future__ import annotations

import subprocess
import sys

from tests.experiments.conftest import ROOT


def _in_fresh_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_quiet_raises_only_the_young_threshold_and_settle_freezes_once_per_stage():
    out = _in_fresh_python(
        "import gc\n"
        "from experiments import heap\n"
        "before = gc.get_threshold()\n"
        "heap.quiet()\n"
        "after = gc.get_threshold()\n"
        "assert after == (heap.YOUNG_THRESHOLD, before[1], before[2]), (before, after)\n"
        "assert gc.get_freeze_count() == 0\n"
        "heap.settle('first job')\n"
        "frozen = gc.get_freeze_count()\n"
        "assert frozen > 0\n"
        "keep = [[i] for i in range(1000)]\n"
        "heap.settle('first job')\n"
        "assert gc.get_freeze_count() == frozen  # once per stage\n"
        "heap.settle()\n"
        "assert gc.get_freeze_count() >= frozen + 1000\n"
        "print('ok')\n")
    assert out == "ok"


def test_objects_made_after_a_freeze_are_still_collected():
    """A freeze leaves later cyclic garbage to the collector (the jobs after a settle)."""
    out = _in_fresh_python(
        "import gc, weakref\n"
        "from experiments import heap\n"
        "heap.quiet(); heap.settle()\n"
        "class Node: pass\n"
        "a, b = Node(), Node(); a.other, b.other = b, a\n"
        "gone = weakref.ref(a)\n"
        "del a, b\n"
        "gc.collect()\n"
        "print(gone() is None)\n")
    assert out == "True"

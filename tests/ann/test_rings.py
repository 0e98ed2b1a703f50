"""The ring rule: importing every module of ann loads none of the harness libraries."""

import subprocess
import sys
from pathlib import Path

import ann

FORBIDDEN = ("hydra", "omegaconf", "mlflow", "matplotlib")


def test_ann_imports_no_harness_library():
    package_dir = Path(ann.__file__).resolve().parent
    modules = sorted(
        {"ann", "ann.activations", "ann.initializers", "ann.layers", "ann.losses", "ann.models", "ann.gradcheck"}
        | {f"ann.{p.stem}" for p in package_dir.glob("*.py") if p.stem != "__init__"}
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"ann loaded harness modules: {result.stdout.strip()}"

"""experiments/entry.py patches one private Hydra function: fail loudly when it changes."""
from __future__ import annotations

import inspect
import subprocess
import sys

from tests.experiments.conftest import ROOT


def test_hydra_still_reports_through_run_and_report():
    """compact_config_errors wraps hydra._internal.utils.run_and_report(func); Hydra's main
    must still call it by that name, with one callable."""
    from hydra._internal import utils as hydra_utils

    assert list(inspect.signature(hydra_utils.run_and_report).parameters) == ["func"]
    assert "run_and_report(" in inspect.getsource(hydra_utils._run_hydra)


def test_a_bad_override_is_one_line_from_every_entry_point(tmp_path):
    for script in ("train.py", "lr_find.py"):
        proc = subprocess.run([sys.executable, str(ROOT / "experiments" / script),
                               "optimizer.nosuchkey=1", f"hydra.run.dir={tmp_path}/o"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("error: invalid config:") and "nosuchkey" in lines[0]
        assert not (tmp_path / "o").exists()

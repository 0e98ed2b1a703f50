"""make ui-check, small: a short default run and a 2-arm lr_tuning, served by `mlflow ui` and
screenshotted in headless Chromium. Skips where Debian's Chromium or Playwright is missing."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (apt-get install "
                                                     "chromium, or make ui-check)"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="playwright missing (pip install -e '.[ui]')"),
]

EXPECTED = ["01_experiments", "02_runs_ann", "02_runs_lr_tuning", "03_columns_lr_tuning",
            "04_run_default", "05_run_lr_tuning_diverged", "06_run_lr_tuning_parent",
            "07_metrics_default", "08_charts_lr_tuning", "09_compare_lr_tuning",
            "10_artifacts_default"]


def test_quick_ui_check_saves_every_page(tmp_path):
    out, store = tmp_path / "shots", tmp_path / "store"
    (out).mkdir()
    (out / "99_stale.png").write_bytes(b"old")  # a re-run clears earlier screenshots
    proc = subprocess.run([sys.executable, "experiments/ui_check.py", str(out), "--quick",
                           "--store", str(store)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    if proc.returncode == 3:  # the environment: Chromium present but cannot start here
        pytest.skip(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    shots = sorted(p.stem for p in out.glob("*.png"))
    assert shots == EXPECTED, proc.stdout
    for stem in EXPECTED:
        size = (out / f"{stem}.png").stat().st_size
        assert size > 20_000, f"{stem}.png is only {size} bytes: a blank page?"
    index = (out / "pages.md").read_text()
    assert all(f"{stem}.png" in index for stem in EXPECTED)
    assert "column picker offers" in index
    # the store stays where --store put it
    assert (store / "mlflow.db").exists() and "PASSED" in proc.stdout

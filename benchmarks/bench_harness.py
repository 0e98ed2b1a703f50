"""Harness overhead (start-up, config, MLflow, plots) and sweep throughput with joblib workers.

    .venv/bin/python benchmarks/bench_harness.py [--quick] [--markdown]

(a) One `experiments/train.py trainer.max_epochs=50 early_stopping=off` run (the default MLP on
    digits) into a fresh temporary SQLite store, then a second identical run into the now
    existing store. Its wall time is compared with the sum of the run's `epoch_seconds` metric
    read back from the store (the updates only) and with the MLflow run's own duration
    (start_time to end_time: training, evaluation and logging). Overhead = 1 - sum(epoch_seconds)
    / wall. Also the import time of `ann`, `mlflow`, `hydra` and `matplotlib` in a fresh
    interpreter (median of a few).
(b) A 16-job sweep (`-m optimizer.lr=<16 values> trainer.max_epochs=10 early_stopping=off`,
    then again at the default training length: 80 epochs at most, early stopping) with
    `hydra/launcher=joblib hydra.launcher.n_jobs=1` and with `n_jobs=2`, each into its own fresh
    store: wall time split into the serial part before the first child run starts, the span of
    the child runs and the serial tail after the last one ends (from the runs' MLflow start and
    end times), the speedup of the wall time and of the span; checks that 16 children FINISHED.

Targets (issue 5): logging + start-up < 10% of the 50-epoch run; 2 workers >= 1.6x faster than 1.
The machine is shared: other processes' load shows up in these figures (the load average is
printed with them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import add_common_args, print_table  # noqa: E402

PYTHON = sys.executable
TRAIN = str(ROOT / "experiments" / "train.py")


def load_average() -> str:
    """The 1-minute load average (how busy the shared machine was)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def run_cmd(args: list[str], *, cwd: Path, uri: str, timeout: float = 1800) -> float:
    """Run a command with MLFLOW_TRACKING_URI=uri in cwd; return its wall seconds (raise on failure)."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, CI="true", HYDRA_FULL_ERROR="1")
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds


def import_seconds(modules: list[str], repeats: int) -> list[list]:
    """Rows [module, seconds]: the median wall time of `python -c "import module"` (a fresh
    interpreter each time) minus that of `python -c pass` (the first row), so only the import
    itself is counted."""
    def once(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([PYTHON, "-c", code], check=True, capture_output=True, cwd=ROOT)
        return time.perf_counter() - t0

    base = statistics.median(once("pass") for _ in range(repeats))
    rows = [["(python -c pass itself)", base]]
    for module in modules:
        rows.append([module, max(0.0, statistics.median(once(f"import {module}")
                                                        for _ in range(repeats)) - base)])
    return rows


def runs_of(uri: str) -> list:
    """Every run in the store at `uri` (all experiments)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exps = client.search_experiments()
    return client.search_runs([e.experiment_id for e in exps], max_results=1000)


def epoch_seconds_sum(uri: str, run_id: str) -> float:
    """Sum of the run's epoch_seconds metric history."""
    from mlflow.tracking import MlflowClient

    history = MlflowClient(tracking_uri=uri).get_metric_history(run_id, "epoch_seconds")
    return sum(m.value for m in history)


def bench_overhead(epochs: int, repeats: int, labels=("fresh store", "existing store")
                   ) -> tuple[list[list], list[list]]:
    """Single runs (a fresh store, then the existing store) and the import times."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_harness_") as tmp:
        tmp_path = Path(tmp)
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        for label in labels:
            before = {r.info.run_id for r in runs_of(uri)} if label != "fresh store" else set()
            out = tmp_path / f"out_{len(before)}"
            wall = run_cmd([PYTHON, TRAIN, f"trainer.max_epochs={epochs}", "early_stopping=off",
                            f"hydra.run.dir={out}"], cwd=tmp_path, uri=uri)
            new = [r for r in runs_of(uri) if r.info.run_id not in before]
            if len(new) != 1:
                raise RuntimeError(f"expected one new run in {uri}, found {len(new)}")
            run = new[0]
            train = epoch_seconds_sum(uri, run.info.run_id)
            mlflow_run = (run.info.end_time - run.info.start_time) / 1000.0
            rows.append([f"{epochs} epochs, {label}", wall, mlflow_run, train, wall - train,
                         1.0 - train / wall, "ok" if 1.0 - train / wall < 0.10 else "MISS",
                         load_average()])
    modules = ("ann", "ann.models, ann.training", "ann.data", "mlflow", "hydra", "matplotlib.pyplot",
               "experiments.runner")
    imports = import_seconds(list(modules), repeats)
    return rows, imports


def bench_sweep(n_runs: int, epochs: int | None) -> list[list]:
    """The same n_runs-job sweep with 1 and 2 joblib workers, each into a fresh store.

    epochs=None: the default training length (trainer.max_epochs 80 with early stopping), the
    runs a user sweeps; an int: that many epochs, early stopping off (short, start-up bound jobs).
    """
    lrs = ",".join(f"{0.001 * (i + 1):g}" for i in range(n_runs))
    length = ["early_stopping=off", f"trainer.max_epochs={epochs}"] if epochs else []
    label = f"{epochs} epochs" if epochs else "default length"
    rows, base = [], None
    for n_jobs in (1, 2):
        with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
            tmp_path = Path(tmp)
            uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
            t_start = time.time()
            wall = run_cmd([PYTHON, TRAIN, "-m", f"optimizer.lr={lrs}", *length,
                            "hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}",
                            f"hydra.sweep.dir={tmp_path / 'multirun'}"], cwd=tmp_path, uri=uri)
            t_end = time.time()
            runs = runs_of(uri)
            children = [r for r in runs if r.data.tags.get("ann.role") == "child"]
            finished = sum(r.info.status == "FINISHED" for r in children)
            train = sum(epoch_seconds_sum(uri, r.info.run_id) for r in children)
            first = min(r.info.start_time for r in children) / 1000.0
            last = max(r.info.end_time for r in children) / 1000.0
        span = last - first
        base = (wall, span) if base is None else base
        speedup, span_speedup = base[0] / wall, base[1] / span
        verdict = "" if n_jobs == 1 else ("ok" if speedup >= 1.6 else "MISS")
        rows.append([f"{n_runs} jobs x {label}, n_jobs={n_jobs}", wall, first - t_start, span,
                     t_end - last, f"{finished}/{n_runs}", train, speedup, span_speedup, verdict,
                     load_average()])
    return rows


def run(quick: bool = False, markdown: bool = False, repeats: int | None = None) -> None:
    """Measure and print both tables."""
    epochs = 50
    n_runs, sweep_epochs = (4, 1) if quick else (16, 10)
    labels = ("fresh store",) if quick else ("fresh store", "existing store")
    rows, imports = bench_overhead(epochs, repeats or (1 if quick else 3), labels)
    print_table("Harness overhead: one experiments/train.py run (default MLP on digits, "
                "early_stopping=off)",
                ["run", "wall s", "MLflow run s", "sum epoch_seconds", "outside training s",
                 "overhead", "target <10%", "load"], rows, markdown=markdown)
    print_table("Import time in a fresh interpreter (median, minus `python -c pass`)",
                ["module", "seconds"], imports, markdown=markdown)
    sweep = bench_sweep(n_runs, sweep_epochs)
    if not quick:  # the same sweep at the default training length (what a user sweeps)
        sweep += bench_sweep(n_runs, None)
    print_table("Sweep throughput: hydra/launcher=joblib, fresh SQLite store per sweep",
                ["sweep", "wall s", "before 1st job s", "jobs span s", "after last job s",
                 "FINISHED", "sum epoch_seconds", "speedup", "span speedup", "target >=1.6x", "load"],
                sweep, markdown=markdown)
    print("before 1st job: start-up, config, store + experiment + parent run creation (serial);"
          " jobs span: first child start to last child end; after: report + exit (serial)")


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    run(quick=args.quick, markdown=args.markdown, repeats=args.repeats)


if __name__ == "__main__":
    main()

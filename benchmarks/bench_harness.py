"""Harness overhead (start-up, config, MLflow, plots) and sweep throughput with joblib workers.

    .venv/bin/python benchmarks/bench_harness.py [--quick] [--targets] [--repeats N] [--markdown]

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

(c) `experiments/train.py experiment=lr_tuning` (6 arms, its own basic launcher) end to end into
    a fresh store, and into an existing one (a store the preset logged to once before: MLflow
    spends ~1.8 s creating a new SQLite store, once per store).

Targets (issue 5): logging + start-up < 10% of the 50-epoch run; 2 workers >= 1.6x faster than 1.
Targets (issue 13), from the default-length sweeps of (b) and from (c): per-job overhead inside
a sweep, (span of the child runs x workers - sum of their epoch_seconds) / jobs, <= 0.25 s with
1 and with 2 workers; the serial tail after the last job (report and exit) <= 1.5 s; lr_tuning
end to end <= 2 x the sum of its jobs' epoch_seconds + 5 s. `--targets` measures only these;
`--repeats N` repeats every sweep N times (the two worker counts interleaved) and reports
medians. The machine is shared: other processes' load shows up in these figures (the load
average is printed with them).
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


def sweep_once(args: list[str], n_workers: int, existing_store: bool = False) -> dict:
    """One sweep command (`train.py` + args) into a fresh store (existing_store: into a store
    the same command has already logged to once, as a user's store is after its first sweep:
    MLflow creates a new SQLite store in ~1.8 s); its figures: wall, the serial start (until
    the first child starts), the span of the child runs, the serial tail (after the last
    child ends), FINISHED children, their number and the sum of their epoch_seconds."""
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        tmp_path = Path(tmp)
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        if existing_store:
            run_cmd([PYTHON, TRAIN, *args, f"hydra.sweep.dir={tmp_path / 'earlier'}"],
                    cwd=tmp_path, uri=uri)
        before = {r.info.run_id for r in runs_of(uri)} if existing_store else set()
        t_start = time.time()
        wall = run_cmd([PYTHON, TRAIN, *args, f"hydra.sweep.dir={tmp_path / 'multirun'}"],
                       cwd=tmp_path, uri=uri)
        t_end = time.time()
        children = [r for r in runs_of(uri) if r.data.tags.get("ann.role") == "child"
                    and r.info.run_id not in before]
        train = sum(epoch_seconds_sum(uri, r.info.run_id) for r in children)
    first = min(r.info.start_time for r in children) / 1000.0
    last = max(r.info.end_time for r in children) / 1000.0
    n = len(children)
    span = last - first
    return {"wall": wall, "start": first - t_start, "span": span, "tail": t_end - last,
            "finished": sum(r.info.status == "FINISHED" for r in children), "n": n,
            "train": train, "n_workers": n_workers, "load": load_average(),
            # worker-seconds per job outside training: span x workers / jobs - mean training
            "per_job": (span * n_workers - train) / max(n, 1)}


def median_of(results: list[dict]) -> dict:
    """The median of each numeric figure over repeated sweeps (the load: every value)."""
    out = dict(results[0])
    for key, value in results[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = statistics.median(r[key] for r in results)
    out["load"] = "/".join(r["load"] for r in results)
    return out


def bench_sweep(n_runs: int, epochs: int | None, repeats: int = 1) -> tuple[list[list], list[dict]]:
    """The same n_runs-job sweep with 1 and 2 joblib workers, each into a fresh store (medians
    of `repeats` sweeps, the two worker counts interleaved); table rows and the raw figures.

    epochs=None: the default training length (trainer.max_epochs 80 with early stopping), the
    runs a user sweeps; an int: that many epochs, early stopping off (short, start-up bound jobs).
    """
    lrs = ",".join(f"{0.001 * (i + 1):g}" for i in range(n_runs))
    length = ["early_stopping=off", f"trainer.max_epochs={epochs}"] if epochs else []
    label = f"{epochs} epochs" if epochs else "default length"
    results: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(max(1, repeats)):
        for n_jobs in (1, 2):
            results[n_jobs].append(sweep_once(
                ["-m", f"optimizer.lr={lrs}", *length, "hydra/launcher=joblib",
                 f"hydra.launcher.n_jobs={n_jobs}"], n_jobs))
    rows, raw, base = [], [], None
    for n_jobs in (1, 2):
        r = median_of(results[n_jobs])
        r["label"] = f"{n_runs} jobs x {label}, n_jobs={n_jobs}"
        raw.append(r)
        base = (r["wall"], r["span"]) if base is None else base
        speedup, span_speedup = base[0] / r["wall"], base[1] / r["span"]
        verdict = "" if n_jobs == 1 else ("ok" if speedup >= 1.6 else "MISS")
        rows.append([r["label"], r["wall"], r["start"], r["span"], r["tail"],
                     f"{r['finished']:g}/{r['n']:g}", r["train"], r["per_job"], speedup,
                     span_speedup, verdict, r["load"]])
    return rows, raw


def bench_preset(name: str, repeats: int = 1, existing_store: bool = False) -> dict:
    """`train.py experiment=<name>` (its own launcher: the basic one, jobs in this process) end
    to end into a fresh store, or into an existing one (medians of `repeats`), against 2 x its
    training + 5 s."""
    return median_of([sweep_once([f"experiment={name}"], 1, existing_store)
                      for _ in range(max(1, repeats))])


PER_JOB_TARGET = 0.25  # s per job outside training, inside a sweep (issue 13)
TAIL_TARGET = 1.5      # s after the last job of a 16-job sweep (report and exit)


def target_rows(sweeps: list[dict], presets: dict[str, dict], preset_name: str) -> list[list]:
    """Issue 13's three figures against their targets (the preset's: {store: figures})."""
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    rows = []
    for r in sweeps:
        rows.append([f"per-job overhead, {r['label']}", r["per_job"], f"<= {PER_JOB_TARGET}",
                     verdict(r["per_job"] <= PER_JOB_TARGET), r["load"]])
    for r in sweeps:
        rows.append([f"serial tail, {r['label']}", r["tail"], f"<= {TAIL_TARGET}",
                     verdict(r["tail"] <= TAIL_TARGET), r["load"]])
    for store, preset in presets.items():
        limit = 2 * preset["train"] + 5.0
        rows.append([f"experiment={preset_name} end to end, {store} ({preset['n']:g} arms, "
                     f"training {preset['train']:.2f} s)", preset["wall"], f"<= {limit:.2f}",
                     verdict(preset["wall"] <= limit), preset["load"]])
    return rows


def run(quick: bool = False, markdown: bool = False, repeats: int | None = None,
        targets_only: bool = False) -> None:
    """Measure and print the tables (targets_only: only issue 13's targets table)."""
    epochs = 50
    n_runs, sweep_epochs = (4, 1) if quick else (16, 10)
    labels = ("fresh store",) if quick else ("fresh store", "existing store")
    print(f"load average (1 min) at start: {load_average()}")
    if not targets_only:
        rows, imports = bench_overhead(epochs, repeats or (1 if quick else 3), labels)
        print_table("Harness overhead: one experiments/train.py run (default MLP on digits, "
                    "early_stopping=off)",
                    ["run", "wall s", "MLflow run s", "sum epoch_seconds", "outside training s",
                     "overhead", "target <10%", "load"], rows, markdown=markdown)
        print_table("Import time in a fresh interpreter (median, minus `python -c pass`)",
                    ["module", "seconds"], imports, markdown=markdown)
    sweep_repeats = repeats or 1
    sweep, raw = [], []
    if not targets_only:
        sweep, _ = bench_sweep(n_runs, sweep_epochs, sweep_repeats)
    if not quick:  # the same sweep at the default training length (what a user sweeps)
        rows, raw = bench_sweep(n_runs, None, sweep_repeats)
        sweep += rows
    if sweep:
        print_table("Sweep throughput: hydra/launcher=joblib, fresh SQLite store per sweep",
                    ["sweep", "wall s", "before 1st job s", "jobs span s", "after last job s",
                     "FINISHED", "sum epoch_seconds", "per job outside training s", "speedup",
                     "span speedup", "target >=1.6x", "load"], sweep, markdown=markdown)
        print("before 1st job: start-up, config, store + experiment + parent run creation "
              "(serial); jobs span: first child start to last child end; per job outside "
              "training: (span x workers - sum epoch_seconds) / jobs; after: report + exit "
              "(serial)")
    if raw:
        presets = {"fresh store": bench_preset("lr_tuning", sweep_repeats),
                   "existing store": bench_preset("lr_tuning", sweep_repeats, True)}
        print_table(f"Issue 13 targets (medians of {sweep_repeats}; default MLP, 16 jobs, "
                    "joblib; fresh store each)",
                    ["figure", "seconds", "target s", "verdict", "load"],
                    target_rows(raw, presets, "lr_tuning"), markdown=markdown)


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--targets", action="store_true",
                        help="only issue 13's targets (16-job default-length sweeps, lr_tuning)")
    args = parser.parse_args(argv)
    run(quick=args.quick, markdown=args.markdown, repeats=args.repeats,
        targets_only=args.targets)


if __name__ == "__main__":
    main()

"""Where a sweep job's time goes: perf_counter spans around the harness's steps, in a real sweep.

    .venv/bin/python benchmarks/profile_job.py [--jobs 16] [--cprofile FILE] [-- hydra overrides]

Runs `experiments/train.py -m optimizer.lr=<jobs values> hydra/launcher=joblib
hydra.launcher.n_jobs=1` in this process (joblib runs the jobs in the launching process with
one worker, so every job after the first runs in a warm process, as in a worker), into a fresh
temporary SQLite store, with timers wrapped around the functions each job calls (nothing in
the harness changes). Prints, per span, the mean seconds per job over the jobs after the first
(inclusive times: a span contains those indented below it), the share of the job, and the
serial start and tail of the sweep, and the seconds spent in garbage collection (gc.callbacks)
per job, before the second job and after the last. A span run by a forked copy
(forked.draw_in_two: a job's layer figure) is not timed; the wait for it is. `--cprofile FILE`
also writes a cProfile of the whole sweep (slower: matplotlib's many small calls are
inflated).
"""
from __future__ import annotations

import argparse
import functools
import importlib
import os
import runpy
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TRAIN = str(ROOT / "experiments" / "train.py")

# (label, module, attribute path): the label's indent shows what contains what
SPANS = [
    ("job (Hydra's execute_job)", "hydra_plugins.hydra_joblib_launcher._core", "execute_job"),
    ("job (Hydra's run_job, basic launcher)", "hydra._internal.core_plugins.basic_launcher",
     "run_job"),
    ("  compose the job's config", "hydra._internal.config_loader_impl",
     "ConfigLoaderImpl.load_sweep_config"),
    ("  Hydra run_job (folder, .hydra/, logging)", "hydra_plugins.hydra_joblib_launcher._core",
     "run_job"),
    ("    runner.run_job", "experiments.runner", "run_job"),
    ("      validate", "experiments.runner", "validate"),
    ("      claim_folder", "experiments.runner", "claim_folder"),
    ("      git_info", "experiments.tracking", "git_info"),
    ("      job_params", "experiments.runner", "job_params"),
    ("  OmegaConf.to_yaml (every caller)", "omegaconf.OmegaConf", "to_yaml"),
    ("      prepare (data, model, objects)", "experiments.runner", "prepare"),
    ("        load_dataset", "experiments.runner", "load_dataset"),
    ("      dataset_inputs", "experiments.runner", "dataset_inputs"),
    ("      log_inputs", "experiments.runner", "log_inputs"),
    ("      Dataset.digest", "ann.data", "Dataset.digest"),
    ("      fit", "experiments.runner", "fit"),
    ("        (sum of epoch_seconds)", None, None),
    ("        evaluate (per epoch)", "ann.training", "_evaluate"),
    ("        LayerProbe.measure", "ann.diagnostics", "LayerProbe.measure"),
    ("        _EpochSender.flush", "experiments.runner", "_EpochSender.flush"),
    ("        BoundaryRecorder.capture", "ann.boundary", "BoundaryRecorder.capture"),
    ("      _final_metrics", "experiments.runner", "_final_metrics"),
    ("      _write_local", "experiments.runner", "_write_local"),
    ("      forked.draw_in_two (send here, figures in a copy)", "experiments.forked",
     "draw_in_two"),
    ("        fork", "experiments.forked", "_fork"),
    ("        wait for the copy", "experiments.forked", "_child_succeeded"),
    ("      log_model", "experiments.mlflow_model", "log_model"),
    ("        save_model", "experiments.mlflow_model", "save_model"),
    ("      plot_learning_curves", "experiments.plots", "plot_learning_curves"),
    ("      plot_layer_diagnostics", "experiments.plots", "plot_layer_diagnostics"),
    ("      write_boundary", "experiments.boundary", "write_boundary"),
    ("  MlflowClient.create_run", "mlflow.tracking.client", "MlflowClient.create_run"),
    ("  MlflowClient.log_batch", "mlflow.tracking.client", "MlflowClient.log_batch"),
    ("  MlflowClient.set_tag", "mlflow.tracking.client", "MlflowClient.set_tag"),
    ("  MlflowClient.log_artifact", "mlflow.tracking.client", "MlflowClient.log_artifact"),
    ("  MlflowClient.log_artifacts", "mlflow.tracking.client", "MlflowClient.log_artifacts"),
    ("  MlflowClient.log_inputs", "mlflow.tracking.client", "MlflowClient.log_inputs"),
    ("  MlflowClient.get_run", "mlflow.tracking.client", "MlflowClient.get_run"),
    ("  MlflowClient.create_logged_model", "mlflow.tracking.client",
     "MlflowClient.create_logged_model"),
    ("  MlflowClient.log_model_artifacts", "mlflow.tracking.client",
     "MlflowClient.log_model_artifacts"),
    ("  MlflowClient.finalize_logged_model", "mlflow.tracking.client",
     "MlflowClient.finalize_logged_model"),
    ("  MlflowClient.log_outputs", "mlflow.tracking.client", "MlflowClient.log_outputs"),
    ("  MlflowClient.set_terminated", "mlflow.tracking.client", "MlflowClient.set_terminated"),
    ("sweep start (on_multirun_start)", "experiments.sweep", "MlflowSweepCallback.on_multirun_start"),
    ("sweep end (on_multirun_end)", "experiments.sweep", "MlflowSweepCallback.on_multirun_end"),
    ("  build_report", "experiments.comparison", "build_report"),
]

FIT, UPDATES = "      fit", "        (sum of epoch_seconds)"
TIMES: dict[str, list[float]] = defaultdict(list)  # label -> seconds per call
JOB_MARKS: list[int] = []  # len(TIMES[label]) at each job start, per label (see per_job)
_job_index = [0]
PER_JOB: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
PER_JOB_CPU: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))


def _wrap(label: str, fn):
    @functools.wraps(fn)
    def timed(*args, **kwargs):
        t0, c0 = time.perf_counter(), time.process_time()
        result = None
        try:
            result = fn(*args, **kwargs)
            return result
        finally:
            seconds = time.perf_counter() - t0
            TIMES[label].append(seconds)
            PER_JOB[label][_job_index[0]] += seconds
            PER_JOB_CPU[label][_job_index[0]] += time.process_time() - c0
            if label == FIT:  # the updates alone: what the issue calls a job's training
                updates = sum(getattr(result, "history", {}).get("epoch_seconds", []))
                TIMES[UPDATES].append(updates)
                PER_JOB[UPDATES][_job_index[0]] += updates
            if label.startswith("job "):
                _job_index[0] += 1
    return timed


GC_SECONDS: dict[int, float] = defaultdict(float)  # job index -> seconds in garbage collection
_gc_start = [0.0]


def _gc_timer(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_start[0] = time.perf_counter()
    else:
        GC_SECONDS[_job_index[0]] += time.perf_counter() - _gc_start[0]


def install() -> None:
    """Wrap every span's function (modules are imported here; a missing one is skipped).
    Hydra's plugin scan re-imports the launcher modules: it runs first."""
    from hydra.core.plugins import Plugins

    Plugins.instance()
    import gc

    gc.callbacks.append(_gc_timer)
    for label, module_name, attr in SPANS:
        if module_name is None:
            continue
        try:
            if module_name == "omegaconf.OmegaConf":
                import omegaconf
                owner, name = omegaconf.OmegaConf, attr
            else:
                owner = importlib.import_module(module_name)
                *parents, name = attr.split(".")
                for part in parents:
                    owner = getattr(owner, part)
            fn = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        except (ImportError, AttributeError, KeyError):
            print(f"(span {label.strip()!r} not found: {module_name}.{attr})", file=sys.stderr)
            continue
        if isinstance(fn, staticmethod):
            setattr(owner, name, staticmethod(_wrap(label, fn.__func__)))
        else:
            setattr(owner, name, _wrap(label, fn))


def report(n_jobs: int, wall: float) -> None:
    """Mean seconds per job of each span, over the jobs after the first."""
    jobs = PER_JOB["job (Hydra's execute_job)"] or PER_JOB["job (Hydra's run_job, basic launcher)"]
    warm = [i for i in sorted(jobs) if i >= 1]
    job_mean = statistics.mean(jobs[i] for i in warm) if warm else float("nan")
    print(f"\n{n_jobs} jobs, wall {wall:.2f} s; mean of jobs 2..{n_jobs} (warm process), "
          f"inclusive seconds per job:")
    print(f"{'span':58s} {'s/job':>8s} {'share':>6s} {'CPU s/job':>9s} {'calls/job':>9s}")
    for label, _, _ in SPANS:
        if label not in PER_JOB or label.startswith("sweep"):
            continue
        per, cpu = PER_JOB[label], PER_JOB_CPU[label]
        mean = statistics.mean(per.get(i, 0.0) for i in warm) if warm else 0.0
        mean_cpu = statistics.mean(cpu.get(i, 0.0) for i in warm) if warm else 0.0
        calls = len(TIMES[label]) / max(n_jobs, 1)
        print(f"{label:58s} {mean:8.4f} {mean / job_mean:6.1%} {mean_cpu:9.4f} {calls:9.1f}")
    gc_mean = statistics.mean(GC_SECONDS.get(i, 0.0) for i in warm) if warm else 0.0
    print(f"{'(garbage collection, within the spans above)':58s} {gc_mean:8.4f} "
          f"{gc_mean / job_mean:6.1%}")
    print(f"garbage collection before the second job (start-up, sweep start, first job): "
          f"{GC_SECONDS.get(0, 0.0):.3f} s; after the last job (sweep end): "
          f"{GC_SECONDS.get(n_jobs, 0.0):.3f} s")
    for label in ("sweep start (on_multirun_start)", "sweep end (on_multirun_end)",
                  "  build_report"):
        if TIMES.get(label):
            print(f"{label:58s} {sum(TIMES[label]):8.4f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--cprofile", default=None)
    parser.add_argument("--preset", default=None,
                        help="run `experiment=PRESET` (its own launcher) instead of the lr sweep")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    lrs = ",".join(f"{0.001 * (i + 1):g}" for i in range(args.jobs))
    with tempfile.TemporaryDirectory(prefix="profile_job_") as tmp:
        os.environ.update(MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db", CI="true")
        os.chdir(tmp)
        install()
        if args.preset:
            sys.argv = [TRAIN, f"experiment={args.preset}", f"hydra.sweep.dir={tmp}/multirun",
                        *args.overrides]
        else:
            sys.argv = [TRAIN, "-m", f"optimizer.lr={lrs}", "hydra/launcher=joblib",
                        "hydra.launcher.n_jobs=1", f"hydra.sweep.dir={tmp}/multirun",
                        *args.overrides]
        profiler = None
        if args.cprofile:
            import cProfile
            profiler = cProfile.Profile()
            profiler.enable()
        t0 = time.perf_counter()
        try:
            runpy.run_path(TRAIN, run_name="__main__")
        except SystemExit as err:
            if err.code not in (0, None):
                raise
        wall = time.perf_counter() - t0
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
    report(len(PER_JOB["job (Hydra's execute_job)"] or
               PER_JOB["job (Hydra's run_job, basic launcher)"]), wall)


if __name__ == "__main__":
    main()

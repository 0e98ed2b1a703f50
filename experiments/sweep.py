"""Hydra callback: a sweep is one MLflow parent run, each job a child run, with any launcher.

`on_multirun_start` runs once, in the launching process, before any job: it validates the
config of every job (so a bad value stops the sweep before anything is logged), creates the
store, the experiment and the parent run, and writes `<sweep dir>/mlflow_sweep.json`, which
each job reads (in this process, a joblib worker, a SLURM node, a Ray worker alike).
`on_multirun_end` builds the comparison report on the parent and exits non-zero when a child
failed. When a job raised (Hydra then skips `on_multirun_end`) or the sweep was interrupted,
an exit hook still ends the parent run (FAILED or KILLED) so nothing stays RUNNING.
"""
from __future__ import annotations

import atexit
import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from experiments import heap, signals, tracking
from experiments.config import (MAX_PARAM_LENGTH, ConfigError, config_digest, describe,
                                job_params, validate)
from experiments.record import claim_folder, run_label, source_tags, ui_hint
from experiments.resume import data_key, plan, reused_tags

SWEEP_FILE = "mlflow_sweep.json"
# The sweep folder's claim (see record.claim_folder), held while this process lives: kept at
# module level, since the callback object itself is pickled into every job.
_held: list = []


def read_sweep_file(sweep_dir: Path) -> dict[str, Any] | None:
    path = Path(sweep_dir) / SWEEP_FILE
    return json.loads(path.read_text()) if path.exists() else None


def enumerate_jobs(config: DictConfig) -> tuple[list[list[str]], list[str]] | None:
    """The basic sweeper's job list (overrides per job) and the swept keys; None for others."""
    sweeper = config.hydra.sweeper.get("_target_", "")
    if not sweeper.endswith("BasicSweeper"):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    params += list(config.hydra.overrides.task)
    overrides = OverridesParser.create().parse_overrides(params)
    swept = [o.get_key_element() for o in overrides if o.is_sweep_override()]
    jobs = BasicSweeper.split_arguments(overrides, None)[0]
    return jobs, swept


# Composing one job's config costs ~0.1-0.2 s, and the launching process composed every job
# three times: once here to validate it, once more in Hydra's BasicSweeper.validate_batch_is_legal
# (which only checks that it composes and discards the result), and, when the jobs run in this
# process (the basic launcher, joblib with n_jobs=1), once more to run it: 3 s of serial start
# for 16 jobs, ~0.2 s per job after. validate_jobs keeps what it composed in _COMPOSED, and the
# wrapper below hands each job's config to the next USES load_sweep_config calls for the same
# master config and overrides (the check, then the launch, which alone sets hydra.job.id and
# .num on it; then the entry is dropped), after re-copying the master's resolver cache as Hydra
# does. A composed config holds ~170 KB, so at most MAX_KEPT are kept (Hydra composes the rest
# itself again); jobs run by worker processes compose their own, and the entries left are
# dropped when the sweep ends.
_COMPOSED: dict[tuple[int, tuple[str, ...]], list] = {}  # key -> [config, uses left]
MAX_KEPT = 256
USES = 2


def _install_compose_cache() -> None:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    original = ConfigLoaderImpl.load_sweep_config
    if getattr(original, "_ann_cached", False):
        return

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        key = (id(master_config), tuple(sweep_overrides))
        entry = _COMPOSED.get(key)
        if entry is None:
            return original(self, master_config, sweep_overrides)
        entry[1] -= 1
        if entry[1] <= 0:
            del _COMPOSED[key]
        cfg = entry[0]
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
        return cfg

    load_sweep_config._ann_cached = True
    ConfigLoaderImpl.load_sweep_config = load_sweep_config


@dataclass
class JobSpec:
    """What the launching process learns of a job by composing it."""

    params: dict[str, str]  # its MLflow params (config.job_params)
    digest: str  # config.config_digest
    data: DictConfig  # resume.data_key: what decides its data


def validate_jobs(config: DictConfig, jobs: list[list[str]],
                  swept: list[str] = ()) -> list[JobSpec]:
    """Compose and validate every job's config (ConfigError names the first bad one), and
    refuse a sweep that cannot mean what it says: one over comparison presets (each preset is
    a sweep with its own experiment, which Hydra does not nest: its jobs would all be
    "default", reported as seeds of one arm) or one that runs the same job twice (`seed=0,0`,
    `optimizer.lr=0.1,0.10`: identical composed configs, reported as two seeds).
    Returns what each job is (JobSpec)."""
    from hydra.core.global_hydra import GlobalHydra

    presets = [k for k in swept if k.lstrip("+~") == "experiment"]
    if presets:
        values = sorted({o.split("=", 1)[1] for job in jobs for o in job
                         if o.split("=", 1)[0].lstrip("+~") == "experiment"})
        raise ConfigError(f"invalid config: experiment={','.join(values)}: a sweep over "
                          "comparison presets is not supported; each preset is a sweep of its "
                          "own: run one command per preset")
    _install_compose_cache()
    _COMPOSED.clear()
    loader = GlobalHydra.instance().config_loader()
    seen: dict[str, int] = {}
    params = []
    for number, job in enumerate(jobs):
        job_cfg = loader.load_sweep_config(config, list(job))
        task = OmegaConf.masked_copy(job_cfg, [k for k in job_cfg if k != "hydra"])
        validate(task)
        key = OmegaConf.to_yaml(task, resolve=True)
        if key in seen:
            raise ConfigError(
                f"invalid config: {' '.join(job) or '(no overrides)'}: the sweep would run this "
                f"job twice (jobs #{seen[key]} and #{number} have the same config); every job "
                "of a sweep must differ: drop the repeated value")
        seen[key] = number
        params.append(JobSpec(job_params(task), config_digest(task), data_key(task)))
        if len(_COMPOSED) < MAX_KEPT:
            _COMPOSED[(id(config), tuple(job))] = [job_cfg, USES]
    return params


def parent_params(job_params_list: list[dict[str, str]], jobs: list[list[str]],
                  swept: list[str]) -> dict[str, str]:
    """The sweep parent's params: those all its jobs share, plus each swept key with its values
    in job order (`optimizer.lr` = `0.01,0.1`), so filtering runs by a shared setting keeps the
    parent and a swept key shows what was compared."""
    if not job_params_list:
        return {}
    first = job_params_list[0]
    shared = {k: v for k, v in first.items() if all(p.get(k) == v for p in job_params_list)}
    for key in swept:
        name = key.lstrip("+~")
        values = []
        for job in jobs:
            value = next((o.split("=", 1)[1] for o in job
                          if o.split("=", 1)[0].lstrip("+~") == name), None)
            if value is not None and value not in values:
                values.append(value)
        shared[name] = ",".join(values)[:MAX_PARAM_LENGTH]
    return shared


def warm_worker(tracking_uri: str) -> int:
    """Run in a joblib worker before the jobs: import what a job imports (MLflow and its store,
    matplotlib, the runner); only the module cache is filled, no job state. Returns the pid.
    Also installs the worker's signal handling at once (an idle worker then exits on SIGTERM
    or Ctrl-C, and when the launching process is gone)."""
    import os

    signals.install_worker()
    heap.quiet()
    import experiments.mlflow_model  # noqa: F401 - mlflow.pyfunc, for the logged model
    import experiments.runner  # noqa: F401 - ann, the harness
    from experiments import plots
    from mlflow.tracking import MlflowClient  # noqa: F401

    plots.warm_up()  # fonts, and each kind of figure this process reuses for its jobs
    heap.settle()

    if tracking_uri.startswith("sqlite:"):
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401 - the store a job builds
    return os.getpid()


def _jobs_run_here(config: DictConfig) -> bool:
    """Whether the launcher runs the jobs in this process (basic; joblib with one job)."""
    launcher = config.hydra.get("launcher") or {}
    target = str(launcher.get("_target_", ""))
    if target.endswith("BasicLauncher"):
        return True
    if target.endswith("JoblibLauncher"):
        try:
            from joblib import effective_n_jobs

            return effective_n_jobs(launcher.get("n_jobs", -1)) <= 1
        except Exception:  # noqa: BLE001
            return True
    return False


def warm_report() -> None:
    """In a thread of the launching process while the jobs run (elsewhere, with a launcher
    other than the basic one): import what the report needs and draw one small figure, so the
    fonts are loaded; ~1 s less in the serial tail after the last job."""
    try:
        import io

        from experiments import comparison  # noqa: F401 - matplotlib, scipy, the report
        from matplotlib.figure import Figure

        fig = Figure(figsize=(2, 1))
        ax = fig.subplots()
        ax.plot([1, 2], [1, 2], label="warm")
        ax.set_yscale("log")
        ax.legend()
        fig.suptitle("warm")
        fig.savefig(io.BytesIO(), format="png", dpi=40)
    except Exception:  # noqa: BLE001 - only an optimisation
        pass


class WorkerWarmup:
    """Start a joblib launcher's worker processes while the launching process is busy.

    With `hydra/launcher=joblib` and n_jobs > 1 every loky worker spends 2-3 s starting Python
    and importing MLflow before its first job; the launching process meanwhile validates every
    job and creates the store and the parent run on one core. `start` runs, in a thread,
    joblib.Parallel with exactly the arguments the Hydra launcher will use and one `warm_worker`
    call per worker; joblib keeps the workers and hands them to the launcher's own Parallel
    call (same arguments: loky reuses its executor). `join` waits for that before the launch.
    Only an optimisation: any failure leaves the launcher to start its workers itself.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self.pids: list[int] = []

    def start(self, config: DictConfig, tracking_uri: str) -> None:
        launcher = config.hydra.get("launcher") or {}
        if not str(launcher.get("_target_", "")).endswith("JoblibLauncher"):
            return
        try:
            from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg
            from joblib import Parallel, delayed, effective_n_jobs

            joblib_cfg = {k: v for k, v in OmegaConf.to_container(launcher, resolve=True).items()
                          if k != "_target_"}
            joblib_cfg["backend"] = "loky"  # what the launcher does
            process_joblib_cfg(joblib_cfg)
            n_workers = effective_n_jobs(joblib_cfg.get("n_jobs", -1))
        except Exception:  # noqa: BLE001 - no warm-up, nothing else changes
            return
        if n_workers <= 1:  # joblib runs the jobs in this process
            return

        def warm() -> None:
            try:
                self.pids = Parallel(**joblib_cfg)(delayed(warm_worker)(tracking_uri) for _ in range(n_workers))
            except Exception:  # noqa: BLE001
                self.pids = []

        self._thread = threading.Thread(target=warm, name="ann-joblib-warmup", daemon=True)
        self._thread.start()

    def join(self, timeout: float = 120.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def abandon(self) -> None:
        """The sweep will not run: wait for the warm-up, then stop its workers."""
        if self._thread is not None:
            self.join()
            release_workers()


def release_workers() -> None:
    """Stop joblib's idle loky workers now (all jobs have returned) instead of at exit.

    Left alone, the reusable executor stays up for its 300 s idle timeout and the interpreter's
    exit waits ~1.5 s for the workers to wind down; killed here (SIGKILL: they are idle, every
    run ended before its job returned) they go while the report is being built. After an
    interrupt the workers were already stopped (signals.stop_descendants: SIGTERM first, so
    each ends its run KILLED); this only shuts the executor down.
    """
    try:
        from joblib.externals.loky import reusable_executor
    except ImportError:
        return
    executor = getattr(reusable_executor, "_executor", None)
    if executor is not None:
        try:
            executor.shutdown(wait=False, kill_workers=True)
        except Exception:  # noqa: BLE001 - they still stop at exit
            pass


def children_with_status(client, parent_run_id: str, status: str) -> list[str]:
    runs = client.search_runs([client.get_run(parent_run_id).info.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                              max_results=10000)
    return [r.info.run_id for r in runs if r.info.status == status]


def finish_parent(uri: str, parent_run_id: str, sweep_dir: Path) -> tuple[list[str], list[Path]]:
    """Build the comparison report on the parent and end it; return (failed runs, unsent jobs).

    While a job's results have not reached the store (an unsent.json in its folder) the parent
    stays RUNNING: `resend.py` sends them and calls this again.
    """
    from experiments.unsent import find_unsent

    unsent = find_unsent([sweep_dir]) if sweep_dir.exists() else []
    if unsent:
        return [], unsent
    client = tracking.client_for(uri)
    failed = children_with_status(client, parent_run_id, "FAILED")
    try:
        from experiments.comparison import build_report

        out = build_report(uri, parent_run_id, sweep_dir / "report")
        print("\n" + (out / "overview.md").read_text().replace(
            "report/", f"{out}/"), file=sys.stderr)
        print(f"MLflow: sweep parent run {parent_run_id}, report logged under report/; "
              f"{ui_hint(uri, client.get_run(parent_run_id).info.experiment_id, parent_run_id)}",
              file=sys.stderr)
    except Exception as err:  # noqa: BLE001 - the runs are safe; say what went wrong
        print(f"warning: the comparison report failed: {type(err).__name__}: {err}",
              file=sys.stderr)
    client.set_terminated(parent_run_id, "FAILED" if failed else "FINISHED")
    return failed, []


class MlflowSweepCallback(Callback):
    """Parent run per sweep; see the module docstring."""

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.tracking_uri: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        heap.settle()  # Hydra and the harness are imported: the compositions below walk less
        warmup = WorkerWarmup()
        try:
            found = enumerate_jobs(config)
            jobs, swept = found if found else ([], [])
            specs = validate_jobs(config, jobs, swept) if jobs else []
            task_cfg = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
            if not jobs:
                validate(task_cfg)
                if config.get("resume"):
                    raise ConfigError("invalid config: resume=true: this sweeper's jobs are "
                                      "not known before they run; resume needs Hydra's basic "
                                      "sweeper (a preset or -m key=a,b)")
            uri = tracking.resolve_tracking_uri(config.mlflow.tracking_uri)
            warmup.start(config, uri)  # the config is valid: workers may start
            experiment_id = tracking.ensure_experiment(uri, config.mlflow.experiment_name,
                                                       config.mlflow.description)
            sweep_dir = Path(config.hydra.sweep.dir)
            _held.append(claim_folder(sweep_dir, "hydra.sweep.dir"))  # until the process ends
        except (ConfigError, tracking.StoreError) as err:
            warmup.abandon()
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except Exception as err:  # noqa: BLE001 - Hydra would only warn and sweep on
            warmup.abandon()
            print(f"error: invalid config: {describe(err)}", file=sys.stderr)
            sys.exit(2)
        client = tracking.client_for(uri)
        try:
            reused = self._resume(client, experiment_id, jobs, swept, specs) \
                if config.get("resume") else {}
        except Exception as err:  # noqa: BLE001 - nothing is logged yet: one line
            warmup.abandon()
            print(f"error: resume=true: cannot match the jobs to earlier runs: "
                  f"{tracking.first_line(err)}", file=sys.stderr)
            sys.exit(2)
        commit, dirty = tracking.git_info()
        choices = config.hydra.runtime.choices
        name = self._run_name(config, swept)
        run = client.create_run(experiment_id, run_name=name, tags={
            "mlflow.runName": name,
            "ann.role": "parent",
            "ann.sweep_dir": str(sweep_dir.resolve()),
            "ann.swept_keys": ",".join(swept),
            "ann.n_jobs": str(len(jobs)) if jobs else "unknown",
            "ann.overrides": ",".join(config.hydra.overrides.task),
            "ann.launcher": str(choices.get("hydra/launcher", "basic")),
            **source_tags(commit, "experiments/train.py"),
            "git_dirty": str(dirty).lower(),
            **({"ann.resumed": "true"} if config.get("resume") else {}),
            **reused_tags([r["run_id"] for r in reused.values()]),
        })
        self.parent_run_id, self.tracking_uri = run.info.run_id, uri
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in parent_params([j.params for j in specs], jobs,
                                                       swept).items()]
        for start in range(0, len(items), 100):
            client.log_batch(self.parent_run_id, params=items[start:start + 100])
        (sweep_dir / SWEEP_FILE).write_text(json.dumps({
            "tracking_uri": uri, "experiment_id": experiment_id,
            "parent_run_id": self.parent_run_id, "swept_keys": swept,
            "reused": reused}, indent=1))
        atexit.register(self._end_if_open)
        signals.at_interrupt(self._end_interrupted)
        if not _jobs_run_here(config):  # else the thread would slow the jobs' epochs down
            threading.Thread(target=warm_report, name="ann-report-warmup", daemon=True).start()
        warmup.join()
        heap.settle()  # MLflow and its store are loaded, the jobs' configs composed
        print(f"MLflow: sweep parent run {self.parent_run_id} in experiment "
              f"'{config.mlflow.experiment_name}' ({len(jobs) or '?'} jobs)", file=sys.stderr)

    @staticmethod
    def _resume(client, experiment_id: str, jobs: list[list[str]], swept: list[str],
                specs: list[JobSpec]) -> dict[str, dict]:
        """resume=true: decide per job, say so per job, and return the reused ones as
        {job number: {"run_id", "overrides"}} (the sweep file hands them to the jobs)."""
        from experiments.runner import job_data

        decisions = plan(client, experiment_id, jobs, [s.digest for s in specs],
                         [s.data for s in specs], lambda key: job_data(key).digest())
        names = [k.lstrip("+~") for k in swept]
        n_reused = sum(d.run_id is not None for d in decisions)
        print(f"resume: {n_reused} of {len(jobs)} jobs reuse a FINISHED run, "
              f"{len(jobs) - n_reused} train:", file=sys.stderr)
        for d in decisions:
            label = run_label([o for o in d.overrides
                               if o.split("=", 1)[0].lstrip("+~") in names])
            print(f"  #{d.number} {label}: " + (d.why if d.run_id else f"trains ({d.why})"),
                  file=sys.stderr)
        return {str(d.number): {"run_id": d.run_id, "overrides": d.overrides}
                for d in decisions if d.run_id is not None}

    @staticmethod
    def _run_name(config: DictConfig, swept: list[str]) -> str:
        """`lr_tuning: optimizer.lr`, `sweep: optimizer.lr, seed` (preset, then swept keys)."""
        preset = config.hydra.runtime.choices.get("experiment")
        head = preset if preset and preset != "null" else "sweep"
        keys = ", ".join(k.lstrip("+~") for k in swept)
        return f"{head}: {keys}" if keys else head

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        _COMPOSED.clear()  # Hydra's check has run; keys hold ids of configs that may be freed
        if self.parent_run_id is None:
            return
        release_workers()
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            failed, unsent = finish_parent(self.tracking_uri, self.parent_run_id, sweep_dir)
        except Exception as err:  # noqa: BLE001 - Hydra would turn it into a mere warning
            self.parent_run_id = None  # left RUNNING for resend.py to finish
            print(f"error: the MLflow store {self.tracking_uri} failed at the end of the sweep "
                  f"({tracking.first_line(err)}); every job's results are in its folder: send them and finish the "
                  f"sweep with: python experiments/resend.py {sweep_dir}", file=sys.stderr)
            sys.exit(2)
        self.parent_run_id = None
        if unsent:
            print(f"error: {len(unsent)} job(s) could not reach the store; send them and finish "
                  f"the sweep with: python experiments/resend.py {sweep_dir}", file=sys.stderr)
            sys.exit(2)
        if failed:
            print(f"error: {len(failed)} job(s) of the sweep failed (runs "
                  + ", ".join(failed) + "); tracebacks are logged as traceback.txt",
                  file=sys.stderr)
            sys.exit(1)

    def _children_with_status(self, client, status: str) -> list[str]:
        return children_with_status(client, self.parent_run_id, status)

    def _end_if_open(self) -> None:
        """At interpreter exit: a parent still open means the sweep was cut short (a job
        raised, or an interrupt that did not reach train.py's handler)."""
        if self.parent_run_id is None:
            return
        try:
            self._end_cut_short(killed=signals.received() is not None)
        except Exception:  # noqa: BLE001
            pass

    def _end_interrupted(self) -> str | None:
        """After Ctrl-C or SIGTERM (signals.finish, in the launching process): the words of
        its one line."""
        if self.parent_run_id is None:
            return None
        return self._end_cut_short(killed=True)

    def _end_cut_short(self, killed: bool) -> str:
        """Stop every process of the sweep, THEN end each RUNNING child KILLED (no process is
        left that could still log to it) and the parent KILLED (or FAILED when a job raised
        and nothing was interrupted). Returns what was done, in a few words."""
        parent_run_id, self.parent_run_id = self.parent_run_id, None
        release_workers()
        signals.stop_descendants()
        client = tracking.client_for(self.tracking_uri)
        parent = client.get_run(parent_run_id)
        children = client.search_runs([parent.info.experiment_id],
                                      filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                                      max_results=10000)
        status = {c.info.run_id: c.info.status for c in children}
        for run_id, state in status.items():
            if state == "RUNNING":
                client.set_terminated(run_id, "KILLED")
                status[run_id] = "KILLED"
        n_killed = sum(s == "KILLED" for s in status.values())
        end = "KILLED" if killed or n_killed else "FAILED"
        client.set_terminated(parent_run_id, end)
        n_jobs = parent.data.tags.get("ann.n_jobs", "")
        finished = sum(s == "FINISHED" for s in status.values())
        text = (f"sweep parent {parent_run_id} {end} and {n_killed} child "
                f"run{'s' if n_killed != 1 else ''} KILLED; {finished} of "
                f"{n_jobs if n_jobs.isdigit() else '?'} jobs finished")
        if n_jobs.isdigit() and int(n_jobs) > len(status):
            text += f", {int(n_jobs) - len(status)} never started"
        return text

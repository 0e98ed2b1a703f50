"""Re-run a logged run from its logged config and verify it gives the same metrics.

    python experiments/reproduce.py RUN_ID [--tracking-uri URI]

Downloads the run's `config.yaml` artifact, checks that every `_target_` it names is one of
this project's allow-listed classes (experiments.config.ALLOWED_TARGETS: a config from the store
is data, never an import path to follow), trains it again as a new run in the same experiment
tagged `reproduced_from=RUN_ID`, and compares every metric's full history step by step, by
exact equality, except the timing metrics (epoch_seconds, wall_seconds, train_seconds). Also
compared: the dataset digest and the stop_reason / diverged tags. A git commit or dirty flag
different from the logged one is a warning (the code changed), not a failure by itself.

Exit codes: 0 everything matches, 1 something differs (printed as metric, step, original,
new), 2 bad input (unknown run id, no config.yaml artifact, unreachable store, a config that
names a class outside the allow-list or does not validate).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.tracking import (TIMING_METRICS, StoreError, first_line,  # noqa: E402
                                  open_store)

COMPARED_TAGS = ("dataset_digest", "stop_reason", "diverged")
MAX_SHOWN = 5  # differing steps printed per metric


class ReproduceError(RuntimeError):
    """Bad input: str() is the one line shown to the user (exit code 2)."""


# ---------------------------------------------------------------- the logged config
def check_targets(node: Any, path: str = "") -> None:
    """Every `_target_` must sit on a top-level group node and be allow-listed for it."""
    from experiments.config import ALLOWED_TARGETS

    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                allowed = ALLOWED_TARGETS.get(path, {})
                if value not in allowed:
                    names = ", ".join(sorted(t for g in ALLOWED_TARGETS.values() for t in g))
                    raise ReproduceError(
                        f"the logged config names {where}={value!r}, which is not one of this "
                        f"project's components (allowed: {names}); refusing to run it")
            elif isinstance(key, str) and key.startswith("_") and key.endswith("_"):
                raise ReproduceError(f"the logged config holds the instantiation key {where}; "
                                     "only _target_ is allowed")
            else:
                check_targets(value, where)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_targets(value, f"{path}[{i}]")
    elif isinstance(node, str) and "${" in node:
        raise ReproduceError(f"the logged config holds an interpolation at {path}: {node!r} "
                             "(a logged config is resolved; refusing to evaluate it)")


def load_logged_config(client, run_id: str, tmp: Path):
    """The run's config.yaml as a DictConfig, after the allow-list check."""
    import yaml
    from omegaconf import OmegaConf

    try:
        local = client.download_artifacts(run_id, "config.yaml", str(tmp))
    except Exception as err:  # noqa: BLE001 - missing artifact, unreachable artifact store
        raise ReproduceError(f"run {run_id} has no readable config.yaml artifact: "
                             f"{first_line(err)}") from None
    try:
        data = yaml.safe_load(Path(local).read_text())
    except yaml.YAMLError as err:
        raise ReproduceError(f"the config.yaml of run {run_id} is not valid YAML: "
                             f"{first_line(err)}") from None
    if not isinstance(data, dict):
        raise ReproduceError(f"the config.yaml of run {run_id} is not a mapping")
    check_targets(data)
    return OmegaConf.create(data)


def split_overrides(text: str) -> list[str]:
    """Split a comma-joined override list at the commas outside brackets and quotes."""
    out, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if cur:
        out.append("".join(cur))
    return [o for o in out if o]


# ---------------------------------------------------------------- comparing
def metric_histories(client, run_id: str, keys) -> dict[str, dict[int, list[float]]]:
    """key -> step -> values in logging order."""
    out: dict[str, dict[int, list[float]]] = {}
    for key in keys:
        hist = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
        steps: dict[int, list[float]] = {}
        for m in hist:
            steps.setdefault(int(m.step), []).append(float(m.value))
        out[key] = steps
    return out


def _same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(
        x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))


def compare_runs(client, original, new) -> list[tuple[str, str, str, str]]:
    """(what, step, original, new) for every difference outside the timing metrics."""
    keys = sorted((set(original.data.metrics) | set(new.data.metrics)) - TIMING_METRICS)
    a = metric_histories(client, original.info.run_id, keys)
    b = metric_histories(client, new.info.run_id, keys)
    diffs = []
    for key in keys:
        shown = 0
        for step in sorted(set(a[key]) | set(b[key])):
            va, vb = a[key].get(step, []), b[key].get(step, [])
            if not _same(va, vb):
                if shown < MAX_SHOWN:
                    diffs.append((key, str(step), _show(va), _show(vb)))
                shown += 1
        if shown > MAX_SHOWN:
            diffs.append((key, "...", f"{shown - MAX_SHOWN} more differing steps", ""))
    for tag in COMPARED_TAGS:
        ta, tb = original.data.tags.get(tag), new.data.tags.get(tag)
        if ta != tb:
            diffs.append((f"tag {tag}", "-", str(ta), str(tb)))
    return diffs


def _show(values: list[float]) -> str:
    if not values:
        return "(missing)"
    return ", ".join(repr(v) for v in values)




# ---------------------------------------------------------------- the command
def _client(uri: str):
    try:
        return open_store(uri)
    except StoreError as err:
        raise ReproduceError(str(err)) from None


def _get_run(client, run_id: str):
    try:
        return client.get_run(run_id)
    except Exception as err:  # noqa: BLE001 - unknown id or unreachable store
        raise ReproduceError(f"no run with id {run_id!r}: {first_line(err)}") from None


def _base_name(tags: dict[str, str]) -> str:
    """The original's run name without the divergence mark."""
    name = tags.get("mlflow.runName", "run")
    from experiments.record import DIVERGED_MARK

    return name.removeprefix(DIVERGED_MARK)


def code_version_warnings(tags: dict[str, str]) -> list[str]:
    from experiments.tracking import git_info

    commit, dirty = git_info()
    logged_commit = tags.get("mlflow.source.git.commit", tags.get("git_commit"))
    logged_dirty = tags.get("git_dirty")
    out = []
    if logged_commit != commit:
        out.append(f"warning: code version differs: the run was logged at git commit "
                   f"{logged_commit}, this checkout is at {commit}")
    if logged_dirty != str(dirty).lower():
        out.append(f"warning: code version differs: the run was logged with git_dirty="
                   f"{logged_dirty}, this checkout has git_dirty={str(dirty).lower()}")
    if dirty:
        out.append("warning: the checkout has uncommitted changes in ann/, experiments/ or "
                   "conf/: identical results are not guaranteed")
    return out


def reproduce(run_id: str, uri: str, out=None, err=None) -> int:
    """Re-run `run_id` from `uri` and compare; returns the exit code (ReproduceError -> 2)."""
    out, err = out or sys.stdout, err or sys.stderr
    from experiments.config import ConfigError
    from experiments.runner import run_job

    client = _client(uri)
    original = _get_run(client, run_id)
    tags = original.data.tags
    if tags.get("ann.role") == "parent":
        raise ReproduceError(f"run {run_id} is a sweep's parent run, which trains nothing; "
                             "reproduce one of its child runs (listed in its report/summary.csv)")
    with tempfile.TemporaryDirectory(prefix="ann-reproduce-") as tmp:
        cfg = load_logged_config(client, run_id, Path(tmp))
    for line in code_version_warnings(tags):
        print(line, file=err)
    overrides = split_overrides(tags.get("ann.overrides", ""))
    arm = tags.get("ann.arm", "default")
    # The last bits of a run depend on its BLAS threads: use the logged count (runs logged
    # before the tag existed ran a single run's setting, run_job's default).
    threads = tags.get("ann.blas_threads")
    try:
        outcome = run_job(cfg, overrides=overrides, experiment_id=original.info.experiment_id,
                          extra_tags={"reproduced_from": run_id},
                          run_name=f"{_base_name(tags)} (reproduction)",
                          source_name="experiments/reproduce.py",
                          tracking_uri=uri, threads=int(threads) if threads else None,
                          arm_overrides=[] if arm == "default" else split_overrides(arm))
    except ConfigError as e:
        raise ReproduceError(f"the logged config of run {run_id} does not validate: {e}") \
            from None
    except StoreError as e:
        raise ReproduceError(str(e)) from None
    if outcome.status != "FINISHED" or outcome.run_id is None:
        print(f"error: the reproduction run {outcome.run_id} ended {outcome.status}: "
              f"{outcome.tags.get('error', '')}", file=err)
        return 1
    new = client.get_run(outcome.run_id)
    if tags.get("dataset_digest") != new.data.tags.get("dataset_digest"):
        print(f"warning: the data differ: dataset digest {tags.get('dataset_digest')} logged, "
              f"{new.data.tags.get('dataset_digest')} now", file=err)
    diffs = compare_runs(client, original, new)
    n_metrics = len((set(original.data.metrics) | set(new.data.metrics)) - TIMING_METRICS)
    if not diffs:
        print(f"reproduced run {run_id} as {outcome.run_id}: all {n_metrics} metrics identical "
              f"at every step (timing metrics not compared)", file=out)
        return 0
    print(f"reproduced run {run_id} as {outcome.run_id}: {len(diffs)} difference(s)", file=out)
    width = max(len(d[0]) for d in diffs)
    print(f"{'metric':<{width}}  step  original -> new", file=out)
    for what, step, a, b in diffs:
        print(f"{what:<{width}}  {step:>4}  {a} -> {b}", file=out)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Re-run a logged run and verify its metrics.")
    parser.add_argument("run_id", help="the MLflow run id to reproduce")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else the project's mlruns/mlflow.db")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[0-9a-zA-Z_-]{1,64}", args.run_id):
        print(f"error: {args.run_id!r} is not an MLflow run id", file=sys.stderr)
        return 2
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from experiments.tracking import resolve_tracking_uri

    try:  # checked and absolute (relative SQLite paths from the cwd), naming where it came from
        uri = resolve_tracking_uri(args.tracking_uri, source="--tracking-uri")
        return reproduce(args.run_id, uri)
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Rebuild the comparison report of a sweep (see experiments/comparison.py for what it holds).

    python experiments/report.py --experiment gd_variants          # latest sweep of it
    python experiments/report.py --experiment gd_variants --all    # every sweep of it
    python experiments/report.py --run-id PARENT_RUN_ID [--tracking-uri URI] [--out DIR]
    python experiments/report.py --experiment optimizers --score test_accuracy  # pair on it
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments import heap  # noqa: E402

heap.quiet()  # before the imports (experiments/heap.py)

from experiments.comparison import (ReportError, _client, _search_all,  # noqa: E402
                                    build_report)
from experiments.paired import SCORES  # noqa: E402
from experiments.tracking import (StoreError, first_line, folder_problem,  # noqa: E402
                                  resolve_tracking_uri)


def _parents_of(client, experiment_name: str, every: bool) -> tuple[list[str], str]:
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ReportError(f"no experiment named {experiment_name!r}; known: "
                          + (", ".join(names) or "none"))
    runs = _search_all(client, [exp.experiment_id], "tags.`ann.role` = 'parent'",
                       order_by=["attributes.start_time DESC"])
    if not runs:
        raise ReportError(f"experiment {experiment_name!r} has no sweep (parent) runs")
    ids = [r.info.run_id for r in runs]
    return (ids if every else ids[:1]), exp.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild the comparison report of a sweep.")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--experiment", help="MLflow experiment name (its latest sweep)")
    which.add_argument("--run-id", help="the sweep's parent run id")
    parser.add_argument("--all", action="store_true", help="with --experiment: every sweep")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else the project's mlruns/mlflow.db")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default reports/<experiment>/<parent id>)")
    parser.add_argument("--score", default="best_val_loss",
                        help="what the arms are paired on seed by seed: "
                        + ", ".join(SCORES) + " (default best_val_loss)")
    args = parser.parse_args(argv)
    if args.score not in SCORES:
        print(f"error: --score {args.score}: unknown score; allowed: {', '.join(SCORES)}",
              file=sys.stderr)
        return 2
    if args.all and not args.experiment:
        parser.error("--all needs --experiment")
    # Fail fast instead of retrying for minutes against a server that is down.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # The output folder first: a folder that cannot be created is not a store problem.
    problem = folder_problem(args.out) if args.out is not None else None
    if problem:
        print(f"error: cannot write the report to {args.out}: {problem}", file=sys.stderr)
        return 2
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "the default store"
    try:
        uri = resolve_tracking_uri(args.tracking_uri, source="--tracking-uri")
        client = _client(uri)
        if args.run_id:
            parents = [args.run_id]
        else:
            parents, _ = _parents_of(client, args.experiment, args.all)
        for parent_id in parents:
            out = args.out
            if out is not None and len(parents) > 1:
                out = out / parent_id
            try:
                path = build_report(uri, parent_id, out, score=args.score)
            except ReportError as err:
                if len(parents) == 1:
                    raise
                print(f"warning: skipped {parent_id}: {err}", file=sys.stderr)
                continue
            print(f"report of {parent_id}: {path}")
    except (ReportError, StoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - an unreachable store and the like: one line
        print(f"error: cannot read the MLflow store {uri}: {first_line(err)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

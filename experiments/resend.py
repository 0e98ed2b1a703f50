"""Re-send runs whose tracking store went away during training (see README, Scale).

    python experiments/resend.py OUTPUT_DIR [OUTPUT_DIR ...] [--tracking-uri URI]

When the store fails while a job runs, the runner keeps training, writes everything to the
job's output folder (config.yaml, history.csv, weights.npz, final.json, plots) and leaves
`unsent.json` there: the store, the experiment, the run id (when the run was created) and
its tags. This command sends what the store lacks: it creates the run if it never existed
or completes the existing one, adds only the params and (metric, step) pairs not there yet,
uploads the artifacts, sets the final status and renames the marker to `sent.json`. Running
it twice sends nothing twice. A folder may also be a sweep folder: every job under it with
an `unsent.json` is sent.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments import tracking  # noqa: E402
from experiments.sweep import finish_parent, read_sweep_file  # noqa: E402
from experiments.unsent import find_unsent, one_line, resend  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dirs", nargs="+", type=Path, metavar="OUTPUT_DIR")
    parser.add_argument("--tracking-uri", default=None,
                        help="send to this store instead of the one the run was meant for")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.output_dirs if not p.is_dir()]
    if missing:
        print(f"error: no such folder: {', '.join(missing)} (give a job's or a sweep's output "
              "folder, as printed by the run that could not reach its store)", file=sys.stderr)
        return 2
    jobs = find_unsent(args.output_dirs)
    if not jobs:
        print("nothing to send: no unsent.json under " + ", ".join(map(str, args.output_dirs)),
              file=sys.stderr)
        return 0
    failed = 0
    for job in jobs:
        try:
            run_id, sent = resend(job, args.tracking_uri)
        except Exception as err:  # noqa: BLE001 - one line per folder; the marker stays
            failed += 1
            message = str(err) if isinstance(err, tracking.StoreError) else one_line(err)
            print(f"error: could not send {job}: {message}", file=sys.stderr)
            continue
        print(f"sent {job} to run {run_id}: " + ", ".join(f"{n} {k}" for k, n in sent.items()),
              file=sys.stderr)
    if not failed:
        failed += finish_sweeps(args.output_dirs, args.tracking_uri)
    return 1 if failed else 0


def finish_sweeps(paths: list[Path], tracking_uri: str | None) -> int:
    """A sweep folder whose parent run is still open: report on it and end it once every job
    has been sent. Returns the number of sweeps that could not be finished."""
    errors = 0
    for path in paths:
        sweep = read_sweep_file(path) if path.is_dir() else None
        if sweep is None:
            continue
        uri = tracking_uri or sweep["tracking_uri"]
        try:
            parent = tracking.client_for(uri).get_run(sweep["parent_run_id"])
            if parent.info.status != "RUNNING":
                continue
            finish_parent(uri, sweep["parent_run_id"], path)
            print(f"finished sweep parent run {sweep['parent_run_id']}", file=sys.stderr)
        except Exception as err:  # noqa: BLE001 - one line per sweep
            errors += 1
            print(f"error: could not finish the sweep in {path}: {one_line(err)}",
                  file=sys.stderr)
    return errors


if __name__ == "__main__":
    sys.exit(main())

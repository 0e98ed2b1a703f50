"""Run every benchmark and print its tables: MLP, LSTM/RNN (when bench_lstm exists), harness.

    .venv/bin/python benchmarks/run_all.py [--quick] [--threads N] [--markdown] [--only mlp,lstm,harness]

--quick trims repeats, epochs and sweep sizes so the whole set finishes in a few minutes on a
shared 2-core machine (the harness part starts several Python processes and dominates).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import add_common_args, machine_summary, pinned_threads  # noqa: E402

BENCHES = ("mlp", "lstm", "harness")


def bench_args(name: str, args: argparse.Namespace) -> list[str]:
    """The command-line arguments forwarded to one bench's main()."""
    argv = []
    if args.quick:
        argv.append("--quick")
    if args.markdown:
        argv.append("--markdown")
    if args.repeats is not None:
        argv += ["--repeats", str(args.repeats)]
    if name != "harness":
        argv += ["--threads", str(args.threads)]
    return argv


def main(argv: list[str] | None = None) -> int:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--only", default=",".join(BENCHES),
                        help=f"comma-separated subset of {', '.join(BENCHES)}")
    args = parser.parse_args(argv)
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        parser.error(f"unknown bench {unknown}; valid: {', '.join(BENCHES)}")

    print(f"# ann benchmarks, {datetime.now():%Y-%m-%d %H:%M}{' (quick)' if args.quick else ''}")
    with pinned_threads(args.threads):
        print(machine_summary())
    failures = []
    for name in chosen:
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
        except ModuleNotFoundError as err:
            if err.name in (f"benchmarks.bench_{name}",):
                print(f"\n[{name}] skipped: benchmarks/bench_{name}.py does not exist yet")
                continue
            raise
        if not hasattr(module, "main"):
            print(f"\n[{name}] skipped: benchmarks/bench_{name}.py has no main()")
            continue
        print(f"\n[{name}] running ...", flush=True)
        t0 = time.perf_counter()
        try:
            module.main(bench_args(name, args))
        except SystemExit as err:  # argparse inside a bench
            if err.code not in (0, None):
                failures.append(name)
        except Exception as err:  # noqa: BLE001 - report and go on with the others
            print(f"[{name}] FAILED: {type(err).__name__}: {err}", file=sys.stderr)
            failures.append(name)
        print(f"[{name}] {time.perf_counter() - t0:.1f} s", flush=True)
    if failures:
        print(f"\nfailed: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""What a user sees in the MLflow UI: fill a store, serve it, screenshot the pages in Chromium.

    python experiments/ui_check.py                 # all commands, screenshots in ui-check/
    python experiments/ui_check.py OUT --quick     # a default run and a 2-arm lr_tuning only
    python experiments/ui_check.py --store DIR     # keep the store (DIR/mlflow.db) afterwards
    python experiments/ui_check.py --store DIR --reuse   # screenshots of a store filled before
    make ui-check                                  # as CI runs it (SKIPPED without Chromium)

It runs real `experiments/train.py` commands into a temporary SQLite store, starts `mlflow ui`
on a free 127.0.0.1 port over it (one worker, no job execution), opens the pages a user looks at
in headless Chromium (Debian's /usr/bin/chromium driven by Playwright: `pip install -e '.[ui]'`;
`playwright install` cannot download browsers here) and saves full-page screenshots (1600 px
wide) with readable names, plus `pages.md`, an index of what was opened. Look at them: the
script checks only that every page loads.

Exit codes: 0 all pages saved; 1 a training command failed or a page did not load in time
(its state is saved as NN_..._FAILED.png); 3 Chromium or Playwright cannot start (the
environment, not this project: `make ui-check` then reports SKIPPED).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.serving import stop, wait_healthy  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# As root on these machines: no sandbox; without the background-networking flags Chromium's
# own connections to Google are refused by the closed network, many at a time.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
VIEWPORT = {"width": 1600, "height": 1000}
MAX_HEIGHT = 8000  # a full-page screenshot grows the viewport to the content, up to this

# (label, overrides): the commands that fill the store, as a user types them.
FULL = [
    ("default", []),
    ("lr_tuning", ["experiment=lr_tuning"]),
    ("gd_variants", ["experiment=gd_variants", "trainer.max_epochs=5"]),
    ("lstm", ["dataset=digits_seq", "model=lstm", "trainer.max_epochs=3"]),
    ("adhoc_sweep", ["-m", "optimizer.lr=0.01,0.1", "seed=0,1", "trainer.max_epochs=5"]),
]
QUICK = [
    ("default", ["trainer.max_epochs=3"]),
    ("lr_tuning", ["experiment=lr_tuning", "trainer.max_epochs=3", "optimizer.lr=0.1,10.0"]),
]


def say(msg: str) -> None:
    print(f"ui check: {msg}", flush=True)


# ------------------------------------------------------------------------- filling the store
def fill_store(store: Path, commands: list[tuple[str, list[str]]], env: dict) -> dict:
    """Run each command; return {label: {"command": [...], "runs": [run ids it created]}}."""
    from mlflow.tracking import MlflowClient

    manifest = {}
    seen: set[str] = set()
    for label, overrides in commands:
        cmd = [sys.executable, "experiments/train.py", *overrides,
               f"hydra.run.dir={store}/outputs/{label}",
               f"hydra.sweep.dir={store}/multirun/{label}"]
        shown = " ".join(["python experiments/train.py", *overrides])
        t0 = time.monotonic()
        with open(store / f"{label}.log", "wb") as log:
            proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=1800)
        if proc.returncode != 0:
            tail = (store / f"{label}.log").read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"`{shown}` exited with {proc.returncode}:\n" + "\n".join(tail))
        client = MlflowClient(env["MLFLOW_TRACKING_URI"])
        runs = {r.info.run_id for e in client.search_experiments()
                for r in client.search_runs([e.experiment_id], max_results=1000)}
        new, seen = sorted(runs - seen), runs
        manifest[label] = {"command": shown, "runs": new}
        say(f"{time.monotonic() - t0:5.1f} s  {shown}  ({len(new)} runs)")
    return manifest


# ----------------------------------------------------------------------- the MLflow UI server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_ui(store: Path, port: int) -> subprocess.Popen:
    """`mlflow ui` over <store>/mlflow.db in its own process group (artifacts: each experiment
    names its own root, <store>/artifacts/<id>, as experiments/tracking.py creates them)."""
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    cmd = [mlflow, "ui", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
           "--default-artifact-root", str(store / "artifacts"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(store / "server.log", "ab")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


# ------------------------------------------------------------------------- what to look at
@dataclass
class Page:
    name: str  # file stem, e.g. 04_run_default
    route: str  # hash route, e.g. #/experiments/1/runs/<id>
    expect: list[str]  # texts that show the content has arrived
    what: str  # one line for pages.md
    # "expand" (parent rows), "columns" (open the column picker), "preview:<file>" (select an
    # artifact so that its preview shows)
    action: str | None = None
    notes: list[str] = field(default_factory=list)
    details: dict[str, list[str]] = field(default_factory=dict)  # for pages.md


def plan_pages(tracking_uri: str, manifest: dict) -> list[Page]:
    """The pages of issue 10, for the runs the commands created (found by the standard
    mlflow.parentRunId tag and the optimizer.lr param, not by this project's own tags)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = {}
    for label, entry in manifest.items():
        runs[label] = [client.get_run(run_id) for run_id in entry["runs"]]
    experiments = {}  # experiment id -> name, in the order the commands created them
    for label in manifest:
        for run in runs[label]:
            eid = run.info.experiment_id
            experiments.setdefault(eid, client.get_experiment(eid).name)

    def parent_of(label):
        found = [r for r in runs.get(label, []) if "mlflow.parentRunId" not in r.data.tags]
        return found[0] if found else None

    def children_of(label):
        return [r for r in runs.get(label, []) if "mlflow.parentRunId" in r.data.tags]

    def name(run):
        return run.info.run_name or run.info.run_id

    def run_route(run, tab=""):
        return f"#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}{tab}"

    pages = [Page("01_experiments", "#/experiments", list(experiments.values()),
                  "the experiments list (a first visit: the MLflow Assistant panel is open)")]
    for eid, ename in experiments.items():
        top = [r for label in manifest for r in runs[label]
               if r.info.experiment_id == eid and "mlflow.parentRunId" not in r.data.tags]
        stem = re.sub(r"[^\w.-]+", "_", ename)
        pages.append(Page(f"02_runs_{stem}", f"#/experiments/{eid}/runs",
                          [name(r) for r in top[:1]],
                          f"the runs table of '{ename}', parent rows expanded", "expand"))
    lr_parent, lr_children = parent_of("lr_tuning"), children_of("lr_tuning")
    if lr_parent is not None:
        eid = lr_parent.info.experiment_id
        pages.append(Page("03_columns_lr_tuning", f"#/experiments/{eid}/runs", [name(lr_parent)],
                          "the column picker of 'lr_tuning' (Columns button)", "columns"))
    default = (runs.get("default") or [None])[0]
    if default is not None:
        pages.append(Page("04_run_default", run_route(default), [name(default), "About this run"],
                          f"the run page (overview) of the default run '{name(default)}'"))
    if lr_children:
        def lr(run):
            try:
                return float(run.data.params.get("optimizer.lr", "nan"))
            except ValueError:
                return float("nan")
        diverged = max(lr_children, key=lambda r: (lr(r) == lr(r), lr(r)))
        pages.append(Page("05_run_lr_tuning_diverged", run_route(diverged),
                          [name(diverged), "About this run"],
                          f"the run page of the largest-lr lr_tuning child '{name(diverged)}' "
                          f"(optimizer.lr={diverged.data.params.get('optimizer.lr')}, "
                          f"diverged tag: {diverged.data.tags.get('diverged')})"))
    if lr_parent is not None:
        pages.append(Page("06_run_lr_tuning_parent", run_route(lr_parent),
                          [name(lr_parent), "About this run"],
                          f"the run page of the lr_tuning parent '{name(lr_parent)}'"))
    if default is not None:
        pages.append(Page("07_metrics_default", run_route(default, "/model-metrics"),
                          [name(default), "Model metrics"],
                          "the Model metrics (charts) tab of the default run"))
    if lr_parent is not None:
        eid = lr_parent.info.experiment_id
        pages.append(Page("08_charts_lr_tuning", f"#/experiments/{eid}/runs?compareRunsMode=CHART",
                          [name(lr_parent)],
                          "the chart view of the lr_tuning runs page, parent expanded", "expand"))
    if lr_children:
        ids = json.dumps(sorted(r.info.run_id for r in lr_children), separators=(",", ":"))
        eid = lr_children[0].info.experiment_id
        pages.append(Page("09_compare_lr_tuning",
                          f"#/compare-runs?runs={ids}&experiments=[\"{eid}\"]",
                          [name(lr_children[0])],
                          "the Compare page of all lr_tuning children (parallel coordinates, "
                          "params and metrics side by side)"))
    if default is not None:
        pages.append(Page("10_artifacts_default", run_route(default, "/artifacts"),
                          [name(default), "config.yaml"],
                          "the Artifacts tab of the default run, learning_curves.png selected",
                          "preview:learning_curves.png"))
    return pages


# ------------------------------------------------------------------------------ the browser
# The page's main scrolling panel: <main> when it scrolls, else the tallest element that
# scrolls; marked for later calls. Boxes with a fixed height (the metrics table of a run page)
# keep their own scroll bars. `keep`: measure the panel marked before, not a new one.
_MAIN_PANEL_JS = """(keep) => {
  const scrolls = (el) => {
    const s = getComputedStyle(el);
    return (s.overflowY === 'auto' || s.overflowY === 'scroll')
      && el.scrollHeight > el.clientHeight + 4;
  };
  let main = keep ? document.querySelector('[data-ui-check-main]') : null;
  if (!keep) {
    for (const el of document.querySelectorAll('[data-ui-check-main]'))
      el.removeAttribute('data-ui-check-main');
    const tag = document.querySelector('main');
    if (tag && scrolls(tag)) main = tag;
    else for (const el of document.querySelectorAll('*'))
      if (scrolls(el) && (main === null || el.clientHeight > main.clientHeight)) main = el;
    if (main !== null) main.setAttribute('data-ui-check-main', '1');
  }
  if (main === null) return null;
  const r = main.getBoundingClientRect();
  return {left: Math.round(r.left), top: Math.round(r.top), width: Math.round(r.width),
          client: main.clientHeight, scroll: main.scrollHeight};
}"""
_SCROLL_MAIN_JS = """(y) => {
  const el = document.querySelector('[data-ui-check-main]');
  el.scrollTop = y;
  return el.scrollTop;
}"""

# The collapsed "+" expander of a parent row in the runs table (runNameCellRenderer).
_EXPAND_JS = """() => {
  let n = 0;
  const expanders = 'button[data-component-id$="runnamecellrenderer.tsx_46"]';
  for (const b of document.querySelectorAll(expanders)) {
    if (b.innerHTML.includes('M7.25 7.25V4.5')) { b.click(); n++; }
  }
  return n;
}"""

# What MLflow shows while something loads: its design system's spinners (du-bois-*-spin-spinning,
# one in every chart card that still fetches its history), progress bars, skeletons.
_BUSY = ("[class*=spin-spinning], [role=progressbar], [data-testid*=spinner], [class*=spinner], "
         "[class*=skeleton], [class*=Skeleton]")


_BUSY_IN_VIEW_JS = """(selector) => {
  let n = 0;
  for (const el of document.querySelectorAll(selector)) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0
        && r.top < window.innerHeight && r.left < window.innerWidth) n++;
  }
  return n;
}"""


def settle(page, quiet: float = 1.5, timeout: float = 30.0) -> None:
    """Wait until no spinner or skeleton shows in the window (up to `timeout`), then `quiet`
    seconds. Chart cards below the fold keep a spinner until they are scrolled into view."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not page.evaluate(_BUSY_IN_VIEW_JS, _BUSY):
            break
        time.sleep(0.3)
    time.sleep(quiet)


def grow_to_content(page) -> bool:
    """Make the viewport as tall as the content (the UI scrolls inside its own panel, so a
    plain full-page screenshot would stop at the window's height). False when the content
    grows with the window (a plot sized to the viewport): the window is then left as it was."""
    start = page.viewport_size["height"]
    panel = page.evaluate(_MAIN_PANEL_JS, False)
    for _ in range(4):  # charts render lazily once visible, which can make the panel taller
        height = page.viewport_size["height"]
        extra = 0 if panel is None else panel["scroll"] - panel["client"]
        if extra <= 4 or height >= MAX_HEIGHT:
            return True
        grown = min(MAX_HEIGHT, height + extra) - height
        page.set_viewport_size({"width": VIEWPORT["width"], "height": height + grown})
        settle(page, quiet=1.0, timeout=10)
        before, panel = panel, page.evaluate(_MAIN_PANEL_JS, True)  # the same panel
        if panel is None or panel["scroll"] - panel["client"] < 100:
            return True  # all of it, but for a margin that grows with the window
        if panel["scroll"] - before["scroll"] >= 0.9 * grown:
            break  # its content grew as much as the window did
    page.set_viewport_size({"width": VIEWPORT["width"], "height": start})
    settle(page, quiet=0.5, timeout=5)
    return False


def stitched_screenshot(page, path: Path) -> None:
    """Scroll the main panel a window at a time and stack the views into one picture."""
    from io import BytesIO

    from PIL import Image

    panel = page.evaluate(_MAIN_PANEL_JS, False)
    if panel is None:
        page.screenshot(path=str(path), full_page=True)
        return
    left, top, width, client = panel["left"], panel["top"], panel["width"], panel["client"]
    height = page.viewport_size["height"]
    scroll_height = min(panel["scroll"], MAX_HEIGHT)
    canvas = Image.new("RGB", (VIEWPORT["width"], height + scroll_height - client), "white")
    offset, last = 0, None
    while True:
        actual = page.evaluate(_SCROLL_MAIN_JS, offset)
        settle(page, quiet=0.8, timeout=15)
        shot = Image.open(BytesIO(page.screenshot())).convert("RGB")
        if last is None:
            canvas.paste(shot, (0, 0))
        else:
            canvas.paste(shot.crop((left, top, left + width, top + client)), (left, top + actual))
        last = shot
        if actual + client >= scroll_height - 1 or actual < offset:
            break
        offset = actual + client
    # what lies below the panel (if anything) from the last view
    canvas.paste(last.crop((0, top + client, VIEWPORT["width"], height)),
                 (0, top + min(actual + client, scroll_height)))
    page.evaluate(_SCROLL_MAIN_JS, 0)
    canvas.save(path)


def column_picker(page, timeout_ms: float) -> dict[str, list[str]]:
    """Open the runs table's column picker; return its groups and the names each offers."""
    page.get_by_role("button", name="Columns").first.click(timeout=timeout_ms)
    titles = page.locator(".du-bois-light-tree-title")
    titles.first.wait_for(timeout=timeout_ms)
    time.sleep(1.0)
    groups: dict[str, list[str]] = {}
    current = None
    for text in titles.all_inner_texts():
        text = text.strip()
        heading = re.fullmatch(r"(Attributes|Metrics|Parameters|Tags)( \(\d+\))?", text)
        if heading:
            current = groups.setdefault(heading.group(1), [])
        elif current is not None:
            current.append(text)
    return groups


def shoot(page, base: str, out: Path, spec: Page, timeout_ms: float) -> str | None:
    """Open one page, wait for its content, screenshot it; return None or why it failed."""
    try:
        page.set_viewport_size(VIEWPORT)
        page.goto("about:blank")
        page.goto(base + "/" + spec.route, wait_until="load", timeout=timeout_ms)
        for text in spec.expect:
            page.get_by_text(text, exact=False).first.wait_for(state="visible",
                                                               timeout=timeout_ms)
        settle(page)
        if spec.action == "expand":
            for _ in range(5):  # nested parents: expand until none is collapsed
                if not page.evaluate(_EXPAND_JS):
                    break
                settle(page, quiet=1.0)
        elif spec.action == "columns":
            groups = column_picker(page, timeout_ms)
            total = sum(len(names) for names in groups.values())
            spec.notes.append(f"the column picker offers {total} columns ("
                              + ", ".join(f"{k} {len(v)}" for k, v in groups.items()) + ")")
            spec.details.update(groups)
        elif spec.action and spec.action.startswith("preview:"):
            artifact = spec.action.split(":", 1)[1]
            page.get_by_text(artifact, exact=True).first.click(timeout=timeout_ms)
            if artifact.endswith(".png"):
                page.locator(f'img[src*="{artifact}"], img[alt*="{artifact}"]').first.wait_for(
                    timeout=timeout_ms)
            settle(page)
        shown = re.search(r"Show more columns \((\d+) total\)", page.inner_text("body"))
        if shown:
            spec.notes.append(f"the table says 'Show more columns ({shown.group(1)} total)'")
        path = out / f"{spec.name}.png"
        if spec.action == "columns":  # an open dropdown closes when the window resizes
            page.screenshot(path=str(path))
        elif grow_to_content(page):
            settle(page, quiet=0.5)  # charts that came into view with the taller window
            page.screenshot(path=str(path), full_page=True)
        else:
            stitched_screenshot(page, path)
            spec.notes.append("stitched from scrolled views (its content grows with the window)")
        return None
    except Exception as err:  # noqa: BLE001 - a timeout, a missing element: record, go on
        page.screenshot(path=str(out / f"{spec.name}_FAILED.png"), full_page=True)
        return f"{type(err).__name__}: {str(err).splitlines()[0]}"


def close_assistant(page) -> None:
    """Close the MLflow Assistant side panel (a first visit opens it; the UI remembers)."""
    button = page.locator('button[data-component-id="mlflow.assistant.chat_panel.close"]')
    if button.count():
        button.first.click()
        time.sleep(0.5)


def browse(base: str, out: Path, pages: list[Page], timeout_s: float) -> list[str]:
    """Screenshot every page; return the failures. Raises BrowserUnavailable when Chromium
    cannot start."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        raise BrowserUnavailable(f"playwright is not installed ({err}): "
                                 "pip install -e '.[ui]'") from None
    if not Path(CHROMIUM).exists():
        raise BrowserUnavailable(f"{CHROMIUM} is missing: apt-get install chromium")
    failures = []
    with sync_playwright() as pw:
        with tempfile.TemporaryDirectory(prefix="ui-check-chromium-") as profile:
            try:
                context = pw.chromium.launch_persistent_context(
                    profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                    viewport=VIEWPORT)
            except Exception as err:  # noqa: BLE001 - whatever keeps Chromium from starting
                raise BrowserUnavailable(f"Chromium cannot start: "
                                         f"{str(err).strip().splitlines()[0]}") from None
            try:
                page = context.new_page()
                for i, spec in enumerate(pages):
                    t0 = time.monotonic()
                    problem = shoot(page, base, out, spec, timeout_s * 1000)
                    if i == 0:
                        close_assistant(page)
                    status = f"FAILED: {problem}" if problem else "ok"
                    extra = f"; {'; '.join(spec.notes)}" if spec.notes else ""
                    say(f"{time.monotonic() - t0:5.1f} s  {spec.name}.png  {status}{extra}")
                    if problem:
                        failures.append(f"{spec.name}: {problem}")
            finally:
                context.close()
    return failures


class BrowserUnavailable(RuntimeError):
    pass


def write_index(out: Path, base: str, pages: list[Page], manifest: dict, failures: list[str],
                seconds: dict) -> None:
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    lines = [f"# MLflow UI screenshots ({time.strftime('%Y-%m-%d %H:%M')}, code {commit})", "",
             "Commands that filled the store:", ""]
    lines += [f"- `{e['command']}` ({len(e['runs'])} runs)" for e in manifest.values()]
    lines += ["", "| screenshot | page | route | notes |", "|---|---|---|---|"]
    for spec in pages:
        failed = [f for f in failures if f.startswith(spec.name + ":")]
        notes = "; ".join(spec.notes + (["FAILED"] if failed else []))
        lines.append(f"| {spec.name}.png | {spec.what} | `{spec.route}` | {notes} |")
    for spec in pages:
        for group, names in spec.details.items():
            lines += ["", f"{spec.name}, {group} ({len(names)}): " + ", ".join(names)]
    lines += ["", "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()), ""]
    (out / "pages.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=PROJECT_ROOT / "ui-check",
                        help="folder of the screenshots (default: ui-check/)")
    parser.add_argument("--quick", action="store_true",
                        help="only a short default run and a 2-arm lr_tuning (lr 0.1 and 10)")
    parser.add_argument("--store", type=Path, default=None,
                        help="folder of the store (mlflow.db, artifacts/), kept afterwards; "
                             "default: a temporary folder, removed")
    parser.add_argument("--reuse", action="store_true",
                        help="screenshot the store filled by an earlier run with --store")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds for each page to show its content (default 60)")
    args = parser.parse_args(argv)
    if args.reuse and args.store is None:
        parser.error("--reuse needs --store")

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("[0-9][0-9]_*.png")) + list(out.glob("pages.md")):
        old.unlink()  # a re-run leaves no stale screenshot behind
    store = (args.store.resolve() if args.store
             else Path(tempfile.mkdtemp(prefix="ui-check-store-")))
    store.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    seconds = {}
    server = None
    try:
        t0 = time.monotonic()
        manifest_file = store / "ui-check-runs.json"
        if args.reuse:
            manifest = json.loads(manifest_file.read_text())
        else:
            if (store / "mlflow.db").exists():
                say(f"FAILED: {store} already holds a store (use --reuse, or a new folder)")
                return 1
            say(f"filling the store {uri}")
            manifest = fill_store(store, QUICK if args.quick else FULL, env)
            manifest_file.write_text(json.dumps(manifest, indent=1))
        seconds["commands"] = time.monotonic() - t0
        pages = plan_pages(uri, manifest)

        t0 = time.monotonic()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_ui(store, port)
        wait_healthy(base, timeout=90.0, proc=server, what="`mlflow ui`")
        seconds["server start"] = time.monotonic() - t0
        say(f"mlflow ui on {base} after {seconds['server start']:.1f} s; "
            f"{len(pages)} pages -> {out}")

        t0 = time.monotonic()
        failures = browse(base, out, pages, args.timeout)
        seconds["pages"] = time.monotonic() - t0
        write_index(out, base, pages, manifest, failures, seconds)
    except BrowserUnavailable as err:
        say(f"cannot start the browser: {err}")
        return 3
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        say(f"FAILED: {err}")
        return 1
    finally:
        if server is not None:
            stop(server)
        if args.store is None:
            shutil.rmtree(store, ignore_errors=True)
    if failures:
        say(f"FAILED: {len(failures)} of {len(pages)} pages did not load: " + "; ".join(failures))
        return 1
    say(f"PASSED: {len(pages)} screenshots in {out} (index: pages.md); "
        + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

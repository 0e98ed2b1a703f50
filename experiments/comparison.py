"""The comparison of a sweep: its children grouped by arm, overlaid curves, a summary.

The children of a parent run (tag `mlflow.parentRunId`) are grouped by their `ann.arm` tag (an
arm repeated over seeds gives mean and std). The report is written to a local folder and logged
to the parent under `report/`: comparison.png and curves_vs_{epoch,samples,seconds}.png,
summary.csv and summary.md (for 2-D classification data also decision_boundaries.png: each
arm's learned boundary side by side). The parent also receives the best arm's key metrics
(`best_val_loss`, `best_test_accuracy` or `best_test_rmse`), the tag `best_arm`, and the
summary as its description. Best arm = lowest mean best_val_loss among arms that neither
failed nor diverged. Every arm is also compared with the best arm seed by seed (paired.py:
mean difference, 95% interval, seeds won / lost / tied, a verdict; paired.png).
Only the MlflowClient API is used, so an http:// server works too.
The command line is experiments/report.py.
"""
from __future__ import annotations

import csv
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ann.diagnostics import QUANTITIES
from experiments import heap
from experiments.compare_plots import (ArmCurves, curve_figures, plot_layer_diagnostics,
                                       plot_paired)
from experiments.forked import draw_in_two
from experiments.paired import (PAIRED_COLUMNS, SCORES, compare_with_best, csv_fields,
                                markdown_lines, verdict_lines)
from experiments.resume import reused_run_ids
from experiments.tracking import PROJECT_ROOT, StoreError, first_line, open_store

CURVE_KEYS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "train_rmse",
              "val_rmse", "lr", "samples_seen", "wall_seconds")
OK_STATUSES = ("FINISHED", "RUNNING")
# Per-layer diagnostics a report plots, under aliases: the first and last hidden layers'
# quantities, the output layer's grad_norm and grad_ratio = layer1 / output grad_norm.
LAYER_SERIES = (*(f"{side}.{q}" for side in ("first", "last") for q in QUANTITIES),
                "output.grad_norm", "grad_ratio")
_LAYER_KEY = re.compile(r"layer(\d+)\.(\w+)")


class ReportError(RuntimeError):
    """Bad input for a report (unknown run or experiment, unreachable store): one line."""


@dataclass
class Child:
    """One child run as the report needs it."""

    run_id: str
    arm: str
    status: str
    seed: str
    start_time: int
    metrics: dict[str, float]
    tags: dict[str, str]
    params: dict[str, str]
    history: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    @property
    def diverged(self) -> bool:
        return self.tags.get("diverged", "false").lower() == "true"


# ---------------------------------------------------------------- reading the store
def _client(tracking_uri: str):
    try:
        return open_store(tracking_uri)
    except StoreError as err:
        raise ReportError(str(err)) from None


def _get_run(client, run_id: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException as err:
        raise ReportError(f"no run with id {run_id!r}: {first_line(err)}") from None


def _search_all(client, experiment_ids: list[str], filter_string: str, order_by=None) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string,
                                  max_results=1000, order_by=order_by, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _unclip(value: float) -> float:
    """MLflow stores +-inf as +-max float; give the infinity back."""
    return math.copysign(math.inf, value) if abs(value) >= 1.7e308 else value


def read_children(client, parent_run_id: str, experiment_id: str,
                  reused: list[str] = ()) -> list[Child]:
    """Every child of the parent with its final metrics and per-epoch histories, and the
    runs it reuses (`resume=true`: resume.reused_run_ids of the parent's tags)."""
    runs = _search_all(client, [experiment_id],
                       f"tags.mlflow.parentRunId = '{parent_run_id}'")
    for run_id in reused:  # a reused run deleted since is left out (completeness says so)
        try:
            runs.append(_get_run(client, run_id))
        except ReportError:
            print(f"warning: reused run {run_id} is no longer in the store", file=sys.stderr)
    children = []
    for run in runs:
        data = run.data
        child = Child(run_id=run.info.run_id, arm=data.tags.get("ann.arm", "default"),
                      status=run.info.status, seed=data.params.get("seed", ""),
                      start_time=run.info.start_time or 0,
                      metrics={k: _unclip(v) for k, v in data.metrics.items()},
                      tags=dict(data.tags), params=dict(data.params))
        for key in CURVE_KEYS:
            if key in data.metrics:
                child.history[key] = _metric_history(client, child.run_id, key)
        fetched: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # first = last: one call
        for alias, key in layer_keys(data.metrics).items():
            if key not in fetched:
                fetched[key] = _metric_history(client, child.run_id, key)
            child.history[alias] = fetched[key]
        if "first.grad_norm" in child.history and "output.grad_norm" in child.history:
            child.history["grad_ratio"] = _ratio(child.history["first.grad_norm"],
                                                 child.history["output.grad_norm"])
        children.append(child)
    children.sort(key=lambda c: (c.start_time, c.run_id))
    return children


def _metric_history(client, run_id: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    hist = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    last = {m.step: m.value for m in hist}  # a step logged twice: the last wins
    steps = np.array(sorted(last), dtype=int)
    return steps, np.array([_unclip(last[s]) for s in steps], dtype=float)


def layer_keys(metrics: dict[str, float]) -> dict[str, str]:
    """alias -> logged key of the layer diagnostics a report plots (see LAYER_SERIES): the
    first and last hidden layers (the first and last weight layers of a model without
    activation statistics, e.g. recurrent) and the output layer; {} without diagnostics."""
    found = [m for k in metrics if (m := _LAYER_KEY.fullmatch(k))]
    layers = sorted({int(m.group(1)) for m in found})
    if not layers:
        return {}
    hidden = [i for i in layers if f"layer{i}.act_mean" in metrics] or layers
    out = {f"{side}.{q}": f"layer{i}.{q}" for side, i in (("first", hidden[0]),
                                                            ("last", hidden[-1]))
           for q in QUANTITIES if f"layer{i}.{q}" in metrics}
    if f"layer{layers[-1]}.grad_norm" in metrics:
        out["output.grad_norm"] = f"layer{layers[-1]}.grad_norm"
    return out


def _ratio(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]):
    """a / b at the steps both have."""
    common, ia, ib = np.intersect1d(a[0], b[0], return_indices=True)
    with np.errstate(all="ignore"):
        return common, a[1][ia] / b[1][ib]


# ---------------------------------------------------------------- arms and statistics
def group_arms(children: list[Child]) -> dict[str, list[Child]]:
    """Children by `ann.arm`, arms in order of their first run."""
    arms: dict[str, list[Child]] = {}
    for child in children:
        arms.setdefault(child.arm, []).append(child)
    return arms


def _mean_curve(runs: list[Child], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Mean and std over the runs at each step any of them logged."""
    per_step: dict[int, list[float]] = {}
    for run in runs:
        if key in run.history:
            for s, v in zip(*run.history[key]):
                per_step.setdefault(int(s), []).append(float(v))
    if not per_step:
        return None
    steps = np.array(sorted(per_step))
    with np.errstate(all="ignore"):
        mean = np.array([np.mean(per_step[s]) for s in steps])
        std = np.array([np.std(per_step[s]) if len(per_step[s]) > 1 else 0.0 for s in steps])
    return steps, mean, np.nan_to_num(std)


def arm_curves(name: str, runs: list[Child]) -> ArmCurves:
    ok = [r for r in runs if r.ok]
    curves = ArmCurves(name=name, n_seeds=len(ok), diverged=any(r.diverged for r in ok))
    for key in CURVE_KEYS + LAYER_SERIES:
        curve = _mean_curve(ok, key)
        if curve is not None:
            curves.series[key] = curve
    best = [r.metrics["best_epoch"] for r in ok if r.metrics.get("best_epoch")]
    curves.best_epoch = float(round(np.mean(best))) if best else None
    curves.restored = any(r.params.get("early_stopping.restore_best") == "True" for r in ok)
    where = [int(r.tags["diverged_epoch"]) for r in ok if r.tags.get("diverged_epoch", "").isdigit()]
    curves.diverged_epoch = min(where) if where else None
    return curves


def _stat(values: list[float]) -> tuple[float, float | None]:
    if not values:
        return math.nan, None
    arr = np.asarray(values, dtype=float)
    with np.errstate(all="ignore"):
        return float(np.mean(arr)), (float(np.std(arr)) if arr.size > 1 else None)


def _best_of(run: Child, key: str, higher: bool) -> float | None:
    if key not in run.history:
        return None
    vals = run.history[key][1]
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return None
    return float(vals.max() if higher else vals.min())


def summarise(arms: dict[str, list[Child]], quantity: str) -> list[dict]:
    """One row per arm; numeric fields hold (mean, std or None)."""
    rows = []
    higher = quantity == "accuracy"
    for name, runs in arms.items():
        ok = [r for r in runs if r.ok]
        failed = [r for r in runs if not r.ok]
        row: dict = {"arm": name, "n_seeds": len(ok), "n_failed": len(failed),
                     "status": ("FINISHED" if not failed else
                                ", ".join(sorted({r.status for r in failed}))
                                + ("" if not ok else f" ({len(failed)} of {len(runs)})")),
                     "run_ids": " ".join(r.run_id for r in runs)}

        def last(r: Child, key: str) -> list[float]:
            return [float(r.history[key][1][-1])] if key in r.history else []

        def metric(key: str) -> list[float]:
            return [r.metrics[key] for r in ok if key in r.metrics]

        row["final_val_loss"] = _stat([v for r in ok for v in last(r, "val_loss")])
        row["best_val_loss"] = _stat(metric("best_val_loss"))
        row[f"final_val_{quantity}"] = _stat([v for r in ok for v in last(r, f"val_{quantity}")])
        row[f"best_val_{quantity}"] = _stat(
            [v for r in ok if (v := _best_of(r, f"val_{quantity}", higher)) is not None])
        row["test_loss"] = _stat(metric("test_loss"))
        row[f"test_{quantity}"] = _stat(metric(f"test_{quantity}"))
        row["best_epoch"] = _stat(metric("best_epoch"))
        row["stopped_epoch"] = _stat(metric("stopped_epoch"))
        row["stop_reason"] = "/".join(sorted({r.tags.get("stop_reason", "") for r in ok} - {""}))
        n_div = sum(r.diverged for r in ok)
        row["diverged"] = ("-" if not ok else "true" if n_div == len(ok)
                           else "false" if n_div == 0 else f"{n_div}/{len(ok)}")
        row["train_seconds"] = _stat(
            [r.metrics["train_seconds"] if "train_seconds" in r.metrics
             else (last(r, "wall_seconds") or [math.nan])[0] for r in ok])
        row["seconds_per_epoch"] = _stat(
            [v for r in ok if (v := _seconds_per_epoch(r)) is not None])
        row.update(_layer_summary(ok))
        rows.append(row)
    layer_cols = [k for k in ("grad_ratio_epoch1", "grad_ratio_final", "saturated_fraction",
                              "dead_fraction") if any(math.isfinite(r[k][0]) for r in rows)]
    for row in rows:  # only the columns some arm has (not for runs without diagnostics)
        for k in ("grad_ratio_epoch1", "grad_ratio_final", "saturated_fraction",
                  "dead_fraction"):
            if k not in layer_cols:
                del row[k]
    return rows


def _seconds_per_epoch(run: Child) -> float | None:
    """Mean epoch_seconds: the last wall_seconds (their running sum) over the epochs."""
    steps, values = run.history.get("wall_seconds", ((), ()))
    return float(values[-1]) / len(steps) if len(steps) else None


def _layer_summary(runs: list[Child]) -> dict[str, tuple[float, float | None]]:
    """grad_ratio (layer1 / output layer grad_norm) after epoch 1 and after the last epoch;
    saturated and dead fractions after the last epoch, averaged over the hidden layers."""
    first, final, saturated, dead = [], [], [], []
    for r in runs:
        ratio = r.history.get("grad_ratio")
        if ratio is not None and len(ratio[0]) and ratio[0][0] == 1 and math.isfinite(ratio[1][0]):
            first.append(float(ratio[1][0]))
        keys = layer_keys(r.metrics)
        if "first.grad_norm" in keys and "output.grad_norm" in keys:
            value = r.metrics[keys["first.grad_norm"]] / r.metrics[keys["output.grad_norm"]] \
                if r.metrics[keys["output.grad_norm"]] > 0 else math.nan
            if math.isfinite(value):
                final.append(value)
        for q, out in (("saturated_fraction", saturated), ("dead_fraction", dead)):
            values = [v for k, v in r.metrics.items()
                      if (m := _LAYER_KEY.fullmatch(k)) and m.group(2) == q]
            if values:
                out.append(float(np.mean(values)))
    return {"grad_ratio_epoch1": _stat(first), "grad_ratio_final": _stat(final),
            "saturated_fraction": _stat(saturated), "dead_fraction": _stat(dead)}


def best_arm(rows: list[dict]) -> dict | None:
    """Lowest mean best_val_loss among arms with finished runs and no divergence."""
    candidates = [r for r in rows if r["n_seeds"] > 0 and r["n_failed"] == 0
                  and r["diverged"] == "false" and math.isfinite(r["best_val_loss"][0])]
    return min(candidates, key=lambda r: r["best_val_loss"][0]) if candidates else None


def score_table(arms: dict[str, list[Child]], score: str) -> tuple[dict, dict]:
    """({arm: {seed: score}}, {arm: seeds that diverged}) over the FINISHED runs that logged
    `score`: the input of the paired comparison. A seed run twice in an arm: the later run."""
    table: dict[str, dict[str, float]] = {}
    diverged: dict[str, set[str]] = {}
    for name, runs in arms.items():
        table[name] = {}
        for run in runs:  # in order of start time
            if run.status == "FINISHED" and score in run.metrics:
                table[name][run.seed] = run.metrics[score]
                if run.diverged:
                    diverged.setdefault(name, set()).add(run.seed)
                else:
                    diverged.get(name, set()).discard(run.seed)
    return table, diverged


# ---------------------------------------------------------------- writing
NUMERIC_FMT = {"best_epoch": "{:.1f}", "stopped_epoch": "{:.1f}", "train_seconds": "{:.2f}"}


def _fmt(key: str, value: tuple[float, float | None]) -> str:
    mean, std = value
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if math.isinf(mean):
        return "inf" if mean > 0 else "-inf"
    fmt = NUMERIC_FMT.get(key, "{:.4g}")
    if key in ("best_epoch", "stopped_epoch") and std is None:
        fmt = "{:.0f}"
    text = fmt.format(mean)
    return text if std is None or not math.isfinite(std) else f"{text} ± {fmt.format(std)}"


def completeness(parent, children: list[Child]) -> tuple[str | None, str | None]:
    """What the sweep lacks: (a few words for the title, a sentence for the summary), or
    (None, None) when every job of the sweep (the parent's `ann.n_jobs`) has a FINISHED run.

    Fewer children than jobs means the sweep was KILLED or ended early; children that are
    not FINISHED (KILLED, FAILED, still RUNNING) are counted by status."""
    expected = parent.data.tags.get("ann.n_jobs", "")
    expected = int(expected) if expected.isdigit() else None
    short, sentences = None, []
    if expected is not None and len(children) < expected:
        missing = expected - len(children)
        why = {"KILLED": "the sweep was KILLED", "FAILED": "the sweep ended early",
               "RUNNING": "the sweep is still running or was cut short"}.get(
                   parent.info.status, "the sweep ended early")
        short = f"{len(children)} of {expected} jobs ran"
        sentences.append(f"{len(children)} of {expected} jobs ran; {missing} missing ({why}).")
    counts: dict[str, int] = {}
    for child in children:
        if child.status != "FINISHED":
            counts[child.status] = counts.get(child.status, 0) + 1
    if counts:
        n_bad = sum(counts.values())
        sentences.append(f"{n_bad} of {len(children)} run{'s' if len(children) != 1 else ''} "
                         f"did not finish: " + ", ".join(f"{n} {s}" for s, n in sorted(
                             counts.items())) + ".")
    return short, (" ".join(sentences) or None)


def write_summary(rows: list[dict], out_dir: Path, *, title: str, best: dict | None,
                  notice: str | None = None, paired: list[str] = ()) -> str:
    """summary.csv (mean and std columns, then the paired columns when the rows have them)
    and summary.md; returns the Markdown. `notice` (what the sweep lacks, see
    `completeness`) comes first, in bold; `paired` (Markdown lines) comes last."""
    text_cols = ["arm", "status", "n_seeds", "n_failed"]
    num_cols = [k for k in rows[0] if isinstance(rows[0][k], tuple)] if rows else []
    tail_cols = ["stop_reason", "diverged"]
    paired_cols = [k for k in PAIRED_COLUMNS if rows and k in rows[0]]
    with open(out_dir / "summary.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        header = list(text_cols)
        for k in num_cols:
            header += [k, f"{k}_std"]
        writer.writerow(header + tail_cols + paired_cols + ["run_ids"])
        for row in rows:
            values = [row[k] for k in text_cols]
            for k in num_cols:
                mean, std = row[k]
                values += ["" if math.isnan(mean) else repr(mean), "" if std is None else repr(std)]
            writer.writerow(values + [row[k] for k in tail_cols + paired_cols]
                            + [row["run_ids"]])
    md_cols = text_cols[:1] + text_cols[2:3] + num_cols + tail_cols + ["status"]
    lines = [f"## {title}", ""]
    if notice:
        lines += [f"**Not every job finished:** {notice}", ""]
    if best is not None:
        lines += [f"Best arm (lowest mean best_val_loss, not diverged or failed): "
                  f"**{best['arm']}**", ""]
    else:
        lines += ["No arm finished without diverging or failing.", ""]
    lines.append("| " + " | ".join(md_cols) + " |")
    lines.append("|" + "|".join("---" for _ in md_cols) + "|")
    for row in rows:
        cells = [_fmt(k, row[k]) if k in num_cols else str(row[k]) for k in md_cols]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "Values are mean ± std over seeds when an arm was repeated. Curves: "
              "report/comparison.png. seconds_per_epoch: mean epoch_seconds (the updates, "
              "evaluation excluded)."]
    if rows and "grad_ratio_final" in rows[0]:
        lines += ["", "Inside the layers (report/layer_diagnostics.png), on each run's probe "
                  "batch: grad_ratio = layer1.grad_norm / layerL.grad_norm (L = the output "
                  "layer) after epoch 1 and after the last epoch; saturated_fraction and "
                  "dead_fraction after the last epoch, mean over the hidden layers."]
    if paired:
        lines += ["", *paired]
    md = "\n".join(lines) + "\n"
    (out_dir / "summary.md").write_text(md)
    return md


def _sides(children: list[Child]) -> tuple[str, str]:
    """Titles of the layer-diagnostics columns: which layers `first` and `last` are."""
    names: dict[str, set[str]] = {"first": set(), "last": set()}
    hidden = False
    for child in children:
        keys = layer_keys(child.metrics)
        hidden = hidden or "first.act_mean" in keys
        for side in names:
            if f"{side}.grad_norm" in keys:
                names[side].add(keys[f"{side}.grad_norm"].split(".")[0])
    kind = "hidden layer" if hidden else "layer"

    def label(side: str) -> str:
        layers = sorted(names[side], key=lambda n: int(n[5:]))
        return f"{side} {kind}" + (f" ({', '.join(layers)})" if layers else "")

    return label("first"), label("last")


def default_out_dir(experiment_name: str, parent_run_id: str) -> Path:
    return PROJECT_ROOT / "reports" / experiment_name / parent_run_id


def build_report(tracking_uri: str, parent_run_id: str, out_dir: Path | None = None, *,
                 score: str = "best_val_loss") -> Path:
    """Write the comparison of a parent run's children locally and log it to the parent.
    `score` is what the arms are paired on seed by seed (report.py's --score).

    Raises ReportError (before logging anything) for an unknown run, a run without children,
    a score the sweep has not (test_accuracy of a regression ...) or an unreachable store.
    Returns the local folder holding the report.
    """
    heap.settle()  # a sweep's last work, or report.py's only one
    client = _client(tracking_uri)
    parent = _get_run(client, parent_run_id)
    experiment = client.get_experiment(parent.info.experiment_id)
    reused = reused_run_ids(parent.data.tags)  # resume=true: runs of earlier sweeps
    children = read_children(client, parent_run_id, parent.info.experiment_id, reused=reused)
    if not children:
        raise ReportError(f"run {parent_run_id} has no child runs: not a sweep's parent run")
    out_dir = Path(out_dir) if out_dir else default_out_dir(experiment.name, parent_run_id)
    out_dir.mkdir(parents=True, exist_ok=True)

    classification = any("val_accuracy" in c.metrics for c in children)
    quantity = "accuracy" if classification else "rmse"
    allowed = ("best_val_loss", "test_loss", f"test_{quantity}")
    if score not in allowed:
        raise ReportError(f"--score {score}: not a score of this sweep ("
                          f"{'classification' if classification else 'regression'}); "
                          f"allowed: {', '.join(allowed)}")
    arms = group_arms(children)
    rows = summarise(arms, quantity)
    best = best_arm(rows)
    title = f"{experiment.name}: {len(arms)} arms, {len(children)} runs"
    if reused:
        title += f" ({len(reused)} reused)"
    short, notice = completeness(parent, children)
    if short:
        title += f"; {short}"
        print(f"warning: sweep {parent_run_id} is incomplete: {notice}", file=sys.stderr)
    curves = [arm_curves(n, runs) for n, runs in arms.items()]
    table, diverged = score_table(arms, score)
    higher = SCORES[score]
    paired = compare_with_best(table, best["arm"], higher_is_better=higher,
                               diverged=diverged) if best else {}
    for row in rows:
        row.update(csv_fields(paired.get(row["arm"]), score))

    def paired_figure() -> None:
        plot_paired(table, out_dir / "paired.png", best=best and best["arm"], score=score,
                    higher_is_better=higher, diverged=diverged,
                    intervals={a: (r.diff, r.low, r.high) for a, r in paired.items()},
                    title=f"{title}: arms paired by seed")

    # comparison.png (a 3-row curves_vs_*.png) and the three curves_vs_*.png here,
    # layer_diagnostics.png and paired.png in a forked copy: two halves of similar time (for
    # 16 arms: the layer figure ~1.0 s, comparison.png ~0.7 s, each other ~0.2 s)
    comparison, *per_axis = curve_figures(curves, out_dir, title=title)
    if any(k in c.series for c in curves for k in LAYER_SERIES):
        draw_in_two([comparison, *per_axis], [lambda: plot_layer_diagnostics(
            curves, out_dir / "layer_diagnostics.png", columns=_sides(children),
            title=f"{title}: inside the layers (probe batch, after each epoch)"),
            paired_figure])
    else:
        draw_in_two([comparison, per_axis[0]], [*per_axis[1:], paired_figure])
    write_summary(rows, out_dir, title=f"{title} (parent run {parent_run_id})", best=best,
                  notice=notice, paired=markdown_lines(paired, table, score,
                                                       higher_is_better=higher))
    text = overview(rows, quantity, title=title, best=best, notice=notice,
                    paired=verdict_lines(paired, table, score, higher_is_better=higher))
    (out_dir / "overview.md").write_text(text)
    _gradient_flows(client, arms, out_dir, experiment.name)
    _decision_boundaries(client, arms, out_dir, experiment.name)
    _log_to_parent(client, parent_run_id, out_dir, text, best, quantity)
    return out_dir


def overview(rows: list[dict], quantity: str, *, title: str, best: dict | None,
             notice: str | None, paired: list[str] = ()) -> str:
    """The parent run's description (and what the sweep prints at its end): the best arm and
    the arms ranked, one short line each, in plain lines that render in the UI's narrow "About
    this run" panel and in the runs table's Description column. The full table is
    report/summary.md."""
    def score(row: dict) -> str:
        parts = []
        for key, label in (("best_val_loss", "best val loss"),
                           (f"test_{quantity}", f"test {quantity}")):
            mean, std = row[key]
            if math.isfinite(mean):
                parts.append(f"{label} {_fmt(key, (mean, std))}")
        return ", ".join(parts) or "no result"

    def rank_key(row: dict) -> tuple:
        ok = row["n_seeds"] > 0 and row["n_failed"] == 0 and row["diverged"] == "false"
        loss = row["best_val_loss"][0]
        return (not ok, loss if math.isfinite(loss) else math.inf)

    lines = []
    if best is not None:
        lines.append(f"Best arm: {best['arm']} ({score(best)}).")
    else:
        lines.append("No arm finished without diverging or failing.")
    if notice:
        lines += ["", f"Not every job finished: {notice}"]
    lines += ["", f"{title}, ranked by best val loss"
              + (" (mean ± std over seeds)" if any(r["n_seeds"] > 1 for r in rows) else "")
              + ":", ""]
    for i, row in enumerate(sorted(rows, key=rank_key), start=1):
        flag = ""
        if row["diverged"] not in ("false", "-"):
            flag = " - diverged" + ("" if row["diverged"] == "true" else f" ({row['diverged']})")
        if row["n_failed"]:
            flag += f" - {row['status']}"
        lines.append(f"{i}. {row['arm']}: {score(row)}{flag}")
    if paired:
        lines += ["", *paired]
    lines += ["", "Full table: report/summary.md; curves: report/comparison.png; seed by "
              "seed: report/paired.png."]
    return "\n".join(lines) + "\n"


def _gradient_flows(client, arms: dict[str, list[Child]], out_dir: Path, name: str) -> None:
    """Overlay the recurrent arms' gradient-flow profiles (first finished run of each arm)."""
    import csv
    import tempfile

    from experiments.compare_plots import plot_gradient_flows

    profiles = {}
    for arm, runs in arms.items():
        run = next((r for r in runs if r.ok and "grad_flow_ratio" in r.metrics), None)
        if run is None:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = client.download_artifacts(run.run_id, "gradient_flow.csv", tmp)
            except Exception:  # noqa: BLE001 - a missing profile leaves that arm out
                continue
            with open(local) as fh:
                rows = list(csv.DictReader(fh))
            # runs logged before the columns were renamed call it grad_norm
            key = "grad_norm" if rows and "grad_norm" in rows[0] else "dloss_dh_norm"
            profiles[arm] = np.array([float(row[key]) for row in rows])
    if profiles:
        plot_gradient_flows(profiles, out_dir / "gradient_flow.png",
                            title=f"{name}: gradient reaching each time step")


def _decision_boundaries(client, arms: dict[str, list[Child]], out_dir: Path, name: str) -> None:
    """One panel per arm: the learned decision boundary of the arm's first finished run, drawn
    from its decision_boundary.npz (logged by runs on 2-D classification data; nothing is
    re-trained). Arms without one are left out; no panel at all, no figure."""
    import tempfile

    from experiments.boundary import BoundaryView, plot_boundary_panels

    views, notes = {}, {}
    without: set[str] = set()  # datasets whose runs have no boundary: one try per dataset
    for arm, runs in arms.items():
        run = next((r for r in runs if r.status == "FINISHED"), None)
        if run is None or "test_accuracy" not in run.metrics:
            continue
        dataset = run.params.get("dataset.name", "")
        if dataset in without:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            try:
                views[arm] = BoundaryView.load(
                    client.download_artifacts(run.run_id, "decision_boundary.npz", tmp))
            except Exception:  # noqa: BLE001 - not 2-D data, or logged before boundaries
                without.add(dataset)
                continue
        notes[arm] = f"test accuracy {run.metrics['test_accuracy']:.3f}" + (
            " (diverged)" if run.diverged else "")
    if views:
        plot_boundary_panels(views, out_dir / "decision_boundaries.png", subtitles=notes,
                             title=f"{name}: each arm's decision boundary (first finished run)")


def _log_to_parent(client, parent_run_id: str, out_dir: Path, md: str, best: dict | None,
                   quantity: str) -> None:
    import time

    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    metrics, tags = [], [RunTag("mlflow.note.content", md)]
    if best is not None:
        tags.append(RunTag("best_arm", best["arm"]))
        for key, name in (("best_val_loss", "best_val_loss"), (f"test_{quantity}",
                                                                f"best_test_{quantity}"),
                          ("test_loss", "best_test_loss")):
            value = best[key][0]
            if math.isfinite(value):
                metrics.append(Metric(name, value, now, 0))
    client.log_batch(parent_run_id, metrics=metrics, tags=tags, synchronous=True)
    client.log_artifacts(parent_run_id, str(out_dir), artifact_path="report")



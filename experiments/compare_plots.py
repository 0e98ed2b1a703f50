"""Comparison figures: every arm of a sweep overlaid on one set of axes.

An arm's curve is the mean over its seeds at each epoch, with a band of +-1 std when repeated.
The x axis is the epoch, the samples seen or the cumulative training seconds (the mean over
seeds at that epoch). Diverged arms are drawn dashed over their completed epochs, clipped to
the range of the healthy arms, with an X where they stop; the legend says where they
diverged (an arm that diverged in its first epoch has no point but keeps its legend entry).
An arm's best epoch, when training went on past it,
is marked with a dot and, when the weights were rolled back to it, a dotted line joins the
last epoch to the best one. paired.png shows the arms paired by seed (plot_paired).
No MLflow here: the report hands over plain arrays.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from experiments.figure_kit import inches_layout, legend_width, plain_log_axis  # noqa: E402

X_AXES = {"epoch": "epoch", "samples_seen": "samples seen", "wall_seconds": "training seconds"}


@dataclass
class ArmCurves:
    """One arm's per-epoch series: key -> (steps, mean, std), steps from 1."""

    name: str
    series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    diverged: bool = False
    best_epoch: float | None = None
    restored: bool = False
    n_seeds: int = 1
    diverged_epoch: int | None = None


def arm_label(arm: ArmCurves) -> str:
    label = arm.name + (f" (n={arm.n_seeds})" if arm.n_seeds > 1 else "")
    if arm.diverged:
        label += " - diverged" + (f" in epoch {arm.diverged_epoch}" if arm.diverged_epoch else "")
    return label


def _xy(arm: ArmCurves, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The arm's y series against x (epochs, or x's mean at the same epochs)."""
    steps, y, std = arm.series[y_key]
    if x_key == "epoch":
        return steps.astype(float), y, std
    if x_key not in arm.series:
        return np.array([]), np.array([]), np.array([])
    x_steps, x, _ = arm.series[x_key]
    lookup = dict(zip(x_steps.tolist(), x.tolist()))
    keep = np.array([s in lookup for s in steps.tolist()], dtype=bool)
    xs = np.array([lookup[s] for s in steps[keep].tolist()], dtype=float)
    return xs, y[keep], std[keep]


def _y_limits(arms: list[ArmCurves], y_key: str, log: bool) -> tuple[float, float] | None:
    """Range of the healthy arms (all arms when every one diverged), finite values only."""
    pool = [a for a in arms if not a.diverged and y_key in a.series] or \
        [a for a in arms if y_key in a.series]
    values = np.concatenate([a.series[y_key][1] for a in pool]) if pool else np.array([])
    values = values[np.isfinite(values) & (values < 1e30)]
    if log:
        values = values[values > 0]
    if values.size == 0:
        return None
    lo, hi = float(values.min()), float(values.max())
    if log:
        return lo / 1.5, hi * 3.0
    pad = 0.05 * (hi - lo or abs(hi) or 1.0)
    return lo - pad, hi + pad


def plot_panel(ax, arms: list[ArmCurves], x_key: str, y_key: str, *, log: bool = False) -> None:
    """Overlay `y_key` against `x_key` for every arm on one matplotlib axis."""
    limits = _y_limits(arms, y_key, log)
    colors = plt.get_cmap("tab10" if len(arms) <= 10 else "tab20").colors
    for i, arm in enumerate(arms):
        if y_key not in arm.series:
            continue
        x, y, std = _xy(arm, x_key, y_key)
        if x.size == 0:
            continue
        color = colors[i % len(colors)]
        label = arm_label(arm)
        y_plot = y.copy()
        bad = ~np.isfinite(y_plot) | (np.abs(y_plot) > 1e30)
        if limits is not None:
            y_plot = np.where(bad, limits[1], np.clip(y_plot, limits[0], limits[1]))
        ax.plot(x, y_plot, color=color, lw=1.4, ls="--" if arm.diverged else "-", label=label)
        if arm.n_seeds > 1 and np.any(std > 0):
            low = y - std
            if log:  # a band reaching 0 would fill the axis down to its floor
                with np.errstate(all="ignore"):
                    low = np.where(low > 0, low, y * y / (y + std))
            ax.fill_between(x, low, y + std, color=color, alpha=0.15, lw=0)
        if arm.diverged:
            ax.plot(x[-1], y_plot[-1], marker="X", ms=8, color=color, ls="none")
        elif arm.best_epoch:
            steps = arm.series[y_key][0]
            hit = np.flatnonzero(steps == round(arm.best_epoch))
            if hit.size and hit[0] < x.size - 1:  # only when training went on past it
                j = hit[0]
                ax.plot(x[j], y_plot[j], marker="o", ms=5, color=color, ls="none",
                        markeredgecolor="black", markeredgewidth=0.6)
                if arm.restored and j < x.size - 1:
                    ax.plot([x[-1], x[j]], [y_plot[-1], y_plot[j]], color=color, ls=":", lw=1)
    if log:
        plain_log_axis(ax)
    if x_key == "wall_seconds":  # runs of one sweep can differ in speed by orders of magnitude
        plain_log_axis(ax, "x")
    if limits is not None and all(np.isfinite(limits)) and limits[1] > limits[0]:
        ax.set_ylim(*limits)
    if x_key != "wall_seconds":  # ~6 ticks, as in the per-run figures (each tick is ~1 ms)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.set_xlabel(X_AXES[x_key])
    ax.set_ylabel(y_key)
    ax.grid(True, alpha=0.3)


def _quantity(arms: list[ArmCurves]) -> str:
    return "val_accuracy" if any("val_accuracy" in a.series for a in arms) else "val_rmse"


def plot_comparison(arms: list[ArmCurves], path: Path, *, title: str,
                    x_keys: tuple[str, ...] = ("epoch", "samples_seen", "wall_seconds")) -> Path:
    """A grid: rows = x axes, columns = val_loss and val accuracy (or RMSE)."""
    y_keys = ("val_loss", _quantity(arms))
    side = legend_width([arm_label(a) for a in arms]) if arms else 0.2
    fig, axes = plt.subplots(len(x_keys), 2, figsize=(12 + side, 3.6 * len(x_keys)),
                             squeeze=False)
    inches_layout(fig, left=0.85, right=side + 0.1, bottom=0.55, top=0.5, wgap=0.95, hgap=0.7)
    for row, x_key in enumerate(x_keys):
        for col, y_key in enumerate(y_keys):
            plot_panel(axes[row, col], arms, x_key, y_key, log=(y_key == "val_loss"))
    if arms:  # every arm, also one without a single completed epoch
        from matplotlib.lines import Line2D

        colors = plt.get_cmap("tab10" if len(arms) <= 10 else "tab20").colors
        handles = [Line2D([], [], color=colors[i % len(colors)], lw=1.8,
                          ls="--" if arm.diverged else "-",
                          marker="X" if arm.diverged else None)
                   for i, arm in enumerate(arms)]
        fig.legend(handles, [arm_label(a) for a in arms], loc="center left",
                   bbox_to_anchor=(1 - (side - 0.05) / fig.get_figwidth(), 0.5), fontsize=10,
                   frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def curve_figures(arms: list[ArmCurves], out_dir: Path, *, title: str) -> list:
    """comparison.png (all x axes) plus one figure per x axis, as functions that draw one
    figure each (comparison.build_report spreads them over two processes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    draws = [lambda: plot_comparison(arms, out_dir / "comparison.png", title=title)]
    for x_key, name in (("epoch", "curves_vs_epoch.png"),
                        ("samples_seen", "curves_vs_samples.png"),
                        ("wall_seconds", "curves_vs_seconds.png")):
        draws.append(lambda x_key=x_key, name=name: plot_comparison(
            arms, out_dir / name, title=f"{title} - against {X_AXES[x_key]}", x_keys=(x_key,)))
    return draws


def plot_gradient_flows(profiles: dict[str, np.ndarray], path: Path, *, title: str) -> Path:
    """Each recurrent arm's ||dL/dh_t|| against t (log scale): where the error signal dies."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for arm, norms in profiles.items():
        steps = np.arange(1, len(norms) + 1)
        ax.semilogy(steps, np.maximum(norms, 1e-300), label=arm)
    ax.set_xlabel("time step t")
    ax.set_ylabel("||dL/dh_t||")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


LAYER_ROWS = ("grad_norm", "update_ratio", "act_mean", "act_std", "saturated_fraction",
              "dead_fraction")
LOG_QUANTITIES = ("grad_norm", "update_ratio", "grad_ratio")


def plot_layer_diagnostics(arms: list[ArmCurves], path: Path, *, title: str,
                           columns: tuple[str, str] = ("first hidden layer",
                                                       "last hidden layer")) -> Path:
    """Every arm's per-layer diagnostics against epochs: one row per quantity, the first hidden
    layer (series `first.{quantity}`) on the left, the last (`last.{quantity}`) on the right;
    a last row with grad_ratio (layer 1's grad_norm over the output layer's) and the output
    layer's grad_norm. Rows nobody logged are left out."""
    rows = [(f"first.{q}", f"last.{q}") for q in LAYER_ROWS
            if any(f"first.{q}" in a.series or f"last.{q}" in a.series for a in arms)]
    rows.append(("grad_ratio", "output.grad_norm"))
    from dataclasses import replace

    arms = [replace(a, best_epoch=None) for a in arms]  # no best-epoch dots here
    side = legend_width([arm_label(a) for a in arms]) if arms else 0.2
    fig, axes = plt.subplots(len(rows), 2, figsize=(12 + side, 2.9 * len(rows)), squeeze=False)
    inches_layout(fig, left=0.9, right=side + 0.1, bottom=0.55, top=0.95, wgap=1.0, hgap=0.6)
    for r, keys in enumerate(rows):
        for c, key in enumerate(keys):
            ax = axes[r, c]
            quantity = key.split(".", 1)[-1]
            plot_panel(ax, arms, "epoch", key, log=quantity in LOG_QUANTITIES)
            if quantity.endswith("_fraction"):
                ax.set_ylim(-0.03, 1.03)
            ax.set_ylabel({"grad_ratio": "layer1 / output grad_norm",
                           "output.grad_norm": "output layer grad_norm"}.get(key, quantity))
            if r == 0:
                ax.set_title(columns[c], fontsize=11)
    if arms:
        from matplotlib.lines import Line2D

        colors = plt.get_cmap("tab10" if len(arms) <= 10 else "tab20").colors
        handles = [Line2D([], [], color=colors[i % len(colors)], lw=1.8,
                          ls="--" if arm.diverged else "-") for i, arm in enumerate(arms)]
        fig.legend(handles, [arm_label(a) for a in arms], loc="center left",
                   bbox_to_anchor=(1 - (side - 0.05) / fig.get_figwidth(), 0.5), fontsize=10,
                   frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _seed_order(seeds) -> list[str]:
    return sorted(seeds, key=lambda s: (0, int(s), "") if s.lstrip("-").isdigit() else (1, 0, s))


def plot_paired(table: dict[str, dict[str, float]], path: Path, *, best: str | None,
                score: str, title: str, higher_is_better: bool = False,
                intervals: dict[str, tuple[float, float | None, float | None]] | None = None,
                diverged: dict[str, set[str]] | None = None) -> Path:
    """Arms paired by seed. Left: each arm's score (`table` = {arm: {seed: score}}) with one
    line per seed joining its points across the arms; right (with a best arm): each seed's
    difference arm minus best, and the mean difference with its interval (`intervals` =
    {arm: (mean, low, high)}; none drawn where low is None). The best arm's column is shaded;
    a diverged run ({arm: seeds}) is an X instead of a dot."""
    arms = list(table)
    seeds = _seed_order({s for scores in table.values() for s in scores})
    x = np.arange(len(arms))
    colors = plt.get_cmap("tab10" if len(seeds) <= 10 else "tab20").colors
    n_panels = 2 if best in table else 1
    width = max(5.0, 0.9 * len(arms) + 2.5)
    tilt = len(arms) > 6 or max(map(len, arms), default=0) > 11  # else labels overlap
    # tilted labels hang below the axes by up to ~0.06 in per character (25 degrees, 9 pt)
    below = 0.35 + (0.045 * max(len(a) + 7 for a in arms) if tilt and arms else 0.25)
    fig, axes = plt.subplots(1, n_panels, figsize=(width * n_panels, 4.2 + below),
                             squeeze=False)
    inches_layout(fig, left=0.9, right=0.2, bottom=below, top=0.75, wgap=0.9)
    diverged = diverged or {}

    def draw(ax, value_of) -> None:
        for k, seed in enumerate(seeds):
            y = np.array([value_of(arm, seed) for arm in arms], dtype=float)
            color = colors[k % len(colors)]
            ax.plot(x, y, color=color, lw=1, alpha=0.7, label=f"seed {seed}")  # NaN breaks it
            for i, arm in enumerate(arms):
                if np.isfinite(y[i]):
                    ax.plot(x[i], y[i], ls="none", color=color, ms=7 if seed in
                            diverged.get(arm, ()) else 5,
                            marker="X" if seed in diverged.get(arm, ()) else "o")
        if best in table:
            ax.axvspan(arms.index(best) - 0.4, arms.index(best) + 0.4, color="gold", alpha=0.25,
                       lw=0)
        ax.set_xticks(x)
        ax.set_xticklabels([a + (" (best)" if a == best else "") for a in arms],
                           rotation=25 if tilt else 0, ha="right" if tilt else "center",
                           rotation_mode="anchor", fontsize=9)
        ax.set_xlim(-0.6, len(arms) - 0.4)
        ax.grid(True, axis="y", alpha=0.3)

    ax = axes[0, 0]
    draw(ax, lambda arm, seed: table[arm].get(seed, np.nan))
    values = np.array([v for scores in table.values() for v in scores.values()], dtype=float)
    values = values[np.isfinite(values)]
    if values.size and values.min() > 0 and values.max() / values.min() > 20:
        plain_log_axis(ax)
    ax.set_ylabel(f"{score} ({'higher' if higher_is_better else 'lower'} is better)")
    ax.set_title("each seed's result, one line per seed", fontsize=10)
    if len(seeds) <= 10:
        ax.legend(fontsize=8, loc="best")
    if n_panels == 2:
        ref = table[best]
        ax = axes[0, 1]
        draw(ax, lambda arm, seed: table[arm][seed] - ref[seed]
             if seed in table[arm] and seed in ref else np.nan)
        ax.axhline(0.0, color="black", lw=0.8)
        for i, arm in enumerate(arms):
            mean, low, high = (intervals or {}).get(arm, (None, None, None))
            if arm == best or low is None:  # one pair: its point says it all
                continue
            ax.errorbar(i + 0.25, mean, yerr=[[mean - low], [high - mean]], color="black",
                        marker="D", ms=6, capsize=4, lw=1.5)
        ax.set_ylabel(f"{score}: arm minus best")
        ax.set_title("difference from the best arm on the same seed;\ndiamond and bar: "
                     "mean and 95% interval", fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

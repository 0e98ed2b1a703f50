"""Per-run figures: the learning curves, the per-layer diagnostics and the recurrent
gradient-flow profile.

Every job of a sweep draws these, so they are drawn cheaply: a `Figure` on its own Agg canvas
(no pyplot state), one draw per figure (margins fixed in inches instead of tight_layout and
bbox_inches="tight", which lay the figure out by drawing it two more times), log axes labelled
with plain numbers (0.06, 1e-05) instead of mathtext (6x10^-2, parsed by pyparsing label by
label), and each kind of figure made once per process and reused (`_reused`). CPU per job of
the default sweep (benchmarks/profile_job.py): layer figure 0.80 -> 0.22 s, learning curves
0.32 -> 0.10 s.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ann.diagnostics import QUANTITIES
from experiments.figure_kit import plain_log_axis

DPI = 90


def _figure(width: float, height: float, rows: int, cols: int, *, left: float, right: float,
            bottom: float, top: float, wgap: float, hgap: float = 0.0):
    """A figure of rows x cols axes whose margins and gaps are given in inches (room for tick
    labels, axis labels and titles), so that it is laid out without drawing it."""
    fig = Figure(figsize=(width, height), dpi=DPI)  # drawn at DPI only (see _freeze_labels)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    axes_w = (width - left - right - (cols - 1) * wgap) / cols
    axes_h = (height - bottom - top - (rows - 1) * hgap) / rows
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=wgap / axes_w, hspace=hgap / axes_h)
    return fig, axes


_KEPT: dict[str, tuple] = {}  # kind -> (figure, axes) of this process's last figure of it


def _reused(kind: str, make):
    """This process's figure of `kind` (made by `make()` the first time), emptied of what the
    last call drew: creating the axes and their ticks is half the cost of a first draw, and
    every job of a sweep worker draws the same kinds of figure. What a figure function sets
    (data, legends, scales, limits, labels, titles) is reset here, so a reused figure draws
    the same pixels as a new one (tests/experiments/test_plots.py). One job plots at a time in
    a process (the figures are not for concurrent threads)."""
    if kind not in _KEPT:
        _KEPT[kind] = make()
        return _KEPT[kind]
    fig, axes = _KEPT[kind]
    for legend in list(fig.legends):
        legend.remove()
    for ax in axes.flat:
        for artist in (*ax.lines, *ax.collections, *ax.patches, *ax.texts):
            artist.remove()
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        ax.set_prop_cycle(None)  # the colour cycle starts over
        ax.set_xscale("linear")  # also restores the default locators and formatters
        ax.set_yscale("linear")
        ax.relim()  # no data: the next data sets the limits, as on a new axes
        ax.set_xlim(0.0, 1.0)  # a new axes' view, which an axes without data keeps
        ax.set_ylim(0.0, 1.0)
        ax.set_autoscale_on(True)
        ax.set_title("")
        ax.set_xlabel("")
        ax.set_ylabel("")
    return fig, axes


def made(*kinds: str) -> bool:
    """Whether this process has made (and drawn) each kind of figure already: a forked copy
    that draws one then reuses this process's figure instead of making its own (runner)."""
    return all(kind in _KEPT for kind in kinds)


def _save(fig, path: Path) -> Path:
    """The figure drawn once at DPI and written as an RGB PNG at zlib level 1 (what savefig
    writes is RGBA at level 6: the figure is opaque, so its alpha channel is all 255). Encoding
    the 1404 x 675 layer figure: ~45 ms as savefig does, ~24 ms so; the file is ~5% larger."""
    from PIL import Image

    fig.canvas.draw()
    width, height = fig.canvas.get_width_height()
    image = Image.frombuffer("RGBA", (width, height), fig.canvas.buffer_rgba(), "raw", "RGBA",
                             0, 1)
    image.convert("RGB").save(path, format="png", compress_level=1, dpi=(DPI, DPI))
    _freeze_labels(fig)
    return path


def _freeze_labels(fig) -> None:
    """Keep the axis labels where the first draw put them: matplotlib places each one at every
    draw from the bounding boxes of all the tick labels (a quarter of a redraw). The x tick
    labels (epochs, steps: numbers of one text height) put the x label at the same height in
    every figure of a kind, and an empty y label is not drawn; a y label with text stays
    automatic (the widths of the y tick labels vary with the data)."""
    for ax in fig.axes:
        for axis in (ax.xaxis, *(() if ax.yaxis.label.get_text() else (ax.yaxis,))):
            label = axis.label
            axis.set_label_coords(*label.get_position(), transform=label.get_transform())


def plot_learning_curves(history: dict[str, list[float]], path: Path, *, title: str,
                         best_epoch: int | None = None, diverged: bool = False,
                         divergence: dict | None = None) -> Path:
    """Loss and the task metric (accuracy or RMSE) per epoch, train vs val, best epoch marked;
    a diverged run gets a red line at the epoch where it diverged (not itself in `history`)."""
    n = len(history.get("train_loss", []))
    epochs = np.arange(1, n + 1)
    quantity = "accuracy" if "train_accuracy" in history else "rmse"
    if divergence is not None:
        note = (f"diverged in epoch {divergence['epoch']} at update {divergence['update']} "
                f"(loss {divergence['loss']:.3g}); only completed epochs are shown")
    else:
        note = "diverged" if diverged else ""
    # gaps for y tick labels of up to ~9 characters (0.0029950) and the y label
    fig, axes = _reused("learning_curves", lambda: _figure(13, 3.8, 1, 3, left=1.0, right=0.2,
                                                           bottom=0.55, top=0.45, wgap=1.15))
    fig.subplots_adjust(top=1 - (0.65 if note else 0.45) / fig.get_figheight())
    axes = axes[0]
    for ax, q in zip(axes[:2], ("loss", quantity)):
        for split in ("train", "val"):
            if f"{split}_{q}" in history:
                ax.plot(epochs, history[f"{split}_{q}"], label=split, marker="." if n < 20 else None)
        ax.set_ylabel(q)
        if q == "loss" and n and np.all(np.asarray(history["train_loss"]) > 0):
            plain_log_axis(ax)
        if best_epoch:
            ax.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best epoch {best_epoch}")
        if divergence is not None:
            ax.axvline(divergence["epoch"], color="tab:red", lw=1.5,
                       label=f"diverged (epoch {divergence['epoch']})")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=10)
    if "lr" in history:
        axes[2].plot(epochs, history["lr"], color="tab:green", marker="." if n < 20 else None)
    axes[2].set_ylabel("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        if divergence is not None:
            ax.set_xlim(0.5, max(n, divergence["epoch"]) + 0.5)
    fig.suptitle(title + (f"\n{note}" if note else ""), fontsize=11)
    return _save(fig, path)


def plot_gradient_flow(grad_norms: np.ndarray, path: Path, *, title: str) -> Path:
    """||dL/dh_t|| against t on a log scale: how much error signal reaches each step."""
    steps = np.arange(1, len(grad_norms) + 1)
    fig, axes = _reused("gradient_flow", lambda: _figure(6, 3.8, 1, 1, left=0.85, right=0.2,
                                                         bottom=0.55, top=0.4, wgap=0.0))
    ax = axes[0, 0]
    ax.plot(steps, np.maximum(grad_norms, 1e-300), marker=".")
    plain_log_axis(ax)
    ax.set_xlabel("time step t")
    ax.set_ylabel("||dL/dh_t||")
    ax.set_title(title, y=1.0)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


LAYER_QUANTITIES = QUANTITIES  # ann.diagnostics: layer{i}.{quantity}


def plot_layer_diagnostics(history: dict[str, list[float]], path: Path, *, title: str) -> Path:
    """One panel per quantity (`layer{i}.{quantity}` keys of `history`), one line per layer
    against epochs; norms and ratios on a log scale, fractions on [0, 1]. NaN = not logged.
    The legend (layers, input side first) stands to the right of the panels."""
    import re

    found = [re.fullmatch(r"layer(\d+)\.(\w+)", k) for k in history]
    layers = sorted({int(m.group(1)) for m in found if m})
    colors = _viridis(max(len(layers), 1))
    fig, axes = _reused("layer_diagnostics", lambda: _figure(
        15.6, 7.5, 2, 3, left=0.8, right=2.0, bottom=0.55, top=0.6, wgap=0.85, hgap=0.8))
    for ax, q in zip(axes.flat, LAYER_QUANTITIES):
        for color, i in zip(colors, layers):
            values = np.asarray(history.get(f"layer{i}.{q}", []), dtype=float)
            if values.size and np.isfinite(values).any():
                if q in ("grad_norm", "update_ratio"):
                    values = np.where(values > 0, values, np.nan)
                ax.plot(np.arange(1, values.size + 1), values, color=color, lw=1.4,
                        marker="." if values.size < 20 else None, label=f"layer {i}")
        if q in ("grad_norm", "update_ratio") and ax.get_lines():
            plain_log_axis(ax)
        if q.endswith("_fraction"):
            ax.set_ylim(-0.03, 1.03)
        ax.set_title(q, fontsize=10, y=1.0)  # y given: not placed around the ticks at each draw
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="center left",
                   bbox_to_anchor=(1 - 1.9 / fig.get_figwidth(), 0.5), fontsize=10,
                   frameon=False, title="layer 1 = input side")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def warm_up() -> None:
    """Draw the learning curves and the layer figure once on throwaway data, into memory: a
    sweep worker that calls this before its first job spares that job loading the fonts and
    creating the figures' axes and ticks (~0.3 s of CPU). What is drawn next is unchanged."""
    import io

    history = {"train_loss": [1.0, 0.5], "val_loss": [1.0, 0.6], "train_accuracy": [0.5, 0.7],
               "val_accuracy": [0.5, 0.6], "lr": [0.1, 0.1]}
    plot_learning_curves(history, io.BytesIO(), title="warm-up", best_epoch=2)
    plot_layer_diagnostics({f"layer1.{q}": [0.5, 0.25] for q in LAYER_QUANTITIES}, io.BytesIO(),
                           title="warm-up")


def _viridis(n: int) -> np.ndarray:
    """n colours along viridis (its dark end to 90%), one per layer."""
    from matplotlib import colormaps

    return colormaps["viridis"](np.linspace(0.0, 0.9, n))

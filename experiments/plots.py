"""Per-run figures: the learning curves, the per-layer diagnostics and the recurrent
gradient-flow profile."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ann.diagnostics import QUANTITIES  # noqa: E402


def plot_learning_curves(history: dict[str, list[float]], path: Path, *, title: str,
                         best_epoch: int | None = None, diverged: bool = False,
                         divergence: dict | None = None) -> Path:
    """Loss and the task metric (accuracy or RMSE) per epoch, train vs val, best epoch marked;
    a diverged run gets a red line at the epoch where it diverged (not itself in `history`)."""
    from matplotlib.ticker import MaxNLocator

    n = len(history.get("train_loss", []))
    epochs = np.arange(1, n + 1)
    quantity = "accuracy" if "train_accuracy" in history else "rmse"
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, q in zip(axes[:2], ("loss", quantity)):
        for split in ("train", "val"):
            if f"{split}_{q}" in history:
                ax.plot(epochs, history[f"{split}_{q}"], label=split, marker="." if n < 20 else None)
        ax.set_ylabel(q)
        if q == "loss" and n and np.all(np.asarray(history["train_loss"]) > 0):
            ax.set_yscale("log")
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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if divergence is not None:
            ax.set_xlim(0.5, max(n, divergence["epoch"]) + 0.5)
    if divergence is not None:
        note = (f"diverged in epoch {divergence['epoch']} at update {divergence['update']} "
                f"(loss {divergence['loss']:.3g}); only completed epochs are shown")
    else:
        note = "diverged" if diverged else ""
    fig.suptitle(title + (f"\n{note}" if note else ""), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_gradient_flow(grad_norms: np.ndarray, path: Path, *, title: str) -> Path:
    """||dL/dh_t|| against t on a log scale: how much error signal reaches each step."""
    steps = np.arange(1, len(grad_norms) + 1)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.semilogy(steps, np.maximum(grad_norms, 1e-300), marker=".")
    ax.set_xlabel("time step t")
    ax.set_ylabel("||dL/dh_t||")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


LAYER_QUANTITIES = QUANTITIES  # ann.diagnostics: layer{i}.{quantity}


def plot_layer_diagnostics(history: dict[str, list[float]], path: Path, *, title: str) -> Path:
    """One panel per quantity (`layer{i}.{quantity}` keys of `history`), one line per layer
    against epochs; norms and ratios on a log scale, fractions on [0, 1]. NaN = not logged."""
    import re

    from matplotlib.ticker import MaxNLocator

    found = [re.fullmatch(r"layer(\d+)\.(\w+)", k) for k in history]
    layers = sorted({int(m.group(1)) for m in found if m})
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, max(len(layers), 1)))
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    for ax, q in zip(axes.flat, LAYER_QUANTITIES):
        for color, i in zip(colors, layers):
            values = np.asarray(history.get(f"layer{i}.{q}", []), dtype=float)
            if values.size and np.isfinite(values).any():
                if q in ("grad_norm", "update_ratio"):
                    values = np.where(values > 0, values, np.nan)
                ax.plot(np.arange(1, values.size + 1), values, color=color, lw=1.4,
                        marker="." if values.size < 20 else None, label=f"layer {i}")
        if q in ("grad_norm", "update_ratio") and ax.get_lines():
            ax.set_yscale("log")
        if q.endswith("_fraction"):
            ax.set_ylim(-0.03, 1.03)
        ax.set_title(q, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=10,
                   frameon=False, title="layer 1 = input side")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path

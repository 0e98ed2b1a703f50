"""Per-run figures: the learning curves and the recurrent gradient-flow profile."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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

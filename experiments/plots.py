"""Per-run figures: the learning curves and the recurrent gradient-flow profile."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_learning_curves(history: dict[str, list[float]], path: Path, *, title: str,
                         best_epoch: int | None = None, diverged: bool = False) -> Path:
    """Loss and the task metric (accuracy or RMSE) per epoch, train vs val, best epoch marked."""
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    quantity = "accuracy" if "train_accuracy" in history else "rmse"
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, q in zip(axes[:2], ("loss", quantity)):
        for split in ("train", "val"):
            ax.plot(epochs, history[f"{split}_{q}"], label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(q)
        if q == "loss" and np.all(np.isfinite(history["train_loss"])):
            ax.set_yscale("log")
        if best_epoch:
            ax.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best epoch {best_epoch}")
        ax.legend()
    axes[2].plot(epochs, history["lr"], color="tab:green")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("learning rate")
    fig.suptitle(title + ("  [diverged]" if diverged else ""))
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

"""The range test's figure: loss and smoothed loss against the rate (log axis), the
suggestion marked."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_lr_find(result, path: Path, *, title: str) -> Path:
    """`result` is an ann.lr_finder.RangeTestResult. The y axis stops a little above the
    smoothed loss before its minimum (the blow-up at the end would squash the rest)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    lrs, losses, smoothed = result.lrs, result.losses, result.smoothed
    ax.plot(lrs, losses, color="tab:blue", alpha=0.35, lw=1, label="batch loss")
    ax.plot(lrs, smoothed, color="tab:blue", lw=2, label=f"smoothed (beta {result.beta:g})")
    if len(smoothed):
        best = int(np.argmin(smoothed))
        ax.plot(lrs[best], smoothed[best], "o", color="tab:blue", ms=5,
                label=f"smoothed minimum at {lrs[best]:.3g}")
        top = max(float(smoothed[0]), float(np.max(smoothed[:best + 1])))
        low = min(float(np.min(losses)), float(smoothed[best]))
        ax.set_ylim(max(0.0, low - 0.05 * (top - low)), top + 0.35 * (top - low) + 1e-12)
    if result.suggested_lr is not None:
        ax.axvline(result.suggested_lr, color="tab:red", ls="--", lw=1.5,
                   label=f"suggested {result.suggested_lr:.3g} ({result.method.split(':')[0]})")
    ax.set_xscale("log")
    ax.set_xlim(result.min_lr, result.max_lr)
    ax.set_xlabel("learning rate (grows every update)")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=9, loc="lower left")
    stopped = {"diverged": f"stopped: smoothed loss > {result.stop_factor} x its minimum",
               "non_finite": "stopped: the loss or gradient was not finite",
               "num_updates": "all updates made"}[result.stop_reason]
    ax.set_title(f"{title}\n{result.n_updates} of {result.num_updates} updates; {stopped}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

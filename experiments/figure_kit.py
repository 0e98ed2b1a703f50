"""What the harness's figures share to be drawn cheaply (every job and every report draws).

tight_layout and savefig(bbox_inches="tight") lay a figure out by drawing it two more times,
and a log axis labelled with mathtext (6x10^-2) parses every label with pyparsing: on a
report's 16-arm layer-diagnostics figure these were ~80% of its 1.7-2 s. Instead margins are
given in inches (`inches_layout`) and log axes are labelled with plain numbers
(`plain_log_axis`: 0.06, 0.2, 1e-05).
"""
from __future__ import annotations

from matplotlib.ticker import LogFormatter

# Width of one character of a 10 pt legend label in inches (DejaVu Sans averages ~0.55 em);
# legends placed beside the axes get this much room per character of their longest label.
LEGEND_CHAR_INCHES = 0.075


class PlainLogFormatter(LogFormatter):
    """The labels LogFormatter chooses on a log axis (every decade; the minor ticks too when
    the axis spans few decades), written as plain numbers: 0.06, 0.2, 1e-05."""

    def __call__(self, x, pos=None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def plain_log_axis(ax, axis: str = "y") -> None:
    """A log axis labelled by PlainLogFormatter (majors and the minors it keeps)."""
    getattr(ax, f"set_{axis}scale")("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(PlainLogFormatter())
    target.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))


def inches_layout(fig, *, left: float, right: float, bottom: float, top: float,
                  wgap: float = 0.0, hgap: float = 0.0) -> None:
    """Place the figure's grid of axes with margins and gaps given in inches (room for tick
    labels, axis labels, titles and a legend beside the axes), without drawing it."""
    width, height = fig.get_size_inches()
    axes = fig.axes
    rows, cols = axes[0].get_subplotspec().get_gridspec().get_geometry() if axes else (1, 1)
    axes_w = max(0.1, (width - left - right - (cols - 1) * wgap) / cols)
    axes_h = max(0.1, (height - bottom - top - (rows - 1) * hgap) / rows)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=wgap / axes_w, hspace=hgap / axes_h)


def legend_width(labels: list[str]) -> float:
    """Inches a 10 pt legend of these labels needs beside the axes (line sample included)."""
    return 0.75 + LEGEND_CHAR_INCHES * max((len(s) for s in labels), default=0)

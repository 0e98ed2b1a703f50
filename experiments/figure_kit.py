"""What the harness's figures share to be drawn cheaply (every job and every report draws).

tight_layout and savefig(bbox_inches="tight") lay a figure out by drawing it two more times,
and a log axis labelled with mathtext (6x10^-2) parses every label with pyparsing: on a
report's 16-arm layer-diagnostics figure these were ~80% of its 1.7-2 s. Instead margins are
given in inches (`inches_layout`) and log axes are labelled with plain numbers
(`plain_log_axis`: 0.06, 0.2, 1e-05).
"""
from __future__ import annotations

import math

from matplotlib.ticker import LogFormatter, LogLocator

# Width of one character of a 10 pt legend label in inches (DejaVu Sans averages ~0.55 em);
# legends placed beside the axes get this much room per character of their longest label.
LEGEND_CHAR_INCHES = 0.075


class PlainLogFormatter(LogFormatter):
    """The labels LogFormatter chooses on a log axis (every decade; when the axis spans at most
    `minor_thresholds[0]` decades, minor ticks too), written as plain numbers: 0.06, 0.2,
    1e-05. With the minor ticks of plain_log_axis (2 and 5 per decade) both are labelled where
    LogFormatter labels any minor tick (its own choice, 2, 3, 4 and 6, would leave 5 bare)."""

    def __call__(self, x, pos=None) -> str:
        if super().__call__(x, pos):
            return f"{x:g}"
        if not self.labelOnlyBase and x > 0 and self.axis is not None:
            low, high = sorted(self.axis.get_view_interval())
            decades = math.log10(high / low) if low > 0 else math.inf
            mantissa = x / 10.0 ** math.floor(math.log10(x) + 1e-9)
            if decades <= self.minor_thresholds[0] and abs(mantissa - 5.0) < 1e-6:
                return f"{x:g}"
        return ""


def plain_log_axis(ax, axis: str = "y") -> None:
    """A log axis labelled by PlainLogFormatter (majors and the minors it keeps), with minor
    ticks at 2 and 5 times each power of ten: matplotlib's default puts 8 per decade and labels
    4 of them, and ticks and their labels are most of the time a report's layer figure takes
    (16 arms: 1.28 s -> 1.00 s)."""
    getattr(ax, f"set_{axis}scale")("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
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

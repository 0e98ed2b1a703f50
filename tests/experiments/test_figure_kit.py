"""figure_kit.plain_log_axis: a 1-2-5 log axis labelled with plain numbers."""
from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from experiments.figure_kit import plain_log_axis


def _labels(low: float, high: float) -> tuple[dict[float, str], dict[float, str]]:
    """{tick: label} of the major and the minor ticks inside [low, high] after a draw."""
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([1, 2], [low, high])
    plain_log_axis(ax)
    ax.set_ylim(low, high)
    fig.canvas.draw()

    def inside(ticks):
        return {round(float(t.get_loc()), 12): t.label1.get_text() for t in ticks
                if low * (1 - 1e-9) <= t.get_loc() <= high * (1 + 1e-9)}

    return inside(ax.yaxis.get_major_ticks()), inside(ax.yaxis.get_minor_ticks())


def test_minor_ticks_at_two_and_five_labelled_when_the_axis_spans_few_decades():
    major, minor = _labels(0.05, 0.9)  # 1.3 decades
    assert major == {0.1: "0.1"}
    assert set(minor) == {0.05, 0.2, 0.5}
    assert minor[0.2] == "0.2" and minor[0.5] == "0.5"  # 5 as well as LogFormatter's 2


def test_only_the_decades_labelled_when_the_axis_spans_many():
    major, minor = _labels(1e-5, 10.0)
    assert np.allclose(sorted(major), [10.0 ** k for k in range(-5, 2)])
    assert all(label for label in major.values())
    assert "1e-05" in major.values() and "0.01" in major.values()
    mantissas = {round(v / 10.0 ** np.floor(np.log10(v) + 1e-9), 6) for v in minor}
    assert mantissas <= {2.0, 5.0}
    assert not any(minor.values())

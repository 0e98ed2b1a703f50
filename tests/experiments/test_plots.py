"""Per-run figures (experiments/plots.py): a figure drawn on a reused canvas (every job of a
sweep worker after its first) has exactly the pixels of one drawn on a new canvas."""
from __future__ import annotations

import numpy as np
import pytest

from experiments import plots


def _curves(n: int, *, regression: bool = False, scale: float = 1.0) -> dict[str, list[float]]:
    rng = np.random.default_rng(n)
    loss = scale * np.exp(-np.linspace(0, 3, n)) + 0.01 * rng.random(n)
    key = "rmse" if regression else "accuracy"
    metric = 50 * loss if regression else 1 - loss / (2 * scale)
    return {"train_loss": list(loss), "val_loss": list(1.2 * loss),
            f"train_{key}": list(metric), f"val_{key}": list(0.98 * metric),
            "lr": list(0.01 * np.cos(np.linspace(0, 1.5, n)) ** 2)}


def _layers(n: int, n_layers: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(n_layers)
    out = {}
    for i in range(1, n_layers + 1):
        for q in plots.LAYER_QUANTITIES:
            values = rng.random(n) * (10.0 ** -i if q in ("grad_norm", "update_ratio") else 1)
            if q == "dead_fraction" and i == n_layers:
                values[:] = np.nan  # the output layer has none: not logged
            out[f"layer{i}.{q}"] = list(values)
    return out


LEARNING = [
    dict(history=_curves(28), best_epoch=10),
    dict(history={k: [] for k in _curves(3)}, best_epoch=None,  # diverged in epoch 1
         divergence={"epoch": 1, "update": 3, "loss": float("inf")}),
    dict(history=_curves(7, regression=True, scale=300.0), best_epoch=None,
         divergence={"epoch": 8, "update": 301, "loss": 1e30}),
    dict(history=_curves(40), best_epoch=33, diverged=True),
    dict(history={**_curves(12), "train_loss": [0.0] + _curves(12)["train_loss"][1:]},
         best_epoch=3),
]
LAYERS = [_layers(28, 3), {}, _layers(5, 2), _layers(60, 5), _layers(28, 3)]


def _pixels(path) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(path)


def _draw_all(draw, cases, tmp_path, tag: str, fresh: bool) -> list[np.ndarray]:
    out = []
    for number, case in enumerate(cases):
        if fresh:
            plots._KEPT.clear()
        path = tmp_path / f"{tag}_{number}_{fresh}.png"
        draw(case, path)
        out.append(_pixels(path))
    return out


@pytest.mark.parametrize("kind", ["learning_curves", "layer_diagnostics", "gradient_flow"])
def test_a_reused_figure_draws_what_a_new_one_draws(tmp_path, kind):
    if kind == "learning_curves":
        cases = LEARNING

        def draw(case, path):
            plots.plot_learning_curves(case["history"], path, title=f"t {len(case['history'])}",
                                       best_epoch=case.get("best_epoch"),
                                       diverged=case.get("diverged", False),
                                       divergence=case.get("divergence"))
    elif kind == "layer_diagnostics":
        cases = LAYERS

        def draw(case, path):
            plots.plot_layer_diagnostics(case, path, title="inside each layer")
    else:
        cases = [np.exp(-np.linspace(0, k, 20 + k)) for k in (1, 30, 5)]

        def draw(case, path):
            plots.plot_gradient_flow(case, path, title="flow")

    plots._KEPT.clear()
    plots.warm_up()  # what a sweep worker draws before its first job changes nothing after
    reused = _draw_all(draw, cases, tmp_path, kind, fresh=False)
    fresh = _draw_all(draw, cases, tmp_path, kind, fresh=True)
    for number, (a, b) in enumerate(zip(reused, fresh)):
        assert a.shape == b.shape, number
        assert np.array_equal(a, b), f"case {number}: {np.mean(a != b):.4%} of the pixels differ"

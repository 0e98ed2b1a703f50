"""Decision-boundary figures of classifiers on 2-D data (grid predictions: ann.boundary).

Per run, from a `BoundaryRecorder` (`write_boundary`): `decision_boundary.png` (the end state
over the data), `decision_boundary.gif` (a frame per captured epoch, epoch 0 to the end) and
`decision_boundary.npz` (`ann.boundary.BoundaryRecorder.arrays`: the grid, its scaling, the end
state's probabilities and labels, the training and test points), from which the comparison
report draws one panel per arm (`plot_boundary_panels`) without re-training. Axes are the
data's raw units. A grid point is shaded in its predicted class's colour, faded to white as the
probability falls to chance; the line is the boundary (p = 0.5 for two classes); training points
are dots, test points triangles, each coloured by its true class.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

Array = np.ndarray


def write_boundary(recorder, out_dir: Path, *, title: str) -> list[Path]:
    """decision_boundary.png, .gif and .npz of a finished recorder, in `out_dir`."""
    out_dir = Path(out_dir)
    arrays = recorder.arrays()
    view = BoundaryView.from_arrays(arrays)
    paths = [out_dir / f"decision_boundary.{ext}" for ext in ("png", "gif", "npz")]
    plot_boundary(view, paths[0], title=title)
    write_animation(view, recorder.frames, recorder.epochs, paths[1], title=title)
    np.savez_compressed(paths[2], **arrays)
    return paths


@dataclass
class BoundaryView:
    """What a boundary picture needs: the grid (raw units), probabilities, the points."""

    xs: Array
    ys: Array
    proba: Array  # (n_y, n_x, n_classes)
    X_train: Array
    y_train: Array
    X_test: Array
    y_test: Array
    epoch: int | None = None

    @classmethod
    def from_arrays(cls, a) -> "BoundaryView":
        """From `BoundaryRecorder.arrays()` or a loaded decision_boundary.npz."""
        return cls(a["xs"], a["ys"], a["proba"], a["X_train"], a["y_train"], a["X_test"],
                   a["y_test"], int(a["epoch"]))

    @classmethod
    def load(cls, path: Path) -> "BoundaryView":
        with np.load(path) as z:
            return cls.from_arrays(z)

    @property
    def n_classes(self) -> int:
        return max(self.proba.shape[-1], int(self.y_train.max()) + 1)


# Class colours: red and blue for two classes (as in the TensorFlow Playground), then tab10's.
CLASS_COLOURS = np.array([[0.84, 0.15, 0.16], [0.12, 0.47, 0.71], [0.17, 0.63, 0.17],
                          [1.0, 0.5, 0.05], [0.58, 0.4, 0.74], [0.55, 0.34, 0.29],
                          [0.89, 0.47, 0.76], [0.5, 0.5, 0.5], [0.74, 0.74, 0.13],
                          [0.09, 0.75, 0.81]])

SHADE = 0.55  # the strongest background tint, so that the points stand out on it


def _colours(n: int) -> Array:
    return CLASS_COLOURS[np.arange(n) % len(CLASS_COLOURS)]


def shade(proba: Array) -> Array:
    """RGB (n_y, n_x, 3): the predicted class's colour, faded to white as its probability
    falls to chance (1 / n_classes); the boundary itself is white."""
    k = proba.shape[-1]
    top = proba.argmax(axis=-1)
    strength = np.clip((proba.max(axis=-1) - 1 / k) / (1 - 1 / k), 0, 1)[..., None]
    return 1 - strength * (1 - _colours(k)[top]) * SHADE


def draw_boundary(ax, view: BoundaryView, proba: Array | None = None, *,
                  marker_size: float = 9):
    """The shaded grid (`proba`, default the view's) and, over it, the training (dots) and test
    points (triangles, black edge) coloured by their true class; returns the grid's image."""
    proba = view.proba if proba is None else proba
    extent = (view.xs[0], view.xs[-1], view.ys[0], view.ys[-1])
    image = ax.imshow(shade(proba), origin="lower", extent=extent, interpolation="bilinear",
                      aspect="equal")
    colours = _colours(view.n_classes)
    ax.scatter(view.X_train[:, 0], view.X_train[:, 1], c=colours[view.y_train], s=marker_size,
               edgecolors="white", linewidths=0.4, label="train")
    ax.scatter(view.X_test[:, 0], view.X_test[:, 1], c=colours[view.y_test], marker="^",
               s=marker_size * 1.6, edgecolors="black", linewidths=0.5, label="test")
    ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])
    return image


def _contour(ax, view: BoundaryView, proba: Array):
    """The decision boundary as a line: p(class 1) = 0.5 for two classes, else where the
    predicted label changes."""
    if proba.shape[-1] == 2:
        surface, levels = proba[..., 1], [0.5]
    else:
        surface = proba.argmax(axis=-1)
        levels = np.arange(surface.min(), surface.max()) + 0.5
    if not (surface.min() < levels[0] < surface.max()):
        return None
    return ax.contour(view.xs, view.ys, surface, levels=levels, colors="black",
                      linewidths=0.8)


# Margins around a single boundary's axes, in inches: (left, right, bottom, top). Fixed margins
# instead of tight_layout, which measures every text twice (~0.1 s a figure).
MARGINS = (0.75, 0.15, 0.55, 0.6)


def single_axes(view: BoundaryView, height: float, dpi: float):
    """A figure whose one axes has the data's aspect ratio (raw units, equal scales) and is
    `height` inches tall, with fixed margins for the labels and a two-line title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratio = (view.xs[-1] - view.xs[0]) / max(view.ys[-1] - view.ys[0], 1e-12)
    width = height * float(np.clip(ratio, 0.5, 2.5))
    left, right, bottom, top = MARGINS
    fig_w, fig_h = width + left + right, height + bottom + top
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=dpi)
    ax = fig.add_axes((left / fig_w, bottom / fig_h, width / fig_w, height / fig_h))
    return fig, ax


def plot_boundary(view: BoundaryView, path: Path, *, title: str) -> Path:
    """decision_boundary.png: the end state over the data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = single_axes(view, 3.9, dpi=90)
    draw_boundary(ax, view, marker_size=12)
    _contour(ax, view, view.proba)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    ax.set_xlabel("x1 (raw units)")
    ax.set_ylabel("x2 (raw units)")
    when = f"epoch {view.epoch}" if view.epoch is not None else ""
    ax.set_title(f"{title}\ndecision boundary, {when}".rstrip(", "), fontsize=10)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_animation(view: BoundaryView, frames: list[Array], epochs: list[int], path: Path, *,
                    title: str, frame_ms: int = 200, last_ms: int = 1500) -> Path:
    """decision_boundary.gif: one frame per captured epoch (the last one held longer).

    matplotlib draws the axes and the points once, on a transparent figure; each frame is the
    shaded grid resized into the axes' pixel box with the drawing composited on top, and its
    epoch written in the corner (~3 ms a frame instead of ~50 for a redraw). One 64-colour
    palette serves every frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image, ImageDraw, ImageFont

    fig, ax = single_axes(view, 3.2, dpi=90)
    image = draw_boundary(ax, view, frames[0], marker_size=6)
    image.set_visible(False)
    fig.patch.set_alpha(0.0)
    ax.patch.set_alpha(0.0)
    ax.set_xlabel("x1 (raw units)", fontsize=8)
    ax.set_ylabel("x2 (raw units)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)
    fig.canvas.draw()
    overlay = Image.fromarray(np.asarray(fig.canvas.buffer_rgba()).copy())
    x0, y0, x1, y1 = ax.get_window_extent().extents  # pixels, origin at the bottom left
    plt.close(fig)
    box = (int(round(x0)), int(round(overlay.height - y1)), int(round(x1)),
           int(round(overlay.height - y0)))
    size = (box[2] - box[0], box[3] - box[1])
    font = ImageFont.load_default(size=12)
    images = []
    for i, (proba, epoch) in enumerate(zip(frames, epochs)):
        rgb = np.round(shade(proba)[::-1] * 255).astype(np.uint8)  # row 0 = the top
        frame = Image.new("RGBA", overlay.size, (255, 255, 255, 255))
        frame.paste(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR), box[:2])
        frame.alpha_composite(overlay)
        last = i == len(frames) - 1 and len(frames) > 1
        text = f"end (epoch {epoch})" if last else f"epoch {epoch}"
        draw = ImageDraw.Draw(frame)
        corner = (box[0] + 5, box[1] + 4)
        draw.rectangle(draw.textbbox(corner, text, font=font), fill=(255, 255, 255, 255))
        draw.text(corner, text, fill=(0, 0, 0, 255), font=font)
        images.append(frame.convert("RGB"))
    # one palette for all frames, from a strip of early, middle and late ones (the end state
    # alone lacks the pale shades of the first epochs, which then band)
    n = len(images)
    picks = [images[k] for k in sorted({0, n // 3, 2 * n // 3, n - 1})]
    strip = Image.new("RGB", (sum(im.width for im in picks), picks[0].height))
    for k, im in enumerate(picks):
        strip.paste(im, (k * im.width, 0))
    palette = strip.quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    indexed = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    durations = [frame_ms] * (len(indexed) - 1) + [last_ms]
    indexed[0].save(path, save_all=True, append_images=indexed[1:], duration=durations, loop=0)
    return path


def plot_boundary_panels(views: dict[str, BoundaryView], path: Path, *, title: str,
                         subtitles: dict[str, str] | None = None, max_cols: int = 4) -> Path:
    """One panel per arm side by side, in as few rows of at most `max_cols` as fit, balanced
    (6 arms: 2 x 3): the comparison report's figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(views)
    rows = -(-n // max_cols)
    cols = -(-n // rows)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.5 * rows + 0.5), squeeze=False)
    for ax, (arm, view) in zip(axes.ravel(), views.items()):
        draw_boundary(ax, view, marker_size=4)
        _contour(ax, view, view.proba)
        ax.set_title(arm + (f"\n{subtitles[arm]}" if subtitles and arm in subtitles else ""),
                     fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    fig.suptitle(f"{title}\n(raw units; train dots, test triangles, coloured by true class)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

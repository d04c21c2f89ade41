"""`snn predict --figure`: one PNG that shows, per image, what the network saw and did."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .plots import draw_output_layer, pyplot, quietly, save_figure

ROW_INCHES, WIDTH_INCHES, DPI = 2.4, 12.0, 100
MAX_ROWS = 64  # a figure of more images is unreadable: the first ones are drawn


CHECKER = 8  # pixels a side of the squares that show transparency
CHECKER_GREYS = (255, 225)  # white and light grey: dark ink shows on both


def figure_size(images: int) -> tuple[int, int]:
    """The PNG's (width, height) in pixels for a figure of `images` rows."""
    rows = min(images, MAX_ROWS)
    return round(WIDTH_INCHES * DPI), round(ROW_INCHES * rows * DPI)


@quietly
def plot_predictions(predictions, path: Path, spikes: bool, originals=None, labels=None) -> Path:
    """Per image, one row: the image as given, the 28x28 input the network saw, the spike count
    (or mean output) per class with the prediction highlighted, and the output layer over time.
    `originals` are the images as given (None: the input itself); `labels` the true digits."""
    plt = pyplot()
    shown = predictions[:MAX_ROWS]
    width, height = figure_size(len(shown))
    fig, axes = plt.subplots(len(shown), 4, figsize=(width / DPI, height / DPI), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 2.2, 2.6]})
    for row, p in enumerate(shown):
        original = originals[row] if originals is not None else None
        label = labels[row] if labels is not None else None
        _draw_row(axes[row], p, original, label, spikes)
    fig.tight_layout()  # each panel has its own title: no figure title, no space above
    return save_figure(fig, path, "figure")  # at 100 dpi: the size figure_size gives


def _draw_row(axes, p, original, label, spikes: bool) -> None:
    given, seen, bars, raster = axes
    if original is None:  # an MNIST test image: the input is the image as given
        given.imshow(p.image, cmap="gray", vmin=0, vmax=255)
    else:
        given.imshow(np.asarray(original))
    given.set_title(_short(Path(p.path).name or p.path, 26), fontsize=8)
    given.set_xlabel("as given", fontsize=8)
    seen.imshow(p.image, cmap="gray", vmin=0, vmax=255)
    seen.set_title("network input (28x28)", fontsize=8)
    seen.set_xlabel("what the network saw", fontsize=8)
    for ax in (given, seen):
        ax.set_xticks([])
        ax.set_yticks([])
    colours = ["tab:grey"] * len(p.scores)
    colours[p.prediction] = "tab:green" if label in (None, p.prediction) else "tab:red"
    bars.bar(range(len(p.scores)), p.scores, color=colours)
    bars.set_xticks(range(len(p.scores)))
    verdict = "" if label is None else (" right" if label == p.prediction else " wrong")
    truth = "" if label is None else f", true {label}"
    bars.set_title(f"prediction {p.prediction} ({100 * p.confidence:.0f}%){truth}{verdict}",
                   fontsize=8)
    bars.set_ylabel("output spikes" if spikes else "mean output", fontsize=8)
    bars.set_xlabel("digit", fontsize=8)
    draw_output_layer(raster, p.raster, p.prediction, spikes, marker_size=30)
    raster.set_xlabel("time step", fontsize=8)
    raster.set_title("output layer over time", fontsize=8)
    for ax in (bars, raster):
        ax.tick_params(labelsize=7)


def picture_of(path: str, size: int = 256):
    """The image at `path` as a person sees it (oriented, in its colours, at most `size` pixels
    a side, any transparency over a light checkerboard), as RGB uint8, for the figure; None
    where it cannot be read again (stdin, or gone)."""
    from .errors import ImageError
    from .preprocess import open_image

    try:
        image = open_image(path).convert("RGBA")  # palette, grey, CMYK...: colours and alpha
    except ImageError:
        return None
    image.thumbnail((size, size))
    return over_checkerboard(np.asarray(image))


def over_checkerboard(rgba: np.ndarray) -> np.ndarray:
    """RGBA uint8 [H, W, 4] composited over a white and light-grey checkerboard: RGB uint8."""
    rows, cols = np.indices(rgba.shape[:2]) // CHECKER
    light, grey = CHECKER_GREYS
    board = np.where((rows + cols) % 2 == 0, light, grey)[..., None].astype(np.float32)
    alpha = rgba[..., 3:4].astype(np.float32) / 255
    return (rgba[..., :3] * alpha + board * (1 - alpha)).round().astype(np.uint8)


def _short(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"

"""PNG charts (matplotlib, headless)."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np

from .files import atomic_write


def pyplot():
    """matplotlib's pyplot on the headless Agg backend (imported late: it is slow to load)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def quietly(plot):
    """Matplotlib's warnings (a glyph of a file name missing from the font, a layout that does
    not fit) would print lines of their own on stderr: the figure is drawn without them."""

    @functools.wraps(plot)
    def without_warnings(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return plot(*args, **kwargs)

    return without_warnings


def save_figure(fig, path, what: str) -> Path:
    """Write the figure as PNG atomically (any failure is one line naming the file) and free
    it."""
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100), what)
    finally:
        pyplot().close(fig)


@quietly
def plot_training(history: list[dict], path: Path, title: str = "training") -> Path:
    """Loss per iteration and test accuracy at each evaluation, one figure, two panels."""
    plt = pyplot()
    steps = [r for r in history if "loss" in r]
    evals = [r for r in history if "test_accuracy" in r]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot([r["iteration"] for r in steps], [r["loss"] for r in steps], lw=0.8)
    ax_loss.set(xlabel="iteration", ylabel="training loss", title="loss")
    ax_acc.plot(
        [r["iteration"] for r in evals], [100 * r["test_accuracy"] for r in evals], marker="o"
    )
    ax_acc.set(xlabel="iteration", ylabel="test accuracy (%)", title="test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, "plot")


def draw_output_layer(ax, raster, prediction: int, spikes: bool, marker_size: float) -> None:
    """The output layer over time ([T, C]) on `ax`: a dot per spike of each class, or the
    mean output as a heat-map, with the predicted class's row highlighted."""
    raster = np.asarray(raster)
    if spikes:
        t, c = raster.nonzero()
        ax.scatter(t, c, marker="|", s=marker_size, color="black")
        ax.set_xlim(-0.5, raster.shape[0] - 0.5)
    else:
        ax.imshow(raster.T, aspect="auto", cmap="viridis", origin="lower")
    ax.axhspan(prediction - 0.5, prediction + 0.5, color="tab:green", alpha=0.2)
    ax.set_ylim(-0.5, raster.shape[1] - 0.5)
    ax.set_yticks(range(raster.shape[1]))


@quietly
def plot_raster(predictions, path: Path, spikes: bool = True) -> Path:
    """Output layer over time for each image: spike dots per class, or output heat-map."""
    plt = pyplot()
    n = len(predictions)
    fig, axes = plt.subplots(n, 1, figsize=(8, 1.6 + 1.4 * n), squeeze=False)
    for ax, p in zip(axes[:, 0], predictions, strict=True):
        draw_output_layer(ax, p.raster, p.prediction, spikes, marker_size=40)
        ax.set_ylabel("digit")
        ax.set_title(f"{Path(p.path).name}: {p.prediction}", fontsize=9)
    axes[-1, 0].set_xlabel("time step")
    fig.suptitle("output spike raster" if spikes else "output layer over time")
    fig.tight_layout()
    return save_figure(fig, path, "spike raster")


@quietly
def plot_evaluation(result, sweep_rows, path: Path, title: str = "evaluation") -> Path:
    """Confusion matrix heat-map, and accuracy against time steps when a sweep was run."""
    plt = pyplot()
    panels = 2 if sweep_rows else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.8), squeeze=False)
    ax = axes[0, 0]
    ax.imshow(result.confusion, cmap="Blues")
    top = max(max(row) for row in result.confusion) or 1
    for t, row in enumerate(result.confusion):
        for p, v in enumerate(row):
            if v:
                colour = "white" if v > top / 2 else "black"
                ax.text(p, t, str(v), ha="center", va="center", fontsize=6, color=colour)
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion ({100 * result.accuracy:.2f}%)")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    if sweep_rows:
        ax = axes[0, 1]
        ax.plot([r["steps"] for r in sweep_rows], [100 * r["accuracy"] for r in sweep_rows], "o-")
        ax.set(xlabel="time steps", ylabel="test accuracy (%)", title="accuracy vs time steps")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, "plot")

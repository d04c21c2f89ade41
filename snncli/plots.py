"""PNG charts (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

from .checkpoint import atomic_write


def plot_training(history: list[dict], path: Path, title: str = "training") -> Path:
    """Loss per iteration and test accuracy at each evaluation, one figure, two panels."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

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
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path

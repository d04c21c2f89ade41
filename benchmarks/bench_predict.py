"""How well `snn predict` reads digits that do not look like MNIST.

Prints one table: accuracy of a checkpoint on
  * tests/data/user_digits (photos, drawings, boards, transparent PNGs; see its README),
    per style and overall, and
  * MNIST test digits pasted into 200x200 canvases at a random position and scale,
    either polarity,
each through the full preprocessing pipeline and through a plain resize to 28x28.

Usage:
  .venv/bin/python benchmarks/bench_predict.py --checkpoint checkpoints/csnn.pt \
      --data-dir ../shared/data/mnist [--canvases 2000]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from snncli.checkpoint import load_checkpoint
from snncli.data import load_split
from snncli.predict import predict_digits
from snncli.preprocess import mnist_like, open_image

USER_DIGITS = Path(__file__).resolve().parents[1] / "tests" / "data" / "user_digits"


def plain_resize(image: Image.Image) -> np.ndarray:
    """What a naive tool does: grey, squash to 28x28, nothing else."""
    return np.asarray(image.convert("L").resize((28, 28), Image.Resampling.BILINEAR))


def canvas_digits(split, count: int, seed: int = 0) -> tuple[list[Image.Image], list[int]]:
    """MNIST test digits pasted into 200x200 canvases: random scale, position and polarity."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in rng.choice(len(split), size=count, replace=False):
        digit = Image.fromarray(split.images[i].numpy())
        size = int(rng.integers(40, 181))
        digit = digit.resize((size, size), Image.Resampling.BICUBIC)
        canvas = Image.new("L", (200, 200), 0)
        x, y = rng.integers(0, 200 - size + 1, size=2)
        canvas.paste(digit, (int(x), int(y)))
        if rng.random() < 0.5:
            canvas = Image.fromarray(255 - np.asarray(canvas))
        images.append(canvas)
        labels.append(int(split.labels[i]))
    return images, labels


def predictions(ckpt, digits, device) -> np.ndarray:
    _, scores, _, _ = predict_digits(ckpt, digits, device)
    return scores.argmax(1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--canvases", type=int, default=2000)
    parser.add_argument("--user-digits", default=str(USER_DIGITS))
    args = parser.parse_args()
    device = torch.device("cpu")
    ckpt = load_checkpoint(args.checkpoint)

    paths = sorted(p for p in Path(args.user_digits).iterdir() if p.suffix in (".png", ".jpg"))
    images = [open_image(p) for p in paths]
    labels = [int(p.name[0]) for p in paths]
    styles = [p.stem.split("_")[2] for p in paths]
    start = time.perf_counter()
    labels = np.array(labels)
    piped_pred = predictions(ckpt, [mnist_like(im) for im in images], device)
    seconds = time.perf_counter() - start
    piped = (piped_pred == labels).astype(float)
    plain = (predictions(ckpt, [plain_resize(im) for im in images], device) == labels).astype(float)

    if args.canvases:
        split = load_split("test", args.data_dir)
        canvases, canvas_labels = canvas_digits(split, args.canvases)
        canvas_labels = np.array(canvas_labels)
        canvas_piped = predictions(ckpt, [mnist_like(im) for im in canvases], device)
        canvas_plain = predictions(ckpt, [plain_resize(im) for im in canvases], device)

    table = Table(title=f"snn predict accuracy, {args.checkpoint} ({ckpt['model']})")
    for column in ("set", "images", "pipeline", "plain resize"):
        table.add_column(column, justify="left" if column == "set" else "right")
    by_style = defaultdict(list)
    for i, style in enumerate(styles):
        by_style[style].append(i)
    for style, idx in sorted(by_style.items()):
        table.add_row(
            f"user digits: {style}",
            str(len(idx)),
            f"{100 * piped[idx].mean():.1f}%",
            f"{100 * plain[idx].mean():.1f}%",
        )
    table.add_row(
        "[bold]user digits: all",
        str(len(paths)),
        f"[bold]{100 * piped.mean():.1f}%",
        f"{100 * plain.mean():.1f}%",
    )
    if args.canvases:
        table.add_row(
            "[bold]MNIST test in 200x200 canvases",
            str(len(canvases)),
            f"[bold]{100 * (canvas_piped == canvas_labels).mean():.1f}%",
            f"{100 * (canvas_plain == canvas_labels).mean():.1f}%",
        )
    console = Console(width=max(Console().width, 150))
    console.print(table)
    missed = [
        f"{p.name}->{int(y)}" for p, y, ok in zip(paths, piped_pred, piped, strict=True) if not ok
    ]
    console.print(f"pipeline + model: {len(paths) / seconds:.0f} user images/s")
    console.print(f"missed (file->prediction): {', '.join(missed) or 'none'}")


if __name__ == "__main__":
    main()

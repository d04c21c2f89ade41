"""How well `snn predict` reads digits that do not look like MNIST.

Prints one table: accuracy of a checkpoint on
  * tests/data/user_digits (see its README): the first 300 (photos, drawings, boards,
    transparent PNGs) per style and together, then each kind added for issues 21 and 29
    (small 1-pixel drawings, MNIST-like 28x28 images, thick rings on grey paper, neighbours'
    fragments at the edge, blurry ballpoint, European 1s; faint lines, tight black-and-white
    crops with and without a neighbour's blob, closed-top 4s, large phone photos, 1s with a
    flag and a base) and all of them,
  * MNIST test digits written as 28x28 PNG files and read back (the pipeline must leave them
    as they are), and
  * MNIST test digits pasted into 200x200 canvases at a random position and scale,
    either polarity,
each through the full preprocessing pipeline and through a plain resize to 28x28, with the
pipeline's winning share (the model's confidence: median and lowest of the set). With
--baseline REF the pipeline of git revision REF (its snncli/preprocess.py) runs beside this
one on the same images and model, in a column of its own.

Usage:
  .venv/bin/python benchmarks/bench_predict.py --checkpoint checkpoints/csnn.pt \
      --data-dir ../shared/data/mnist [--canvases 2000] [--mnist-files 2000] [--baseline REF]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import time
import types
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

import snncli
from snncli import preprocess
from snncli.checkpoint import load_checkpoint
from snncli.data import load_split
from snncli.errors import ImageError
from snncli.predict import predict_digits

ROOT = Path(__file__).resolve().parents[1]
USER_DIGITS = ROOT / "tests" / "data" / "user_digits"
FIRST_STYLES = ("board", "drawing", "photo", "rgba")  # the 300 made before issue 21


def plain_resize(image: Image.Image) -> np.ndarray:
    """What a naive tool does: grey, squash to 28x28, nothing else."""
    return np.asarray(image.convert("L").resize((28, 28), Image.Resampling.BILINEAR))


def baseline_pipeline(ref: str):
    """`mnist_like` of snncli/preprocess.py as it was at git revision `ref`."""
    source = subprocess.run(
        ["git", "show", f"{ref}:snncli/preprocess.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    module = types.ModuleType("snncli._baseline_preprocess")
    module.__package__ = snncli.__name__  # its relative imports find this snncli's modules
    exec(compile(source, f"{ref}:snncli/preprocess.py", "exec"), module.__dict__)
    return module.mnist_like


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


def mnist_files(split, count: int) -> tuple[list[Image.Image], list[int]]:
    """The first `count` MNIST test digits, each saved as a PNG and opened as a user's file."""
    images = []
    for image in split.images[:count]:
        buffer = io.BytesIO()
        Image.fromarray(image.numpy()).save(buffer, format="PNG")
        images.append(preprocess.open_image(buffer.getvalue()))
    return images, split.labels[:count].tolist()


def attempt(make, image: Image.Image) -> np.ndarray | None:
    try:
        return make(image)
    except ImageError:
        return None


class Scorer:
    """Right/wrong per image for each way of making the 28x28 input, and the seconds each
    pipeline took."""

    def __init__(self, ckpt, ways: dict):
        self.ckpt, self.ways = ckpt, ways
        self.seconds: dict[str, float] = defaultdict(float)
        self.count = 0

    def score(self, images, labels) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        labels = np.asarray(labels)
        found = {}
        for name, make in self.ways.items():
            start = time.process_time()
            inputs = [attempt(make, im) for im in images]
            self.seconds[name] += time.process_time() - start
            read = [x if x is not None else np.zeros((28, 28), np.uint8) for x in inputs]
            model, classified = predict_digits(self.ckpt, read, torch.device("cpu"))
            predicted = classified.predicted.numpy()
            share = model.confidence(classified.scores).numpy()[np.arange(len(read)), predicted]
            predicted[[x is None for x in inputs]] = -1  # found no digit: wrong
            share[predicted == -1] = 0.0
            found[name] = (predicted == labels, predicted, share)
        self.count += len(images)
        return found


def user_rows(scorer: Scorer, folder: Path) -> tuple[list, list[str]]:
    """Table rows for the user digits (first-300 styles, then added kinds) and the misses."""
    paths = sorted(p for p in folder.iterdir() if p.suffix in (".png", ".jpg"))
    labels = [int(p.name[0]) for p in paths]
    styles = np.array([p.stem.split("_")[2] for p in paths])
    found = scorer.score([preprocess.open_image(p) for p in paths], labels)
    groups = [(f"user digits: {s}", styles == s) for s in FIRST_STYLES]
    groups.append(("[bold]user digits: the first 300", np.isin(styles, FIRST_STYLES)))
    added = sorted(set(styles) - set(FIRST_STYLES))
    groups += [(f"user digits: {s}", styles == s) for s in added]
    groups.append(("[bold]user digits: all", np.ones(len(paths), bool)))
    rows = [(name, int(pick.sum()), {k: v[0][pick] for k, v in found.items()},
             found["pipeline"][2][pick]) for name, pick in groups if pick.any()]
    right, predicted, _ = found["pipeline"]
    missed = [f"{p.name}->{y}" for p, y, ok in zip(paths, predicted, right, strict=True) if not ok]
    return rows, missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--canvases", type=int, default=2000)
    parser.add_argument("--mnist-files", type=int, default=2000)
    parser.add_argument("--user-digits", default=str(USER_DIGITS))
    parser.add_argument("--baseline", help="git revision whose pipeline to compare with")
    args = parser.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    ways = {"pipeline": preprocess.mnist_like}
    if args.baseline:
        ways = {f"pipeline at {args.baseline}": baseline_pipeline(args.baseline), **ways}
    pipelines = list(ways)
    ways["plain resize"] = plain_resize
    scorer = Scorer(ckpt, ways)

    rows, missed = user_rows(scorer, Path(args.user_digits))
    user_count, user_seconds = scorer.count, dict(scorer.seconds)
    if args.mnist_files or args.canvases:
        split = load_split("test", args.data_dir)
    for count, make, name in (
        (args.mnist_files, mnist_files, "MNIST test as 28x28 PNG files"),
        (args.canvases, canvas_digits, "MNIST test in 200x200 canvases"),
    ):
        if count:
            images, labels = make(split, count)
            found = scorer.score(images, labels)
            rows.append((f"[bold]{name}", len(images), {k: v[0] for k, v in found.items()},
                         found["pipeline"][2]))

    table = Table(title=f"snn predict accuracy, {args.checkpoint} ({ckpt.model})")
    for column in ("set", "images", *ways, "share: median", "lowest"):
        table.add_column(column, justify="left" if column == "set" else "right")
    for name, count, right, share in rows:
        table.add_row(name, str(count), *(f"{100 * right[k].mean():.1f}%" for k in ways),
                      f"{np.median(share):.2f}", f"{share.min():.2f}")
    console = Console(width=max(Console().width, 150))
    console.print(table)
    for name in pipelines:
        ms = 1000 * user_seconds[name] / user_count
        console.print(f"{name}: {ms:.1f} ms of CPU time per user image (decoded image to 28x28)")
    console.print(f"missed by the pipeline (file->prediction): {', '.join(missed) or 'none'}")


if __name__ == "__main__":
    main()

"""Make the bundled weights: compact trained checkpoints into snncli/pretrained/<model>.pt.

    python tools/bundle_weights.py runs/csnn-bundled.pt runs/mlp-bundled.last.pt \
        --data-dir DIR --user-digits tests/data/user_digits

Each checkpoint's weight matrices are stored as int8 with one scale per output row (see
`Checkpoint.compacted`), after checking on MNIST's test set that this moves its accuracy by
at most MAX_ACCURACY_CHANGE points; the figures are recorded in the file's `bundled` entry,
which `snn models` shows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from snncli.checkpoint import Checkpoint, expand_stored_weights, load_checkpoint, save_checkpoint
from snncli.data import load_split
from snncli.evaluate import evaluate_model
from snncli.predict import user_digit_accuracy
from snncli.pretrained import bundled_path
from snncli.runtime import resolve_device

MAX_ACCURACY_CHANGE = 0.05  # points
STORED_DTYPE = "int8"  # a quarter of fp32's size (the csnn and mlp together in 2.3 MB)


def expanded(stored: dict) -> Checkpoint:
    """Compacted file contents as loading makes them: float weights, leaving `stored` as is."""
    loaded = dict(stored)
    problems = expand_stored_weights(loaded)
    if problems:
        raise ValueError("; ".join(problems))
    return Checkpoint.from_dict(loaded)


def accuracy_change(ckpt: Checkpoint, small: Checkpoint, data_dir: str | None) -> dict:
    """MNIST test accuracy (fp32, every image) of a checkpoint and of its compacted copy."""
    test, device = load_split("test", data_dir), resolve_device("cpu")
    before, after = (
        evaluate_model(c.build_model(), test, c.normalisation, device).accuracy
        for c in (ckpt, small)
    )
    return {"test_accuracy_before": before, "test_accuracy_after": after}


def bundle(source: str, data_dir: str | None, user_digits: str | None,
           max_change: float | None = None) -> str:
    """Compact checkpoint `source` into the package's bundled weights; one line of figures.
    Refuses (SystemExit) a compaction that moves the MNIST test accuracy by over `max_change`
    points, writing nothing."""
    ckpt = load_checkpoint(source)
    stored = ckpt.compacted(Path(source).name, STORED_DTYPE)
    small = expanded(stored)
    change = accuracy_change(ckpt, small, data_dir)
    moved = abs(change["test_accuracy_after"] - change["test_accuracy_before"]) * 100
    if moved > (MAX_ACCURACY_CHANGE if max_change is None else max_change):
        sys.exit(f"error: compacting {source} moves its MNIST accuracy by {moved:.2f} points")
    if user_digits:
        change |= user_digit_accuracy(small, user_digits)
    stored["bundled"] |= change
    target = save_checkpoint(stored, bundled_path(ckpt.model))
    users = f", user digits {change['user_digits_accuracy']:.2%}" if user_digits else ""
    return (f"{source} -> {target} ({target.stat().st_size / 1e6:.2f} MB), MNIST test "
            f"{change['test_accuracy_before']:.2%} -> {change['test_accuracy_after']:.2%}{users}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python tools/bundle_weights.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data-dir")
    parser.add_argument("--user-digits", help="also record the share of this folder's images "
                        "(named after their digit) read right")
    args = parser.parse_args(argv)
    for source in args.checkpoints:
        print(bundle(source, args.data_dir, args.user_digits))


if __name__ == "__main__":
    main(sys.argv[1:])

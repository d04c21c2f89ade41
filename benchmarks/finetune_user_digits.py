"""Fine-tuning trained weights on users' digits: does it help, and does it forget MNIST?

tests/data/user_digits (file names `{label}_{source}_{kind}_{index}.{ext}`) is split into two
halves, stratified: within each kind and digit the files, in name order, go alternately to a
fine-tuning half and a held-out half. Both are written as labelled folders (DIR/0/ ... DIR/9/)
in a temporary folder. The bundled model is scored on the held-out half and on all 10,000
MNIST test digits (fp32, on the CPU, as `snn evaluate --precision fp32` scores them), then
fine-tuned on the fine-tuning half (`snn train --data HALF --init-from bundled`, its defaults
otherwise), and the best checkpoint of the run scored again. Prints one table: held-out
accuracy and mean confidence of the true class, MNIST test accuracy, before and after, and the
fine-tuning's time (training alone, and the whole run with its reading and evaluations).

Usage:
  .venv/bin/python benchmarks/finetune_user_digits.py --data-dir ../shared/data/mnist \
      [--model csnn|mlp] [--init-from bundled|CHECKPOINT] [--seed 0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

USER_DIGITS = Path(__file__).resolve().parents[1] / "tests" / "data" / "user_digits"


def split_halves(source: Path, root: Path) -> tuple[Path, Path, int, int]:
    """Write the fine-tuning and held-out halves of `source` as labelled folders under
    `root`; (their folders, their image counts)."""
    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path in sorted(source.iterdir()):
        parts = path.stem.split("_")
        if len(parts) == 4 and parts[0].isdigit():
            groups[(parts[2], parts[0])].append(path)
    halves = (root / "finetune", root / "heldout")
    counts = [0, 0]
    for (_, label), files in sorted(groups.items()):
        for i, path in enumerate(files):
            folder = halves[i % 2] / label
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, folder / path.name)
            counts[i % 2] += 1
    return halves[0], halves[1], counts[0], counts[1]


def score(checkpoint, data_dir: str, folder: Path | None) -> tuple[float, float | None]:
    """(accuracy, mean confidence of the true class or None) of `checkpoint` on `folder`,
    or on MNIST test without one; fp32 on the CPU."""
    from snncli.evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(checkpoint, data_dir=data_dir, device="cpu", precision="fp32",
                                 data=folder)
    confidence = report.folder.true_confidence if report.folder else None
    return report.result.accuracy, confidence


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="MNIST's four IDX files")
    parser.add_argument("--model", default="csnn", choices=("csnn", "mlp"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-from", default="bundled",
                        help="the weights to fine-tune: 'bundled' (of --model) or a checkpoint")
    parser.add_argument("--keep", help="write the halves and the checkpoints here, and keep them")
    args = parser.parse_args()

    from snncli.choice import choose_checkpoint
    from snncli.train import TrainOptions, train

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="finetune-"))
    try:
        tune, held, n_tune, n_held = split_halves(USER_DIGITS, root)
        initial = choose_checkpoint(args.init_from, args.model)[0]
        before = score(initial, args.data_dir, held), score(initial, args.data_dir, None)
        options = TrainOptions(model=args.model, init_from=str(initial), data=str(tune),
                               data_dir=args.data_dir, out=str(root / f"{args.model}-ft.pt"),
                               seed=args.seed, device="cpu", plot=False)
        start = time.perf_counter()
        result = train(options)
        wall = time.perf_counter() - start
        best = result.best_path
        after = score(best, args.data_dir, held), score(best, args.data_dir, None)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    print(f"{args.init_from} {args.model}, fine-tuned on {n_tune} user digits (seed {args.seed}), "
          f"held-out half {n_held} images; MNIST test: 10,000 images, fp32")
    print("| | held-out accuracy | held-out true-class confidence | MNIST test |")
    print("| --- | --- | --- | --- |")
    for name, ((acc, conf), (mnist, _)) in (("before", before), ("after", after)):
        print(f"| {name} | {100 * acc:.2f}% | {100 * conf:.1f}% | {100 * mnist:.2f}% |")
    print(f"fine-tuning: {result.train_seconds:.1f} s training, {wall:.1f} s the whole run "
          f"(reading the folder, loading MNIST, evaluations); best checkpoint of epoch "
          f"{result.best['epoch']}")


if __name__ == "__main__":
    main()

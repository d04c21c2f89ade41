"""Fashion-MNIST recipes against the CPU budget of MNIST's `quick`, in one run.

The budget is the one `quick` is held to: 1/8 of an epoch of the snnTorch tutorial's csnn
(seed recipe, T=100, batch 128, snnTorch's step loop, fp32), measured here first
(`bench_engine.py`'s measurement). Then each recipe is trained for real with each seed, as
`snn train --dataset fashion-mnist --recipe R --seed S` does, each in its own process: the
last epoch's Fashion-MNIST test accuracy (all 10,000 images), the training time and its share
of the budget. Prints a table.

    python benchmarks/bench_fashion.py --data-dir ../shared/data/fashion-mnist \\
        --mnist-dir ../shared/data/mnist --recipes csnn:fashion --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN_IMAGES = 60_000


def budget_reference(mnist_dir: str, iters: int) -> dict:
    """snnTorch's seed csnn (T=100, fp32): seconds per iteration, as bench_engine measures."""
    done = subprocess.run(
        [sys.executable, str(HERE / "bench_engine.py"), "--data-dir", mnist_dir, "--device",
         "cpu", "--iters", str(iters), "--warmup", "1", "--one",
         "measure,csnn,seed,100,snntorch,fp32"],
        capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_one(model: str, recipe: str, seed: int, data_dir: str) -> dict:
    """One Fashion-MNIST run, in this process: its last epoch's test accuracy and time."""
    from snncli.train import TrainOptions, train

    with tempfile.TemporaryDirectory() as folder:
        options = TrainOptions(
            model=model, recipe=recipe, seed=seed, device="cpu", data_dir=data_dir,
            overrides={"dataset": "fashion-mnist"}, out=os.path.join(folder, "run.pt"),
            eval_epochs=1000, plot=False,
        )
        result = train(options)
    return {"accuracy": result.last["test_accuracy"], "train_seconds": result.train_seconds,
            "epochs": result.last["epoch"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data/fashion-mnist")
    parser.add_argument("--mnist-dir", default="../shared/data/mnist",
                        help="MNIST, for the budget's reference measurement")
    parser.add_argument("--recipes", default="csnn:fashion", help="model:recipe, comma-separated")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--iters", type=int, default=3, help="timed iterations of the reference")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: model,recipe,seed
    args = parser.parse_args()

    if args.one:
        model, recipe, seed = args.one.split(",")
        print(json.dumps(train_one(model, recipe, int(seed), args.data_dir)))
        return

    import torch
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 120))
    sys.path.insert(0, str(HERE))
    from bench_engine import cpu_description

    cpu, flags = cpu_description()
    console.print(f"CPU: {cpu}; ISA flags: {flags}", highlight=False)
    reference = budget_reference(args.mnist_dir, args.iters)
    epoch = reference["seconds_per_iteration"] * math.ceil(TRAIN_IMAGES / 128)
    budget = epoch / 8
    console.print(
        f"budget: 1/8 of snnTorch's seed csnn epoch (T=100, fp32, "
        f"{reference['seconds_per_iteration']:.3f} s/iteration x {math.ceil(TRAIN_IMAGES / 128)}"
        f" = {epoch:.0f} s) = {budget:.0f} s; PyTorch {torch.__version__}, "
        f"{torch.backends.cpu.get_cpu_capability()} kernels, {torch.get_num_threads()} threads",
        highlight=False,
    )
    table = Table(title=f"Fashion-MNIST recipes, {date.today()}")
    for column in ("model", "recipe", "seed", "epochs", "test accuracy (last epoch)",
                   "training time", "share of budget"):
        table.add_column(column, justify="left" if column in ("model", "recipe") else "right")
    for pair in args.recipes.split(","):
        model, recipe = pair.split(":")
        for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
            done = subprocess.run(
                [sys.executable, __file__, "--data-dir", args.data_dir, "--one",
                 f"{model},{recipe},{seed}"], capture_output=True, text=True,
            )
            if done.returncode:
                sys.exit(f"{model} {recipe} seed {seed} failed:\n{done.stderr}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            table.add_row(model, recipe, str(seed), str(row["epochs"]),
                          f"{100 * row['accuracy']:.2f}%", f"{row['train_seconds']:.0f} s",
                          f"{row['train_seconds'] / budget:.2f}")
            console.print(f"trained {model} {recipe} seed {seed}", style="dim")
    console.print(table)


if __name__ == "__main__":
    main()

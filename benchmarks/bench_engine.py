"""The fast engine against the reference (snnTorch neurons, one Python step at a time).

Runs each model's seed recipe with both backends in one run, on the same data and device, and
prints one table: seconds per training iteration (median of the timed iterations), the epoch
time that implies, inference images/s, peak memory and accuracy on a fixed test subset after
the same training iterations from the same initial weights. The engine runs in fp32 and, where
the device has native bf16 arithmetic, in bf16 (`--precision bf16`); the reference always in
fp32. Each configuration runs in its own process so peak memory is its own.

Usage:
  .venv/bin/python benchmarks/bench_engine.py --data-dir ../shared/data/mnist \
      [--device cpu] [--csnn-steps 25,100] [--iters 5] [--subset 500]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import date

import torch
from rich.console import Console
from rich.table import Table

from snncli.data import Split, load_split, normalise
from snncli.evaluate import evaluate_model
from snncli.registry import get_model_spec
from snncli.runtime import native_bf16, resolve_device, tune_for_device


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(model_name: str, steps: int, backend: str, precision: str, args) -> dict:
    """Train `iters` timed iterations (after `warmup`), then score the test subset."""
    device = resolve_device(args.device)
    spec = get_model_spec(model_name)
    recipe = spec.recipes["seed"]
    batch = recipe["batch_size"]
    n_train = batch * (args.warmup + args.iters)
    train = load_split("train", args.data_dir, n_train)
    test = load_split("test", args.data_dir, args.subset)
    train = Split(train.images.to(device), train.labels.to(device))
    test = Split(test.images.to(device), test.labels.to(device))
    norm = {"mean": spec.normalisation[0], "std": spec.normalisation[1]}

    torch.manual_seed(0)
    model = spec.build(spec.config_cls(steps=steps)).to(device)
    tune_for_device(model, device, batch)
    model.backend = backend
    model.precision = precision
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(args.warmup + args.iters):
        x = normalise(train.images[i * batch : (i + 1) * batch], **norm)
        y = train.labels[i * batch : (i + 1) * batch]
        sync(device)
        start = time.perf_counter()
        loss = model.loss(model(x), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    per_iter = statistics.median(times)
    if device.type == "cuda":  # untimed warm-up: cuDNN picks algorithms at a shape's first use
        head = Split(test.images[: args.eval_batch], test.labels[: args.eval_batch])
        evaluate_model(model, head, norm, device, batch_size=args.eval_batch)
    evaluation = evaluate_model(model, test, norm, device, batch_size=args.eval_batch)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": model_name,
        "steps": steps,
        "backend": backend,
        "precision": precision,
        "seconds_per_iteration": per_iter,
        "epoch_seconds": per_iter * math.ceil(60_000 / batch),
        "images_per_second": evaluation.images_per_second,
        "peak_mb": peak_mb,
        "subset_accuracy": evaluation.accuracy,
        "device": str(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--csnn-steps", default="25,100")
    parser.add_argument("--iters", type=int, default=5, help="timed training iterations")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--subset", type=int, default=500, help="test images scored")
    parser.add_argument("--eval-batch", type=int, default=250)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: model,steps,backend,prec
    args = parser.parse_args()

    if args.one:
        name, steps, backend, precision = args.one.split(",")
        print(json.dumps(measure(name, int(steps), backend, precision, args)))
        return

    configs = [("csnn", int(t)) for t in args.csnn_steps.split(",")] + [("mlp", 6)]
    runs = [("snntorch", "fp32"), ("engine", "fp32")]
    if native_bf16(resolve_device(args.device)):
        runs.append(("engine", "bf16"))
    groups = []
    console = Console(width=max(Console().width, 150))
    for name, steps in configs:
        group = []
        for backend, precision in runs:
            argv = [a for a in sys.argv[1:]] + ["--one", f"{name},{steps},{backend},{precision}"]
            done = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{name} T={steps} {backend} {precision} failed:\n{done.stderr}")
            group.append(json.loads(done.stdout.strip().splitlines()[-1]))
            console.print(f"measured {name} T={steps} {backend} {precision}", style="dim")
        groups.append(group)
    rows = [row for group in groups for row in group]

    device = rows[0]["device"]
    hardware = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor()
    table = Table(
        title=f"Engine vs snnTorch reference, {device} ({hardware or platform.machine()}, "
        f"{torch.get_num_threads()} threads), {date.today()}"
    )
    columns = [
        "model",
        "T",
        "backend",
        "precision",
        "s/iteration",
        "epoch (est.)",
        "inference img/s",
        "peak MB",
        f"acc ({args.subset} test)",
        "train speed-up",
        "inference speed-up",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "backend") else "right")
    for ref, *engine_rows in groups:
        for r in (ref, *engine_rows):
            fast = r is not ref
            table.add_row(
                r["model"],
                str(r["steps"]),
                r["backend"],
                r["precision"],
                f"{r['seconds_per_iteration']:.3f}",
                f"{r['epoch_seconds']:.0f} s",
                f"{r['images_per_second']:,.0f}",
                f"{r['peak_mb']:,.0f}",
                f"{100 * r['subset_accuracy']:.1f}%",
                f"{ref['seconds_per_iteration'] / r['seconds_per_iteration']:.2f}x" if fast else "",
                f"{r['images_per_second'] / ref['images_per_second']:.2f}x" if fast else "",
            )
    console.print(table)


if __name__ == "__main__":
    main()

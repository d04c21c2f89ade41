"""Where a training iteration's time goes: torch.profiler over a few iterations of a recipe.

Prints the measured time per iteration (device-synchronised, median) and the operators and
kernels that take the most device time (CUDA) or CPU time, for one training iteration and one
inference batch. For finding what to speed up next; bench_engine.py is the comparison.

Usage:
  python benchmarks/profile_engine.py --data-dir ../shared/data/mnist --device cuda \
      [--model csnn] [--recipe seed] [--precision bf16] [--iters 10] [--top 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from snncli.data import Split, load_split, normalise
from snncli.evaluate import evaluate_model
from snncli.models import get_model_spec, get_recipe
from snncli.runtime import resolve_device, tune_for_device
from snncli.train_setup import initialise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="csnn")
    parser.add_argument("--recipe", default="seed")
    parser.add_argument("--steps", type=int, help="time steps (default: the recipe's)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--eval-batch", type=int, default=1000)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()

    device = resolve_device(args.device)
    spec = get_model_spec(args.model)
    _, recipe = get_recipe(spec, args.recipe)
    steps, batch = args.steps or recipe.steps, recipe.batch_size
    norm = {"mean": spec.normalisation[0], "std": spec.normalisation[1]}
    train = load_split("train", args.data_dir, batch * (args.iters + 3))
    test = load_split("test", args.data_dir, args.test_images)
    images, labels = train.images.to(device), train.labels.to(device)

    torch.manual_seed(0)
    model = spec.build(spec.config_cls(**{**spec.config_from_recipe(recipe), "steps": steps}))
    model = model.to(device)
    initialise(model, recipe, images, norm)  # as `snn train` starts: speed follows firing rates
    precision = tune_for_device(model, device, batch, precision=args.precision)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def iteration(i: int) -> None:
        x = normalise(images[i * batch : (i + 1) * batch], **norm)
        y = labels[i * batch : (i + 1) * batch]
        loss = model.loss(model(x), y, kind=recipe.loss)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    times = []
    for i in range(args.iters + 3):
        sync()
        start = time.perf_counter()
        iteration(i)
        sync()
        times.append(time.perf_counter() - start)
    per_iter = statistics.median(times[3:])
    print(
        f"{args.model} {args.recipe} T={steps} batch {batch} {precision} on {device}: "
        f"{1000 * per_iter:.2f} ms/iteration (median of {args.iters}), "
        f"{per_iter * -(-60_000 // batch):.2f} s/epoch"
    )

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    with profile(activities=activities) as prof:
        iteration(1)
        sync()
    print(f"\none training iteration, by {key}:")
    print(prof.key_averages().table(sort_by=key, row_limit=args.top, max_name_column_width=60))

    test_set = Split(test.images.to(device), test.labels.to(device))
    scored = evaluate_model(model, test_set, norm, device, batch_size=args.eval_batch)
    print(
        f"evaluate_model on {scored.total:,} test images (batch {args.eval_batch}): "
        f"{scored.images_per_second:,.0f} images/s, accuracy {100 * scored.accuracy:.2f}%"
    )
    model.eval()
    x = normalise(test_set.images[: args.eval_batch], **norm)
    with torch.no_grad():
        model(x)  # warm-up at this batch shape
        sync()
        start = time.perf_counter()
        model(x)
        sync()
        seconds = time.perf_counter() - start
        print(f"forward alone, batch {len(x)}: {len(x) / seconds:,.0f} images/s")
        with profile(activities=activities) as prof:
            model(x)
            sync()
    print(f"\none inference batch of {len(x)}, by {key}:")
    print(prof.key_averages().table(sort_by=key, row_limit=args.top, max_name_column_width=60))


if __name__ == "__main__":
    main()

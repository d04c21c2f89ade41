"""The fast engine against the reference (snnTorch neurons, one Python step at a time).

Prints, in one run: the CPU (model, the ISA flags that matter, PyTorch's kernel level and
threads), then the seed csnn recipe (batch 128) at each T with snnTorch's loop and the engine,
in fp32 and in the precision `auto` picks here: seconds per training iteration (median of the
timed iterations, warm-up excluded), the epoch time that implies, inference images/s, peak
memory and accuracy on a fixed test subset after the same iterations from the same initial
weights, with speed-ups against snnTorch at the same T. Then the time-to-99% budget: 1/8 of
snnTorch's seed epoch at T=100 (its s/iteration x 469), against the csnn `quick` recipe's
training time, estimated from its own s/iteration or, with `--quick-seeds`, trained for real (then
also its share of tests/data/user_digits read right, from its last epoch's weights, and its test
accuracy with spike-count ties given to the lower digit as a plain argmax of the counts does).
Each measurement runs in its own process so peak memory is its own; the `load` column is the
machine's 1-minute load average as it started (timings of a shared machine are only worth
comparing while it stays below the number of cores).

To measure the AVX2 path of most laptops on a CPU with AVX-512, force it:
  ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
      FBGEMM_ENABLE_INSTRUCTIONS=AVX2 python benchmarks/bench_engine.py ...
(the first two move PyTorch's and oneDNN's kernels; MKL's matrix products and FBGEMM's
embedding_bag choose their own ISA, which the last two set.)

Usage:
  python benchmarks/bench_engine.py --data-dir ../shared/data/mnist \
      [--device cpu] [--csnn-steps 25,100] [--iters 3] [--subset 500] [--with-mlp] \
      [--quick-seeds 0,1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date

import torch
from rich.console import Console
from rich.table import Table

from snncli.augment import augment_level
from snncli.data import Split, load_split, normalise
from snncli.evaluate import evaluate_model
from snncli.models import get_model_spec
from snncli.runtime import resolve_device, resolve_precision, tune_for_device
from snncli.train_setup import initialise

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni",
             "amx_tile", "amx_bf16")
TRAIN_IMAGES = 60_000
USER_DIGITS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests",
                           "data", "user_digits")
# What forces the kernels of PyTorch, oneDNN, MKL and FBGEMM (embedding_bag) to an ISA.
ISA_OVERRIDES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
                 "FBGEMM_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def cpu_description() -> tuple[str, str]:
    """(model name with family/model numbers, the ISA flags of ISA_FLAGS the CPU has)."""
    name, flags, ids = platform.processor() or platform.machine(), set(), {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name":
                    name = value
                elif key in ("cpu family", "model"):
                    ids.setdefault(key, value)
                elif key == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # not Linux: the name alone
        pass
    if ids:
        name += f" (family {ids.get('cpu family')}, model {ids.get('model')})"
    return name, " ".join(f for f in ISA_FLAGS if f in flags) or "unknown"


def measure(model_name: str, recipe_name: str, steps: int, backend: str, precision: str,
            args) -> dict:
    """Train `iters` timed iterations (after `warmup`) the way `snn train` does (the recipe's
    augmentation, loss and batch), then score the test subset."""
    device = resolve_device(args.device)
    load = os.getloadavg()[0]  # other work on the machine at the start (1-minute average)
    spec = get_model_spec(model_name)
    recipe = spec.recipes[recipe_name]
    batch = recipe.batch_size
    n_train = batch * (args.warmup + args.iters)
    train = load_split("train", args.data_dir, n_train)
    test = load_split("test", args.data_dir, args.subset)
    train = Split(train.images.to(device), train.labels.to(device))
    test = Split(test.images.to(device), test.labels.to(device))
    norm = {"mean": spec.normalisation[0], "std": spec.normalisation[1]}

    torch.manual_seed(0)
    config = {**spec.config_from_recipe(recipe), "steps": steps}
    model = spec.build(spec.config_cls(**config)).to(device)
    # As `snn train` starts: the engine's speed follows the firing rates (sparse spikes are
    # summed, not multiplied), so they must be a run's.
    initialise(model, recipe, train.images, norm)
    tune_for_device(model, device, batch, backend=backend, precision=precision)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    shuffle = torch.Generator().manual_seed(0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(args.warmup + args.iters):
        sync(device)
        start = time.perf_counter()
        images = augment_level(train.images[i * batch : (i + 1) * batch], recipe.augment,
                               shuffle)
        x = normalise(images, **norm)
        y = train.labels[i * batch : (i + 1) * batch]
        loss = model.loss(model(x), y, kind=recipe.loss)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    per_iter = statistics.median(times)
    evaluation = None
    if recipe_name == "seed":  # the quick recipe is timed for training only
        if device.type == "cuda":  # untimed warm-up: cuDNN picks algorithms at a shape's first use
            head = Split(test.images[: args.eval_batch], test.labels[: args.eval_batch])
            evaluate_model(model, head, norm, device, batch_size=args.eval_batch)
        evaluation = evaluate_model(model, test, norm, device, batch_size=args.eval_batch)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    iterations = math.ceil(TRAIN_IMAGES / batch)
    return {
        "model": model_name,
        "recipe": recipe_name,
        "steps": steps,
        "backend": backend,
        "precision": precision,
        "seconds_per_iteration": per_iter,
        "epoch_seconds": per_iter * iterations,
        "training_seconds": per_iter * iterations * recipe.epochs,
        "images_per_second": evaluation.images_per_second if evaluation else None,
        "peak_mb": peak_mb,
        "subset_accuracy": evaluation.accuracy if evaluation else None,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "load": load,
    }


def train_quick(seed: int, args) -> dict:
    """The quick recipe trained for real, as `snn train -m csnn --recipe quick` does it."""
    from snncli.checkpoint import load_checkpoint
    from snncli.predict import user_digit_accuracy
    from snncli.train import TrainOptions, train

    with tempfile.TemporaryDirectory() as folder:
        options = TrainOptions(
            model="csnn", recipe="quick", seed=seed, device=args.device, data_dir=args.data_dir,
            out=os.path.join(folder, "quick.pt"), eval_epochs=1000, plot=False,
        )
        result = train(options)
        last = load_checkpoint(os.path.join(folder, "quick.last.pt"))
        users = user_digit_accuracy(last, USER_DIGITS)
    return {"seed": seed, "accuracy": result.last["test_accuracy"],
            "count_argmax_accuracy": count_argmax_accuracy(last, args.data_dir),
            "train_seconds": result.train_seconds, **users}


def count_argmax_accuracy(ckpt, data_dir: str) -> float:
    """MNIST test accuracy (fp32) with spike-count ties given to the lower digit, as the argmax
    of the counts (snnTorch's `accuracy_rate`) scores it, where `snn evaluate` gives a tie to
    the neuron with the most input current."""
    model = ckpt.build_model()
    model.output_synapse = ""  # no current to break ties by: classes ranked by counts alone
    test = load_split("test", data_dir)
    return evaluate_model(model, test, ckpt.normalisation, torch.device("cpu")).accuracy


def run_one(spec: str, argv: list[str]) -> dict:
    """Run one measurement (`--one` spec) in a fresh process and return its JSON result."""
    done = subprocess.run([sys.executable, __file__, *argv, "--one", spec], capture_output=True,
                          text=True)
    if done.returncode:
        sys.exit(f"{spec} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def speed_table(groups, args, title: str) -> Table:
    table = Table(title=title)
    columns = ["model", "T", "backend", "precision", "s/iteration", "epoch (est.)",
               "inference img/s", "peak MB", f"acc ({args.subset} test)", "train speed-up",
               "inference speed-up", "load"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "backend") else "right")
    for ref, *engine_rows in groups:
        for r in (ref, *engine_rows):
            fast = r is not ref
            table.add_row(
                r["model"], str(r["steps"]), r["backend"], r["label"],
                f"{r['seconds_per_iteration']:.3f}",
                f"{r['epoch_seconds']:.0f} s",
                f"{r['images_per_second']:,.0f}",
                f"{r['peak_mb']:,.0f}",
                f"{100 * r['subset_accuracy']:.1f}%",
                f"{ref['seconds_per_iteration'] / r['seconds_per_iteration']:.2f}x" if fast else "",
                f"{r['images_per_second'] / ref['images_per_second']:.2f}x" if fast else "",
                f"{r['load']:.1f}",
            )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--csnn-steps", default="25,100")
    parser.add_argument("--iters", type=int, default=3, help="timed training iterations")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed iterations first (the first two allocate and page-fault)")
    parser.add_argument("--subset", type=int, default=500, help="test images scored")
    parser.add_argument("--eval-batch", type=int, default=250)
    parser.add_argument("--with-mlp", action="store_true", help="also the mlp's seed recipe")
    parser.add_argument("--quick-seeds", default="",
                        help="train the csnn quick recipe for real with these seeds, e.g. 0,1")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement
    args = parser.parse_args()

    if args.one:
        kind, *rest = args.one.split(",")
        if kind == "train-quick":
            print(json.dumps(train_quick(int(rest[0]), args)))
        else:
            name, recipe, steps, backend, precision = rest
            print(json.dumps(measure(name, recipe, int(steps), backend, precision, args)))
        return

    argv = [a for a in sys.argv[1:]]
    device = resolve_device(args.device)
    auto = resolve_precision("auto", device)
    console = Console(width=max(Console().width, 150))
    cpu, flags = cpu_description()
    forced = " ".join(f"{k}={os.environ[k]}" for k in ISA_OVERRIDES if k in os.environ)
    console.print(f"CPU: {cpu}; ISA flags: {flags}", highlight=False)
    console.print(
        f"PyTorch {torch.__version__} kernels: {torch.backends.cpu.get_cpu_capability()}, "
        f"{torch.get_num_threads()} threads, {len(os.sched_getaffinity(0))} cores available; "
        f"auto precision here: {auto}; environment: {forced or 'not forced'}",
        highlight=False,
    )

    precisions = ["fp32"] + ([auto] if auto != "fp32" else [])
    configs = [("csnn", int(t)) for t in args.csnn_steps.split(",")]
    configs += [("mlp", 6)] if args.with_mlp else []
    groups = []
    for name, steps in configs:
        group = []
        for backend, precision in [("snntorch", "fp32")] + [("engine", p) for p in precisions]:
            row = run_one(f"measure,{name},seed,{steps},{backend},{precision}", argv)
            row["label"] = precision + (" (auto)" if backend == "engine" and precision == auto
                                        else "")
            group.append(row)
            console.print(f"measured {name} T={steps} {backend} {precision}", style="dim")
        groups.append(group)

    hardware = torch.cuda.get_device_name() if device.type == "cuda" else cpu
    console.print(speed_table(
        groups, args,
        f"Engine vs snnTorch, seed recipes (batch 128), {device} ({hardware}, "
        f"{torch.backends.cpu.get_cpu_capability()} kernels, {groups[0][0]['threads']} threads), "
        f"{date.today()}",
    ))
    reference = next((g[0] for g in groups if g[0]["model"] == "csnn" and g[0]["steps"] == 100),
                     None)
    if reference is None:
        return
    budget = reference["epoch_seconds"] / 8
    console.print(
        f"time-to-99% budget: 1/8 of snnTorch's seed epoch at T=100 "
        f"({reference['seconds_per_iteration']:.3f} s/iteration x "
        f"{math.ceil(TRAIN_IMAGES / 128)} = {reference['epoch_seconds']:.0f} s) = {budget:.0f} s",
        highlight=False,
    )
    quick = get_model_spec("csnn").recipes.get("quick")
    if quick is None:
        return
    for precision in precisions:
        row = run_one(f"measure,csnn,quick,{quick.steps},engine,{precision}", argv)
        console.print(
            f"quick recipe ({quick.epochs} epochs, T={quick.steps}, batch "
            f"{quick.batch_size}), {precision}{' (auto)' if precision == auto else ''}: "
            f"{row['seconds_per_iteration']:.3f} s/iteration, an estimated "
            f"{row['training_seconds']:.0f} s of training = "
            f"{row['training_seconds'] / budget:.2f} of the budget (load {row['load']:.1f})",
            highlight=False,
        )
    for seed in [int(s) for s in args.quick_seeds.split(",") if s.strip()]:
        done = run_one(f"train-quick,{seed}", argv)
        console.print(
            f"quick recipe trained, seed {seed}, {auto} (auto): test accuracy "
            f"{100 * done['accuracy']:.2f}% after its last epoch (count ties to the lower "
            f"digit: {100 * done['count_argmax_accuracy']:.2f}%), {done['train_seconds']:.0f} s "
            f"of training = {done['train_seconds'] / budget:.2f} of the budget; users' digits "
            f"(tests/data/user_digits) {100 * done['user_digits_accuracy']:.1f}% of "
            f"{done['user_digits_images']}",
            highlight=False,
        )


if __name__ == "__main__":
    main()

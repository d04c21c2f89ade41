"""Where the wall time of `snn predict IMAGE` goes, step by step, in one fresh process.

Prints the milliseconds of each step as `snn predict` takes them: Python's own start (from
the process's creation to this script), importing torch, numpy and Pillow, scipy.ndimage, the
CLI (typer, rich, snncli.cli), the predict modules (snncli.predict, the models), reading and
checking the bundled checkpoint, building the model, preparing the image, the first and a
second forward pass. What comes after (printing the table, Python's teardown, which `snn
predict` skips) is not in it: time the whole command from the shell beside
`python -c "import torch"` for that (hyperfine).

Usage: .venv/bin/python benchmarks/profile_predict.py IMAGE [--model csnn]
"""

from __future__ import annotations

import time

START = time.perf_counter()

import argparse  # noqa: E402
import os  # noqa: E402


def process_age_ms() -> float:
    """Milliseconds since this process was created (Linux: /proc/self/stat), or nan."""
    try:
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
        uptime = float(open("/proc/uptime").read().split()[0])
        return 1000 * (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return float("nan")


def main() -> None:
    age = process_age_ms() - 1000 * (time.perf_counter() - START)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image")
    parser.add_argument("--model", default="csnn")
    args = parser.parse_args()
    steps: list[tuple[str, float]] = [("python start (before this script)", age)]
    last = time.perf_counter()

    def step(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        steps.append((name, 1000 * (now - last)))
        last = now

    import torch

    step("import torch")
    import numpy  # noqa: F401
    import PIL.Image  # noqa: F401

    step("import numpy, Pillow")
    import scipy.ndimage  # noqa: F401

    step("import scipy.ndimage")
    import snncli.cli  # noqa: F401

    step("import typer, rich, snncli.cli")
    from snncli.checkpoint import load_checkpoint, model_from_checkpoint
    from snncli.data import normalise
    from snncli.predict import Classifier  # noqa: F401
    from snncli.preprocess import load_prepared
    from snncli.pretrained import bundled_path
    from snncli.runtime import tune_for_device

    step("import snncli.predict, the models")
    ckpt = load_checkpoint(bundled_path(args.model))
    step("read and check the checkpoint")
    model = model_from_checkpoint(ckpt, "cpu")
    tune_for_device(model, torch.device("cpu"), 1)
    step("build the model")
    digit = load_prepared(args.image).image
    step("read and prepare the image")
    x = normalise(torch.from_numpy(digit[None]), **ckpt.normalisation)
    with torch.no_grad():
        model.classify(x)
        step(f"first forward pass ({model.precision})")
        model.classify(x)
        step("a second forward pass")
    for name, ms in steps:
        print(f"{name:40s} {ms:7.1f} ms")
    print(f"{'total':40s} {sum(ms for _, ms in steps):7.1f} ms")


if __name__ == "__main__":
    main()

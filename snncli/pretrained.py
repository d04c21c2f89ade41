"""Weights that ship with the package, so `snn predict` works the minute snncli is installed.

Each bundled file is a checkpoint that `snn train` wrote, compacted: each weight matrix
stored as int8 with one fp32 scale per output row, the small vectors (biases, batch norm) in
half precision (all load into the usual fp32 model), the training state dropped, and a
`bundled` entry recording where it came from and the MNIST test accuracy before and after.
`python -m snncli.pretrained CHECKPOINT... --data-dir MNIST` makes them (README, "Bundled
weights", gives the commands that trained them).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .checkpoint import (
    DEFAULT_DIR,
    FORMAT_VERSION,
    CheckpointError,
    expand_stored_weights,
    load_checkpoint,
    save_checkpoint,
    saved_checkpoints,
)

BUNDLED_DIR = Path(__file__).resolve().parent / "pretrained"
# A quarter of fp32's size (the csnn and mlp together in 2.3 MB, not 4.6 MB as fp16); `main`
# refuses a compaction that moves the MNIST test accuracy by more than MAX_ACCURACY_CHANGE.
STORED_DTYPE = "int8"
MAX_ACCURACY_CHANGE = 0.05  # points


def bundled_path(model: str) -> Path:
    return BUNDLED_DIR / f"{model}.pt"


def bundled_models() -> list[str]:
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.pt")) if BUNDLED_DIR.is_dir() else []


def compact(ckpt: dict, source: str, dtype: str = STORED_DTYPE) -> dict:
    """A copy of checkpoint `ckpt` to bundle: weight matrices in `dtype` ("int8": symmetric,
    one scale per output row; or "float16"), vectors in half precision, no training state,
    and where it came from."""
    import torch

    state, scales = {}, {}
    for key, value in ckpt["state_dict"].items():
        if dtype == "int8" and value.is_floating_point() and value.dim() >= 2:
            rows = value.float().flatten(1)
            scale = rows.abs().amax(1).clamp_min(torch.finfo(torch.float32).tiny) / 127
            state[key] = (rows / scale[:, None]).round().to(torch.int8).view(value.shape)
            scales[key] = scale
        else:
            state[key] = value.half() if value.is_floating_point() else value
    kept = {k: v for k, v in ckpt.items() if k != "training_state"}
    stored = {"state_dict": state, "bundled": {"source": source, "dtype": dtype}}
    if scales:  # snncli before format version 2 cannot read them: it asks to be upgraded
        stored |= {"weight_scales": scales, "format_version": FORMAT_VERSION}
    return kept | stored


def choose_checkpoint(path: str | Path | None, model: str | None = None,
                      folder: Path = DEFAULT_DIR) -> tuple[Path, str]:
    """(checkpoint, why): the given path; else the newest checkpoint in `folder` (of `model`,
    when given); else the bundled weights of `model` (default csnn)."""
    if path:
        return Path(path), f"using {path}"
    for newest in saved_checkpoints(folder):  # of the asked-for model, when one is named
        if model is None or _model_of(newest) == model:
            return newest, f"using {newest}, the newest checkpoint in {folder}/"
    name = model or "csnn"
    bundled = bundled_path(name)
    if not bundled.is_file():
        raise CheckpointError(
            f"no checkpoint in {folder}/ and no bundled {name} weights: train one with "
            f"'snn train --model {name}' or pass a checkpoint path"
        )
    return bundled, f"using the bundled {name} weights (train your own with 'snn train')"


def _model_of(path: Path) -> str | None:
    try:
        return load_checkpoint(path)["model"]
    except CheckpointError:
        return None


def expanded(ckpt: dict) -> dict:
    """A compacted checkpoint as loading makes it (float weights), leaving `ckpt` as it is."""
    loaded = dict(ckpt)
    expand_stored_weights(loaded)
    return loaded


def accuracy_change(ckpt: dict, small: dict, data_dir: str | None) -> dict:
    """MNIST test accuracy (fp32, every image) of a checkpoint and of its compacted copy."""
    from .checkpoint import model_from_checkpoint
    from .data import load_split
    from .evaluate import evaluate_model
    from .runtime import resolve_device

    test, device = load_split("test", data_dir), resolve_device("cpu")
    before, after = (
        evaluate_model(model_from_checkpoint(c), test, c["normalisation"], device).accuracy
        for c in (ckpt, expanded(small))
    )
    return {"test_accuracy_before": before, "test_accuracy_after": after}


def user_digit_accuracy(ckpt: dict, folder: str | Path) -> dict:
    """Share of the images in `folder` (each named after its digit, like tests/data/
    user_digits/7_ballpoint_0003.jpg) that the checkpoint reads right, in fp32."""
    from .predict import Prediction, predict_files
    from .runtime import resolve_device

    _, results = predict_files(expanded(ckpt), [str(folder)], resolve_device("cpu"),
                               precision="fp32")
    right = [isinstance(r, Prediction) and r.prediction == int(Path(r.path).name[0])
             for r in results]
    return {"user_digits_accuracy": sum(right) / len(right), "user_digits_images": len(right)}


def main(argv: list[str]) -> None:
    """Compact each trained checkpoint given into snncli/pretrained/<model>.pt, after checking
    on MNIST's test set (`--data-dir DIR`) that compaction moves its accuracy by at most
    MAX_ACCURACY_CHANGE points."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m snncli.pretrained")
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data-dir")
    parser.add_argument("--user-digits", help="also record the share of this folder's images "
                        "(named after their digit) read right")
    args = parser.parse_args(argv)
    for source in args.checkpoints:
        ckpt = load_checkpoint(source)
        small = compact(ckpt, Path(source).name)
        change = accuracy_change(ckpt, small, args.data_dir)
        moved = abs(change["test_accuracy_after"] - change["test_accuracy_before"]) * 100
        if moved > MAX_ACCURACY_CHANGE:
            sys.exit(f"error: compacting {source} moves its MNIST accuracy by {moved:.2f} points")
        if args.user_digits:
            change |= user_digit_accuracy(small, args.user_digits)
        small["bundled"] |= change
        target = save_checkpoint(small, bundled_path(ckpt["model"]))
        users = f", user digits {change['user_digits_accuracy']:.2%}" if args.user_digits else ""
        print(f"{source} -> {target} ({target.stat().st_size / 1e6:.2f} MB), MNIST test "
              f"{change['test_accuracy_before']:.2%} -> {change['test_accuracy_after']:.2%}"
              f"{users}")


if __name__ == "__main__":
    main(sys.argv[1:])

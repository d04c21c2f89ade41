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


BUNDLED = "bundled"  # `--checkpoint bundled`: the weights that ship with snncli


def choose_checkpoint(path: str | Path | None, model: str | None = None,
                      folder: Path = DEFAULT_DIR) -> tuple[Path, str]:
    """(checkpoint, why it was chosen), in this order:

    1. the path given (a `.last.pt` of an unfinished run too: it was asked for by name);
    2. `bundled`: the weights that ship with snncli, of `model` (default csnn);
    3. the newest checkpoint in `folder` (of `model`, when given) of a finished run: a run's
       best checkpoint before its `.last.pt`; a run that stopped before its last epoch (its
       `.last.pt` says so) is passed over, its best checkpoint included;
    4. the bundled weights of `model`.
    """
    name = model or "csnn"
    if path is not None and str(path) == BUNDLED:
        return _bundled(name), f"using the bundled {name} weights (--checkpoint bundled)"
    if path:
        return Path(path), f"using {path}"
    passed: list[str] = []  # checkpoints of unfinished runs, newest first
    for candidate in _run_checkpoints(folder):
        if model is not None and _model_of(candidate) != model:
            continue
        progress = run_state(candidate)
        if progress and progress[0] < progress[1]:
            run = f"{resumable_of(candidate)} ({progress[0]} of {progress[1]} epochs)"
            passed += [run] if run not in passed else []  # a run once: by its .last.pt
            continue
        what = ("the best checkpoint of the newest finished run" if progress and
                _is_best(candidate) else "the newest finished checkpoint" if progress else
                "the newest checkpoint")
        return candidate, (f"using {candidate}, {what} in {folder}/{_passed_over(passed)} "
                           f"(--checkpoint bundled: the bundled weights)")
    bundled = _bundled(name, f"no finished checkpoint in {folder}/ and ")
    if passed:
        return bundled, (f"using the bundled {name} weights{_passed_over(passed)} (give one "
                         f"with --checkpoint, or finish it with 'snn train --resume')")
    return bundled, f"using the bundled {name} weights (train your own with 'snn train')"


def _passed_over(unfinished: list[str]) -> str:
    if not unfinished:
        return ""
    more = f" and {len(unfinished) - 1} more" if len(unfinished) > 1 else ""
    return f", not the unfinished run {unfinished[0]}{more}"


def _bundled(name: str, also: str = "") -> Path:
    """The bundled weights of model `name`, or a CheckpointError (`also` says what else is
    missing)."""
    bundled = bundled_path(name)
    if not bundled.is_file():
        raise CheckpointError(
            f"{also}no bundled {name} weights in this install: train one with 'snn train "
            f"--model {name}' or pass a checkpoint path"
        )
    return bundled


def _run_checkpoints(folder: Path) -> list[Path]:
    """The checkpoints in `folder`, newest first, each run's best `<name>.pt` in the place of
    its `<name>.last.pt` (the run's end), so that a finished run offers its best first."""
    ordered: list[Path] = []
    for path in saved_checkpoints(folder):
        if path.name.endswith(".last.pt"):
            best = path.with_name(path.name.removesuffix(".last.pt") + ".pt")
            if best.is_file() and best not in ordered:
                ordered.append(best)
        if path not in ordered:
            ordered.append(path)
    return ordered


def _peek(path: Path) -> dict | None:
    """A checkpoint's fields as stored (unchecked), or None when it cannot be read."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None
    return ckpt if isinstance(ckpt, dict) else None


def _model_of(path: Path) -> str | None:
    ckpt = _peek(path)
    model = ckpt.get("model") if ckpt else None
    return model if isinstance(model, str) else None


def _is_best(path: Path) -> bool:
    ckpt = _peek(path)
    metrics = ckpt.get("metrics") if ckpt else None
    return isinstance(metrics, dict) and metrics.get("checkpoint") == "best"


def run_progress(ckpt: dict) -> tuple[int, int] | None:
    """(epochs done, epochs planned) of the run a resumable checkpoint (one holding its
    training state) saved; None for any other checkpoint."""
    recipe, done = ckpt.get("recipe"), ckpt.get("epoch")
    if "training_state" not in ckpt or not isinstance(recipe, dict):
        return None
    planned = recipe.get("epochs")
    if not (isinstance(done, int) and isinstance(planned, int)):
        return None
    return done, planned


def resumable_of(path: Path) -> Path:
    """The resumable checkpoint of the run that wrote checkpoint `path` (`x.pt`: `x.last.pt`)."""
    return path if path.name.endswith(".last.pt") else path.with_name(path.stem + ".last.pt")


def run_state(path: Path) -> tuple[int, int] | None:
    """(epochs done, epochs planned) of the run that wrote checkpoint `path`, as its resumable
    checkpoint (`path` itself, or the `.last.pt` beside a best checkpoint) says; None when
    nothing says (no `.last.pt`, or one that cannot be read)."""
    last = resumable_of(path)
    ckpt = _peek(last) if last.is_file() else None
    return run_progress(ckpt) if ckpt else None


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

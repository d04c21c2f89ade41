"""Weights that ship with the package, so `snn predict` works the minute snncli is installed.

Each bundled file is a checkpoint that `snn train` wrote, compacted: the weights stored in
half precision (they load into the usual fp32 model), the training state dropped, and a
`bundled` entry recording where it came from. `python -m snncli.pretrained CHECKPOINT...`
makes them (README, "Bundled weights", gives the commands that trained them).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .checkpoint import (
    DEFAULT_DIR,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    saved_checkpoints,
)

BUNDLED_DIR = Path(__file__).resolve().parent / "pretrained"
STORED_DTYPE = "float16"  # half the size of fp32; moves MNIST accuracy by <= 0.05 points


def bundled_path(model: str) -> Path:
    return BUNDLED_DIR / f"{model}.pt"


def bundled_models() -> list[str]:
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.pt")) if BUNDLED_DIR.is_dir() else []


def compact(ckpt: dict, source: str) -> dict:
    """A copy of checkpoint `ckpt` to bundle: floating weights in half precision, no training
    state, and where it came from."""
    import torch

    dtype = getattr(torch, STORED_DTYPE)
    state = {
        k: v.to(dtype) if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()
    }
    kept = {k: v for k, v in ckpt.items() if k != "training_state"}
    return kept | {"state_dict": state, "bundled": {"source": source, "dtype": STORED_DTYPE}}


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


def main(argv: list[str]) -> None:
    """Compact each trained checkpoint given into snncli/pretrained/<model>.pt."""
    for source in argv:
        ckpt = load_checkpoint(source)
        target = bundled_path(ckpt["model"])
        save_checkpoint(compact(ckpt, Path(source).name), target)
        print(f"{source} -> {target} ({target.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(sys.argv[1:])

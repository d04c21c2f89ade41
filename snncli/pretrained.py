"""Weights that ship with the package, so `snn predict` works the minute snncli is installed.

Each bundled file is a checkpoint that `snn train` wrote, compacted: each weight matrix
stored as int8 with one fp32 scale per output row, the small vectors (biases, batch norm) in
half precision (all load into the usual fp32 model), the training state dropped, and a
`bundled` entry recording where it came from and the MNIST test accuracy before and after.
`python tools/bundle_weights.py CHECKPOINT... --data-dir MNIST` makes them (README, "Bundled
weights", gives the commands that trained them).
"""

from __future__ import annotations

from pathlib import Path

from .checkpoint import (
    DEFAULT_DIR,
    CheckpointError,
    load_checkpoint,
    saved_checkpoints,
)

BUNDLED_DIR = Path(__file__).resolve().parent / "pretrained"


def bundled_path(model: str) -> Path:
    return BUNDLED_DIR / f"{model}.pt"


def bundled_models() -> list[str]:
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.pt")) if BUNDLED_DIR.is_dir() else []


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
        return load_checkpoint(path).model
    except CheckpointError:
        return None

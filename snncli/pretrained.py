"""Weights that ship with the package, so `snn predict` works the minute snncli is installed
(snncli/choice.py says when they are used).

Each bundled file is a checkpoint that `snn train` wrote, compacted: each weight matrix
stored as int8 with one fp32 scale per output row, the small vectors (biases, batch norm) in
half precision (all load into the usual fp32 model), the training state dropped, and a
`bundled` entry recording where it came from and the MNIST test accuracy before and after.
`python tools/bundle_weights.py CHECKPOINT... --data-dir MNIST` makes them (README, "Bundled
weights", gives the commands that trained them).
"""

from __future__ import annotations

from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parent / "pretrained"


def bundled_path(model: str) -> Path:
    return BUNDLED_DIR / f"{model}.pt"


def bundled_models() -> list[str]:
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.pt")) if BUNDLED_DIR.is_dir() else []

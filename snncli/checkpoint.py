"""Checkpoints: one file of plain types, written atomically, read with weights_only=True."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, SnnError
from .registry import get_model_spec

FORMAT = "snncli-checkpoint"
FORMAT_VERSION = 1
DEFAULT_DIR = Path("checkpoints")
_REQUIRED = ("format", "format_version", "model", "config", "state_dict", "normalisation")


def build_checkpoint(model_name: str, model, *, recipe: dict, metrics: dict, epoch: int) -> dict:
    """Everything needed to rebuild and use `model`, as plain types and CPU tensors."""
    import snntorch
    import torchvision

    from . import __version__

    mean, std = get_model_spec(model_name).normalisation
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model_name,
        "config": dataclasses.asdict(model.config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "normalisation": {"mean": mean, "std": std},
        "preprocessing": {
            "size": [28, 28],
            "polarity": "white digit on black",
            "layout": "digit fitted in 20x20, centred by mass in 28x28 (MNIST)",
        },
        "recipe": dict(recipe),
        "metrics": dict(metrics),
        "epoch": epoch,
        "versions": {
            "snncli": __version__,
            "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__),
            "snntorch": str(snntorch.__version__),
        },
    }


def prepare_folder(path: Path) -> None:
    """Create the folder `path` will be written in, or say in one line why it cannot be."""
    for parent in (path.parent, *path.parent.parents):
        if parent.exists() and not parent.is_dir():
            raise SnnError(f"cannot write {path}: {parent} is not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)


def atomic_write(path: Path, write, what: str = "") -> None:
    """Call write(tmp_path) on a temp file beside `path`, then rename it into place.

    A file-system refusal (disk full, permissions) becomes one SnnError naming `path`
    ("cannot write {what} {path}: ..."), and the temp file is removed either way.
    """
    path = Path(path)
    prepare_folder(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            write(tmp)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; use the usual permissions
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        label = f"{what} {path}" if what else str(path)
        raise SnnError(f"cannot write {label}: {exc.strerror or exc}") from None


def save_checkpoint(checkpoint: dict, path: str | Path) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp), what="checkpoint")
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate a checkpoint (tensors land on the CPU whatever device trained it)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise CheckpointError(f"{path} is not an snncli checkpoint (cannot be read)") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an snncli checkpoint")
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is missing {', '.join(missing)}")
    if ckpt["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {ckpt['format_version']}; this snncli reads up to "
            f"{FORMAT_VERSION}: upgrade snncli"
        )
    return ckpt


def model_from_checkpoint(ckpt: dict, device: str | torch.device = "cpu"):
    """Rebuild the registered model a checkpoint describes and load its weights."""
    spec = get_model_spec(ckpt["model"])
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = set(ckpt["config"]) - fields
    if unknown:
        raise CheckpointError(
            f"checkpoint config has fields the {spec.name} model does not know: "
            f"{', '.join(sorted(unknown))}"
        )
    model = spec.build(spec.config_cls(**ckpt["config"]))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError:
        raise CheckpointError(
            f"checkpoint weights do not match the {spec.name!r} architecture"
        ) from None
    return model.to(device).eval()


def default_checkpoint(folder: str | Path = DEFAULT_DIR) -> Path:
    """The newest .pt file in `folder`, for commands run without a checkpoint argument."""
    folder = Path(folder)
    found = sorted(folder.glob("*.pt"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    if not found:
        raise CheckpointError(
            f"no checkpoint in {folder}/: train one with 'snn train' or pass a checkpoint path"
        )
    return found[-1]

"""Labelled image folders (`--data DIR`): one subfolder per class, as torchvision's
ImageFolder, read into the in-memory form MNIST has (a `Split`).

DIR/<class>/... holds the images of a class, found recursively; hidden files and folders are
passed over, and so are files whose suffix is not an image format `snn predict` reads. Every
image is made MNIST-like exactly as `snn predict` makes it (`predict.read_digits`). A file
that cannot be read is skipped and named once in a warning; a folder that cannot be used at
all is one DataError line.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data import Split
from .errors import DataError, SnnWarning, one_line
from .files import special_file_kind

SKIPPED_NAMED = 3  # the unreadable files the warning names (it counts them all)


@dataclass
class LabelledFolder:
    """The readable images of a labelled folder, in order (class folder by class folder, each
    sorted by path), labelled by their index in `classes` (the checkpoint's class names)."""

    root: Path
    split: Split  # uint8 [N, 28, 28] digits and int64 labels
    paths: list[str]  # the file of each image of `split`
    classes: tuple[str, ...]  # every output's name (the checkpoint's classes)
    found: list[str]  # the class folders found, in `classes` order
    files: int  # image files found (read or not)
    fingerprint: str  # of the files found: "count:hash" of their relative paths and sizes
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why) not read

    def __len__(self) -> int:
        return len(self.split)


def class_folders(root: str | Path) -> list[Path]:
    """The class folders of `root` (its visible subfolders, sorted by name), or a DataError
    when `root` is not a folder or holds none."""
    root = Path(root).expanduser()
    name = one_line(root)
    if root.exists() and not root.is_dir():
        raise DataError(f"--data {name} is {special_file_kind(root) or 'a file'}, not a folder "
                        "of class folders")
    if not root.is_dir():
        raise DataError(f"--data folder {name} does not exist")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.name)
    if not folders:
        loose = len(_images_in(root, recursive=False))
        held = f" (its {loose} images must go in them)" if loose else ""
        raise DataError(f"--data {name} holds no class folders: put the images of each class "
                        f"in a subfolder named after it, such as {name}/7/{held}")
    return folders


def _images_in(folder: Path, recursive: bool = True) -> list[Path]:
    """The image files under `folder` (by suffix, as `snn predict` picks them from a folder),
    sorted, hidden files and folders passed over."""
    from .predict import IMAGE_SUFFIXES

    found = []
    walk = folder.rglob("*") if recursive else folder.iterdir()
    for path in walk:
        parts = path.relative_to(folder).parts
        if any(part.startswith(".") for part in parts):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.is_dir():
            found.append(path)
    return sorted(found)


def list_labelled_files(root: str | Path, classes: tuple[str, ...] | list[str]) -> tuple[
        list[Path], list[int], list[str]]:
    """(image files, their labels, the class folders found) of the labelled folder `root`,
    whose class folders must be named after `classes` (a checkpoint's class names; any two or
    more of them). Each way the folder cannot be used is one DataError line."""
    root = Path(root).expanduser()
    name = one_line(root)
    classes = tuple(classes)
    folders = class_folders(root)
    index = class_index(classes)
    unknown = [p.name for p in folders if p.name not in index]
    if unknown:
        listed = ", ".join(one_line(n) for n in unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise DataError(f"--data {name}: class folder{'s' * (len(unknown) > 1)} {listed} "
                        f"{'are not classes' if len(unknown) > 1 else 'is not a class'} of the "
                        f"checkpoint (its classes: {', '.join(classes)})")
    folders.sort(key=lambda p: index[p.name])
    per_class = {p.name: _images_in(p) for p in folders}
    if not any(per_class.values()):
        raise DataError(f"--data {name} holds no images in its class folders (formats read: "
                        "png, jpg, bmp, gif, tif, webp, ppm, pgm)")
    empty = [n for n, files in per_class.items() if not files]
    if empty:
        raise DataError(f"--data {name}: class folder{'s' * (len(empty) > 1)} "
                        f"{', '.join(one_line(n) for n in empty)} "
                        f"{'hold' if len(empty) > 1 else 'holds'} no images")
    if len(folders) < 2:
        raise DataError(f"--data {name} holds one class folder ({one_line(folders[0].name)}); "
                        "scoring or fine-tuning needs two classes or more")
    files, labels = [], []
    for class_name, found in per_class.items():
        files += found
        labels += [index[class_name]] * len(found)
    return files, labels, list(per_class)


def class_index(classes: tuple[str, ...]) -> dict[str, int]:
    """Folder name -> label: a class's name, or, where the name holds a "/" (Fashion-MNIST's
    "T-shirt/top"), that name with "-" or "_" in its place, as a folder can be named."""
    index = {}
    for label, name in enumerate(classes):
        for alias in (name, name.replace("/", "-"), name.replace("/", "_")):
            index.setdefault(alias, label)
    return index


def fingerprint(root: Path, files: list[Path]) -> str:
    """A short hash of the files' paths (relative to `root`) and sizes: it changes when a
    file is added, removed, renamed, moved to another class or rewritten at another size."""
    digest = hashlib.sha256()
    for path in files:
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        digest.update(f"{path.relative_to(root).as_posix()}\0{size}\n".encode())
    return f"{len(files)}:{digest.hexdigest()[:16]}"


def read_labelled_folder(root: str | Path, classes: tuple[str, ...] | list[str],
                         limit: int | None = None, digits: bool = True) -> LabelledFolder:
    """Read the labelled folder `root` (see the module's docstring) for a checkpoint whose
    outputs are `classes` (`digits` False: images made like Fashion-MNIST's, not MNIST's);
    `limit` keeps its first N image files. Unreadable images are skipped and named once in
    an SnnWarning; when none can be read, a DataError."""
    from .predict import Failure, read_digits

    root = Path(root).expanduser()
    files, labels, found = list_labelled_files(root, classes)
    if limit is not None:
        files, labels = files[:limit], labels[:limit]
    read = read_digits([str(p) for p in files], digits)
    kept = [i for i, d in enumerate(read) if not isinstance(d, Failure)]
    skipped = [(str(files[i]), d.error) for i, d in enumerate(read) if isinstance(d, Failure)]
    name = one_line(root)
    if not kept:
        raise DataError(f"--data {name}: none of its {len(files)} images could be read "
                        f"(the first: {skipped[0][1]})")
    if skipped:
        warnings.warn(skipped_message(name, skipped, len(files)), SnnWarning, stacklevel=2)
    images = torch.from_numpy(np.stack([read[i].image for i in kept]))
    split = Split(images.contiguous(), torch.tensor([labels[i] for i in kept], dtype=torch.long))
    return LabelledFolder(root, split, [str(files[i]) for i in kept], tuple(classes), found,
                          len(files), fingerprint(root, files), skipped)


def skipped_message(name: str, skipped: list[tuple[str, str]], total: int) -> str:
    """One line: how many of the folder's images were skipped, and the first few, why."""
    first = "; ".join(why for _, why in skipped[:SKIPPED_NAMED])
    more = f"; and {len(skipped) - SKIPPED_NAMED} more" if len(skipped) > SKIPPED_NAMED else ""
    return (f"--data {name}: {len(skipped)} of {total} images could not be read and are "
            f"skipped: {first}{more}")


def hold_out_per_class(labels: torch.Tensor, share: float, seed: int) -> tuple[
        torch.Tensor, torch.Tensor]:
    """(training, held-out) indices of `labels`: in each class `share` of its images
    (rounded) held out, drawn by `seed`, at least one always kept for training."""
    generator = torch.Generator().manual_seed(seed)
    train, held = [], []
    for label in sorted(set(labels.tolist())):
        members = (labels == label).nonzero().squeeze(1)
        members = members[torch.randperm(len(members), generator=generator)]
        count = min(round(share * len(members)), len(members) - 1)
        held.append(members[:count])
        train.append(members[count:])
    return torch.cat(train).sort().values, torch.cat(held).sort().values

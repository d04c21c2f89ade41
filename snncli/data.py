"""MNIST and Fashion-MNIST as uint8 tensors in memory: read from a folder of IDX files, or
downloaded once.

A whole set is 55 MB, so it is held as one tensor and batched by index: much faster than a
per-image DataLoader, and it can live on the GPU.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from .datasets import DEFAULT_DATASET, DataSet, get_dataset
from .errors import DataError
from .files import special_file_kind

DATA_DIR_ENV = "SNN_DATA_DIR"
CACHE_DIR_ENV = "SNN_CACHE_DIR"
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_UBYTE = 0x08
MAX_IDX_BYTES = 2**31  # MNIST's largest file holds 47 million


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, 28, 28]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)


def needed_files_message(folder: Path | None, dataset: str = DEFAULT_DATASET) -> str:
    names = ", ".join(f"{n}[.gz]" for pair in SPLIT_FILES.values() for n in pair)
    where = f" in {folder}" if folder else ""
    env = f" (or set {DATA_DIR_ENV})" if dataset == DEFAULT_DATASET else ""
    return (
        f"{get_dataset(dataset).title} files not found{where}: need {names}; pass --data-dir DIR"
        f"{env} pointing at a folder holding them"
    )


def _find(folder: Path, name: str, dataset: DataSet) -> Path | None:
    for sub in (folder, folder / dataset.torchvision_class / "raw", folder / "raw"):
        for candidate in (sub / name, sub / f"{name}.gz"):
            kind = special_file_kind(candidate)
            if kind:  # reading it could wait forever (a FIFO) or never end (/dev/zero)
                raise DataError(f"{candidate} is {kind}, not an {dataset.title} file")
            if candidate.is_file():
                return candidate
    return None


def read_idx(path: Path, ndim: int) -> torch.Tensor:
    """Read an unsigned-byte IDX file (gzipped or not), checking header and length.

    The header is read first: a file declaring more data than any MNIST file holds is refused
    before it is read (a gzip bomb fills no memory)."""
    header_len = 4 + 4 * ndim
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            header = f.read(header_len)
            shape = _idx_shape(path, header, ndim)
            count = math.prod(shape)
            if count > MAX_IDX_BYTES:
                raise DataError(
                    f"{path} declares {count:,} bytes of data; an MNIST file holds at most "
                    f"{MAX_IDX_BYTES:,}"
                )
            data = f.read(count + 1)  # one byte more: data beyond the declared size is damage
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(data) != count:
        held = f"{len(data)}" if len(data) <= count else "more"
        raise DataError(
            f"{path} is truncated or corrupt: header says {count} bytes of data, file holds {held}"
        )
    if shape[0] == 0:
        raise DataError(f"{path} holds no {'images' if ndim == 3 else 'labels'}")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(*shape)


def _idx_shape(path: Path, header: bytes, ndim: int) -> tuple[int, ...]:
    if len(header) < 4 + 4 * ndim:
        raise DataError(f"{path} is not an IDX file (only {len(header)} bytes)")
    zero, dtype, dims = struct.unpack(">HBB", header[:4])
    if zero != 0 or dtype != _IDX_UBYTE or dims != ndim:
        raise DataError(f"{path} is not an unsigned-byte IDX file with {ndim} dimensions")
    return struct.unpack(f">{ndim}I", header[4:])


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "snncli"


CONNECT_TIMEOUT = 3.0  # seconds to reach a download mirror before it counts as unreachable


def _reachable(urls: list[str]) -> str | None:
    """None when one of the mirrors `urls` answers a connection; else why none did (offline,
    torchvision would retry each file at each mirror before giving up)."""
    import socket
    from urllib.parse import urlsplit

    reason = "no mirror"
    for url in urls:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT):
                return None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
    return f"no network: {' '.join(reason.split())}"


def _download_failed(reason: str, dataset: DataSet) -> str:
    names = ", ".join(n for pair in SPLIT_FILES.values() for n in pair)
    env = f", or set {DATA_DIR_ENV}," if dataset.name == DEFAULT_DATASET else ""
    return (f"{dataset.title} could not be downloaded ({reason}): pass --data-dir DIR{env} "
            f"to a folder with {names} (.gz or not)")


def _download(root: Path, dataset: DataSet) -> Path:
    """torchvision downloads the data set into `root`/<its class name>/raw (from its mirrors,
    each file checked against its MD5), after a quick check that a mirror can be reached at
    all. A failure is one short line, and leaves behind no folder it created (files already
    downloaded stay)."""
    import torchvision.datasets

    loader = getattr(torchvision.datasets, dataset.torchvision_class)
    raw = root / dataset.torchvision_class / "raw"
    created = [folder for folder in (raw, *raw.parents) if not folder.exists()]  # deepest first
    unreachable = _reachable(list(loader.mirrors))
    if unreachable:
        raise DataError(_download_failed(unreachable, dataset))
    try:
        with _quiet_stdout():  # torchvision prints each URL and file it fetches
            for train in (True, False):
                loader(str(root), train=train, download=True)
    except Exception as exc:  # network errors come in many types
        _remove_empty(created)
        reason = " ".join(str(exc).split())[:120]  # torchvision's message spans lines
        raise DataError(_download_failed(reason or type(exc).__name__, dataset)) from None
    except BaseException:
        _remove_empty(created)
        raise
    return raw


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()  # only an empty one
        except OSError:
            break


@contextmanager
def _quiet_stdout():
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        yield


def resolve_data_dir(data_dir: str | Path | None, dataset: str = DEFAULT_DATASET) -> Path:
    """The folder to read from: the option, else $SNN_DATA_DIR (MNIST only), else the download
    cache (filled on first use)."""
    spec = get_dataset(dataset)
    if data_dir is None and dataset == DEFAULT_DATASET:
        data_dir = os.environ.get(DATA_DIR_ENV) or None
    if data_dir is None:
        cache = default_cache_dir() / spec.name
        if all(_find(cache, n, spec) for pair in SPLIT_FILES.values() for n in pair):
            return cache
        return _download(cache, spec)
    folder = Path(data_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        what = special_file_kind(folder) or "a file"
        raise DataError(f"data folder {folder} is {what}, not a folder")
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist")
    return folder


def load_split(split: str, data_dir: str | Path | None = None, limit: int | None = None,
               dataset: str = DEFAULT_DATASET) -> Split:
    """Load the `train` or `test` split of `dataset`; `limit` keeps the first N images."""
    spec = get_dataset(dataset)
    folder = resolve_data_dir(data_dir, dataset)
    image_name, label_name = SPLIT_FILES[split]
    image_path, label_path = _find(folder, image_name, spec), _find(folder, label_name, spec)
    if image_path is None or label_path is None:
        raise DataError(needed_files_message(folder, dataset))
    images = read_idx(image_path, 3)
    labels = read_idx(label_path, 1)
    if len(images) != len(labels):
        raise DataError(
            f"{image_path.name} holds {len(images)} images but {label_path.name} "
            f"holds {len(labels)} labels"
        )
    if images.shape[1:] != (28, 28):
        raise DataError(f"{image_path} holds {tuple(images.shape[1:])} images, expected 28x28")
    if len(labels) and int(labels.max()) > 9:
        raise DataError(f"{label_path} holds labels outside 0-9")
    _check_is(spec, images, image_path)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return Split(images.contiguous(), labels.long())


# Mean pixel (0-1) of each full split: MNIST's digits cover a seventh of the image, Fashion-MNIST's
# products about a third, so one set's files are not mistaken for the other's.
FULL_SPLIT_MEANS = {("mnist", 60000): 0.1307, ("mnist", 10000): 0.1325,
                    ("fashion-mnist", 60000): 0.2860, ("fashion-mnist", 10000): 0.2868}


def _check_is(spec: DataSet, images: torch.Tensor, path: Path) -> None:
    """A DataError when a full-size split's images are plainly another data set's."""
    for (other, count), mean in FULL_SPLIT_MEANS.items():
        if other == spec.name or count != len(images):
            continue
        found = int(images.sum(dtype=torch.int64)) / images.numel() / 255
        if abs(found - mean) < 0.02 and abs(found - FULL_SPLIT_MEANS[spec.name, count]) > 0.05:
            raise DataError(f"{path} holds {get_dataset(other).title} images, not "
                            f"{spec.title}: point --data-dir at the {spec.title} files")


def hold_out(split: Split, size: int, seed: int) -> tuple[Split, Split]:
    """(training, validation): `size` images held out, stratified by digit (each digit's share
    as in `split`, remainders to the largest fractions) and drawn at random by `seed`."""
    if size <= 0:
        return split, Split(split.images[:0], split.labels[:0])
    if size >= len(split):
        raise DataError(
            f"--val-size {size} leaves no training images: the training split holds {len(split)}"
        )
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    labels = split.labels.cpu()[order]
    counts = torch.bincount(labels, minlength=10).double()
    quota = counts * size / len(split)
    take = quota.floor().long()
    leftover = size - int(take.sum())
    take[torch.argsort(quota - take, descending=True, stable=True)[:leftover]] += 1
    held = torch.cat([order[labels == digit][: int(take[digit])] for digit in range(10)])
    keep = torch.ones(len(split), dtype=torch.bool)
    keep[held] = False
    held = held.sort().values.to(split.labels.device)
    kept = keep.nonzero().squeeze(1).to(split.labels.device)
    return (
        Split(split.images[kept], split.labels[kept]),
        Split(split.images[held], split.labels[held]),
    )


def default_val_size(train_images: int) -> int:
    """5,000 of MNIST's 60,000 training images; a tenth of smaller (limited) sets."""
    return min(5000, train_images // 10)


def normalise(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 [B, 28, 28] -> float [B, 1, 28, 28] scaled to [0, 1] then standardised."""
    x = images.unsqueeze(1).float().div_(255.0)
    if mean != 0.0 or std != 1.0:
        x = x.sub_(mean).div_(std)
    return x


def batches(split: Split, batch_size: int, shuffle: bool = False, generator=None):
    """Yield (images, labels) slices; the last partial batch is kept so every image counts."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else None
    if order is not None and split.images.is_cuda:  # one copy per epoch, not one per batch
        order = order.to(split.images.device)
    for start in range(0, n, batch_size):
        if order is None:
            yield split.images[start : start + batch_size], split.labels[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield split.images[idx], split.labels[idx]


def sample_test_images(count: int, seed: int, data_dir: str | Path | None = None,
                       dataset: str = DEFAULT_DATASET):
    """`count` random images of a data set's test split, drawn by `seed`: (indices, images,
    labels)."""
    test = load_split("test", data_dir, dataset=dataset)
    if not 0 < count <= len(test):
        raise DataError(f"--sample takes 1 to {len(test):,} images, got {count}")
    picked = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:count]
    return picked.tolist(), test.images[picked], test.labels[picked]

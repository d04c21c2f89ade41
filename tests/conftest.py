"""Shared fixtures: tiny synthetic MNIST-format data sets and a quickly trained checkpoint."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

# The real MNIST for the slow tests: $SNN_TEST_MNIST, else ../shared/data/mnist beside the clone.
REAL_MNIST_ENV = "SNN_TEST_MNIST"
DEFAULT_REAL_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


def real_mnist_folder() -> Path:
    return Path(os.environ.get(REAL_MNIST_ENV) or DEFAULT_REAL_MNIST).expanduser().resolve()


# The maintainers' scripts (tools/bundle_weights.py) are tested too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    """Write an unsigned-byte IDX file (the MNIST format), gzipped when `gz`."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def glyph(digit: int, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """A font-rendered digit in MNIST style (white on black, ~20px tall), lightly jittered."""
    font = ImageFont.load_default(size=int(rng.integers(18, 23)))
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    dx, dy = rng.integers(-2, 3, size=2)
    draw.text(
        (size / 2 + dx, size / 2 + dy),
        str(digit),
        fill=255,
        font=font,
        anchor="mm",
        stroke_width=int(rng.integers(0, 2)),
        stroke_fill=255,
    )
    return np.asarray(img)


def synthetic_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = np.stack([glyph(int(d), rng) for d in labels])
    return images, labels.astype(np.uint8)


def make_mnist_dir(folder: Path, n_train: int = 2000, n_test: int = 200, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = synthetic_split(n_train, 0)
    test_x, test_y = synthetic_split(n_test, 1)
    write_idx(folder / "train-images-idx3-ubyte", train_x, gz)
    write_idx(folder / "train-labels-idx1-ubyte", train_y, gz)
    write_idx(folder / "t10k-images-idx3-ubyte", test_x, gz)
    write_idx(folder / "t10k-labels-idx1-ubyte", test_y, gz)
    return folder


def fake_downloader(name: str, source: Path, fetched: list):
    """A stand-in for torchvision's dataset class `name` (MNIST, FashionMNIST), as far as
    snncli uses it: it "downloads" the files of `source` into root/<name>/raw and records
    each split asked for in `fetched`."""

    class Downloader:
        mirrors = [f"https://example.invalid/{name.lower()}/"]

        def __init__(self, root, train, download):
            fetched.append(train)
            raw = Path(root) / name / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            for p in source.iterdir():
                shutil.copy(p, raw / p.name)

    return Downloader


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory) -> Path:
    return make_mnist_dir(tmp_path_factory.mktemp("tiny_mnist"))


@pytest.fixture(scope="session")
def mlp_checkpoint(tmp_path_factory, tiny_mnist) -> Path:
    """An mlp trained for a few epochs on the synthetic glyphs (a few seconds on a CPU)."""
    from snncli.train import TrainOptions, train

    out = tmp_path_factory.mktemp("ckpt") / "mlp.pt"
    result = train(
        TrainOptions(
            model="mlp",
            recipe="seed",
            overrides={"epochs": 4, "batch_size": 32},
            data_dir=str(tiny_mnist),
            out=str(out),
            device="cpu",
            plot=False,
        )
    )
    assert result.best["test_accuracy"] > 0.9, result.best
    return out


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in an empty folder with no data/cache environment leaking in."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SNN_DATA_DIR", raising=False)
    monkeypatch.setenv("SNN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def pytest_collection_modifyitems(items) -> None:
    """A test that uses the real MNIST is `slow` (`pytest -m "not slow"` leaves it out)."""
    for item in items:
        if "real_mnist" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def real_mnist() -> Path:
    """The real MNIST's folder (its four .gz files): $SNN_TEST_MNIST, else ../shared/data/mnist;
    the test is skipped where there is none (failed in CI, which must have it)."""
    path = real_mnist_folder()
    if not (path / "t10k-images-idx3-ubyte.gz").is_file() and os.environ.get("CI") != "true":
        pytest.skip(f"real MNIST not found at {path} (set {REAL_MNIST_ENV} to its folder)")
    return path


@pytest.fixture()
def run_both_backends():
    """fn(model, x, target, steps) -> {backend: (output record, parameter gradients)}, for
    comparing the engine with the snnTorch reference on the same weights."""

    def run(model, x, target, steps):
        results = {}
        for backend in ("snntorch", "engine"):
            model.backend = backend
            model.zero_grad()
            record = model(x, steps=steps)
            model.loss(record, target).backward()
            results[backend] = (record.detach(), [p.grad.clone() for p in model.parameters()])
        return results

    return run


def assert_csnn_alike_with_and_without(attribute: str, norm: str, seed: int) -> None:
    """A csnn with strong weights (every layer spikes) gives the same output spikes, and
    parameter gradients within 1e-4, with its flag `attribute` (an engine shortcut) off and
    on, over 8 steps in chunks of 3."""
    import torch

    from snncli.models import create_model

    torch.manual_seed(seed)
    model = create_model("csnn", norm=norm)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4)
    model.time_chunk = 3
    x, target = torch.rand(4, 1, 28, 28), torch.tensor([0, 3, 5, 9])
    runs = {}
    for on in (False, True):
        setattr(model, attribute, on)
        model.zero_grad()
        record = model(x, steps=8)
        model.loss(record, target).backward()
        runs[on] = (record.detach(), [p.grad.clone() for p in model.parameters()])
    assert torch.equal(runs[True][0], runs[False][0]) and runs[True][0].sum() > 0
    for ours, dense in zip(runs[True][1], runs[False][1], strict=True):
        torch.testing.assert_close(ours, dense, rtol=1e-4, atol=1e-5)


# Checks shared by the fault matrix (test_faults*.py).


def assert_failed(result, *messages: str, code: int = 1) -> None:
    """Exit `code`; stderr is exactly one `error:` line per message, each holding its message,
    in order; no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == len(messages), result.stderr
    for line, message in zip(lines, messages, strict=True):
        assert line.startswith("error: ") and message in line, (line, message)
    assert "Traceback" not in result.output


def assert_ok(result) -> None:
    assert result.exception is None, repr(result.exception)
    assert result.exit_code == 0, result.output
    assert result.stderr == "", result.stderr


def poisoned(value):
    """A tamper for a tensor: a copy whose first element is `value` (NaN, inf, ...)."""

    def poison(tensor):
        tensor = tensor.clone()
        tensor.view(-1)[0] = value
        return tensor

    return poison


def leftovers(folder: Path) -> list[Path]:
    """Temp files a write left behind."""
    return sorted(p for p in Path(folder).rglob("*") if p.name.endswith(".tmp"))


def paper(digit: int, size: tuple[int, int] = (120, 120), scale: int = 100) -> Image.Image:
    """A digit glyph in dark ink on light paper."""
    ink = Image.fromarray(255 - glyph(digit, np.random.default_rng(digit))).resize((scale, scale))
    canvas = Image.new("L", size, 255)
    canvas.paste(ink, ((size[0] - scale) // 2, (size[1] - scale) // 2))
    return canvas

"""Bad days, as a matrix: hostile, truncated, foreign and tampered files of every type the tool
reads (checkpoints, IDX files gzipped and raw, images of every supported format), faults while
writing, interruptions, non-finite options, and odd but legal inputs.

Every case checks the exit code, one `error:` line on stderr per failure and no traceback
(CliRunner keeps an unhandled exception in `result.exception` rather than printing it), and
that nothing good was lost or left half-written.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import math
import os
import pickle
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from snncli.cli import app

from conftest import assert_failed, assert_ok, glyph, leftovers, paper, poisoned

runner = CliRunner()


def run(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture()
def good(tmp_path) -> Path:
    """An image the trained mlp reads as a 1."""
    path = tmp_path / "good one.png"
    paper(1).save(path)
    return path


# --------------------------------------------------------------------------- checkpoints


def tamper(**changes):
    """A change of a loaded checkpoint: `key=value` sets a top-level field (DELETE removes it),
    `config__x=v`, `state_dict__x=v`, `normalisation__x=v`, `metrics__x=v` set a sub-field."""

    def apply(ckpt: dict) -> None:
        for key, value in changes.items():
            where, _, sub = key.partition("__")
            target, name = (ckpt[where], sub.replace("_DOT_", ".")) if sub else (ckpt, where)
            if value is DELETE:
                del target[name]
            else:
                target[name] = value(target.get(name)) if callable(value) else value

    return apply


DELETE = object()
NAN = float("nan")


TAMPERED = {
    # config: wrong types, out-of-range values and unknown fields, one line each
    "config is a string": (tamper(config="steps"), ["config must be a mapping"]),
    "config is a list": (tamper(config=[6, 0.5]), ["config must be a mapping"]),
    "steps negative": (tamper(config__steps=-1), ["config steps -1 must be from 1 to 10,000"]),
    "steps zero": (tamper(config__steps=0), ["config steps 0 must be from 1"]),
    "steps huge": (tamper(config__steps=10**18), ["config steps 1000000000000000000 must be"]),
    "steps a float": (tamper(config__steps=6.0), ["config steps 6.0 must be a whole number"]),
    "steps a string": (tamper(config__steps="6"), ["config steps '6' must be a whole number"]),
    "steps a bool": (tamper(config__steps=True), ["config steps True must be a whole number"]),
    "steps a tensor": (tamper(config__steps=torch.tensor(6)), ["config steps"]),
    "tau above 1": (tamper(config__tau=1.5), ["config tau 1.5 must be in (0, 1]"]),
    "tau zero": (tamper(config__tau=0.0), ["config tau 0.0 must be in (0, 1]"]),
    "tau NaN": (tamper(config__tau=NAN), ["config tau nan must be a finite number"]),
    "tau None": (tamper(config__tau=None), ["config tau None must be a number"]),
    "threshold zero": (tamper(config__threshold=0), ["config threshold 0 must be above 0"]),
    "threshold negative": (tamper(config__threshold=-1.0), ["config threshold -1.0 must be"]),
    "threshold infinite": (tamper(config__threshold=math.inf), ["config threshold inf must"]),
    "gamma negative": (tamper(config__gamma=-2.0), ["config gamma -2.0 must be above 0"]),
    "hidden huge": (tamper(config__hidden=10**12), ["config hidden 1000000000000 must be"]),
    "num_classes 5": (tamper(config__num_classes=5), ["config num_classes 5 must be 10"]),
    "norm unknown": (tamper(config__norm="group"), ["config norm 'group' must be one of"]),
    "learn_decay a string": (tamper(config__learn_decay="yes"), ["config learn_decay 'yes'"]),
    "unknown config field": (
        tamper(config__momentum=0.9),
        ["config has an unknown field 'momentum'"],
    ),
    "two problems": (  # one line for the file: its first problem, and how many more
        tamper(config__steps=-1, config__tau=2.0),
        ["config steps -1 must be from 1 to 10,000 (and 1 more problem)"],
    ),
    # valid configs that do not describe these weights
    "hidden of another size": (
        tamper(config__hidden=256),
        ["weights do not match the 'mlp' architecture: fc1.weight is 512x784, the "
         "architecture's 256x784 (and 4 more problems)"],
    ),
    "norm batch without its weights": (
        tamper(config__norm="batch"),
        ["weights do not match the 'mlp' architecture: state_dict lacks norm1.weight"],
    ),
    "learned decay without its weights": (
        tamper(config__learn_decay=True),
        ["state_dict lacks lifs.0.decay_logit, lifs.1.decay_logit"],
    ),
    # the model name
    "model unknown": (tamper(model="resnet"), ["unknown model 'resnet'; choose one of"]),
    "model a list": (tamper(model=["mlp"]), ["unknown model ['mlp']"]),
    "model of other config": (
        tamper(model="csnn"),
        ["config has an unknown field 'tau' (and 1 more problem)"],
    ),
    # format fields
    "format other": (tamper(format="other-tool"), ["not an snncli checkpoint"]),
    "format a tensor": (tamper(format=torch.zeros(3)), ["not an snncli checkpoint"]),
    "format missing": (tamper(format=DELETE), ["not an snncli checkpoint"]),
    "format_version a string": (
        tamper(format_version="1"),
        ["format_version '1' must be a whole number"],
    ),
    "format_version a float": (tamper(format_version=1.0), ["format_version 1.0 must be"]),
    "format_version zero": (tamper(format_version=0), ["format_version 0 must be"]),
    "format_version newer": (
        tamper(format_version=99),
        ["format version 99; this snncli reads up to 2: upgrade snncli"],
    ),
    "config missing": (tamper(config=DELETE), ["it is missing config"]),
    "state_dict missing": (tamper(state_dict=DELETE), ["it is missing state_dict"]),
    # weights
    "state_dict a list": (tamper(state_dict=[]), ["state_dict must be a mapping"]),
    "state_dict a tensor": (tamper(state_dict=torch.zeros(3)), ["state_dict must be a mapping"]),
    "weight a list": (
        tamper(state_dict__fc1_DOT_weight=[[0.0]]),
        ["state_dict fc1.weight must be a dense tensor, not list"],
    ),
    "weight missing": (tamper(state_dict__fc3_DOT_bias=DELETE), ["state_dict lacks fc3.bias"]),
    "weight unknown": (
        tamper(state_dict__fc9_DOT_weight=torch.zeros(2)),
        ["state_dict has weights it does not know: fc9.weight"],
    ),
    "weight of another shape": (
        tamper(state_dict__fc3_DOT_weight=torch.zeros(10, 511)),
        ["fc3.weight is 10x511, the architecture's 10x512"],
    ),
    "weight a scalar": (
        tamper(state_dict__fc3_DOT_bias=torch.tensor(1.0)),
        ["fc3.bias is a scalar"],
    ),
    "weight NaN": (
        tamper(state_dict__fc2_DOT_weight=poisoned(NAN)),
        ["state_dict fc2.weight holds NaN or infinite values"],
    ),
    "weight infinite": (
        tamper(state_dict__fc1_DOT_bias=poisoned(-math.inf)),
        ["state_dict fc1.bias holds NaN or infinite values"],
    ),
    "weight a sparse tensor": (
        tamper(state_dict__fc3_DOT_bias=torch.zeros(10).to_sparse()),
        ["state_dict fc3.bias must be a dense tensor, not a torch.sparse_coo tensor"],
    ),
    "weight a meta tensor": (
        tamper(state_dict__fc3_DOT_bias=torch.zeros(10, device="meta")),
        ["state_dict fc3.bias holds no values (a meta tensor)"],
    ),
    "weight of integers": (
        tamper(state_dict__fc3_DOT_bias=torch.zeros(10, dtype=torch.int64)),
        ["state_dict fc3.bias holds torch.int64, expected torch.float32"],
    ),
    "weight complex": (
        tamper(state_dict__fc3_DOT_bias=torch.zeros(10, dtype=torch.complex64)),
        ["state_dict fc3.bias holds torch.complex64"],
    ),
    # normalisation
    "normalisation a string": (tamper(normalisation="mnist"), ["normalisation must be a mapping"]),
    "normalisation std zero": (
        tamper(normalisation__std=0.0),
        ["normalisation std 0.0 must be in (0, 1e+06]"],
    ),
    "normalisation mean NaN": (
        tamper(normalisation__mean=NAN),
        ["normalisation mean nan must be a finite number"],
    ),
    "normalisation std a string": (
        tamper(normalisation__std="0.3"),
        ["normalisation std '0.3' must be a number"],
    ),
    "normalisation without std": (tamper(normalisation__std=DELETE), ["normalisation lacks std"]),
    "normalisation unknown field": (
        tamper(normalisation__gain=2.0),
        ["normalisation has an unknown field 'gain'"],
    ),
    # what evaluate shows from training, and the recipe
    "metrics a string": (tamper(metrics="great"), ["metrics must be a mapping"]),
    "metrics accuracy a string": (
        tamper(metrics__test_accuracy="99%"),
        ["metrics test_accuracy '99%' must be a number"],
    ),
    "metrics accuracy above 1": (
        tamper(metrics__test_accuracy=99.0),
        ["metrics test_accuracy 99.0 must be in [0, 1]"],
    ),
    "metrics test_images negative": (
        tamper(metrics__test_images=-5),
        ["metrics test_images -5 must be from 1"],
    ),
    "metrics precision a number": (
        tamper(metrics__precision=16),
        ["metrics precision 16 must be text"],
    ),
    "recipe a list": (tamper(recipe=[1, 2]), ["recipe must be a mapping"]),
}


@pytest.fixture(scope="module")
def trained(mlp_checkpoint) -> dict:
    return torch.load(mlp_checkpoint, weights_only=True)


def saved(ckpt: dict, path: Path) -> Path:
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("case", list(TAMPERED), ids=list(TAMPERED))
def test_tampered_checkpoint_is_one_line(case, trained, tmp_path, good, tiny_mnist):
    change, messages = TAMPERED[case]
    ckpt = {**trained, **{k: dict(v) for k, v in trained.items() if isinstance(v, dict)}}
    change(ckpt)
    path = saved(ckpt, tmp_path / "tampered.pt")
    for result in (
        run("evaluate", path, "--data-dir", tiny_mnist, "--limit", 5),
        run("predict", good, "-c", path),
    ):
        assert_failed(result, *messages)
        assert all(line.startswith(f"error: {path}: ") for line in result.stderr.splitlines())


@pytest.mark.parametrize(
    "change",
    [tamper(config__threshold=2.0), tamper(notes="hand-edited"), tamper(metrics={})],
    ids=["other valid threshold", "extra top-level field", "no metrics"],
)
def test_checkpoint_edited_within_the_rules_still_works(change, trained, tmp_path, good):
    ckpt = dict(trained)
    ckpt["config"] = dict(trained["config"])
    change(ckpt)
    result = run("predict", good, "-c", saved(ckpt, tmp_path / "edited.pt"), "--json")
    assert_ok(result)
    assert json.loads(result.stdout)[0]["prediction"] in range(10)


class Payload:
    """A pickle that runs a command when unpickled without weights_only."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _garbage_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", os.urandom(300))
        archive.writestr("archive/version", "3\n")


FOREIGN = {
    "pickle with code": lambda p, m: p.write_bytes(pickle.dumps(Payload(m))),
    "torch zip with code": lambda p, m: torch.save({"format": Payload(m)}, p),
    "zip of garbage": lambda p, m: _garbage_zip(p),
    "random bytes": lambda p, m: p.write_bytes(os.urandom(5000)),
    "empty file": lambda p, m: p.write_bytes(b""),
    "text": lambda p, m: p.write_text("this is not a checkpoint\n"),
    "image renamed": lambda p, m: paper(3).save(p, format="PNG"),
    "truncated checkpoint": "truncated",
    "a tensor": lambda p, m: torch.save(torch.zeros(3), p),
    "a list": lambda p, m: torch.save([1, 2, 3], p),
    "another tool's dict": lambda p, m: torch.save({"weights": torch.zeros(2)}, p),
}


@pytest.mark.parametrize("case", list(FOREIGN), ids=list(FOREIGN))
def test_foreign_or_hostile_checkpoint_file(case, mlp_checkpoint, tmp_path, good, tiny_mnist):
    path, marker = tmp_path / "model.pt", tmp_path / "PWNED"
    if FOREIGN[case] == "truncated":
        path.write_bytes(mlp_checkpoint.read_bytes()[: mlp_checkpoint.stat().st_size // 2])
    else:
        FOREIGN[case](path, marker)
    assert_failed(run("evaluate", path, "--data-dir", tiny_mnist), "not an snncli checkpoint")
    assert_failed(run("predict", good, "-c", path), "not an snncli checkpoint")
    assert not marker.exists()  # no code from the file ran


def test_checkpoint_path_that_is_a_folder_or_missing(tmp_path, good):
    (tmp_path / "folder.pt").mkdir()
    assert_failed(run("predict", good, "-c", tmp_path / "folder.pt"), "is a folder")
    assert_failed(run("predict", good, "-c", tmp_path / "nope.pt"), "does not exist")


def test_checkpoint_the_file_system_refuses_to_read(tmp_path, good, monkeypatch, mlp_checkpoint):
    """chmod does not stop root (the tests may run as root): the refusal is patched in."""
    from snncli import checkpoint

    def refuse(path, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(checkpoint.torch, "load", refuse)
    result = run("predict", good, "-c", mlp_checkpoint)
    assert_failed(result, f"cannot read {mlp_checkpoint}: Permission denied")


def test_newest_checkpoint_folder_is_not_taken_for_a_checkpoint(in_tmp, mlp_checkpoint, good):
    (in_tmp / "checkpoints").mkdir()
    shutil.copy(mlp_checkpoint, in_tmp / "checkpoints" / "real.pt")
    (in_tmp / "checkpoints" / "newer.pt").mkdir()  # a folder named like one, newer
    assert_ok(run("predict", good))


# --------------------------------------------------------------------------- IDX files

IMAGES, LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


def idx_bytes(header: tuple[int, ...], data: bytes, kind: int = 0x08) -> bytes:
    dims = struct.pack(f">{len(header)}I", *header)
    return struct.pack(">HBB", 0, kind, len(header)) + dims + data


def _flip(data: bytes, start: int, count: int = 40) -> bytes:
    b = bytearray(data)
    for i in range(start, min(start + count, len(b))):
        b[i] ^= 0xFF
    return bytes(b)


# name -> (file changed, new content from the file's uncompressed bytes, expected message)
IDX_CASES = {
    "truncated": (IMAGES, lambda raw: raw[:-100], None),
    "wrong magic": (IMAGES, lambda raw: b"\x00\x00\x0d\x03" + raw[4:], "not an unsigned-byte IDX"),
    "wrong dims": (IMAGES, lambda raw: b"\x00\x00\x08\x02" + raw[4:], "not an unsigned-byte IDX"),
    "header only": (IMAGES, lambda raw: raw[:8], "not an IDX file (only 8 bytes)"),
    "empty": (IMAGES, lambda raw: b"", "not an IDX file (only 0 bytes)"),
    "huge dims": (IMAGES, lambda raw: idx_bytes((2**32 - 1,) * 3, raw[16:]), "declares"),
    "no images": (IMAGES, lambda raw: idx_bytes((0, 28, 28), b""), "holds no images"),
    "14x14 images": (
        IMAGES, lambda raw: idx_bytes((200, 14, 14), bytes(200 * 196)), "(14, 14) images"
    ),
    "trailing data": (IMAGES, lambda raw: raw + b"xx", "file holds more"),
    "gigabytes of trailing zeros": (
        IMAGES, lambda raw: raw + bytes(20_000_000), "file holds more"
    ),
    "label count": (LABELS, lambda raw: idx_bytes((199,), raw[8:-1]), "200 images but"),
    "labels above 9": (LABELS, lambda raw: idx_bytes((200,), bytes([12]) * 200), "outside 0-9"),
    "image file is a PNG": (IMAGES, lambda raw: encoded(paper(2), "PNG"), None),
}


@pytest.fixture()
def mnist_copy(tmp_path, tiny_mnist):
    """(folder, gz): the tiny test split, gzipped or raw, to damage."""

    def make(gz: bool) -> Path:
        folder = tmp_path / ("gz" if gz else "raw")
        folder.mkdir()
        for name in (IMAGES, LABELS):
            data = gzip.decompress((tiny_mnist / f"{name}.gz").read_bytes())
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=1))
            else:
                (folder / name).write_bytes(data)
        return folder

    return make


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("case", list(IDX_CASES), ids=list(IDX_CASES))
def test_damaged_idx_file_is_one_line(case, gz, mnist_copy, mlp_checkpoint):
    name, change, message = IDX_CASES[case]
    folder = mnist_copy(gz)
    path = folder / (f"{name}.gz" if gz else name)
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    damaged = change(raw)
    is_png = damaged[:4] == b"\x89PNG"
    path.write_bytes(gzip.compress(damaged, compresslevel=1) if gz and not is_png else damaged)
    if message is None:  # how the damage shows depends on the compression
        message = {
            ("truncated", True): "is truncated or corrupt",
            ("truncated", False): "is truncated or corrupt",
            ("image file is a PNG", True): "Not a gzipped file",
            ("image file is a PNG", False): "not an unsigned-byte IDX",
        }[case, gz]
    result = run("evaluate", mlp_checkpoint, "--data-dir", folder)
    assert_failed(result, message)
    assert name in result.stderr


GZ_ONLY = {
    "cut short": (lambda gz: gz[:-100], "Compressed file ended before"),
    "bad CRC": (lambda gz: gz[:-8] + bytes([gz[-8] ^ 0xFF]) + gz[-7:], "CRC check failed"),
    "corrupt deflate stream": (lambda gz: _flip(gz, 200), "cannot read"),
    "raw bytes named .gz": (lambda gz: gzip.decompress(gz), "Not a gzipped file"),
    "garbage after the stream": (lambda gz: gz + b"garbage!", "Not a gzipped file"),
}


@pytest.mark.parametrize("case", list(GZ_ONLY), ids=list(GZ_ONLY))
def test_damaged_gzip_stream_is_one_line(case, mnist_copy, mlp_checkpoint):
    change, message = GZ_ONLY[case]
    folder = mnist_copy(True)
    path = folder / f"{IMAGES}.gz"
    path.write_bytes(change(path.read_bytes()))
    result = run("evaluate", mlp_checkpoint, "--data-dir", folder)
    assert_failed(result, message)
    assert IMAGES in result.stderr


def test_data_dir_that_is_a_file(tmp_path, mlp_checkpoint):
    (tmp_path / "mnist.zip").write_bytes(b"PK")
    result = run("evaluate", mlp_checkpoint, "--data-dir", tmp_path / "mnist.zip")
    assert_failed(result, "mnist.zip is a file, not a folder")


def test_damaged_training_file_stops_training_before_any_file_is_written(in_tmp, tiny_mnist):
    folder = in_tmp / "mnist"
    shutil.copytree(tiny_mnist, folder)
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-50])
    result = run("train", "-m", "mlp", "--data-dir", folder, "--epochs", "1")
    assert_failed(result, "train-images-idx3-ubyte.gz")
    assert not (in_tmp / "checkpoints").exists()


# --------------------------------------------------------------------------- images

FORMATS = {  # name: (suffix, Pillow format, save options, mode)
    "PNG": (".png", "PNG", {}, "L"),
    "JPEG": (".jpg", "JPEG", {"quality": 90}, "RGB"),
    "GIF": (".gif", "GIF", {}, "L"),
    "BMP": (".bmp", "BMP", {}, "L"),
    "TIFF": (".tif", "TIFF", {}, "L"),
    "TIFF-LZW": (".tiff", "TIFF", {"compression": "tiff_lzw"}, "L"),
    "WebP": (".webp", "WEBP", {"quality": 90}, "RGB"),
    "PPM": (".ppm", "PPM", {}, "RGB"),
}


def format_bytes(name: str, digit: int = 3) -> bytes:
    _, fmt, options, mode = FORMATS[name]
    rng = np.random.default_rng(0)  # paper grain: the compressed data is not trivially short
    grain = rng.integers(0, 25, (120, 120), dtype=np.uint8)
    image = Image.fromarray(np.asarray(paper(digit)) - grain)
    return encoded(image.convert(mode), fmt, **options)


DAMAGE = {
    "cut in half": (lambda data: data[: len(data) // 2], "truncated or damaged"),
    "last bytes cut": (lambda data: data[:-2], "truncated or damaged"),
    "zero bytes": (lambda data: b"", "not an image Pillow can read (the file is empty)"),
    "text renamed": (lambda data: b"my shopping list\n", "not an image Pillow can read"),
}
# LZW TIFFs keep their directory at the end: cut in half, the file is no longer a TIFF.
OTHER_DAMAGE = {("TIFF-LZW", "cut in half"): "not an image Pillow can read"}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
@pytest.mark.parametrize("fmt", list(FORMATS), ids=list(FORMATS))
def test_damaged_image_fails_alone_and_the_rest_is_predicted(
    fmt, damage, tmp_path, good, mlp_checkpoint
):
    change, message = DAMAGE[damage]
    message = OTHER_DAMAGE.get((fmt, damage), message)
    bad = tmp_path / f"bad{FORMATS[fmt][0]}"
    bad.write_bytes(change(format_bytes(fmt)))
    result = run("predict", good, bad, good, "-c", mlp_checkpoint, "--json")
    assert_failed(result, f"{bad} is {message}" if "Pillow" in message else message)
    assert str(bad) in result.stderr
    first, failed, last = json.loads(result.stdout)
    assert failed == {"path": str(bad), "error": result.stderr.strip()[len("error: ") :]}
    assert first["prediction"] == last["prediction"] == 1 and first["path"] == str(good)


@pytest.mark.parametrize("fmt", list(FORMATS), ids=list(FORMATS))
def test_every_format_reads_when_whole(fmt, tmp_path, mlp_checkpoint):
    path = tmp_path / f"three{FORMATS[fmt][0]}"
    path.write_bytes(format_bytes(fmt))
    result = run("predict", path, "-c", mlp_checkpoint, "--json")
    assert_ok(result)
    assert json.loads(result.stdout)[0]["prediction"] == 3


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


BOMBS = {  # headers that declare gigapixels in a few bytes
    "PNG": b"\x89PNG\r\n\x1a\n"
    + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0))
    + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
    + _png_chunk(b"IEND", b""),
    "GIF": b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00"
    + b"\x2c" + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00\x02\x02\x44\x01\x00\x3b",
    "BMP": b"BM" + struct.pack("<IHHI", 1000, 0, 0, 54)
    + struct.pack("<IiiHHIIiiII", 40, 60_000, 60_000, 1, 8, 0, 0, 0, 0, 0, 0) + bytes(900),
}


@pytest.mark.parametrize("fmt", list(BOMBS), ids=list(BOMBS))
def test_decompression_bomb_is_refused_from_its_header(fmt, tmp_path, good, mlp_checkpoint):
    bomb = tmp_path / f"bomb.{fmt.lower()}"
    bomb.write_bytes(BOMBS[fmt])
    result = run("predict", bomb, good, "-c", mlp_checkpoint, "--json")
    assert_failed(result, "is too large")
    assert json.loads(result.stdout)[1]["prediction"] == 1


def test_corrupted_bytes_inside_a_png_break_its_checksum(tmp_path, good, mlp_checkpoint):
    data = format_bytes("PNG")
    bad = tmp_path / "flipped.png"
    bad.write_bytes(_flip(data, len(data) // 2, 20))
    result = run("predict", bad, good, "-c", mlp_checkpoint)
    assert_failed(result, "flipped.png is truncated or damaged")
    assert "1 predicted, 1 failed" in result.stdout


def test_float_image_with_nan_pixels_is_damaged(tmp_path, good, mlp_checkpoint):
    pixels = np.asarray(paper(4), dtype=np.float32) / 255
    pixels[5, 5] = np.nan
    path = tmp_path / "float.tif"
    Image.fromarray(pixels, mode="F").save(path)
    result = run("predict", path, good, "-c", mlp_checkpoint)
    assert_failed(result, "float.tif is damaged: it holds pixel values that are not numbers")


# --------------------------------------------------------------------------- many inputs


def test_mixed_inputs_each_failure_is_one_line_in_order(tmp_path, mlp_checkpoint):
    folder = tmp_path / "photos"
    folder.mkdir()
    paper(0).save(folder / "a zero.png")
    (folder / "b broken.png").write_bytes(format_bytes("PNG")[:300])
    Image.new("L", (60, 60), 255).save(folder / "c blank.png")
    paper(1).save(folder / "d one.jpg")
    empty = tmp_path / "empty"
    empty.mkdir()
    inputs = [folder, tmp_path / "missing.png", empty, str(tmp_path / "*.bmp")]
    result = run("predict", *inputs, "-c", mlp_checkpoint, "--json")
    assert_failed(
        result,
        "b broken.png is truncated or damaged",
        "no digit found in",
        "missing.png does not exist",
        "holds no image files",
        "no file matches",
    )
    entries = json.loads(result.stdout)
    assert [e["path"] for e in entries] == [
        str(folder / "a zero.png"),
        str(folder / "b broken.png"),
        str(folder / "c blank.png"),
        str(folder / "d one.jpg"),
        str(tmp_path / "missing.png"),
        str(empty),
        str(tmp_path / "*.bmp"),
    ]
    assert [e.get("prediction") for e in entries] == [0, None, None, 1, None, None, None]
    rows = run("predict", *inputs, "-c", mlp_checkpoint)  # past 3 inputs: a row each, in order
    assert rows.exit_code == 1 and rows.stdout.endswith("\nSummary: 2 predicted, 5 failed\n")
    lines = rows.stdout.splitlines()[2:9]
    assert [line.endswith("  failed") for line in lines] == [False, True, True, False] + [True] * 3
    tables = run("predict", *inputs, "-c", mlp_checkpoint, "--tables")
    assert tables.exit_code == 1 and "2 predicted, 5 failed" in tables.stdout
    assert "a zero.png → 0" in tables.stdout and "d one.jpg → 1" in tables.stdout


def test_nothing_selected_at_all_is_an_error(tmp_path, mlp_checkpoint):
    (tmp_path / "empty").mkdir()
    result = run("predict", tmp_path / "empty", str(tmp_path / "*.png"), "-c", mlp_checkpoint)
    assert_failed(result, "folder", "no file matches")
    assert result.stdout == ""


def test_empty_file_name_is_not_the_current_folder(in_tmp, good, mlp_checkpoint):
    paper(0).save(in_tmp / "not me.png")
    result = run("predict", "", good, "-c", mlp_checkpoint, "--json")
    assert_failed(result, "'' is not a file name")
    assert [e.get("prediction") for e in json.loads(result.stdout)] == [None, 1]


def test_single_unreadable_input_has_no_summary(tmp_path, mlp_checkpoint):
    result = run("predict", tmp_path / "nope.png", "-c", mlp_checkpoint, "--json")
    assert_failed(result, "nope.png does not exist")
    missing = tmp_path / "nope.png"
    assert json.loads(result.stdout) == [
        {"path": str(missing), "error": f"image {missing} does not exist"}
    ]


def test_thousands_of_images_are_read_and_classified_a_batch_at_a_time(
    tmp_path, mlp_checkpoint, monkeypatch
):
    """3,000 tiny PNGs and one broken one: all predicted in order, in batches of BATCH, each
    batch classified before the next is read (so memory holds one batch, not all of them).
    Every file is opened and decoded for real; the MNIST-like layout step is replaced by a
    plain resize (the files are MNIST-like already) to keep the test quick."""
    from snncli import predict
    from snncli.preprocess import Prepared, open_image

    def quick_digit(source, name=None):
        return Prepared(np.asarray(open_image(source, name).convert("L").resize((28, 28))))

    monkeypatch.setattr(predict, "load_prepared", quick_digit)
    monkeypatch.setattr(predict, "PARALLEL_FROM", 10**9)  # read here, where reads are counted

    folder = tmp_path / "many"
    folder.mkdir()
    data = encoded(Image.fromarray(glyph(7, np.random.default_rng(0))), "PNG")
    for i in range(3000):
        (folder / f"{i:04d}.png").write_bytes(data)
    (folder / "1500-broken.png").write_bytes(data[:-5])
    reads, batches = [], []
    real_read, real_call = predict.read_digit, predict.Classifier.__call__

    def counting_read(path, stdin=None, digits=True):
        reads.append(path)
        return real_read(path, stdin, digits)

    def recording_call(self, digits):
        batches.append((len(digits), len(reads)))
        return real_call(self, digits)

    monkeypatch.setattr(predict, "read_digit", counting_read)
    monkeypatch.setattr(predict.Classifier, "__call__", recording_call)
    result = run("predict", folder, "-c", mlp_checkpoint, "--json")
    assert_failed(result, "1500-broken.png is truncated or damaged")
    entries = json.loads(result.stdout)
    broken = [e["path"] for e in entries].index(str(folder / "1500-broken.png"))
    assert len(entries) == 3001 and set(entries[broken]) == {"path", "error"}
    assert entries[broken]["error"].startswith(f"{folder / '1500-broken.png'} is truncated")
    assert all(e["prediction"] == 7 for i, e in enumerate(entries) if i != broken)
    assert [e["path"] for e in entries] == sorted(e["path"] for e in entries)
    assert max(size for size, _ in batches) <= predict.BATCH
    assert sum(size for size, _ in batches) == 3000
    # The k-th batch was classified when at most k full batches had been read.
    for k, (_, read_so_far) in enumerate(batches, start=1):
        assert read_so_far <= k * predict.BATCH


# --------------------------------------------------------------------------- odd, legal inputs


def test_unicode_and_spaces_in_paths(tmp_path, mlp_checkpoint):
    folder = tmp_path / "mes chiffres ✍ 数字"
    folder.mkdir()
    path = folder / "ünïcödé № 3 — copy (1).png"
    paper(3).save(path)
    raster = folder / "растр out.png"
    result = run("predict", path, "-c", mlp_checkpoint, "--show", "--raster", raster)
    assert_ok(result)
    assert "ünïcödé № 3 — copy (1).png → 3" in result.stdout
    assert raster.read_bytes()[:4] == b"\x89PNG" and not leftovers(tmp_path)
    result = run("predict", str(folder / "*.png"), "-c", mlp_checkpoint, "--json")
    assert_ok(result)
    assert [e["path"] for e in json.loads(result.stdout)] == [str(path), str(raster)]


def test_a_newline_in_a_file_name_keeps_its_error_on_one_line(tmp_path, good, mlp_checkpoint):
    bad = tmp_path / "two\nlines.png"
    bad.write_text("not an image")
    also = tmp_path / "fine\nname.png"
    paper(0).save(also)
    result = run("predict", bad, good, also, tmp_path / "gone\n.png", "-c", mlp_checkpoint,
                 "--json")
    assert_failed(result, "two\\nlines.png is not an image", "gone\\n.png does not exist")
    entries = json.loads(result.stdout)
    assert entries[0]["path"] == str(bad)  # the JSON keeps the name as it is
    assert [e.get("prediction") for e in entries] == [None, 1, 0, None]
    checkpoint = tmp_path / "odd\nname.pt"
    checkpoint.write_text("not a checkpoint")
    assert_failed(run("predict", good, "-c", checkpoint), "odd\\nname.pt is not an snncli")


def test_stdin_among_files_is_read_once_for_its_place(good, mlp_checkpoint, tmp_path):
    zero = tmp_path / "zero.png"
    paper(0).save(zero)
    result = runner.invoke(
        app, ["predict", str(zero), "-", str(good), "-c", str(mlp_checkpoint), "--json"],
        input=encoded(paper(3), "PNG"),
    )
    assert_ok(result)
    entries = json.loads(result.stdout)
    assert [(e["path"], e["prediction"]) for e in entries] == [
        (str(zero), 0), ("<stdin>", 3), (str(good), 1)
    ]


def test_markup_like_file_names_are_shown_as_they_are(tmp_path, mlp_checkpoint):
    path = tmp_path / "[red]digit[bold].png"
    paper(0).save(path)
    result = run("predict", path, path, "-c", mlp_checkpoint)
    assert_ok(result)
    assert "[red]digit[bold].png → 0" in result.stdout


@pytest.mark.parametrize(
    "size,scale,fmt,expected",
    [
        ((4000, 3000), 2000, "JPEG", 1),  # a 12-megapixel photo
        ((2500, 2500), 1500, "PNG", 1),
        ((28, 28), 22, "PNG", 1),  # MNIST's own size
        ((6, 6), 5, "PNG", None),  # tiny but legal: classified, as whatever it looks like
    ],
    ids=["12MP JPEG", "6MP PNG", "28x28", "6x6"],
)
def test_very_large_and_very_small_images(size, scale, fmt, expected, tmp_path, mlp_checkpoint):
    path = tmp_path / f"image.{fmt.lower()}"
    paper(1, size, scale).convert("RGB").save(path, format=fmt)
    result = run("predict", path, "-c", mlp_checkpoint, "--json")
    assert_ok(result)
    (prediction,) = json.loads(result.stdout)
    assert prediction["prediction"] in ([expected] if expected is not None else range(10))


def test_one_pixel_image_is_too_small(tmp_path, good, mlp_checkpoint):
    Image.new("L", (1, 1), 0).save(tmp_path / "dot.png")
    result = run("predict", tmp_path / "dot.png", good, "-c", mlp_checkpoint)
    assert_failed(result, "dot.png is too small (1x1) to hold a digit")


MODES = {
    "16-bit grey PNG": lambda im, p: Image.fromarray(np.asarray(im).astype(np.uint16) * 257)
    .save(p.with_suffix(".png")),
    "palette PNG with transparency": lambda im, p: im.convert("P").save(
        p.with_suffix(".png"), transparency=255
    ),
    "grey+alpha PNG": lambda im, p: im.convert("LA").save(p.with_suffix(".png")),
    "CMYK JPEG": lambda im, p: im.convert("CMYK").save(p.with_suffix(".jpg")),
    "1-bit BMP": lambda im, p: im.point(lambda v: 255 * (v > 128)).convert("1")
    .save(p.with_suffix(".bmp")),
    "float TIFF": lambda im, p: Image.fromarray(np.asarray(im, np.float32) / 255, mode="F")
    .save(p.with_suffix(".tif")),
    "animated GIF": lambda im, p: im.save(
        p.with_suffix(".gif"), save_all=True, append_images=[Image.new("L", im.size, 0)]
    ),
    "animated PNG": lambda im, p: im.save(
        p.with_suffix(".png"), save_all=True, append_images=[Image.new("L", im.size, 0)]
    ),
    "multi-page TIFF": lambda im, p: im.save(
        p.with_suffix(".tiff"), save_all=True, append_images=[Image.new("L", im.size, 0)]
    ),
    "lossless WebP": lambda im, p: im.convert("RGB").save(p.with_suffix(".webp"), lossless=True),
    "PGM": lambda im, p: im.save(p.with_suffix(".pgm")),
}


@pytest.mark.parametrize("mode", list(MODES), ids=list(MODES))
def test_unusual_but_legal_image_kinds(mode, tmp_path, mlp_checkpoint):
    MODES[mode](paper(0), tmp_path / "digit")
    (path,) = list(tmp_path.glob("digit.*"))
    result = run("predict", path, "-c", mlp_checkpoint, "--json")
    assert_ok(result)
    assert json.loads(result.stdout)[0]["prediction"] == 0


def test_stdin_that_is_empty_or_not_an_image(good, mlp_checkpoint):
    for data, message in ((b"", "(the file is empty)"), (b"hello", "not an image Pillow")):
        result = runner.invoke(
            app, ["predict", "-", str(good), "-c", str(mlp_checkpoint), "--json"], input=data
        )
        assert_failed(result, f"<stdin> is {message}" if "Pillow" in message else message)
        assert json.loads(result.stdout)[1]["prediction"] == 1


def test_output_cut_off_by_its_reader_ends_quietly(tmp_path, mlp_checkpoint):
    """`snn predict folder | head -1`: once the reader has gone, the tool stops without a
    traceback or an error line (exit code 1, as Rich itself does)."""
    folder = tmp_path / "many"
    folder.mkdir()
    data = encoded(paper(1), "PNG")
    for i in range(100):  # about 170 kB of tables: more than a pipe holds
        (folder / f"{i:03d}.png").write_bytes(data)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, sys.path))}
    process = subprocess.Popen(
        [sys.executable, "-m", "snncli", "predict", str(folder), "-c", str(mlp_checkpoint)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    assert process.stdout.read(20)
    process.stdout.close()  # the reader goes away
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 1 and stderr == "", stderr


def test_json_cut_off_by_its_reader_ends_quietly(good, mlp_checkpoint, monkeypatch):
    from snncli import cli

    def gone(self, item):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(cli._PredictionReport, "add", gone)
    result = run("predict", good, "-c", mlp_checkpoint, "--json")
    assert result.exit_code == 1 and result.stderr == ""


@pytest.mark.parametrize(
    "exc",
    [
        MemoryError(),
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB"),
        RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    ],
    ids=["MemoryError", "torch CPU allocator", "CUDA"],
)
def test_running_out_of_memory_is_one_line(exc, good, mlp_checkpoint, monkeypatch):
    from snncli import predict

    def exhausted(self, digits):
        raise exc

    monkeypatch.setattr(predict.Classifier, "__call__", exhausted)
    assert_failed(run("predict", good, "-c", mlp_checkpoint), "out of memory")


@pytest.mark.parametrize(
    "args",
    [["predict", "IMAGE", "--steps", "20000"], ["evaluate", "--steps", "10001"]],
    ids=["predict", "evaluate"],
)
def test_steps_beyond_the_bound_are_usage_errors(args, good):
    result = run(*[good if a == "IMAGE" else a for a in args])
    assert result.exit_code == 2 and "10000" in result.output
    assert "Traceback" not in result.output


def test_steps_sweep_beyond_the_bound_is_one_line(mlp_checkpoint, tiny_mnist):
    result = run("evaluate", mlp_checkpoint, "--data-dir", tiny_mnist, "--steps-sweep", "5,20000")
    assert_failed(result, "--steps-sweep numbers must be at most 10,000")


@pytest.mark.parametrize(
    "trouble,message",
    [
        (lambda: np.log(np.zeros(1)), "could not be processed: divide by zero encountered in log"),
        (lambda: [][1], "could not be processed: list index out of range"),
        (lambda: np.empty(0).max(), "could not be processed: zero-size array"),
    ],
    ids=["numerical warning", "an unforeseen error", "numpy error"],
)
def test_image_the_pipeline_cannot_handle_fails_alone(
    trouble, message, tmp_path, good, mlp_checkpoint, monkeypatch
):
    from snncli import predict

    odd = tmp_path / "odd.png"
    paper(3).save(odd)
    real_load = predict.load_prepared

    def load(source, name=None):
        if str(source) == str(odd):
            trouble()
        return real_load(source, name)

    monkeypatch.setattr(predict, "load_prepared", load)
    result = run("predict", good, odd, "-c", mlp_checkpoint, "--json")
    assert_failed(result, f"{odd} {message}")
    assert json.loads(result.stdout)[0]["prediction"] == 1


def test_an_unforeseen_error_is_one_line_and_debug_shows_it(good, mlp_checkpoint, monkeypatch):
    from snncli import predict

    def bug(self, digits):
        return 1 / 0

    monkeypatch.setattr(predict.Classifier, "__call__", bug)
    result = run("predict", good, "-c", mlp_checkpoint)
    assert_failed(result, "internal error (ZeroDivisionError: division by zero); please report")
    monkeypatch.setenv("SNN_DEBUG", "1")
    assert isinstance(run("predict", good, "-c", mlp_checkpoint).exception, ZeroDivisionError)

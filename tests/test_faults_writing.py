"""Bad days, writing side: faults while writing (a full disk, for real on a small tmpfs where
mounting is allowed, and through a patched writer; a refused permission; the target path a
folder), interruptions, non-finite number options, and the config checks a checkpoint is held
to. Each case checks the exit code, one `error:` line per failure and no traceback, and that
no temp file is left and a previous file at the path is intact.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from snncli.cli import app
from snncli.errors import ConfigError, SnnError
from snncli.files import atomic_write, check_writable, write_text

from conftest import assert_failed, assert_ok, leftovers, paper

runner = CliRunner()


def run(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


@pytest.fixture()
def good(tmp_path) -> Path:
    path = tmp_path / "one.png"
    paper(1).save(path)
    return path


def half_write_then(exc: BaseException):
    """A writer that leaves part of its file, then fails with `exc`."""

    def write(tmp):
        Path(tmp).write_bytes(b"partial")
        raise exc

    return write


TORCH_FULL_DISK = RuntimeError(
    "[enforce fail at inline_container.cc:672] . unexpected pos 2304 vs 2198\n"
    "frame #0: c10::ThrowEnforceNotMet(...)"
)
WRITE_FAULTS = {
    "disk full": (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), "No space left on device"),
    "quota exceeded": (OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)), "quota exceeded"),
    "permission refused": (PermissionError(errno.EACCES, "Permission denied"), "Permission"),
    "read-only file system": (OSError(errno.EROFS, os.strerror(errno.EROFS)), "Read-only"),
    "torch's zip writer": (TORCH_FULL_DISK, "unexpected pos 2304 vs 2198"),
    "matplotlib's error": (ValueError("Image size of 800x90000 pixels is too large."), "too large"),
    "an error without words": (RuntimeError(), "RuntimeError"),
}


@pytest.mark.parametrize("fault", list(WRITE_FAULTS), ids=list(WRITE_FAULTS))
def test_failed_write_is_one_line_and_keeps_the_previous_file(fault, tmp_path):
    exc, reason = WRITE_FAULTS[fault]
    path = tmp_path / "out" / "model.pt"
    path.parent.mkdir()
    path.write_bytes(b"the previous, good file")
    with pytest.raises(SnnError) as info:
        atomic_write(path, half_write_then(exc), "checkpoint")
    message = str(info.value)
    assert message.startswith(f"cannot write checkpoint {path}: ") and reason in message
    assert "\n" not in message
    assert path.read_bytes() == b"the previous, good file"
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]


def test_interrupted_write_leaves_the_previous_file(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"previous")
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_write_then(KeyboardInterrupt()), "checkpoint")
    assert path.read_bytes() == b"previous" and not leftovers(tmp_path)


def test_successful_write_replaces_the_file_with_the_usual_permissions(tmp_path):
    path = write_text(tmp_path / "deep" / "er" / "metrics.jsonl", "{}\n", "metrics file")
    assert path.read_text() == "{}\n" and not leftovers(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    write_text(path, '{"a": 1}\n')
    assert path.read_text() == '{"a": 1}\n'


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda p: p.mkdir(parents=True), "it is a folder"),
        (lambda p: p.parent.write_text("x"), "a is not a folder"),
    ],
    ids=["target is a folder", "parent is a file"],
)
def test_unwritable_targets_are_one_line_before_any_work(make, reason, tmp_path):
    path = tmp_path / "a" / "b.png"
    make(path)
    for check in (lambda: check_writable(path, "plot"), lambda: write_text(path, "x", "plot")):
        with pytest.raises(SnnError, match=f"cannot write plot {path}: .*{reason}"):
            check()
    assert not leftovers(tmp_path)


def test_a_pipe_or_device_is_written_in_place_not_replaced(tmp_path):
    """Renaming a temp file onto /dev/null would replace the device (as root it can): a
    device or pipe is written into instead. A FIFO stands in for the device here."""
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_text(fifo, "through the pipe\n", "plot")
    reader.join(timeout=10)
    assert received == [b"through the pipe\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode) and not leftovers(tmp_path)


def test_a_symbolic_link_keeps_pointing_at_the_new_file(tmp_path):
    real = tmp_path / "store" / "model.pt"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "latest.pt"
    link.symlink_to(real)
    write_text(link, "new", "checkpoint")
    assert link.is_symlink() and link.resolve() == real and real.read_text() == "new"
    assert not leftovers(tmp_path)


def test_permission_refused_by_the_file_system(tmp_path, monkeypatch):
    """chmod does not stop root (the tests may run as root): the refusal is patched in there."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() == 0:
        import tempfile

        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:
        folder.chmod(0o500)
    try:
        with pytest.raises(SnnError, match="cannot write metrics file .*: Permission denied"):
            write_text(folder / "m.jsonl", "x", "metrics file")
    finally:
        folder.chmod(0o700)
    assert list(folder.iterdir()) == []


def test_checkpoint_save_failing_in_torch_keeps_the_previous_checkpoint(
    tmp_path, monkeypatch, mlp_checkpoint
):
    from snncli import checkpoint

    path = tmp_path / "mlp.pt"
    shutil.copy(mlp_checkpoint, path)
    before = path.read_bytes()
    ckpt = checkpoint.load_checkpoint(path)

    def full_disk(obj, f):
        Path(f).write_bytes(b"PK\x03\x04 partial zip")
        raise TORCH_FULL_DISK

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(SnnError, match=f"^cannot write checkpoint {path}: "):
        checkpoint.save_checkpoint(ckpt, path)
    assert path.read_bytes() == before and not leftovers(tmp_path)


@pytest.fixture()
def small_disk(tmp_path):
    """A 3 MiB tmpfs (skipped where mounting is not allowed)."""
    mount = tmp_path / "small disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield mount
    done = subprocess.run(["umount", str(mount)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_really_full_disk_keeps_the_previous_checkpoint(small_disk, mlp_checkpoint):
    """The mlp checkpoint (2.7 MB) fits once in 3 MiB, not twice: torch's zip writer fails."""
    from snncli.checkpoint import load_checkpoint, save_checkpoint

    path = small_disk / "mlp.pt"
    shutil.copy(mlp_checkpoint, path)
    before = path.read_bytes()
    with pytest.raises(SnnError) as info:
        save_checkpoint(load_checkpoint(path), path)
    assert str(info.value) == f"cannot write checkpoint {path}: No space left on device"
    assert path.read_bytes() == before and sorted(small_disk.iterdir()) == [path]


def test_really_full_disk_while_writing_a_raster(small_disk, good, mlp_checkpoint):
    raster = small_disk / "raster.png"
    raster.write_bytes(b"previous raster")
    (small_disk / "filler").write_bytes(bytes(3 * 2**20 - 8192))  # the disk is now full
    result = run("predict", good, good, "-c", mlp_checkpoint, "--raster", raster, "--json")
    assert_failed(result, f"cannot write spike raster {raster}: No space left on device")
    assert [p["prediction"] for p in json.loads(result.stdout)] == [1, 1]  # results kept
    assert raster.read_bytes() == b"previous raster" and not leftovers(small_disk)


def _savefig_fails(monkeypatch, exc):
    from matplotlib.figure import Figure

    def savefig(self, fname, *args, **kwargs):
        Path(fname).write_bytes(b"\x89PNG partial")
        raise exc

    monkeypatch.setattr(Figure, "savefig", savefig)


@pytest.mark.parametrize(
    "exc,reason",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (ValueError("Image size of 800x90000 pixels is too large."), "Image size of"),
    ],
    ids=["disk full", "matplotlib error"],
)
def test_raster_that_cannot_be_written_loses_no_prediction(
    exc, reason, tmp_path, good, mlp_checkpoint, monkeypatch
):
    raster = tmp_path / "raster.png"
    raster.write_bytes(b"previous raster")
    _savefig_fails(monkeypatch, exc)
    result = run("predict", good, "-c", mlp_checkpoint, "--raster", raster)
    assert_failed(result, f"cannot write spike raster {raster}: {reason}")
    assert "one.png → 1" in result.stdout and "raster written" not in result.stdout
    assert raster.read_bytes() == b"previous raster" and not leftovers(tmp_path)


def test_evaluate_plot_that_cannot_be_written_loses_no_result(
    tmp_path, tiny_mnist, mlp_checkpoint, monkeypatch
):
    plot = tmp_path / "eval.png"
    plot.write_bytes(b"previous plot")
    _savefig_fails(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    args = ["evaluate", mlp_checkpoint, "--data-dir", tiny_mnist, "--limit", 20, "--plot", plot]
    result = run(*args, "--json")
    assert_failed(result, f"cannot write plot {plot}: No space left on device")
    assert json.loads(result.stdout)["total"] == 20
    assert plot.read_bytes() == b"previous plot" and not leftovers(tmp_path)


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("target", ["folder", "under a file"])
def test_output_path_that_cannot_be_written_is_refused_before_the_work(
    command, target, tmp_path, good, tiny_mnist, mlp_checkpoint
):
    if target == "folder":
        out, reason = tmp_path / "out.png", "it is a folder"
        out.mkdir()
    else:
        (tmp_path / "a_file").write_text("x")
        out, reason = tmp_path / "a_file" / "out.png", f"{tmp_path / 'a_file'} is not a folder"
    args = {
        "predict": ["predict", good, "-c", mlp_checkpoint, "--raster", out],
        "evaluate": ["evaluate", mlp_checkpoint, "--data-dir", tiny_mnist, "--plot", out],
    }[command]
    result = run(*args)
    what = "spike raster" if command == "predict" else "plot"
    assert_failed(result, f"cannot write {what} {out}: {reason}")
    assert result.stdout == ""  # refused before any work


def test_raster_of_many_images_draws_the_first_ones(tmp_path, mlp_checkpoint, monkeypatch):
    from snncli import predict

    monkeypatch.setattr(predict, "RASTER_IMAGES", 2)
    images = []
    for d in (0, 1, 3):
        images.append(tmp_path / f"{d}.png")
        paper(d).save(images[-1])
    raster = tmp_path / "r.png"
    result = run("predict", *images, "-c", mlp_checkpoint, "--raster", raster)
    assert_ok(result)
    assert "spike raster of the first 2 of 3 images written to" in " ".join(result.stdout.split())
    assert raster.read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- interruptions


def test_interrupted_predict_keeps_what_was_done_as_valid_json(
    tmp_path, mlp_checkpoint, monkeypatch
):
    from snncli import predict

    images = []
    for d in (0, 1, 3, 1):
        images.append(tmp_path / f"{len(images)}.png")
        paper(d).save(images[-1])
    real_read = predict.read_digit

    def interrupted_third(path, stdin=None, digits=True):
        if path == str(images[2]):
            raise KeyboardInterrupt
        return real_read(path, stdin, digits)

    monkeypatch.setattr(predict, "read_digit", interrupted_third)
    monkeypatch.setattr(predict, "BATCH", 1)  # the first two are classified before the third
    raster = tmp_path / "r.png"
    result = run("predict", *images, "-c", mlp_checkpoint, "--json", "--raster", raster)
    assert result.exit_code == 130 and result.stderr.strip() == "interrupted"
    assert [p["prediction"] for p in json.loads(result.stdout)] == [0, 1]
    assert not raster.exists() and not leftovers(tmp_path)


def test_interrupted_checkpoint_save_keeps_the_previous_checkpoint(
    tmp_path, monkeypatch, mlp_checkpoint
):
    from snncli import checkpoint

    path = tmp_path / "mlp.pt"
    shutil.copy(mlp_checkpoint, path)
    before = path.read_bytes()
    ckpt = checkpoint.load_checkpoint(path)

    def interrupted(obj, f):
        Path(f).write_bytes(b"PK partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(ckpt, path)
    assert path.read_bytes() == before and not leftovers(tmp_path)
    assert checkpoint.load_checkpoint(path).model == "mlp"


# --------------------------------------------------------------------------- number options


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"])
@pytest.mark.parametrize("option", ["--lr", "--ema", "--surrogate"])
def test_non_finite_number_options_are_usage_errors(option, value, in_tmp, tiny_mnist):
    result = run("train", "-m", "mlp", "--data-dir", tiny_mnist, option, value)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 2, result.output
    setting = option.lstrip("-")  # a recipe setting: checked, and named, by the Recipe
    assert f"{setting} " in result.output and "must be a finite number" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (in_tmp / "checkpoints").exists()


def test_every_float_option_of_every_command_refuses_nan(in_tmp):
    """The check is declared once and applied to every float option the CLI has."""
    import typer

    group = typer.main.get_command(app)
    floats = [
        (name, param.opts[0])
        for name, command in group.commands.items()
        for param in command.params
        if param.type_descriptor.annotation is float
    ]
    assert {("train", "--lr"), ("train", "--ema"), ("train", "--surrogate")} <= set(floats)
    for name, option in floats:
        result = run(name, option, "nan")
        assert result.exit_code == 2, (name, option)
        assert "finite number" in result.output, (name, option)


# --------------------------------------------------------------------------- config checks


@pytest.mark.parametrize("name", ["csnn", "mlp", "wide"])
def test_every_config_field_is_declared_with_its_check(name):
    import dataclasses

    from snncli.models import get_model_spec

    config_cls = get_model_spec(name).config_cls
    assert all("check" in f.metadata for f in dataclasses.fields(config_cls))
    assert config_cls().check() == []


@pytest.mark.parametrize(
    "name,values,messages",
    [
        ("csnn", {"steps": 0}, ["steps 0 must be from 1 to 10,000"]),
        ("csnn", {"beta": 1.5, "slope": -1.0}, ["beta 1.5 must be in (0, 1]", "slope -1.0"]),
        ("csnn", {"beta": 1.0, "learn_decay": True}, ["beta 1.0 must be below 1 when learn"]),
        ("csnn", {"conv1_channels": 0}, ["conv1_channels 0 must be from 1 to 65,536"]),
        ("mlp", {"tau": math.nan}, ["tau nan must be a finite number"]),
        ("mlp", {"norm": "layer"}, ["norm 'layer' must be one of: none, batch"]),
        ("mlp", {"hidden": 2.5}, ["hidden 2.5 must be a whole number"]),
    ],
)
def test_config_checks_name_each_field(name, values, messages):
    from snncli.models import create_model, get_model_spec

    config_cls = get_model_spec(name).config_cls
    problems = config_cls.problems(values)
    assert len(problems) == len(messages)
    for problem, message in zip(problems, messages, strict=True):
        assert problem.startswith(message)
    with pytest.raises(ConfigError) as info:
        create_model(name, **values)  # building one is held to the same checks
    assert len(str(info.value).splitlines()) == len(messages)


def test_tampered_checkpoint_through_the_library_is_refused_in_the_same_words(mlp_checkpoint):
    from snncli.checkpoint import model_from_checkpoint
    from snncli.errors import CheckpointError

    ckpt = torch.load(mlp_checkpoint, weights_only=True)
    ckpt["config"] = {**ckpt["config"], "steps": -3, "tau": 7}
    with pytest.raises(CheckpointError) as info:
        model_from_checkpoint(ckpt)
    assert str(info.value) == (
        "checkpoint config steps -3 must be from 1 to 10,000 (and 1 more problem)")

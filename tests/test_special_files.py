"""Files that never end: only regular files are read (a link to one is fine). A FIFO, a socket
or a device given as an image, a checkpoint or an MNIST file is one error line for that input
and never a wait: every command here runs under a deadline, so a hang fails the test."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from snncli.cli import app

from conftest import assert_failed, paper

runner = CliRunner()
FIFO = "a FIFO (named pipe)"


class Hung(BaseException):
    """Raised by the deadline's alarm: not an Exception, so no handler of the tool takes it."""


@contextlib.contextmanager
def deadline(seconds: int = 30):
    """Fail (raise Hung) when the block takes longer than `seconds`: a blocked open() of a
    FIFO is interrupted by the alarm."""

    def expire(signum, frame):
        raise Hung(f"still running after {seconds} s: waiting on a file that never ends?")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run(*args):
    with deadline():
        return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def good(tmp_path) -> Path:
    path = tmp_path / "one.png"
    paper(1).save(path)
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.fixture()
def unix_socket(tmp_path):
    """A socket file (bound, listening nowhere in particular), closed afterwards."""
    made = []

    def make(path: Path) -> Path:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        made.append(sock)
        return path

    yield make
    for sock in made:
        sock.close()


def predictions(result) -> list:
    return [entry.get("prediction") for entry in json.loads(result.stdout)]


def test_a_fifo_given_as_an_image_is_one_line_and_the_rest_is_predicted(
    tmp_path, good, mlp_checkpoint
):
    pipe = fifo(tmp_path / "pipe.png")
    result = run("predict", pipe, good, "-c", mlp_checkpoint, "--json")
    assert_failed(result, f"{pipe} is {FIFO}, not an image file")
    assert predictions(result) == [None, 1]


def test_a_fifo_in_a_folder_or_matched_by_a_pattern_fails_alone(tmp_path, mlp_checkpoint):
    folder = tmp_path / "photos"
    folder.mkdir()
    paper(0).save(folder / "a.png")
    pipe = fifo(folder / "b.png")
    paper(1).save(folder / "c.png")
    for given in (folder, str(folder / "*.png")):
        result = run("predict", given, "-c", mlp_checkpoint, "--json")
        assert_failed(result, f"{pipe} is {FIFO}, not an image file")
        assert predictions(result) == [0, None, 1]


def test_sockets_and_devices_are_not_images_but_a_link_to_an_image_is(
    tmp_path, good, mlp_checkpoint, unix_socket
):
    sock = unix_socket(tmp_path / "sock.png")
    zero = tmp_path / "zero.png"
    zero.symlink_to("/dev/zero")  # would never end
    link = tmp_path / "link.png"
    link.symlink_to(good)
    result = run("predict", sock, zero, link, "-c", mlp_checkpoint, "--json")
    assert_failed(result, f"{sock} is a socket, not an image file",
                  f"{zero} is a character device, not an image file")
    assert predictions(result) == [None, None, 1]
    tables = run("predict", sock, zero, link, "-c", mlp_checkpoint)
    assert tables.exit_code == 1 and "1 predicted, 2 failed" in tables.stdout


def test_a_fifo_as_a_checkpoint_is_one_line_for_every_command(tmp_path, good, tiny_mnist):
    pipe = fifo(tmp_path / "m.last.pt")
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in (
        ("predict", good, "-c", pipe),
        ("evaluate", pipe, "--data-dir", tiny_mnist),
        ("train", "--resume", pipe),
    ):
        assert_failed(run(*args), f"{pipe} is {FIFO}, not a checkpoint file")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_link_to_a_device_as_a_checkpoint_is_refused(tmp_path, good):
    zero = tmp_path / "zero.pt"
    zero.symlink_to("/dev/zero")
    assert_failed(run("predict", good, "-c", zero), f"{zero} is a character device")


@pytest.fixture()
def mnist_with(tmp_path, tiny_mnist):
    """A copy of the tiny MNIST folder whose test images file is replaced by `make(path)`."""

    def replace(make) -> Path:
        folder = tmp_path / "mnist"
        shutil.copytree(tiny_mnist, folder)
        images = folder / "t10k-images-idx3-ubyte.gz"
        images.unlink()
        make(images)
        return images

    return replace


def test_a_fifo_among_the_mnist_files_is_one_line(mnist_with, mlp_checkpoint, tmp_path):
    pipe = mnist_with(fifo)
    expected = f"{pipe} is {FIFO}, not an MNIST file"
    assert_failed(run("evaluate", mlp_checkpoint, "--data-dir", pipe.parent), expected)
    assert_failed(run("predict", "--sample", 3, "-c", mlp_checkpoint, "--data-dir", pipe.parent),
                  expected)
    out = tmp_path / "run" / "m.pt"
    result = run("train", "-m", "mlp", "--recipe", "seed", "--data-dir", pipe.parent,
                 "--epochs", 1, "--out", out, "--device", "cpu")
    assert_failed(result, expected)
    assert not out.parent.exists()


def test_a_socket_or_a_link_to_a_device_among_the_mnist_files_is_one_line(
    mnist_with, mlp_checkpoint, unix_socket
):
    sock = mnist_with(unix_socket)
    assert_failed(run("evaluate", mlp_checkpoint, "--data-dir", sock.parent),
                  f"{sock} is a socket, not an MNIST file")
    sock.unlink()
    sock.symlink_to("/dev/zero")
    assert_failed(run("evaluate", mlp_checkpoint, "--data-dir", sock.parent),
                  f"{sock} is a character device, not an MNIST file")


def test_a_fifo_as_the_data_folder_is_one_line(tmp_path, mlp_checkpoint):
    pipe = fifo(tmp_path / "mnist")
    assert_failed(run("evaluate", mlp_checkpoint, "--data-dir", pipe),
                  f"data folder {pipe} is {FIFO}, not a folder")

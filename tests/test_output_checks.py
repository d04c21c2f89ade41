"""Output that cannot be written is found before training, not after an epoch: every file a
run writes (best and last checkpoints, metrics file, plot) is checked by creating a file in
its folder before the first iteration, and a refusal is one line naming the folder.

The tests run as root, whom permission bits do not stop. So the read-only folders here are
ones that stop root too: a read-only tmpfs mounted for the test (skipped where mounting is not
allowed), and a folder without write permission for a process that has given up root's
capability to override permissions (CAP_DAC_OVERRIDE; skipped where it cannot)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from snncli.cli import app
from snncli.train import Trainer, TrainOptions, train

from conftest import assert_failed

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
READ_ONLY = "Read-only file system"


def mount_tmpfs(folder: Path, *options: str) -> None:
    folder.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(["size=64m", *options]),
                           "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")


@pytest.fixture()
def mounts():
    """mount(folder, *options): a small tmpfs there, unmounted after the test."""
    made: list[Path] = []

    def mount(folder: Path, *options: str) -> Path:
        mount_tmpfs(folder, *options)
        made.append(folder)
        return folder

    yield mount
    for folder in reversed(made):
        done = subprocess.run(["umount", str(folder)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


@pytest.fixture()
def iterations(monkeypatch) -> list[int]:
    """The training iterations that ran (none, when outputs are checked first)."""
    ran: list[int] = []
    step = Trainer.step

    def counted(self, index):
        ran.append(self.iteration)
        return step(self, index)

    monkeypatch.setattr(Trainer, "step", counted)
    return ran


def train_args(data: Path, *more: str) -> list[str]:
    return ["train", "-m", "mlp", "--recipe", "seed", "--data-dir", str(data), "--train-limit",
            "64", "--test-limit", "20", "--epochs", "1", "--device", "cpu", *more]


def test_a_read_only_checkpoints_folder_is_one_line_before_the_first_iteration(
    in_tmp, tiny_mnist, mounts, iterations
):
    mounts(in_tmp / "checkpoints", "ro")
    result = runner.invoke(app, train_args(tiny_mnist))
    assert_failed(result, "cannot write checkpoint checkpoints/mlp.pt: no file can be created "
                          f"in folder checkpoints ({READ_ONLY})")
    assert iterations == [] and list((in_tmp / "checkpoints").iterdir()) == []


def test_out_in_a_read_only_folder_is_one_line_before_the_first_iteration(
    in_tmp, tiny_mnist, mounts, iterations
):
    ro = mounts(in_tmp / "ro", "ro")
    result = runner.invoke(app, train_args(tiny_mnist, "--out", str(ro / "sub" / "m.pt")))
    assert_failed(result, f"cannot write checkpoint {ro / 'sub' / 'm.pt'}: no file can be "
                          f"created in folder {ro / 'sub'} ({READ_ONLY})")
    assert iterations == []


@pytest.mark.parametrize("name, what", [
    ("m.last.pt", "checkpoint"), ("m.metrics.jsonl", "metrics file"), ("m.png", "plot"),
])
def test_every_output_is_checked_where_it_is_written(name, what, in_tmp, tiny_mnist, mounts,
                                                    iterations):
    """A file of the run that is a link into a read-only folder is written there (the link
    stays): that folder is checked."""
    ro = mounts(in_tmp / "ro", "ro")
    out = in_tmp / "run"
    out.mkdir()
    (out / name).symlink_to(ro / name)
    result = runner.invoke(app, train_args(tiny_mnist, "--out", str(out / "m.pt")))
    assert_failed(result, f"cannot write {what} {out / name}: no file can be created in folder "
                          f"{ro} ({READ_ONLY})")
    assert iterations == [] and sorted(p.name for p in out.iterdir()) == [name]


def test_a_resumed_run_whose_folder_became_read_only_is_one_line(tmp_path, tiny_mnist, mounts,
                                                                 iterations):
    folder = mounts(tmp_path / "disk")
    train(TrainOptions(model="mlp", recipe="seed", overrides={"epochs": 1, "batch_size": 32},
                       data_dir=str(tiny_mnist), out=str(folder / "m.pt"), train_limit=64,
                       test_limit=20, device="cpu", plot=False))
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    iterations.clear()
    result = runner.invoke(app, ["train", "--resume", str(folder / "m.last.pt"), "--epochs",
                                 "2"])
    assert_failed(result, f"cannot write checkpoint {folder / 'm.pt'}: no file can be created "
                          f"in folder {folder} ({READ_ONLY})")
    assert iterations == []
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def _without_root_overrides() -> None:
    """In the child, before it runs: drop the capabilities that let root write where
    permission bits say no (from the bounding set, so the program run keeps none of them)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "cannot drop a capability")


def test_a_folder_without_write_permission_is_one_line_before_training(in_tmp, tiny_mnist):
    """A real permission refusal, in a process of its own (for root: one without its
    capability to override permissions). No training step runs: the process ends in seconds
    and says so before any progress is drawn."""
    locked = in_tmp / "checkpoints"
    locked.mkdir()
    locked.chmod(0o555)
    drop = _without_root_overrides if os.geteuid() == 0 else None
    try:
        done = subprocess.run(
            [sys.executable, "-m", "snncli", *train_args(tiny_mnist)], cwd=in_tmp,
            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
            timeout=300, preexec_fn=drop,
        )
    except subprocess.SubprocessError as exc:
        if "cannot drop" in str(exc):
            pytest.skip("cannot drop root's capabilities here")
        raise
    finally:
        locked.chmod(0o755)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        "error: cannot write checkpoint checkpoints/mlp.pt: no file can be created in folder "
        "checkpoints (Permission denied)"]
    assert "iteration" not in done.stdout and list(locked.iterdir()) == []

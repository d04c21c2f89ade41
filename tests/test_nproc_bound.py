"""`--nproc` (and a torchrun run's size) is bounded: no more processes than this machine has
GPUs (CUDA) or CPU cores, and no more than a batch has images to share among them. A refusal
is one line saying the limit, before any process starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from snncli.cli import app
from snncli.train import TrainOptions, train

from conftest import assert_failed

runner = CliRunner()


def common(data: Path) -> list[str]:
    return ["train", "-m", "mlp", "--recipe", "seed", "--data-dir", str(data), "--train-limit",
            "64", "--test-limit", "20", "--val-size", "0", "--epochs", "1", "--batch-size", "32",
            "--device", "cpu", "--out", "m.pt"]


@pytest.fixture()
def no_launch(monkeypatch, in_tmp):
    """Starting processes fails the test: every refusal comes before."""

    def launched(*args, **kwargs):
        raise AssertionError("processes were started")

    from torch.distributed.launcher import api

    monkeypatch.setattr(api, "elastic_launch", launched)
    return in_tmp


def cores(monkeypatch, count: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(count)), raising=False)


def test_more_processes_than_cores_is_one_line_naming_the_limit(tiny_mnist, no_launch,
                                                                 monkeypatch):
    cores(monkeypatch, 2)
    result = runner.invoke(app, [*common(tiny_mnist), "--nproc", "3"])
    assert_failed(result, "--nproc 3 is more processes than this machine's 2 CPU cores: use at "
                          "most 2")
    assert not (no_launch / "m.pt").exists()


def test_thousands_of_processes_are_refused_on_this_machine(tiny_mnist, no_launch):
    """Whatever the machine: its own usable cores are the limit."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    result = runner.invoke(app, [*common(tiny_mnist), "--nproc", "10000", "--batch-size",
                                 "100000"])
    assert_failed(result, f"--nproc 10000 is more processes than this machine's {usable} CPU "
                          f"core{'s' * (usable != 1)}: use at most {usable}")


def test_more_processes_than_a_batch_has_images_is_one_line(tiny_mnist, no_launch,
                                                            monkeypatch):
    cores(monkeypatch, 64)
    result = runner.invoke(app, [*common(tiny_mnist), "--nproc", "40"])
    assert_failed(result, "--nproc 40 is more processes than a batch of 32 images can be shared "
                          "among (--batch-size): use at most 32")


def test_more_processes_than_gpus_is_one_line(tiny_mnist, no_launch, monkeypatch):
    from snncli import runtime

    monkeypatch.setattr(runtime, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    cores(monkeypatch, 64)
    result = runner.invoke(app, [*common(tiny_mnist)[:-4], "--device", "cuda", "--out", "m.pt",
                                 "--nproc", "3"])
    assert_failed(result, "--nproc 3 is more processes than this machine's 2 GPUs (one per "
                          "process): use at most 2")


def test_a_resumed_run_is_bounded_by_its_saved_batch(tiny_mnist, tmp_path, no_launch,
                                                    monkeypatch):
    """The saved run's batch size and process count count, not the options' defaults."""
    train(TrainOptions(model="mlp", recipe="seed", overrides={"epochs": 1, "batch_size": 4},
                       data_dir=str(tiny_mnist), out=str(tmp_path / "m.pt"), train_limit=8,
                       test_limit=8, val_size=0, device="cpu", plot=False))
    last = tmp_path / "m.last.pt"
    ckpt = torch.load(last, weights_only=True)
    ckpt["training_state"]["nproc"] = 6  # as if saved by a run on 6 processes
    torch.save(ckpt, last)
    cores(monkeypatch, 64)
    result = runner.invoke(app, ["train", "--resume", str(last), "--nproc", "6"])
    assert_failed(result, "--nproc 6 is more processes than a batch of 4 images can be shared "
                          "among (--batch-size): use at most 4")
    cores(monkeypatch, 2)
    result = runner.invoke(app, ["train", "--resume", str(last), "--nproc", "6"])
    assert_failed(result, "--nproc 6 is more processes than this machine's 2 CPU cores")


TORCHRUN = dict(RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="1")


@pytest.mark.parametrize("world, here, message", [
    ("3", "3", "3 processes of this run on this machine are more than its 2 CPU cores: start "
               "at most 2 per machine"),
    ("40", "2", "40 processes are more than a batch of 32 images can be shared among "
                "(--batch-size): start at most 32"),
], ids=["cores", "batch"])
def test_a_torchrun_run_too_large_is_one_line_before_the_processes_meet(
    world, here, message, tiny_mnist, in_tmp, monkeypatch
):
    """One process of a run torchrun started (its variables set by hand): it refuses before
    joining the others (which would wait for processes that never come)."""
    for name, value in {**TORCHRUN, "WORLD_SIZE": world, "LOCAL_WORLD_SIZE": here}.items():
        monkeypatch.setenv(name, value)
    cores(monkeypatch, 2)
    result = runner.invoke(app, common(tiny_mnist))
    assert_failed(result, message)
    assert not (in_tmp / "m.pt").exists()

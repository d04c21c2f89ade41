"""A run never lost: interrupt + resume is the same run, bit for bit; signals save and say how
to continue; a resume that would change the run is refused."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from snncli.cli import app
from snncli.errors import SnnError
from snncli.train import TrainingInterrupted, TrainOptions, train

runner = CliRunner()
# Seed recipes on a few hundred images: 3 iterations of 64 per epoch, 2 epochs, evaluated
# every 2 iterations (so an evaluation falls mid-epoch, before and after the interruption).
RUNS = {
    "mlp": {"batch_size": 64, "epochs": 2},
    "csnn": {"batch_size": 64, "epochs": 2, "steps": 3},
}


def options(tiny_mnist, out: Path, model: str, dropout: float = 0.0, **extra) -> TrainOptions:
    return TrainOptions(
        model=model, recipe="seed", overrides={**RUNS[model], "dropout": dropout},
        data_dir=str(tiny_mnist),
        out=str(out), train_limit=200, test_limit=40, val_size=8, eval_every=2, plot=False,
        device="cpu", **extra,
    )


def interrupt_at(iteration: int, signum: int = signal.SIGINT):
    """An event handler that sends this process `signum` after training iteration N."""

    def on_event(event):
        if event["kind"] == "step" and event["iteration"] == iteration:
            os.kill(os.getpid(), signum)

    return on_event


# With dropout, the masks drawn after the interruption must be the ones the whole run drew.
@pytest.mark.parametrize("model,dropout", [("mlp", 0.0), ("csnn", 0.0), ("csnn", 0.5)])
def test_interrupted_and_resumed_run_is_bit_identical_to_an_uninterrupted_one(
    model, dropout, tiny_mnist, tmp_path
):
    whole = train(options(tiny_mnist, tmp_path / "whole" / "m.pt", model, dropout))
    with pytest.raises(TrainingInterrupted) as stopped:  # mid-epoch 1 of 3 iterations
        train(options(tiny_mnist, tmp_path / "cut" / "m.pt", model, dropout), interrupt_at(2))
    assert stopped.value.exit_code == 130
    last = tmp_path / "cut" / "m.last.pt"
    assert f"snn train --resume {last}" in str(stopped.value)
    assert torch.load(last, weights_only=True)["training_state"]["iteration"] == 2
    resumed = train(TrainOptions(resume=str(last), plot=False))

    for name in ("m.pt", "m.last.pt"):
        a = torch.load(tmp_path / "whole" / name, weights_only=True)
        b = torch.load(tmp_path / "cut" / name, weights_only=True)
        assert a["state_dict"].keys() == b["state_dict"].keys()
        for key, value in a["state_dict"].items():
            assert torch.equal(value, b["state_dict"][key]), (name, key)
        assert a["metrics"] == {**b["metrics"], "train_seconds": a["metrics"]["train_seconds"]}
    strip = [{k: v for k, v in r.items() if k != "train_seconds"} for r in whole.rows]
    assert [{k: v for k, v in r.items() if k != "train_seconds"} for r in resumed.rows] == strip
    metrics = (tmp_path / "cut" / "m.metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in metrics] == [2, 3, 4, 6]  # continued


def test_a_finished_run_can_be_extended_with_more_epochs(tiny_mnist, tmp_path):
    first = options(tiny_mnist, tmp_path / "m.pt", "mlp")
    first.overrides |= {"schedule": "onecycle", "epochs": 1}
    train(first)
    extended = train(TrainOptions(resume=str(tmp_path / "m.last.pt"), overrides={"epochs": 2},
                                  plot=False))
    assert [r["iteration"] for r in extended.rows] == [2, 3, 4, 6]
    ckpt = torch.load(tmp_path / "m.last.pt", weights_only=True)
    assert ckpt["recipe"]["epochs"] == 2 and ckpt["epoch"] == 2
    with pytest.raises(SnnError, match="fewer than the run has done"):
        train(TrainOptions(resume=str(tmp_path / "m.last.pt"), overrides={"epochs": 1}))


def test_resume_refuses_what_would_change_the_run(tiny_mnist, tmp_path):
    train(options(tiny_mnist, tmp_path / "m.pt", "mlp"))
    with pytest.raises(SnnError, match="--lr would change it"):
        train(TrainOptions(resume=str(tmp_path / "m.last.pt"), overrides={"lr": 0.5}))
    with pytest.raises(SnnError, match="holds no training state"):
        train(TrainOptions(resume=str(tmp_path / "m.pt")))  # the best checkpoint: weights only
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(SnnError, match="not an snncli checkpoint"):
        train(TrainOptions(resume=str(tmp_path / "notes.pt")))


def test_resume_errors_on_the_command_line_are_one_line(tiny_mnist, tmp_path):
    train(options(tiny_mnist, tmp_path / "m.pt", "mlp"))
    last = str(tmp_path / "m.last.pt")
    for args, code, message in [
        (["--lr", "0.1"], 2, "--lr would change the saved run"),
        (["--seed", "3"], 2, "--seed would change the saved run"),
        (["--model", "csnn"], 2, "--model would change the saved run"),
    ]:
        result = runner.invoke(app, ["train", "--resume", last, *args])
        assert result.exit_code == code, result.output
        assert message in " ".join(result.output.split())
        assert "Traceback" not in result.output
    result = runner.invoke(app, ["train", "--resume", str(tmp_path / "m.pt")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "holds no training state" in result.stderr


def test_resume_on_the_command_line_continues_the_run(tiny_mnist, tmp_path):
    """`snn train --resume X.last.pt` (Typer passes None for every recipe option not given)."""
    train(options(tiny_mnist, tmp_path / "m.pt", "mlp"))
    last = str(tmp_path / "m.last.pt")
    result = runner.invoke(app, ["train", "--resume", last, "--epochs", "3"])
    assert result.exit_code == 0, result.output
    state = torch.load(last, weights_only=True)["training_state"]
    assert (state["epoch"], state["iteration"]) == (4, 9)  # 3 epochs of 3 iterations
    result = runner.invoke(app, ["train", "--resume", last])  # finished: nothing more to do
    assert result.exit_code == 0, result.output
    assert torch.load(last, weights_only=True)["training_state"]["iteration"] == 9


def _start_training(tmp_path: Path, tiny_mnist: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "snncli", "train", "-m", "mlp", "--recipe", "seed",
            "--data-dir", str(tiny_mnist), "--out", str(tmp_path / "m.pt"), "--epochs", "200",
            "--batch-size", "16", "--train-limit", "400", "--test-limit", "20", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_the_run_and_prints_the_resume_command(signum, code, tiny_mnist, tmp_path):
    process = _start_training(tmp_path, tiny_mnist)
    metrics = tmp_path / "m.metrics.jsonl"
    deadline = time.monotonic() + 120
    while not metrics.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the first evaluation: training is under way
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert f"snn train --resume {tmp_path / 'm.last.pt'}" in lines[0]
    state = torch.load(tmp_path / "m.last.pt", weights_only=True)["training_state"]
    assert 0 < state["iteration"] < 200 * 23
    assert not list(tmp_path.glob("*.tmp"))


def test_plain_progress_lines_in_a_log(tiny_mnist, tmp_path):
    """Not on a terminal: no live bar, a plain line at most every 30 s and at evaluations."""
    from rich.console import Console

    from snncli.ui import TrainProgress

    console = Console(file=open(tmp_path / "log.txt", "w"), force_terminal=False, width=200)
    ticks = iter(range(0, 10_000, 10))  # each reading of the clock: 10 s later
    with TrainProgress(console, clock=lambda: next(ticks)) as progress:
        train(options(tiny_mnist, tmp_path / "m.pt", "mlp"), on_event=progress.handle)
    console.file.close()
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert lines[0].startswith("training on cpu (")
    progress_lines = [line for line in lines if line.startswith("iteration ")]
    assert progress_lines and all("/6 epoch" in line and "img/s, ETA " in line
                                  for line in progress_lines)
    assert sum("validation" in line and "test accuracy" in line for line in lines) == 4
    assert len(progress_lines) < 6 + 4  # not one per iteration


def test_a_diverging_run_stops_in_one_line_and_leaves_no_files(tiny_mnist, tmp_path, monkeypatch):
    from snncli.models.mlp import MLP

    real_loss = MLP.loss
    monkeypatch.setattr(MLP, "loss", lambda self, *a, **k: real_loss(self, *a, **k) * math.nan)
    with pytest.raises(SnnError, match="training diverged at iteration 1 .loss nan.; try a lower"):
        train(options(tiny_mnist, tmp_path / "m.pt", "mlp"))
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_training_saves_is_one_line_and_loses_nothing(tiny_mnist, tmp_path,
                                                                          monkeypatch):
    """The first checkpoint save fails in torch's zip writer: one error line, exit 1, and the
    previous run's files at those paths are as they were (no new file, no temp file)."""
    from snncli import checkpoint

    previous = {"m.pt": b"previous best", "m.metrics.jsonl": b'{"previous": 1}\n'}
    for name, data in previous.items():
        (tmp_path / name).write_bytes(data)

    def full_disk(obj, f):
        Path(f).write_bytes(b"PK\x03\x04 partial zip")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 21")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    result = runner.invoke(app, [
        "train", "-m", "mlp", "--recipe", "seed", "--data-dir", str(tiny_mnist), "--out",
        str(tmp_path / "m.pt"), "--train-limit", "200", "--test-limit", "20", "--device", "cpu",
    ])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write checkpoint {tmp_path}")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == previous

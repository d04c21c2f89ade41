"""`snn train --nproc 2` and torchrun on the CPU (gloo): one set of files, the same training
either way, resumable on as many processes, and a process that dies or a signal ends the run
in one line naming the resumable checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
RUN_FILES = {"m.pt", "m.last.pt", "m.metrics.jsonl", "m.png"}


def common(data: Path, epochs: int) -> list[str]:
    """The mlp seed recipe on 200 training images (20 held out): 6 iterations of 32 an epoch."""
    return ["-m", "mlp", "--recipe", "seed", "--data-dir", str(data), "--train-limit", "200",
            "--test-limit", "40", "--val-size", "20", "--device", "cpu", "--batch-size", "32",
            "--epochs", str(epochs), "--out", "m.pt"]


def snn(folder: Path, *args: str, torchrun: bool = False) -> subprocess.CompletedProcess:
    folder.mkdir(exist_ok=True)
    start = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"] if (
        torchrun) else []
    return subprocess.run([sys.executable, *start, "-m", "snncli", "train", *args], cwd=folder,
                          env=ENV, capture_output=True, text=True, timeout=600)


def weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["state_dict"]


def test_nproc_2_trains_as_torchrun_does_writes_one_set_of_files_and_resumes(
        tiny_mnist, tmp_path):
    ours = snn(tmp_path / "nproc", *common(tiny_mnist, 2), "--nproc", "2")
    assert ours.returncode == 0 and ours.stderr == "", ours.stderr
    assert ours.stdout.count("training on cpu in 2 processes") == 1
    assert ours.stdout.count("training finished") == 1
    assert {p.name for p in (tmp_path / "nproc").iterdir()} == RUN_FILES
    rows = (tmp_path / "nproc" / "m.metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["iteration"] for r in rows] == [6, 12]
    last = tmp_path / "nproc" / "m.last.pt"
    assert torch.load(last, weights_only=True)["training_state"]["nproc"] == 2

    theirs = snn(tmp_path / "torchrun", *common(tiny_mnist, 2), torchrun=True)
    assert theirs.returncode == 0 and theirs.stderr == "", theirs.stderr
    assert {p.name for p in (tmp_path / "torchrun").iterdir()} == RUN_FILES
    for key, value in weights(last).items():  # the same training, bit for bit
        assert torch.equal(value, weights(tmp_path / "torchrun" / "m.last.pt")[key]), key

    refused = snn(tmp_path / "nproc", "--resume", "m.last.pt", "--epochs", "3")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "error: m.last.pt was saved by a run on 2 processes, not 1: continue it on as many "
        "with: snn train --resume m.last.pt --nproc 2"]
    refused = snn(tmp_path / "nproc", "--resume", "m.last.pt", "--nproc", "3")  # 3 processes
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "error: m.last.pt was saved by a run on 2 processes, not 3: continue it on as many "
        "with: snn train --resume m.last.pt --nproc 2"]
    resumed = snn(tmp_path / "nproc", "--resume", "m.last.pt", "--epochs", "3", "--nproc", "2")
    assert resumed.returncode == 0 and resumed.stderr == "", resumed.stderr
    assert "resuming at iteration 12" in resumed.stdout
    rows = (tmp_path / "nproc" / "m.metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["iteration"] for r in rows] == [6, 12, 18]


def _start_long_run(folder: Path, data: Path) -> subprocess.Popen:
    folder.mkdir()
    return subprocess.Popen(
        [sys.executable, "-m", "snncli", "train", *common(data, 1000), "--nproc", "2"],
        cwd=folder, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_a_save(process: subprocess.Popen, last: Path) -> list[int]:
    """Once the run has saved a resumable checkpoint: the pids of its worker processes."""
    deadline = time.monotonic() + 300
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert last.exists(), process.communicate()
    return sorted(pid for pid in _descendants(process.pid)  # started in rank order
                  if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text())


def _descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_descendants(int(child))]
    return found


def test_a_process_that_dies_ends_the_run_in_one_line_naming_the_checkpoint(
        tiny_mnist, tmp_path):
    run = _start_long_run(tmp_path / "run", tiny_mnist)
    workers = _wait_for_a_save(run, tmp_path / "run" / "m.last.pt")
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGKILL)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1
    assert stderr.splitlines() == [
        "error: training process 1 of 2 was killed by SIGKILL; the others were stopped; the last "
        "resumable checkpoint is m.last.pt: snn train --resume m.last.pt --nproc 2"]
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    state = torch.load(tmp_path / "run" / "m.last.pt", weights_only=True)["training_state"]
    assert state["nproc"] == 2 and state["iteration"] > 0


def test_a_signal_to_the_launcher_saves_the_run_and_says_how_to_continue(tiny_mnist, tmp_path):
    run = _start_long_run(tmp_path / "run", tiny_mnist)
    _wait_for_a_save(run, tmp_path / "run" / "m.last.pt")
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 143
    [line] = stderr.splitlines()
    assert line.startswith("error: SIGTERM received: training stopped at iteration ")
    assert line.endswith(" and saved; continue it with: snn train --resume m.last.pt --nproc 2")
    iteration = int(line.split("iteration ")[1].split()[0])
    state = torch.load(tmp_path / "run" / "m.last.pt", weights_only=True)["training_state"]
    assert state["iteration"] == iteration


def test_nproc_under_torchrun_is_refused_in_one_line(tiny_mnist, monkeypatch):
    from typer.testing import CliRunner

    from snncli.cli import app

    for name, value in dict(RANK="0", LOCAL_RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                            MASTER_PORT="1").items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["train", *common(tiny_mnist, 1), "--nproc", "2"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: --nproc starts processes of its own: under torchrun, leave it out (torchrun's "
        "--nproc-per-node says how many)"]

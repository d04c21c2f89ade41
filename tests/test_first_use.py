"""What a new user meets first: which weights are used and why, output that stays one line in
a log, --version and shell completion, compact rows for many predictions, and help text that
reads whole."""

import io
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from snncli import choice, pretrained
from snncli.cli import app

from conftest import glyph

runner = CliRunner()


def run(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env, prog_name="snn")


def unfinished_copy(last: Path, target: Path, epochs_done: int = 1) -> Path:
    """A copy of the finished run's resumable checkpoint `last`, as if the run had stopped
    after `epochs_done` of its epochs."""
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["epoch"] == ckpt["recipe"]["epochs"] == 4  # the fixture's run, finished
    ckpt["epoch"] = epochs_done
    torch.save(ckpt, target)
    return target


def lasts(best: Path) -> Path:
    return best.with_name(best.stem + ".last.pt")


@pytest.fixture()
def bundled_mlp(mlp_checkpoint, tmp_path, monkeypatch):
    """A bundled-weights folder holding a compacted mlp with the figures release records."""
    from snncli.checkpoint import load_checkpoint, save_checkpoint

    monkeypatch.setattr(pretrained, "BUNDLED_DIR", tmp_path / "bundled")
    ckpt = load_checkpoint(mlp_checkpoint).compacted("mlp.pt")
    ckpt["bundled"] |= {"test_accuracy_after": 0.9876}
    return save_checkpoint(ckpt, tmp_path / "bundled" / "mlp.pt")


def test_an_unfinished_run_gives_way_to_a_finished_one_or_the_bundled_weights(
        mlp_checkpoint, bundled_mlp, tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    shutil.copy(mlp_checkpoint, folder / "run.pt")  # the best so far of an interrupted run
    unfinished_copy(lasts(mlp_checkpoint), folder / "run.last.pt")
    path, why = choice.choose_checkpoint(None, "mlp", folder=folder)
    assert path == bundled_mlp
    assert why.startswith(f"using the bundled mlp weights, not the unfinished run "
                          f"{folder / 'run.last.pt'} (1 of 4 epochs)")
    # A finished run's best checkpoint, older than the unfinished run, is chosen over both.
    for name in ("old.pt", "old.last.pt"):
        shutil.copy(mlp_checkpoint.with_name(name.replace("old", "mlp")), folder / name)
        (folder / name).touch()
    for name in ("run.pt", "run.last.pt"):
        (folder / name).touch()  # the newest files
    path, why = choice.choose_checkpoint(None, "mlp", folder=folder)
    assert path == folder / "old.pt", why
    assert "the best checkpoint of the newest finished run" in why and "run.last.pt" in why
    # Named, either is used; `bundled` names the bundled weights whatever checkpoints/ holds.
    assert choice.choose_checkpoint(folder / "run.last.pt", folder=folder)[0] == (
        folder / "run.last.pt")
    path, why = choice.choose_checkpoint("bundled", "mlp", folder=folder)
    assert path == bundled_mlp and why == "using the bundled mlp weights (--checkpoint bundled)"
    # A lone checkpoint (no .last.pt beside it says how its run went) is used when newest.
    shutil.copy(mlp_checkpoint, folder / "copied.pt")
    path, why = choice.choose_checkpoint(None, "mlp", folder=folder)
    assert path == folder / "copied.pt" and ", the newest checkpoint in" in why


def test_predict_and_evaluate_take_bundled_and_say_why_in_one_line(
        mlp_checkpoint, bundled_mlp, tiny_mnist, in_tmp):
    (in_tmp / "checkpoints").mkdir()
    shutil.copy(mlp_checkpoint, in_tmp / "checkpoints" / "mlp.pt")
    unfinished_copy(lasts(mlp_checkpoint), in_tmp / "checkpoints" / "mlp.last.pt")
    image = in_tmp / "seven.png"
    Image.fromarray(glyph(7, np.random.default_rng(0))).save(image)
    why = ("using the bundled mlp weights, not the unfinished run checkpoints/mlp.last.pt (1 of "
           "4 epochs) (give one with --checkpoint, or finish it with 'snn train --resume')")
    result = run("predict", image, "-m", "mlp")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == why  # one line, although longer than 80 columns
    data = ["--data-dir", tiny_mnist, "--limit", 20]
    for args in (["-m", "mlp"], ["bundled", "-m", "mlp"], ["-c", "bundled", "-m", "mlp"],
                 ["--checkpoint", bundled_mlp]):
        result = run("evaluate", *args, *data)
        assert result.exit_code == 0, result.output
        assert f"Evaluation of {bundled_mlp}" in " ".join(result.output.split())
    assert run("evaluate", "-c", "bundled", "-m", "mlp", *data).output.splitlines()[0] == (
        "using the bundled mlp weights (--checkpoint bundled)")
    named = run("evaluate", "-c", "checkpoints/mlp.last.pt", *data)  # named: used, no dim line
    assert named.output.startswith("Evaluation of checkpoints/mlp.last.pt"), named.output
    both = run("evaluate", "a.pt", "-c", "b.pt", *data)
    assert both.exit_code == 2 and "two checkpoints given" in both.output


def test_training_lines_in_a_log_are_never_wrapped(tiny_mnist, tmp_path):
    from snncli.ui import TrainProgress

    log = io.StringIO()
    console = Console(file=log, width=40, force_terminal=False)  # as in a file or pipe
    progress = TrainProgress(console)
    images = {"train": 180, "validation": 20, "test": 40}
    progress.on_start({"total": 1752, "done": 0, "train_seconds": 0.0, "device": "cpu",
                       "processes": 1, "recipe_name": "quick", "precision": "bf16",
                       "images": images, "recipe": {
                           "epochs": 4, "batch_size": 128, "lr": 5e-3, "schedule": "onecycle",
                           "steps": 6, "augment": "light", "init": "pytorch", "styles": 0.03,
                           "norm": "batch", "decay": "fixed", "loss": "rate", "surrogate": 5.0,
                           "ema": 0.0}})
    progress.on_step({"iteration": 1234, "epoch": 3, "loss": 0.1234, "batch_accuracy": 0.98,
                      "images": 128, "train_seconds": 1000.0})
    progress.on_eval({"epoch": 3, "iteration": 1314, "val_accuracy": 0.99, "test_accuracy": 0.99,
                      "best": True})
    lines = log.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["training", "iteration", "iteration", "epoch"]
    assert lines[0].endswith("180 training images, 20 held out for validation")
    assert re.fullmatch(r"iteration 1,234/1,752 epoch 3: loss 0\.1234, accuracy 97\.66%, "
                        r"\d+ img/s, ETA \d+:\d\d:\d\d", lines[1]), lines[1]
    # And through the CLI, whose output here is not a terminal either.
    result = run("train", "-m", "mlp", "--recipe", "seed", "--data-dir", tiny_mnist,
                 "--train-limit", 300, "--test-limit", 50, "--device", "cpu", "--epochs", 1,
                 "--out", tmp_path / "m.pt")
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("training on cpu") and first.endswith("30 held out for validation")


def test_version_and_shell_completion():
    result = run("--version")
    assert result.exit_code == 0 and result.output == f"snncli {version('snncli')}\n"
    code = ("import sys; from typer.testing import CliRunner; from snncli.cli import app; "
            "r = CliRunner().invoke(app, ['--version']); assert r.exit_code == 0, r.output; "
            "assert 'torch' not in sys.modules, 'torch imported'; print(r.output, end='')")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.returncode == 0 and found.stdout == result.output, found.stderr
    found = subprocess.run([sys.executable, "-m", "snncli", "--version"], capture_output=True,
                           text=True)
    assert found.returncode == 0 and found.stdout == result.output
    help_text = run("--help", env={"COLUMNS": "100"}).output
    assert "--install-completion" in help_text and "--show-completion" in help_text
    # The installed command, in a process of its own (completion reads the program's name).
    snn = Path(sys.executable).with_name("snn")
    # The script --show-completion prints for bash (named here, not detected from the shell
    # that started the tests: that detection reads the process tree).
    script = subprocess.run([str(snn)], capture_output=True, text=True,
                            env=os.environ | {"_SNN_COMPLETE": "source_bash"})
    assert script.returncode == 0 and "_SNN_COMPLETE=complete_bash" in script.stdout


def digit_images(folder: Path, count: int) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for digit in range(count):
        path = folder / f"digit_{digit}.png"
        Image.fromarray(255 - glyph(digit, np.random.default_rng(digit))).resize((90, 90)).save(
            path)
        paths.append(path)
    return paths


ROW = re.compile(r"(\S+) +([0-9-]) +([0-9]) +(\d+)%(  [✓✗])?(  runner-up \d \(\d+%\))?")


def test_many_predictions_are_one_row_each_and_tables_on_request(mlp_checkpoint, tiny_mnist,
                                                                 tmp_path):
    args = ["predict", "--sample", 20, "--data-dir", tiny_mnist, "-c", mlp_checkpoint]
    result = run(*args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split() == ["image", "true", "pred", "confidence"]
    rows = [ROW.fullmatch(line) for line in lines[2:22]]
    assert all(rows), lines[2:22]
    right = sum(row[2] == row[3] for row in rows)
    assert all((row[5] == "  ✓") == (row[2] == row[3]) for row in rows)
    assert lines[22:] == [f"Summary: 20 predicted; {right} right: accuracy {right * 5:.1f}%"]
    assert "┃" not in result.output  # no table at all
    tables = run(*args, "--tables").output
    assert tables.count("→") == 20 and "Summary" in tables and "┃ image" in tables
    assert run(*args, "--verbose").output == tables
    # Up to three images: a table each; four files: a row each, the true digit unknown.
    paths = digit_images(tmp_path / "digits", 4)
    three = run("predict", *paths[:3], "-c", mlp_checkpoint).output
    assert three.count("→") == 3 and "┃ image" in three
    four = run("predict", *paths, "-c", mlp_checkpoint).output.splitlines()
    rows = [ROW.fullmatch(line) for line in four[2:6]]
    assert all(rows) and [row[2] for row in rows] == ["-"] * 4, four
    assert four[6] == "Summary: 4 predicted"
    missing = run("predict", *paths, tmp_path / "gone.png", "-c", mlp_checkpoint)
    assert missing.exit_code == 1 and missing.stdout.splitlines()[6].split()[1:] == ["failed"]


def test_help_text_reads_whole_at_80_columns():
    env = {"COLUMNS": "80"}
    text = run("--help", env=env).output
    panel = [line for line in text[text.index("Commands"):].splitlines() if line[:1] == "│"]
    assert [line.split()[1] for line in panel] == ["models", "train", "evaluate", "predict",
                                                     "serve"]
    assert all(line.rstrip(" │").endswith(".") for line in panel), panel  # one line each
    for command in ("train", "predict"):
        text = run(command, "--help", env=env).output
        seed = text[text.index("--seed"):].splitlines()[0]
        assert "[x>=0]" in seed and "922337203685477580" not in text
    refused = run("train", "--seed", 2**63)
    assert refused.exit_code == 2 and "above the largest seed" in refused.output
    evaluate = run("evaluate", "--help", env=env).output
    assert "Without --checkpoint" not in evaluate and "--checkpoint" in evaluate


def test_evaluate_tables_stand_apart_and_bundled_figures_are_explained(bundled_mlp, tiny_mnist,
                                                                       in_tmp):
    result = run("evaluate", "bundled", "-m", "mlp", "--data-dir", tiny_mnist, "--limit", 20,
                 "--steps-sweep", "3,6")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for title in ("Firing rate per layer", "Accuracy vs time steps (same weights)",
                  "Accuracy per digit (%)", "Confusion matrix"):
        index = next(i for i, line in enumerate(lines) if title in line)
        assert lines[index - 1] == "", (title, lines[index - 1])  # no caption above a title
    text = " ".join(result.output.split())
    assert "recorded when bundled │ 98.76% (fp32, 'snn models')" in text
    assert "The same weights, three figures: this run in" in text
    models = " ".join(run("models").output.split())
    assert "time steps* " in models and "* of the default recipe" in models
    assert "MNIST test is the figure recorded when the weights were bundled" in models

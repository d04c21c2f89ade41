"""A resumable checkpoint that lies (edited by hand or by another tool) is refused before
anything is written: `snn train --resume X.last.pt` says in one line what is wrong and names
the file, whatever part of its training state is missing, mistyped, out of range or at odds
with the run's plan and its training set. A forbidden option of a resumed run is one line too.
"""

from __future__ import annotations

import copy
import os
import signal
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from snncli.cli import app
from snncli.train import TrainingInterrupted, TrainOptions, train

from conftest import assert_failed, make_mnist_dir, poisoned

runner = CliRunner()
NAN = float("nan")
# The mlp's seed recipe with a one-cycle schedule and a weight average (so every part of the
# state is there) on 192 training images (8 held out): 3 iterations of 64 an epoch, 2 epochs,
# evaluated every 2 iterations.
PER_EPOCH, TRAIN_IMAGES = 3, 192


def _options(data: Path, out: Path) -> TrainOptions:
    return TrainOptions(
        model="mlp", recipe="seed", data_dir=str(data), out=str(out), train_limit=200,
        test_limit=40, val_size=8, eval_every=2, plot=False, device="cpu",
        overrides={"batch_size": 64, "epochs": 2, "schedule": "onecycle", "ema": 0.9},
    )


@pytest.fixture(scope="module")
def saved_runs(tmp_path_factory, tiny_mnist) -> dict[str, dict]:
    """{"mid": a run stopped at iteration 2 (epoch 1, batch 2), "end": a finished run}: the
    loaded .last.pt checkpoints."""
    folder = tmp_path_factory.mktemp("runs")

    def stop_at_2(event):
        if event["kind"] == "step" and event["iteration"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(_options(tiny_mnist, folder / "mid.pt"), stop_at_2)
    train(_options(tiny_mnist, folder / "end.pt"))
    runs = {name: torch.load(folder / f"{name}.last.pt", weights_only=True)
            for name in ("mid", "end")}
    state = runs["mid"]["training_state"]
    assert (state["epoch"], state["batch"], state["iteration"]) == (1, 2, 2)
    assert state["order"] is not None and len(state["order"]) == TRAIN_IMAGES
    state = runs["end"]["training_state"]
    assert (state["epoch"], state["batch"], state["iteration"]) == (3, 0, 6)
    return runs


def part(name: str, value):
    """A change of the training state: part `name` (a/b for a sub-part; a number is an index
    of a list or of the optimiser's state) set to `value` (a function of the old value when
    callable; DELETE removes it)."""

    def change(state: dict) -> None:
        *path, key = (int(k) if k.isdigit() else k for k in name.split("/"))
        target = state
        for step in path:
            target = target[step]
        if value is DELETE:
            del target[key]
        else:
            target[key] = value(target[key]) if callable(value) else value

    return change


def moved(epoch: int, batch: int, iteration: int | None = None, order="keep"):
    """The position changed (the iteration counter kept consistent unless given)."""

    def change(state: dict) -> None:
        state["epoch"], state["batch"] = epoch, batch
        state["iteration"] = (epoch - 1) * PER_EPOCH + batch if iteration is None else iteration
        if order != "keep":
            state["order"] = order

    return change


def both(*changes):
    def change(state: dict) -> None:
        for c in changes:
            c(state)

    return change


DELETE = object()
PERMUTATION = torch.randperm(TRAIN_IMAGES, generator=torch.Generator().manual_seed(1))

LIES = {  # case: (saved run, change of its training state, what the line says)
    # the parts themselves
    "version 2": ("mid", part("version", 2), "holds training state version 2; this snncli"),
    "version True": ("mid", part("version", True), "holds training state version True"),
    "version missing": ("mid", part("version", DELETE), "training state version None"),
    "optimiser missing": ("mid", part("optimiser", DELETE), "training state lacks optimiser"),
    "rng and order missing": (
        "mid", both(part("rng", DELETE), part("order", DELETE)),
        "its training state lacks rng, order",
    ),
    "an unknown part": (
        "mid", part("turbo", True), "holds parts this snncli does not know: 'turbo'"
    ),
    # the saved run's options
    "options a string": ("mid", part("options", "fast"), "options must be a mapping, not str"),
    "option missing": ("mid", part("options/seed", DELETE), "options lack seed"),
    "option unknown": (
        "mid", part("options/turbo", 1), "options hold settings this snncli does not know"
    ),
    "seed negative": ("mid", part("options/seed", -1), "options seed -1 must be from 0"),
    "seed a string": ("mid", part("options/seed", "0"), "options seed '0' must be a whole"),
    "device unknown": ("mid", part("options/device", "tpu"), "options device 'tpu' must be one"),
    "eval_epochs zero": ("mid", part("options/eval_epochs", 0), "options eval_epochs 0 must be"),
    "val_size negative": ("mid", part("options/val_size", -5), "options val_size -5 must be"),
    "save_every NaN": ("mid", part("options/save_every", NAN), "options save_every nan must be"),
    "plot a string": ("mid", part("options/plot", "yes"), "options plot 'yes' must be true"),
    "overrides not empty": (
        "mid", part("options/overrides", {"lr": 0.5}), "options overrides {'lr': 0.5} must be"
    ),
    "options of another model": (
        "mid", part("options/model", "csnn"), "options model 'csnn' is not the checkpoint's"
    ),
    # recipe
    "recipe a list": ("mid", part("recipe", [1]), "recipe must be a mapping"),
    "batch size zero": ("mid", part("recipe/batch_size", 0), "recipe batch_size 0 must be"),
    "epochs negative": ("mid", part("recipe/epochs", -2), "recipe epochs -2 must be"),
    "recipe unknown setting": ("mid", part("recipe/turbo", 1), "recipe has an unknown field"),
    "recipe_name unknown": (
        "mid", part("recipe_name", "turbo"), "recipe_name 'turbo' must be one of the 'mlp'"
    ),
    # weights, optimiser, schedule, average, generators
    "model weights of another shape": (
        "mid", part("model/fc1.weight", torch.zeros(10, 10)),
        "model weights do not match the 'mlp' architecture: fc1.weight is 10x10",
    ),
    "model weight missing": ("mid", part("model/fc3.bias", DELETE), "model lacks fc3.bias"),
    "model weight NaN": (
        "mid", part("model/fc2.weight", poisoned(NAN)), "model fc2.weight holds NaN"
    ),
    "model a list": ("mid", part("model", []), "model must be a mapping of weight names"),
    "optimiser a list": ("mid", part("optimiser", []), "optimiser must be a mapping of state"),
    "optimiser two groups": (
        "mid", part("optimiser/param_groups", lambda g: g * 2),
        "optimiser param_groups must be a list of one group",
    ),
    "optimiser lr NaN": (
        "mid", part("optimiser/param_groups/0/lr", NAN), "optimiser lr nan must be a finite"
    ),
    "optimiser betas a string": (
        "mid", part("optimiser/param_groups/0/betas", "0.9"), "optimiser betas '0.9' must be"
    ),
    "optimiser max_lr missing": (
        "mid", part("optimiser/param_groups/0/max_lr", DELETE), "optimiser max_lr is missing"
    ),
    "optimiser params of another model": (
        "mid", part("optimiser/param_groups/0/params", [0, 1]),
        "optimiser's group must hold the model's 6 parameters",
    ),
    "optimiser moments of another shape": (
        "mid", part("optimiser/state/0/exp_avg", torch.zeros(3)),
        "optimiser state of parameter 0: exp_avg must be a float tensor of the parameter's "
        "shape 512x784",
    ),
    "optimiser squares negative": (
        "mid", part("optimiser/state/1/exp_avg_sq", poisoned(-1.0)),
        "exp_avg_sq holds values it cannot hold",
    ),
    "optimiser state of a parameter the model lacks": (
        "mid", part("optimiser/state/99", {}),
        "optimiser state of parameter 99, which the model lacks",
    ),
    "schedule missing": (
        "mid", part("schedule", None), "schedule must be the one-cycle schedule's state"
    ),
    "schedule step a string": (
        "mid", part("schedule/last_epoch", "2"), "schedule last_epoch '2' must be like"
    ),
    "average missing": ("mid", part("average", None), "average must be a mapping"),
    "average of another shape": (
        "mid", part("average/module.fc3.weight", torch.zeros(3, 3)),
        "average weights do not match the 'mlp' architecture: module.fc3.weight is 3x3",
    ),
    "rng without shuffle": ("mid", part("rng/shuffle", DELETE), "rng must hold the torch and"),
    "rng cut short": ("mid", part("rng/torch", lambda t: t[:100]), "rng must hold the torch"),
    # counters and figures
    "epoch negative": ("mid", part("epoch", -1), "epoch -1 must be from 1"),
    "epoch a float": ("mid", part("epoch", 1.0), "epoch 1.0 must be a whole number"),
    "epoch NaN": ("mid", part("epoch", NAN), "epoch nan must be a whole number"),
    "batch negative": ("mid", part("batch", -1), "batch -1 must be from 0"),
    "iteration a string": ("mid", part("iteration", "2"), "iteration '2' must be a whole"),
    "iteration a tensor": ("mid", part("iteration", torch.tensor(2)), "iteration tensor(2)"),
    "best_score NaN": ("mid", part("best_score", NAN), "best_score nan must be a number"),
    "train_seconds negative": ("mid", part("train_seconds", -1.0), "train_seconds -1.0 must"),
    "nproc zero": ("mid", part("nproc", 0), "nproc 0 must be from 1"),
    "rows a mapping": ("mid", part("rows", {}), "rows must be a list of evaluations, not dict"),
    "a row that is a list": ("mid", part("rows/0", [2, 1]), "rows[0] must be a mapping"),
    "a row without its iteration": ("mid", part("rows/0/iteration", DELETE), "rows[0] lacks"),
    "a row's accuracy above 1": (
        "mid", part("rows/0/test_accuracy", 2.0), "rows[0] test_accuracy 2.0 must be in [0, 1]"
    ),
    "a row's unknown figure": ("mid", part("rows/0/turbo", 1), "rows[0] has an unknown field"),
    "losses a string": ("mid", part("losses", "low"), "losses must be a list, not str"),
    # where the run stands: its plan and its training set
    "batch past the end of an epoch": (
        "mid", moved(1, 7), "its position, batch 7 of epoch 1, is past the end of an epoch"
    ),
    "iteration at odds with the position": (
        "mid", part("iteration", 5), "its iteration 5 is not where epoch 1, batch 2 is"
    ),
    "epoch counter far beyond the plan": (
        "end", moved(99, 0), "its position, epoch 99 batch 0, is past the end of its run of 2"
    ),
    "epoch counter alone far beyond the plan": (
        "end", part("epoch", 99), "its position, epoch 99 batch 0, is past the end of its run"
    ),
    "position beyond the end of the run": (
        "end", moved(3, 1, order=PERMUTATION), "epoch 3 batch 1, is past the end of its run"
    ),
    "finished run moved back before its last evaluation": (
        "end", moved(2, 3, order=PERMUTATION),
        "it holds the evaluation at iteration 6, the end of epoch 2, which is still to come",
    ),
    "order missing mid-epoch": ("mid", part("order", None), "order must be this epoch's order"),
    "order of floats": (
        "mid", part("order", lambda o: o.float()), "order must be this epoch's order"
    ),
    "order of two rows": (
        "mid", part("order", lambda o: o.view(2, -1)), "order must be this epoch's order"
    ),
    "order shorter than the training set": (
        "mid", part("order", lambda o: o[:100]), "its batch order holds 100 images, not the 192"
    ),
    "order repeats an image": (
        "mid", part("order", lambda o: torch.cat([o[:1], o[:-1]])),
        "order must take every training image once",
    ),
    "order at the start of an epoch": (
        "end", part("order", PERMUTATION), "order must be None at the start of an epoch"
    ),
    "optimiser steps at odds with the iteration": (
        "mid", part("optimiser/state/2/step", torch.tensor(5.0)),
        "its optimiser has taken 2 or 5 steps, not its 2 iterations",
    ),
    "schedule at odds with the iteration": (
        "mid", part("schedule/last_epoch", 5), "its schedule stands at step 5, not at its"
    ),
    "a row beyond the iteration": (
        "mid", part("rows/0/iteration", 5), "rows[0] at iteration 5 is out of order or beyond"
    ),
    "a row in the wrong epoch": (
        "end", part("rows/3/epoch", 1), "rows[3] at iteration 6 is not in its epoch 1"
    ),
    "a row without its validation score": (
        "mid", part("rows/0/val_accuracy", DELETE), "rows[0] lacks a validation score"
    ),
    "best row not the best": (
        "end", part("best_score", 1.0), "best_row and best_score must be the best of its rows"
    ),
    "losses beyond the iteration": (
        "mid", part("losses", lambda v: v + [[3, 2.0]]), "losses must be (iteration, finite"
    ),
    "a loss that is NaN": (
        "mid", part("losses/0/1", NAN), "losses must be (iteration, finite loss) pairs"
    ),
}


def lying_file(saved_runs, case: str, folder: Path) -> Path:
    run, change, _ = LIES[case]
    ckpt = copy.deepcopy(saved_runs[run])
    change(ckpt["training_state"])
    folder.mkdir()
    path = folder / "m.last.pt"
    torch.save(ckpt, path)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("case", list(LIES), ids=list(LIES))
def test_a_resumable_checkpoint_that_lies_is_one_line_and_nothing_is_written(
    case, saved_runs, tmp_path
):
    path = lying_file(saved_runs, case, tmp_path / "run")
    before = snapshot(path.parent)
    result = runner.invoke(app, ["train", "--resume", str(path)])
    assert_failed(result, LIES[case][2])
    assert result.stderr.startswith(f"error: {path} ")
    assert snapshot(path.parent) == before  # nothing written, nothing changed


def test_the_unchanged_files_resume(saved_runs, tmp_path):
    """The matrix's starting points are resumable as they are (so each lie is the refusal's
    cause): the stopped run continues to its end, the finished one extends."""
    for run, more in (("mid", []), ("end", ["--epochs", "3"])):
        folder = tmp_path / run
        folder.mkdir()
        torch.save(saved_runs[run], folder / "m.last.pt")
        result = runner.invoke(app, ["train", "--resume", str(folder / "m.last.pt"), *more])
        assert result.exit_code == 0, result.output
        state = torch.load(folder / "m.last.pt", weights_only=True)["training_state"]
        assert state["iteration"] == PER_EPOCH * (2 if run == "mid" else 3)


def test_resumed_on_another_training_set_is_one_line(saved_runs, tmp_path):
    """--data-dir may move a run to another copy of its data, not to other data: a set whose
    size does not fit the saved order is refused."""
    smaller = make_mnist_dir(tmp_path / "smaller", n_train=150, n_test=50)
    folder = tmp_path / "run"
    folder.mkdir()
    torch.save(saved_runs["mid"], folder / "m.last.pt")
    before = snapshot(folder)
    result = runner.invoke(app, ["train", "--resume", str(folder / "m.last.pt"),
                                 "--data-dir", str(smaller)])
    assert_failed(result, "its batch order holds 192 images, not the 142 training images "
                          "(was it saved with other data?)")
    assert snapshot(folder) == before


def test_a_forbidden_option_of_a_resumed_run_is_one_line(saved_runs, tmp_path):
    path = tmp_path / "m.last.pt"
    torch.save(saved_runs["mid"], path)
    for args, flags in [(["--lr", "0.5"], "--lr"), (["--seed", "3", "--out", "x.pt"],
                                                      "--seed, --out")]:
        result = runner.invoke(app, ["train", "--resume", str(path), *args])
        assert_failed(result, f"{flags} would change the saved run; --resume continues it as "
                              "it was (only --epochs, --device, --data-dir, --save-every and "
                              "--nproc may be given)", code=2)

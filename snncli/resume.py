"""Resuming a run from its `.last.pt` checkpoint: the saved training state, the options a
resumed run may change, and the Trainer rebuilt where the run stopped."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from . import distributed
from .checkpoint import load_checkpoint
from .errors import SnnError, first_of
from .models import get_model_spec
from .recipes import Recipe
from .runtime import resolve_device
from .train_setup import RunFiles, TrainOptions, load_shared_data
from .trainer import TRAINING_STATE_VERSION, Trainer
from .training_state import position_problems, training_state_problems

# Options a resumed run may change: they decide where it runs and how it is saved, not what
# it computes; the recipe setting `epochs` may extend it. Every other option and setting is
# the saved run's.
RESUMABLE_CHANGES = ("device", "data_dir", "save_every", "plot")
EXTENDABLE_SETTINGS = ("epochs",)


def resume_command(path: Path, nproc: int = 1) -> str:
    """The command that continues a run saved at `path` (on as many processes as it ran)."""
    return f"snn train --resume {path}" + (f" --nproc {nproc}" if nproc > 1 else "")


def saved_training_state(path: Path) -> dict:
    """The training state of a resumable checkpoint, or one line saying why it has none."""
    ckpt = load_checkpoint(path)
    state = ckpt.training_state
    if not isinstance(state, dict):
        raise SnnError(
            f"{path} cannot be resumed: it holds no training state (resume from the "
            f"<name>.last.pt checkpoint that training writes beside <name>.pt)"
        )
    version = state.get("version")
    if type(version) is not int or version != TRAINING_STATE_VERSION:
        raise SnnError(
            f"{path} holds training state version {version!r}; this snncli resumes version "
            f"{TRAINING_STATE_VERSION}"
        )
    problems = training_state_problems(state, ckpt)
    if problems:
        raise SnnError(f"{path} cannot be resumed: {first_of(problems)}")
    return state


def resumed_options(saved: dict, given: TrainOptions) -> TrainOptions:
    """The saved run's options, with the few a resumed run may change taken from `given`."""
    known = {f.name for f in dataclasses.fields(TrainOptions)}
    if not isinstance(saved, dict) or set(saved) - known:
        raise SnnError(f"{given.resume} holds training options this snncli does not know")
    refused = sorted(set(given.overrides) - set(EXTENDABLE_SETTINGS))
    if refused:
        raise SnnError(
            f"--resume continues the saved run with its own recipe; "
            f"{', '.join('--' + k.replace('_', '-') for k in refused)} would change it "
            f"(only --epochs may extend it)"
        )
    defaults = TrainOptions()
    changes = {k: getattr(given, k) for k in RESUMABLE_CHANGES
               if getattr(given, k) != getattr(defaults, k)}  # given, not left at its default
    return dataclasses.replace(TrainOptions(**saved), **changes)


def check_process_count(path: Path, state: dict, size: int) -> None:
    """A saved run continues on as many processes as it ran on."""
    nproc = state.get("nproc", 1)
    if nproc != size:
        raise SnnError(
            f"{path} was saved by a run on {nproc} process{'es' if nproc > 1 else ''}, not "
            f"{size}: continue it on as many with: {resume_command(path, nproc)}"
        )


def resumed_run(given: TrainOptions) -> tuple[Trainer, RunFiles]:
    path = Path(given.resume)
    state = saved_training_state(path)
    options = resumed_options(state["options"], given)
    spec = get_model_spec(options.model)
    recipe = saved = Recipe.from_dict(state["recipe"], spec.losses)
    epochs = given.overrides.get("epochs")
    if epochs is not None:
        done = state["epoch"] - 1
        if epochs < done or (epochs == done and state["batch"]):
            raise SnnError(f"--epochs {epochs} is fewer than the run has done ({done} epochs)")
        recipe = dataclasses.replace(recipe, epochs=epochs).check(spec.losses)
    dist, device = distributed.start(resolve_device(options.device), recipe.batch_size)
    check_process_count(path, state, dist.size)
    data = load_shared_data(dist, options, recipe, device, spec.normalisation)
    problems = position_problems(state, saved, len(data.train), len(data.validation))
    if problems:
        raise SnnError(f"{path} cannot be resumed: {first_of(problems)}")
    trainer = Trainer(spec, state["recipe_name"], recipe, options, device, data, dist)
    trainer.load_state_dict(state)
    trainer.distribute()
    files = RunFiles.of_last(path, options.out)
    if dist.main:
        files.check(options.plot)  # fail before training, not after it
    return trainer, files

"""The Trainer: everything that changes while a model trains, and one training step."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from . import distributed
from .augment import augment_level
from .data import normalise
from .distributed import SINGLE, Group
from .models import ModelSpec
from .recipes import Recipe
from .runtime import tune_for_device
from .train_setup import (
    RunData,
    TrainOptions,
    build_model,
    initialise,
    make_average,
    make_optimiser,
    make_schedule,
    update_average,
)

TRAINING_STATE_VERSION = 1


class Trainer:
    """Everything that changes while a model trains, as one object: the model, optimiser,
    schedule, weight average, random number generators, position (epoch, batch, iteration),
    the best score so far, metrics rows and training time. `state_dict()` holds all of it in
    plain types, so `load_state_dict()` continues a run exactly where it stopped."""

    def __init__(self, spec: ModelSpec, recipe_name: str, recipe: Recipe, options: TrainOptions,
                 device: torch.device, data: RunData, dist: Group = SINGLE):
        self.spec, self.recipe_name, self.recipe = spec, recipe_name, recipe
        self.options, self.device, self.data = options, device, data
        self.dist = dist  # this process's place in a data-parallel run (or the only process)
        self.model = build_model(spec, recipe, options.seed).to(device)
        self.forward = self.model  # what training calls: DDP's wrapper once `distribute`d
        self.precision = tune_for_device(
            self.model, device, recipe.batch_size, backend=options.backend,
            precision=options.precision,
        )
        self.optimiser = make_optimiser(self.model, recipe, device)
        self.averaged = make_average(self.model, recipe.ema)
        self.per_epoch = -(-len(data.train) // recipe.batch_size)
        self.schedule = make_schedule(self.optimiser, recipe, self.total_iterations)
        self.shuffle = torch.Generator().manual_seed(options.seed)  # batch order, augmentation
        self.epoch, self.batch, self.iteration = 1, 0, 0
        self.order: torch.Tensor | None = None  # this epoch's image order
        self.best_score, self.best_row = float("-inf"), None
        self.rows: list[dict] = []  # one per evaluation: the metrics file
        self.losses: list[tuple[int, float]] = []  # (iteration, loss), for the plot
        self.train_seconds = 0.0
        self.stop_signal: int | None = None  # set by a signal handler; checked per iteration

    @property
    def total_iterations(self) -> int:
        return self.per_epoch * self.recipe.epochs

    @property
    def epochs_done(self) -> int:
        return self.epoch - (0 if self.batch == self.per_epoch else 1)

    @property
    def scored(self):
        """The model that is evaluated and saved: the weight average when there is one."""
        return self.averaged.module if self.averaged is not None else self.model

    def calibrate(self) -> None:
        """The recipe's data-driven initialisation, on the first training images, before any
        update (a fresh run only: a resumed one loads its weights)."""
        changed = initialise(self.model, self.recipe, self.data.train.images, self.data.norm)
        if changed and self.averaged is not None:
            self.averaged = make_average(self.model, self.recipe.ema)  # from the calibrated weights

    def start_from(self, weights: dict) -> None:
        """A fine-tuning run's start: the init checkpoint's weights (and a weight average
        started from them), before any update."""
        self.model.load_state_dict(weights)
        if self.averaged is not None:
            self.averaged = make_average(self.model, self.recipe.ema)

    def distribute(self) -> None:
        """In a data-parallel run, train through DistributedDataParallel with batch norm over
        all processes' images: after calibration or loading a saved state, which every process
        does alike."""
        if self.dist.active:
            self.forward = distributed.data_parallel(self.model, self.device)
            self.model = self.forward.module

    def step(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """One iteration on the training images at `index`: (loss, correct, images). In a
        data-parallel run `index` is the global batch, this process trains on its share (with
        the augmentation one process would give those images) and the figures are the whole
        batch's."""
        start, stop = self.dist.shard(len(index))
        mine = index[start:stop]
        images = augment_level(self.data.train.images[mine], self.recipe.augment, self.shuffle,
                               within=(start, len(index)))
        labels = self.data.train.labels[mine]
        with self.model.batch_share(start, len(index)):  # its rows of the batch's dropout
            record = self.forward(normalise(images, **self.data.norm))
        loss = self.model.loss(record, labels, self.recipe.label_smoothing, self.recipe.loss)
        self.optimiser.zero_grad(set_to_none=True)
        if self.dist.active:
            loss = self._shared_backward(record, loss, len(mine) / len(index))
        else:
            loss.backward()
        self.optimiser.step()
        if self.averaged is not None:
            update_average(self.averaged, self.model)
        if self.schedule is not None:
            self.schedule.step()
        self.iteration += 1
        with torch.no_grad():
            # A progress figure: spike-count ties go to the lower digit here, where evaluations
            # rank them by the output current (`SpikingNet.classify`).
            correct = (self.model.readout(record).argmax(1) == labels).sum()
        if self.dist.active:  # the whole batch's loss and right answers, in every process
            totals = self.dist.sum_(torch.stack([loss.detach(), correct.to(loss.dtype)]))
            return totals[0], totals[1], len(index)
        return loss.detach(), correct, len(labels)

    def _shared_backward(self, record, loss, share: float) -> torch.Tensor:
        """Backward of this process's part of the batch's mean loss, `share` x its own mean
        (N x that, which DDP's average over N processes divides again): the gradients are
        those of the whole batch, however unevenly it is shared. A process holding no image
        still takes part, with a zero loss. Returns the part."""
        part = loss * share if share else record.sum() * 0.0
        (part * self.dist.size).backward()
        return part

    def next_batch(self) -> torch.Tensor:
        """Indices of the next batch of this epoch (the order is drawn at the epoch's start)."""
        if self.order is None:
            self.order = torch.randperm(len(self.data.train), generator=self.shuffle)
            self._order_here = self.order.to(self.device)
        size = self.recipe.batch_size
        index = self._order_here[self.batch * size : (self.batch + 1) * size]
        self.batch += 1
        return index

    def end_epoch(self) -> None:
        self.epoch, self.batch, self.order = self.epoch + 1, 0, None

    def state_dict(self) -> dict[str, Any]:
        options = dataclasses.asdict(self.options) | {"resume": None, "overrides": {}}
        state = {
            "version": TRAINING_STATE_VERSION,
            "options": options,
            "recipe_name": self.recipe_name,
            "recipe": self.recipe.to_dict(),
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "schedule": self.schedule.state_dict() if self.schedule is not None else None,
            "average": self.averaged.state_dict() if self.averaged is not None else None,
            "rng": {"torch": torch.get_rng_state(), "shuffle": self.shuffle.get_state()},
            "epoch": self.epoch,
            "batch": self.batch,
            "iteration": self.iteration,
            "order": self.order,
            "best_score": self.best_score,
            "best_row": self.best_row,
            "rows": list(self.rows),
            "losses": [list(pair) for pair in self.losses],
            "train_seconds": self.train_seconds,
            "nproc": self.dist.size,  # a resumed run must run on as many processes
        }
        return _on_cpu(state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        if self.schedule is not None:
            # The plan (total steps, phases) is this run's, which --epochs may have extended.
            plan = self.schedule.state_dict()
            self.schedule.load_state_dict(
                state["schedule"] | {k: plan[k] for k in ("total_steps", "_schedule_phases")}
            )
        if self.averaged is not None:
            self.averaged.load_state_dict(state["average"])
        torch.set_rng_state(state["rng"]["torch"])
        self.shuffle.set_state(state["rng"]["shuffle"])
        self.epoch, self.batch, self.iteration = state["epoch"], state["batch"], state["iteration"]
        self.order = state["order"]
        if self.order is not None:
            self._order_here = self.order.to(self.device)
        self.best_score, self.best_row = state["best_score"], state["best_row"]
        self.rows = list(state["rows"])
        self.losses = [tuple(pair) for pair in state["losses"]]
        self.train_seconds = state["train_seconds"]


def _on_cpu(value):
    """`value` with every tensor inside copied to the CPU (checkpoints hold CPU tensors)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: _on_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(v) for v in value)
    return value

"""Training a registered model on MNIST: a resumable run, best/last checkpoints, metrics, plot.

UI-free: progress goes to an optional callback, so the CLI draws a Rich bar and tests stay
quiet. All that changes while a model trains lives in one `Trainer`, whose `state_dict()` is
saved in the `.last.pt` checkpoint, so a run interrupted anywhere continues exactly.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import distributed
from .augment import augment_level
from .checkpoint import (
    DEFAULT_DIR,
    atomic_write,
    build_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .data import Split, default_val_size, hold_out, load_split, normalise, resolve_data_dir
from .distributed import SINGLE, Group
from .errors import SnnError, first_of
from .evaluate import evaluate_model
from .files import check_outputs
from .recipes import Recipe, RecipeError
from .registry import ModelSpec, get_model_spec, get_recipe
from .resumable import position_problems, training_state_problems
from .runtime import resolve_device, tune_for_device
from .styles import style_digits

TRAINING_STATE_VERSION = 1
# Options a resumed run may change: they decide where it runs and how it is saved, not what
# it computes. Every other option, and every recipe setting but `epochs`, is the saved run's.
RESUMABLE_CHANGES = ("device", "data_dir", "save_every", "plot")


@dataclass
class TrainOptions:
    model: str = "csnn"
    recipe: str | None = None  # a named recipe of the model; None = its default
    overrides: dict[str, Any] = field(default_factory=dict)  # recipe settings to replace
    seed: int = 0
    device: str = "auto"
    data_dir: str | None = None
    out: str | None = None  # best checkpoint path; default checkpoints/<model>.pt
    train_limit: int | None = None
    test_limit: int | None = None
    val_size: int | None = None  # held-out training images; None = default_val_size, 0 = off
    eval_every: int | None = None  # also evaluate every N iterations
    eval_epochs: int = 1  # evaluate after every N epochs (and always after the last)
    backend: str = "engine"  # or "snntorch", the reference implementation
    precision: str = "auto"  # fp32, bf16 (autocast of conv/linear), auto (bf16 if native)
    save_every: float = 10.0  # minutes of training between resumable checkpoints
    plot: bool = True
    resume: str | None = None  # a .last.pt checkpoint to continue


@dataclass
class TrainResult:
    best_path: Path
    last_path: Path
    plot_path: Path | None
    metrics_path: Path
    best: dict  # the metrics row of the checkpoint chosen on validation (or the last one)
    last: dict  # the metrics row of the last evaluation
    selected_on: str | None  # "validation", or None when nothing was held out
    train_seconds: float
    rows: list[dict] = field(default_factory=list)


class TrainingInterrupted(SnnError):
    """SIGINT or SIGTERM stopped training; the run was saved and can be resumed."""

    def __init__(self, signum: int, path: Path, iteration: int, nproc: int = 1):
        name = signal.Signals(signum).name
        super().__init__(
            f"{name} received: training stopped at iteration {iteration} and saved; continue "
            f"it with: {resume_command(path, nproc)}"
        )
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def resume_command(path: Path, nproc: int = 1) -> str:
    """The command that continues a run saved at `path` (on as many processes as it ran)."""
    return f"snn train --resume {path}" + (f" --nproc {nproc}" if nproc > 1 else "")


def _check_run_options(options: TrainOptions) -> None:
    for name in ("train_limit", "test_limit", "eval_every", "eval_epochs", "save_every"):
        value = getattr(options, name)
        if value is not None and not value > 0:
            raise SnnError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if options.val_size is not None and options.val_size < 0:
        raise SnnError(f"--val-size must be 0 (off) or positive, got {options.val_size}")


def resolve_recipe(options: TrainOptions) -> tuple[str, Recipe]:
    """(name, recipe): the model's named recipe with the options' overrides applied, checked."""
    spec = get_model_spec(options.model)
    name, recipe = get_recipe(spec, options.recipe)
    try:
        return name, recipe.with_overrides(options.overrides).check(spec.losses)
    except RecipeError as exc:
        raise RecipeError(f"model {spec.name!r}: {exc}") from None


def output_paths(model: str, out: str | Path | None) -> tuple[Path, Path, Path, Path]:
    """best checkpoint, last checkpoint, plot and metrics file, side by side."""
    best = Path(out) if out else DEFAULT_DIR / f"{model}.pt"
    stem = best.with_suffix("")
    return (
        best,
        stem.with_name(stem.name + ".last.pt"),
        stem.with_name(stem.name + ".png"),
        stem.with_name(stem.name + ".metrics.jsonl"),
    )


def build_model(spec: ModelSpec, recipe: Recipe, seed: int):
    torch.manual_seed(seed)
    return spec.build(spec.config_cls(**spec.build.config_fields(recipe)))


def make_optimiser(model, recipe: Recipe, device: torch.device | None = None):
    """Adam, or AdamW (weight decay decoupled from the adaptive step) as the recipe says. On
    CUDA the update is one fused kernel (same algorithm, far fewer launches per iteration)."""
    optimiser = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    fused = {"fused": True} if device is not None and device.type == "cuda" else {}
    return optimiser(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, **fused)


def make_average(model, decay: float):
    """An exponential moving average of the weights and batch-norm statistics, updated after
    each step and used for evaluation and checkpoints (None when `decay` is 0): it averages
    out the last updates' noise, as timm's ModelEmaV2 does for image classifiers."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


@torch.no_grad()
def update_average(averaged, model) -> None:
    """One EMA step. Integer buffers (batch norm's `num_batches_tracked`) are counters, not
    statistics: AveragedModel would average and truncate them, so they are copied instead."""
    averaged.update_parameters(model)
    for mine, theirs in zip(averaged.module.buffers(), model.buffers(), strict=True):
        if not mine.is_floating_point():
            mine.copy_(theirs)


def make_schedule(optimiser, recipe: Recipe, total_iters: int):
    """Per-iteration learning-rate schedule: constant, or one-cycle (warm-up then cosine)."""
    if recipe.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=recipe.lr, total_steps=total_iters, pct_start=recipe.warmup
        )
    return None  # constant


def reads_per_sync(device: torch.device) -> int:
    """Iterations whose loss/accuracy are read back from the device together."""
    return 1 if device.type == "cpu" else 25


@dataclass
class RunData:
    train: Split
    validation: Split
    test: Split
    norm: dict


def load_run_data(
    options: TrainOptions, recipe: Recipe, device: torch.device, mean_std
) -> RunData:
    train_set = load_split("train", options.data_dir, options.train_limit)
    test_set = load_split("test", options.data_dir, options.test_limit)
    size = options.val_size if options.val_size is not None else default_val_size(len(train_set))
    train_set, validation = hold_out(train_set, size, options.seed)
    train_set = with_styles(train_set, round(recipe.styles * len(train_set)), options.seed)
    if device.type != "cpu":  # MNIST fits in GPU memory: no host copies per iteration
        train_set, validation, test_set = (
            Split(s.images.to(device), s.labels.to(device))
            for s in (train_set, validation, test_set)
        )
    return RunData(train_set, validation, test_set, {"mean": mean_std[0], "std": mean_std[1]})


def with_styles(split: Split, count: int, seed: int) -> Split:
    """`split` followed by `count` digits drawn in styles MNIST hardly holds (snncli.styles);
    the same ones for the same seed, so a resumed run trains on the same images."""
    if count == 0:
        return split
    images, labels = style_digits(count, seed)
    return Split(
        torch.cat([split.images, torch.from_numpy(images)]),
        torch.cat([split.labels, torch.from_numpy(labels).to(split.labels.dtype)]),
    )


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


@dataclass
class RunFiles:
    best: Path
    last: Path
    plot: Path
    metrics: Path

    @classmethod
    def beside(cls, best: Path) -> RunFiles:
        return cls(*output_paths("", best))

    def check(self, plot: bool) -> None:
        """Say in one line, before any training, why a file of the run cannot be written."""
        check_outputs([(self.best, "checkpoint"), (self.last, "checkpoint"),
                       (self.metrics, "metrics file")] + ([(self.plot, "plot")] if plot else []))


class StepReader:
    """Losses and accuracies stay on the device and are read back in groups: a GPU is never
    made to wait for the host after each iteration (on a CPU, reading is free). Also keeps
    the training clock, which evaluations and saves pause."""

    def __init__(self, trainer: Trainer, emit: Callable[[dict], None]):
        self.trainer, self.emit = trainer, emit
        self.every = reads_per_sync(trainer.device)
        self.pending: list[tuple[int, int, torch.Tensor, torch.Tensor, int]] = []
        self.mark = time.perf_counter()

    def add(self, loss: torch.Tensor, correct: torch.Tensor, images: int) -> None:
        self.pending.append((self.trainer.iteration, self.trainer.epoch, loss, correct, images))
        if len(self.pending) >= self.every:
            self.flush()

    def flush(self) -> None:
        t = self.trainer
        values = []
        if self.pending:
            values = torch.stack([torch.stack([p[2], p[3].float()]) for p in self.pending])
            values = values.tolist()
        now = time.perf_counter()
        t.train_seconds += now - self.mark
        self.mark = now
        for (it, ep, _, _, n), (loss, correct) in zip(self.pending, values, strict=True):
            if not math.isfinite(loss):
                raise SnnError(
                    f"training diverged at iteration {it} (loss {loss}); try a lower --lr"
                )
            t.losses.append((it, loss))
            self.emit({"kind": "step", "iteration": it, "epoch": ep, "loss": loss,
                       "batch_accuracy": correct / n, "images": n,
                       "train_seconds": t.train_seconds})
        self.pending.clear()

    def restart_clock(self) -> None:
        self.mark = time.perf_counter()


class Run:
    """A Trainer driven to its planned end, evaluating, saving and reporting as it goes."""

    def __init__(self, trainer: Trainer, files: RunFiles, emit: Callable[[dict], None]):
        self.trainer, self.files, self.emit = trainer, files, emit
        self.reader = StepReader(trainer, emit)
        self.saved_at = time.monotonic()
        self.saved_resumable = False  # in this process: a failure then keeps the run's files

    def fit(self) -> None:
        t = self.trainer
        while t.epoch <= t.recipe.epochs:
            t.model.train()
            self.reader.restart_clock()
            while t.batch < t.per_epoch:
                self.reader.add(*t.step(t.next_batch()))
                self.after_iteration()
            self.reader.flush()
            if self.evaluates_epoch(t.epoch):
                self.evaluate()
            t.end_epoch()
            self.save_last()

    def evaluates_epoch(self, epoch: int) -> bool:
        return epoch % self.trainer.options.eval_epochs == 0 or epoch == self.trainer.recipe.epochs

    def after_iteration(self) -> None:
        t, every = self.trainer, self.trainer.options.eval_every
        epoch_end_follows = t.batch == t.per_epoch and self.evaluates_epoch(t.epoch)
        if every and t.iteration % every == 0 and not epoch_end_follows:
            self.reader.flush()
            self.evaluate()
            t.model.train()
            self.reader.restart_clock()
        stop, save_due = self.decide()
        if stop is not None:
            self.reader.flush()
            self.save_last()
            raise TrainingInterrupted(stop, self.files.last, t.iteration, t.dist.size)
        if save_due:
            self.reader.flush()
            self.save_last()
            self.reader.restart_clock()

    def decide(self) -> tuple[int | None, bool]:
        """(the signal to stop on, or None; whether a timed save is due). The processes of a
        data-parallel run decide together, at each read of the device's figures: a signal any
        of them received stops them all at the same iteration, and rank 0's clock times saves."""
        t = self.trainer
        due = time.monotonic() - self.saved_at >= 60 * t.options.save_every
        if not t.dist.active:
            return t.stop_signal, due
        if t.iteration % self.reader.every:
            return None, False
        signum, due = t.dist.largest([t.stop_signal or 0, int(due and t.dist.main)])
        return signum or None, bool(due)

    def score(self, model, split: Split) -> float:
        """Accuracy on `split`. In a data-parallel run each process scores its contiguous share
        and the counts are summed: every image is scored once."""
        t = self.trainer
        start, stop = t.dist.shard(len(split))
        part = Split(split.images[start:stop], split.labels[start:stop])
        result = evaluate_model(model, part, t.data.norm, t.device, 1000)
        correct, total = t.dist.sum_counts([result.correct, result.total])
        return correct / total if total else 0.0

    def evaluate(self) -> None:
        """Score validation (which chooses the best checkpoint) and test; save the best."""
        t = self.trainer
        row = {"iteration": t.iteration, "epoch": t.epoch}
        if len(t.data.validation):
            row["val_accuracy"] = self.score(t.scored, t.data.validation)
        row["test_accuracy"] = self.score(t.scored, t.data.test)
        if t.averaged is not None and t.iteration == t.total_iterations:  # what it added, once
            row["unaveraged_test_accuracy"] = self.score(t.model, t.data.test)
        row["train_seconds"] = round(t.train_seconds, 3)
        t.rows.append(row)
        selection = row.get("val_accuracy")
        improved = selection is None or selection > t.best_score  # no validation: the latest
        if improved:
            t.best_score, t.best_row = (selection if selection is not None else t.best_score), row
            self.save(self.files.best, "best", row)
        if t.dist.main:
            atomic_write(
                self.files.metrics,
                lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in t.rows)),
                what="metrics file",
            )
        self.emit({"kind": "eval", **row, "best": improved})

    def checkpoint_metrics(self, role: str, row: dict | None) -> dict:
        t = self.trainer
        metrics = {
            "checkpoint": role,  # best (chosen on validation) or last
            "selected_on": "validation" if len(t.data.validation) else None,
            "train_images": len(t.data.train),
            "val_images": len(t.data.validation),
            "iterations": t.iteration,
            "train_seconds": round(t.train_seconds, 3),
            "precision": t.precision,
            "device": str(t.device),
            "processes": t.dist.size,
        }
        if row is not None:
            metrics |= {k: v for k, v in row.items() if k.endswith("accuracy")}
            metrics |= {"test_images": len(t.data.test), "evaluated_epoch": row["epoch"]}
        return metrics

    def save(self, path: Path, role: str, row: dict | None, state: dict | None = None) -> None:
        """Write a checkpoint (rank 0 alone, in a data-parallel run)."""
        t = self.trainer
        if not t.dist.main:
            return
        ckpt = build_checkpoint(
            t.spec.name, t.scored,
            recipe={"recipe": t.recipe_name, "seed": t.options.seed, **t.recipe.to_dict()},
            metrics=self.checkpoint_metrics(role, row), epoch=t.epochs_done,
        )
        if state is not None:
            ckpt["training_state"] = state
        save_checkpoint(ckpt, path)

    def save_last(self) -> None:
        """The resumable checkpoint: the model as it is now and the whole training state."""
        t = self.trainer
        if t.dist.main:
            self.save(self.files.last, "last", t.rows[-1] if t.rows else None, t.state_dict())
        self.saved_at, self.saved_resumable = time.monotonic(), True

    def result(self, plot_path: Path | None) -> TrainResult:
        t = self.trainer
        return TrainResult(
            best_path=self.files.best, last_path=self.files.last, plot_path=plot_path,
            metrics_path=self.files.metrics, best=t.best_row, last=t.rows[-1],
            selected_on="validation" if len(t.data.validation) else None,
            train_seconds=t.train_seconds, rows=list(t.rows),
        )


def new_run(options: TrainOptions) -> tuple[Trainer, RunFiles]:
    spec = get_model_spec(options.model)
    name, recipe = resolve_recipe(options)
    dist, device = distributed.start(resolve_device(options.device), recipe.batch_size)
    files = RunFiles.beside(output_paths(options.model, options.out)[0])
    if files.best.is_dir():
        raise SnnError(f"--out {files.best} is a folder; give a file path such as model.pt")
    data = load_shared_data(dist, options, recipe, device, spec.normalisation)
    if dist.main:
        files.check(options.plot)  # fail before training, not after it
    trainer = Trainer(spec, name, recipe, options, device, data, dist)
    trainer.calibrate()
    trainer.distribute()
    return trainer, files


def load_shared_data(dist: Group, options: TrainOptions, recipe: Recipe, device: torch.device,
                     mean_std) -> RunData:
    """load_run_data in every process of a run; on each machine the first process finds (or
    downloads) MNIST before the others read it."""
    if dist.active:
        if dist.local_rank == 0:
            resolve_data_dir(options.data_dir)
        dist.barrier()
    return load_run_data(options, recipe, device, mean_std)


def initialise(model, recipe: Recipe, images: torch.Tensor, norm: dict) -> bool:
    """A freshly built model initialised as its recipe says: with `init` "calibrated", its
    weights scaled to fire at a set rate on the first 256 of the training `images` (uint8).
    Returns whether the weights changed."""
    if recipe.init != "calibrated":
        return False
    device = next(model.parameters()).device
    model.calibrate(normalise(images[:256].to(device), **norm))
    return True


def saved_training_state(path: Path) -> dict:
    """The training state of a resumable checkpoint, or one line saying why it has none."""
    ckpt = load_checkpoint(path)
    state = ckpt.get("training_state")
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
    refused = sorted(set(given.overrides) - {"epochs"})
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
    name = path.name.removesuffix(".last.pt") + ".pt" if path.name.endswith(".last.pt") else None
    files = RunFiles.beside(path.with_name(name) if name else Path(options.out or path))
    if dist.main:
        files.check(options.plot)  # fail before training, not after it
    return trainer, files


@contextmanager
def stop_on_signals(trainer: Trainer):
    """SIGINT and SIGTERM ask training to stop after the current iteration (a second one
    stops at once, except in a data-parallel run, whose processes must stop together and
    whose launcher forwards the signals it gets). Outside the main thread signals cannot be
    caught: nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ask_to_stop(signum, frame):
        if trainer.stop_signal is not None and not trainer.dist.active:
            raise KeyboardInterrupt
        trainer.stop_signal = signum

    previous = {s: signal.signal(s, ask_to_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@distributed.lingers_on_failure
def train(options: TrainOptions, on_event: Callable[[dict], None] | None = None) -> TrainResult:
    """Train (or, with `options.resume`, continue) a model to its recipe's last epoch,
    evaluating after every `eval_epochs` epochs and the last (and every `eval_every`
    iterations), keeping the checkpoint that scores best on the held-out validation images.
    Started by torchrun (or `snn train --nproc`), it is one process of a data-parallel run:
    rank 0 alone reports events and writes files."""
    _check_run_options(options)
    trainer, files = resumed_run(options) if options.resume else new_run(options)
    main = trainer.dist.main
    emit = (on_event if main else None) or (lambda event: None)
    existed = {p for p in (files.best, files.last, files.metrics, files.plot) if p.exists()}
    emit(start_event(trainer))
    run = Run(trainer, files, emit)
    try:
        with stop_on_signals(trainer):
            run.fit()
    except TrainingInterrupted:
        raise
    except SnnError as exc:
        if run.saved_resumable or options.resume:  # say how to continue from the last save
            raise SnnError(
                f"{exc}; the run so far is saved: {resume_command(files.last, trainer.dist.size)}"
            ) from None
        if main:
            _remove_new(files, existed)
        raise
    except BaseException:
        if main and not (run.saved_resumable or options.resume):
            _remove_new(files, existed)
        raise
    plot_path = None
    if trainer.options.plot and main:
        from .plots import plot_training

        history = [{"iteration": i, "loss": v} for i, v in trainer.losses] + trainer.rows
        plot_path = plot_training(history, files.plot, title=f"{trainer.spec.name} training")
    emit({"kind": "done"})
    return run.result(plot_path)


def _remove_new(files: RunFiles, existed: set[Path]) -> None:
    """A run that failed before saving anything resumable leaves no new file behind."""
    for path in {files.best, files.metrics} - existed:
        path.unlink(missing_ok=True)


def start_event(trainer: Trainer) -> dict:
    data = trainer.data
    return {
        "kind": "start",
        "total": trainer.total_iterations,
        "done": trainer.iteration,  # > 0 when resumed
        "train_seconds": trainer.train_seconds,
        "device": str(trainer.device),
        "processes": trainer.dist.size,
        "recipe_name": trainer.recipe_name,
        "recipe": trainer.recipe.to_dict(),
        "precision": trainer.precision,
        "images": {"train": len(data.train), "validation": len(data.validation),
                   "test": len(data.test)},
    }

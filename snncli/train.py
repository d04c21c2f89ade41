"""Training a registered model on MNIST: the run loop, with its evaluations, checkpoints,
metrics file, plot and signals.

UI-free: progress goes to an optional callback, so the CLI draws a Rich bar and tests stay
quiet. All that changes while a model trains lives in one `Trainer` (trainer.py), whose
`state_dict()` is saved in the `.last.pt` checkpoint, so a run interrupted anywhere continues
exactly (resume.py).
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
from pathlib import Path

import torch

from . import distributed, finetune
from .checkpoint import build_checkpoint, save_checkpoint
from .data import Split
from .errors import SnnError
from .evaluate import evaluate_model
from .files import atomic_write
from .models import get_model_spec
from .resume import resume_command, resumed_run
from .runtime import resolve_device
from .train_setup import (
    RunFiles,
    TrainOptions,
    TrainResult,
    check_run_options,
    load_shared_data,
    resolve_recipe,
)
from .trainer import Trainer

__all__ = ["Run", "TrainOptions", "TrainResult", "TrainingInterrupted", "new_run", "train"]


class TrainingInterrupted(SnnError):
    """SIGINT or SIGTERM stopped training; the run was saved and can be resumed."""

    def __init__(self, signum: int, path: Path, iteration: int, nproc: int = 1):
        name = signal.Signals(signum).name
        super().__init__(
            f"{name} received: training stopped at iteration {iteration} and saved; continue "
            f"it with: {resume_command(path, nproc)}"
        )
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def reads_per_sync(device: torch.device) -> int:
    """Iterations whose loss/accuracy are read back from the device together."""
    return 1 if device.type == "cpu" else 25


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

    def validation_score(self, model, row: dict) -> float:
        """What chooses the best checkpoint: the accuracy on the validation images; in a
        fine-tuning run on a folder, the mean of the folder's held-out images' accuracy
        (also in `row`) and MNIST validation's, however few the folder's are."""
        t = self.trainer
        parts = t.data.folder.parts if t.data.folder is not None else None
        if not parts:
            return self.score(model, t.data.validation)
        row["data_val_accuracy"] = own = self.score(model, parts[0])
        return (own + self.score(model, parts[1])) / 2

    def evaluate(self) -> None:
        """Score validation (which chooses the best checkpoint) and test; save the best."""
        t = self.trainer
        row = {"iteration": t.iteration, "epoch": t.epoch}
        if len(t.data.validation):
            row["val_accuracy"] = self.validation_score(t.scored, row)
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
            dataset=t.recipe.dataset,
        )
        ckpt.training_state = state
        if t.options.init_from:
            ckpt.classes = list(t.options.classes)
            folder = t.data.folder.record if t.data.folder is not None else {}
            ckpt.fine_tuned = {"init_from": t.options.init_from, **folder}
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
    options, init = finetune.prepare_options(options)
    spec = get_model_spec(options.model)
    name, recipe = resolve_recipe(options)
    if init is not None:
        finetune.check_fits(spec, recipe, init, options.init_from)
    dist, device = distributed.start(resolve_device(options.device), recipe.batch_size)
    files = RunFiles.of_model(options.model, options.out, recipe.dataset,
                              fine_tuned=init is not None)
    if files.best.is_dir():
        raise SnnError(f"--out {files.best} is a folder; give a file path such as model.pt")
    data = load_shared_data(dist, options, recipe, device, spec.normalisation)
    if data.folder is not None:  # a resumed run checks that the folder is unchanged
        options = dataclasses.replace(options,
                                      data_fingerprint=data.folder.record["fingerprint"])
    if dist.main:
        files.check(options.plot)  # fail before training, not after it
    trainer = Trainer(spec, name, recipe, options, device, data, dist)
    if init is not None:
        trainer.start_from(init.state_dict)
    else:
        trainer.calibrate()
    trainer.distribute()
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
    check_run_options(options)
    trainer, files = resumed_run(options) if options.resume else new_run(options)
    main = trainer.dist.main
    emit = (on_event if main else None) or (lambda event: None)
    existed = {p for p in files.all() if p.exists()}
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

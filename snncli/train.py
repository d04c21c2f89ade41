"""Training a registered model on MNIST: the loop, best/last checkpoints, metrics and plot.

UI-free: progress goes to an optional callback, so the CLI draws a Rich bar and tests stay quiet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .augment import augment_level
from .checkpoint import (
    DEFAULT_DIR,
    atomic_write,
    build_checkpoint,
    prepare_folder,
    save_checkpoint,
)
from .data import Split, batches, load_split, normalise
from .errors import SnnError
from .evaluate import Evaluation, evaluate_model
from .registry import RECIPE_KEYS, get_model_spec, get_recipe, recipe_config, recipe_problem
from .runtime import check_backend, resolve_device, resolve_precision, tune_for_device


@dataclass
class TrainOptions:
    model: str = "csnn"
    recipe: str | None = None  # a named recipe of the model; None = its default
    epochs: int | None = None  # None = the model's recipe
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    device: str = "auto"
    data_dir: str | None = None
    out: str | None = None  # best checkpoint path; default checkpoints/<model>.pt
    train_limit: int | None = None
    test_limit: int | None = None
    eval_every: int | None = None  # also evaluate every N iterations
    eval_epochs: int = 1  # evaluate after every N epochs (and always after the last)
    backend: str = "engine"  # or "snntorch", the reference implementation
    precision: str = "auto"  # bf16 if the device has it natively, else fp32; or "fp32", "bf16"
    augment: str | None = None  # none, light or full (see snncli.augment); None = recipe's
    init: str | None = None  # pytorch or calibrated; None = recipe's
    norm: str | None = None  # none or batch; None = recipe's
    loss: str | None = None  # one of the model's losses; None = recipe's
    ema: float | None = None  # weight-average decay (0 = off); None = recipe's
    surrogate: float | None = None  # surrogate-gradient slope/width; None = recipe's
    decay: str | None = None  # fixed or learned; None = recipe's
    plot: bool = True


@dataclass
class TrainResult:
    best_path: Path
    last_path: Path
    plot_path: Path | None
    metrics_path: Path
    best_accuracy: float
    last_evaluation: Evaluation
    train_seconds: float
    history: list[dict] = field(default_factory=list)


def _positive(name: str, value) -> None:
    if value is not None and value <= 0:
        raise SnnError(f"--{name.replace('_', '-')} must be positive, got {value}")


def resolve_recipe(options: TrainOptions) -> dict:
    """The chosen recipe of the model with the user's overrides applied."""
    spec = get_model_spec(options.model)
    positive = ("epochs", "steps", "batch_size", "lr", "train_limit", "test_limit", "eval_every",
                "eval_epochs")
    for name in positive:
        _positive(name, getattr(options, name))
    recipe = get_recipe(spec, options.recipe)
    for name in RECIPE_KEYS:  # the options named like a recipe setting override it
        if getattr(options, name, None) is not None:
            recipe[name] = getattr(options, name)
    recipe["seed"] = options.seed
    problem = recipe_problem(spec, recipe)
    if problem:
        raise SnnError(f"model {spec.name!r}: {problem}")
    return recipe


def reads_per_sync(device: torch.device) -> int:
    """Iterations whose loss/accuracy are read back from the device together."""
    return 1 if device.type == "cpu" else 25


def make_optimiser(model, recipe: dict, device: torch.device | None = None):
    """Adam, or AdamW (weight decay decoupled from the adaptive step) as the recipe says. On
    CUDA the update is one fused kernel (same algorithm, far fewer launches per iteration)."""
    optimiser = torch.optim.AdamW if recipe["optimizer"] == "adamw" else torch.optim.Adam
    fused = {"fused": True} if device is not None and device.type == "cuda" else {}
    return optimiser(
        model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"], **fused
    )


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


def make_schedule(optimiser, recipe: dict, total_iters: int):
    """Per-iteration learning-rate schedule: constant, or one-cycle (warm-up then cosine)."""
    if recipe["schedule"] == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=recipe["lr"], total_steps=total_iters, pct_start=recipe["warmup"]
        )
    return None  # constant


def output_paths(model: str, out: str | None) -> tuple[Path, Path, Path, Path]:
    """best checkpoint, last checkpoint, plot and metrics file, side by side."""
    best = Path(out) if out else DEFAULT_DIR / f"{model}.pt"
    stem = best.with_suffix("")
    return (
        best,
        stem.with_name(stem.name + ".last.pt"),
        stem.with_name(stem.name + ".png"),
        stem.with_name(stem.name + ".metrics.jsonl"),
    )


def train(options: TrainOptions, on_event: Callable[[dict], None] | None = None) -> TrainResult:
    """Train, evaluating on the test split after every `eval_epochs` epochs and the last (and
    every `eval_every` iterations)."""
    emit = on_event or (lambda event: None)
    recipe = resolve_recipe(options)
    spec = get_model_spec(options.model)
    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)
    best_path, last_path, plot_path, metrics_path = output_paths(options.model, options.out)
    if best_path.is_dir():
        raise SnnError(f"--out {best_path} is a folder; give a file path such as model.pt")

    train_set = load_split("train", options.data_dir, options.train_limit)
    test_set = load_split("test", options.data_dir, options.test_limit)
    prepare_folder(best_path)  # fail before training, not after it
    if device.type != "cpu":  # MNIST fits in GPU memory: no host copies per iteration
        train_set = Split(train_set.images.to(device), train_set.labels.to(device))
        test_set = Split(test_set.images.to(device), test_set.labels.to(device))

    torch.manual_seed(options.seed)
    model = spec.build(spec.config_cls(**recipe_config(spec, recipe))).to(device)
    tune_for_device(model, device, recipe["batch_size"])
    model.backend = check_backend(options.backend)
    model.precision = precision
    norm = {"mean": spec.normalisation[0], "std": spec.normalisation[1]}
    if recipe["init"] == "calibrated":  # on the first training images, before any update
        model.calibrate(normalise(train_set.images[:256].to(device), **norm))
    optimiser = make_optimiser(model, recipe, device)
    averaged = make_average(model, recipe["ema"])
    scored = averaged.module if averaged is not None else model  # evaluated and saved
    shuffle = torch.Generator().manual_seed(options.seed)

    per_epoch = -(-len(train_set) // recipe["batch_size"])
    total_iters = per_epoch * recipe["epochs"]
    schedule = make_schedule(optimiser, recipe, total_iters)
    emit(
        {
            "kind": "start",
            "total": total_iters,
            "device": str(device),
            "recipe": recipe,
            "precision": precision,
        }
    )
    history: list[dict] = []
    best_accuracy, last_eval, iteration = -1.0, None, 0
    train_seconds = 0.0
    metrics_lines: list[str] = []

    def score(net) -> Evaluation:
        return evaluate_model(net, test_set, norm, device, batch_size=1000)

    def run_eval(epoch: int) -> Evaluation:
        nonlocal best_accuracy
        evaluation = score(scored)
        row = {
            "iteration": iteration,
            "epoch": epoch,
            "test_accuracy": evaluation.accuracy,
            "train_seconds": round(train_seconds, 3),
        }
        if averaged is not None and iteration == total_iters:  # what the average added, once
            row["unaveraged_test_accuracy"] = score(model).accuracy
        history.append(row)
        metrics_lines.append(json.dumps(row))
        atomic_write(
            metrics_path, lambda tmp: Path(tmp).write_text("\n".join(metrics_lines) + "\n")
        )
        improved = evaluation.accuracy > best_accuracy
        if improved:
            best_accuracy = evaluation.accuracy
            save(best_path, epoch, evaluation)
        emit({"kind": "eval", **row, "best": improved})
        return evaluation

    def save(path: Path, epoch: int, evaluation: Evaluation) -> None:
        metrics = {
            "test_accuracy": evaluation.accuracy,
            "test_images": evaluation.total,
            "train_images": len(train_set),
            "iterations": iteration,
            "train_seconds": round(train_seconds, 3),
            "precision": precision,
            "device": str(device),
        }
        save_checkpoint(
            build_checkpoint(options.model, scored, recipe=recipe, metrics=metrics, epoch=epoch),
            path,
        )

    # Losses and accuracies stay on the device and are read back in groups: a GPU is never
    # made to wait for the host after each iteration (on a CPU, reading is free).
    sync_every = reads_per_sync(device)
    pending: list[tuple[int, int, torch.Tensor, torch.Tensor, int]] = []

    def flush() -> None:
        nonlocal train_seconds
        if not pending:
            return
        values = torch.stack([torch.stack([p[2], p[3].float()]) for p in pending])
        train_seconds += time.perf_counter() - started
        for (it, ep, _, _, n), (loss_value, correct) in zip(pending, values.tolist(), strict=True):
            history.append({"iteration": it, "epoch": ep, "loss": loss_value})
            emit(
                {
                    "kind": "step",
                    "iteration": it,
                    "epoch": ep,
                    "loss": loss_value,
                    "batch_accuracy": correct / n,
                    "images": n,
                    "train_seconds": train_seconds,
                }
            )
        pending.clear()

    for epoch in range(1, recipe["epochs"] + 1):
        evaluated = epoch % options.eval_epochs == 0 or epoch == recipe["epochs"]
        model.train()
        started = time.perf_counter()
        for images, labels in batches(train_set, recipe["batch_size"], True, shuffle):
            images = images.to(device)
            images = augment_level(images, recipe["augment"], shuffle)
            x = normalise(images, **norm)
            labels = labels.to(device)
            record = model(x)
            loss = model.loss(record, labels, recipe["label_smoothing"], recipe["loss"])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if averaged is not None:
                update_average(averaged, model)
            if schedule is not None:
                schedule.step()
            iteration += 1
            with torch.no_grad():
                correct = (model.readout(record).argmax(1) == labels).sum()
            pending.append((iteration, epoch, loss.detach(), correct, len(labels)))
            if len(pending) >= sync_every:
                flush()
                started = time.perf_counter()
            if (
                options.eval_every
                and iteration % options.eval_every == 0
                and not (evaluated and iteration % per_epoch == 0)  # epoch-end one follows
            ):
                flush()
                run_eval(epoch)
                model.train()
                started = time.perf_counter()
        flush()
        if evaluated:
            last_eval = run_eval(epoch)

    save(last_path, recipe["epochs"], last_eval)
    written_plot = None
    if options.plot:
        from .plots import plot_training

        written_plot = plot_training(history, plot_path, title=f"{options.model} training")
    emit({"kind": "done"})
    return TrainResult(
        best_path=best_path,
        last_path=last_path,
        plot_path=written_plot,
        metrics_path=metrics_path,
        best_accuracy=best_accuracy,
        last_evaluation=last_eval,
        train_seconds=train_seconds,
        history=history,
    )

"""What a training run is made of: its options and result, the files it writes, the recipe
resolved for its model, the model, optimiser, schedule and weight average it builds, and the
data it trains on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import DEFAULT_DIR
from .data import Split, default_val_size, hold_out, load_split, normalise, resolve_data_dir
from .datasets import DEFAULT_DATASET
from .distributed import Group
from .errors import SnnError
from .files import check_outputs
from .models import ModelSpec, get_model_spec, get_recipe
from .recipes import Recipe, RecipeError
from .styles import style_digits


@dataclass
class TrainOptions:
    model: str | None = "csnn"  # None with init_from: the init checkpoint's model
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
    # Fine-tuning (snncli/finetune.py): the weights to start from ("bundled" or a checkpoint),
    # the labelled image folder to train on, each output's class name (the init checkpoint's)
    # and the folder's fingerprint (set when it is read: a resumed run checks it).
    init_from: str | None = None
    data: str | None = None
    classes: list[str] | None = None
    data_fingerprint: str | None = None


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


@dataclass(frozen=True)
class RunFiles:
    """The files a run writes, side by side: `<name>.pt` (the best checkpoint), `<name>.last.pt`
    (the resumable one), `<name>.png` (the plot) and `<name>.metrics.jsonl`."""

    best: Path
    last: Path
    plot: Path
    metrics: Path

    @classmethod
    def beside(cls, best: Path) -> RunFiles:
        stem = best.with_suffix("")
        named = [stem.with_name(stem.name + suffix) for suffix in (".last.pt", ".png",
                                                                    ".metrics.jsonl")]
        return cls(best, *named)

    @classmethod
    def of_model(cls, model: str, out: str | Path | None, dataset: str = DEFAULT_DATASET,
                 fine_tuned: bool = False) -> RunFiles:
        """A new run's files: at `out`, or checkpoints/<model>.pt; <model>-<data set>.pt for
        a data set other than MNIST and <model>-finetuned.pt for a fine-tuning run, so that
        no run replaces another's."""
        if out:
            return cls.beside(Path(out))
        name = model + ("" if dataset == DEFAULT_DATASET else f"-{dataset}")
        name += "-finetuned" if fine_tuned else ""
        return cls.beside(DEFAULT_DIR / f"{name}.pt")

    @classmethod
    def of_last(cls, last: Path, out: str | Path | None) -> RunFiles:
        """The files of the run whose resumable checkpoint is `last` (`<name>.last.pt`; a
        file named otherwise keeps its run's `out`)."""
        if last.name.endswith(".last.pt"):
            return cls.beside(last.with_name(last.name.removesuffix(".last.pt") + ".pt"))
        return cls.beside(Path(out or last))

    def all(self) -> tuple[Path, Path, Path, Path]:
        return (self.best, self.last, self.plot, self.metrics)

    def check(self, plot: bool) -> None:
        """Say in one line, before any training, why a file of the run cannot be written."""
        check_outputs([(self.best, "checkpoint"), (self.last, "checkpoint"),
                       (self.metrics, "metrics file")] + ([(self.plot, "plot")] if plot else []))


def check_run_options(options: TrainOptions) -> None:
    for name in ("train_limit", "test_limit", "eval_every", "eval_epochs", "save_every"):
        value = getattr(options, name)
        if value is not None and not value > 0:
            raise SnnError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if options.val_size is not None and options.val_size < 0:
        raise SnnError(f"--val-size must be 0 (off) or positive, got {options.val_size}")


def resolve_recipe(options: TrainOptions) -> tuple[str, Recipe]:
    """(name, recipe): the model's named recipe with the options' overrides applied, checked."""
    spec = get_model_spec(options.model)
    name, recipe = get_recipe(spec, options.recipe, options.overrides.get("dataset"))
    try:
        return name, recipe.with_overrides(options.overrides).check(spec.losses)
    except RecipeError as exc:
        raise RecipeError(f"model {spec.name!r}: {exc}") from None


def run_dataset(options: TrainOptions) -> str:
    """The data set a new run trains on (its recipe's), or MNIST where the options are bad."""
    try:
        return resolve_recipe(options)[1].dataset
    except SnnError:
        return DEFAULT_DATASET


def build_model(spec: ModelSpec, recipe: Recipe, seed: int):
    torch.manual_seed(seed)
    return spec.build(spec.config_for(recipe))


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


def initialise(model, recipe: Recipe, images: torch.Tensor, norm: dict) -> bool:
    """A freshly built model initialised as its recipe says: with `init` "calibrated", its
    weights scaled to fire at a set rate on the first 256 of the training `images` (uint8).
    Returns whether the weights changed."""
    if recipe.init != "calibrated":
        return False
    device = next(model.parameters()).device
    model.calibrate(normalise(images[:256].to(device), **norm))
    return True


@dataclass
class RunData:
    train: Split
    validation: Split
    test: Split
    norm: dict
    folder: Any = None  # fine-tuning on a labelled folder: finetune.FolderData


def load_run_data(
    options: TrainOptions, recipe: Recipe, device: torch.device, mean_std
) -> RunData:
    folder = None
    if options.data:  # fine-tuning on a labelled folder, mixed with MNIST
        from .finetune import folder_splits

        train_set, validation, test_set, folder = folder_splits(options)
    else:
        train_set = load_split("train", options.data_dir, options.train_limit, recipe.dataset)
        test_set = load_split("test", options.data_dir, options.test_limit, recipe.dataset)
        size = options.val_size if options.val_size is not None else default_val_size(
            len(train_set))
        train_set, validation = hold_out(train_set, size, options.seed)
    train_set = with_styles(train_set, round(recipe.styles * len(train_set)), options.seed)
    if device.type != "cpu":  # MNIST fits in GPU memory: no host copies per iteration
        train_set, validation, test_set = (
            Split(s.images.to(device), s.labels.to(device))
            for s in (train_set, validation, test_set)
        )
        if folder is not None and folder.parts:
            folder.parts = tuple(Split(s.images.to(device), s.labels.to(device))
                                 for s in folder.parts)
    return RunData(train_set, validation, test_set, {"mean": mean_std[0], "std": mean_std[1]},
                   folder)


def load_shared_data(dist: Group, options: TrainOptions, recipe: Recipe, device: torch.device,
                     mean_std) -> RunData:
    """load_run_data in every process of a run; on each machine the first process finds (or
    downloads) MNIST before the others read it."""
    if dist.active:
        if dist.local_rank == 0:
            resolve_data_dir(options.data_dir, recipe.dataset)
        dist.barrier()
    return load_run_data(options, recipe, device, mean_std)


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

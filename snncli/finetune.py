"""Fine-tuning a trained checkpoint (`snn train --init-from bundled|CHECKPOINT`), on a
labelled image folder (`--data DIR`) mixed with MNIST training images.

The model, its config and its class names are the init checkpoint's; the weights start from
it. The folder's images are split, by the run's seed and class by class, into training
images and a held-out share; each epoch trains on the folder's training images (repeated
until they make FOLDER_EPOCH images) and as many MNIST training images again (MNIST_SHARE),
the usual guard against forgetting MNIST. The best checkpoint is chosen on the mean of two
accuracies, the folder's held-out images and MNIST's validation images, never on a test set.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch

from .data import Split, default_val_size, hold_out, load_split
from .datasets import DEFAULT_DATASET
from .errors import OptionError, SnnError, one_line

FINETUNE_RECIPE = "finetune"  # the recipe a run with --init-from uses unless told otherwise
HOLD_OUT = 0.2  # of each class of the folder, for choosing the best checkpoint
FOLDER_EPOCH = 1024  # an epoch repeats the folder's training images to at least this many
MNIST_SHARE = 0.5  # of an epoch's images, MNIST training images (drawn by the seed)
MNIST_VALIDATION = 1000  # MNIST training images held out by default (--val-size sets it)
# The recipe settings that make the model's config (`recipe_mapping`), but for dropout, a
# training choice: a fine-tuning run takes them from the init checkpoint's recipe.
MODEL_SETTINGS = ("steps", "norm", "surrogate", "decay")


def init_checkpoint(init_from: str, model: str | None):
    """(path, Checkpoint) of `--init-from`: a checkpoint file, or 'bundled' (the bundled
    weights of `model`, default csnn)."""
    from .checkpoint import load_checkpoint
    from .choice import choose_checkpoint

    path = choose_checkpoint(init_from, model)[0]
    return path, load_checkpoint(path)


def prepare_options(options):
    """A new run's options with what fine-tuning takes from its init checkpoint (the model,
    the recipe's model settings, the class names), and that checkpoint (None without
    --init-from). Each option that does not fit is one line."""
    from .models import get_model_spec

    if options.data and not options.init_from:
        raise OptionError("--data fine-tunes a trained model: give --init-from bundled (the "
                          "weights that ship with snncli) or --init-from CHECKPOINT")
    if not options.init_from:
        if options.recipe == FINETUNE_RECIPE:
            raise OptionError(f"--recipe {FINETUNE_RECIPE} starts from trained weights: give "
                              "--init-from bundled or --init-from CHECKPOINT")
        return options, None
    path, ckpt = init_checkpoint(options.init_from, options.model)
    name = one_line(options.init_from)
    if options.model is not None and options.model != ckpt.model:
        raise OptionError(f"--model {options.model} does not fit --init-from {name}, a "
                          f"{ckpt.model} checkpoint (leave --model out, or give --model "
                          f"{ckpt.model})")
    if options.data and ckpt.dataset != DEFAULT_DATASET:
        raise SnnError(f"--init-from {name} was trained on {ckpt.dataset}; fine-tuning on "
                       "--data mixes in MNIST images, so it takes an MNIST checkpoint")
    spec = get_model_spec(ckpt.model)
    recipe = options.recipe or FINETUNE_RECIPE
    if recipe not in spec.recipes:
        raise OptionError(f"model {ckpt.model!r} has no recipe {recipe!r} to fine-tune with; "
                          f"give --recipe (one of: {', '.join(spec.recipes)})")
    taken = {k: ckpt.recipe[k] for k in MODEL_SETTINGS
             if k in ckpt.recipe and k not in options.overrides}
    if not options.data and "dataset" not in options.overrides:
        taken["dataset"] = ckpt.dataset  # training goes on with the checkpoint's data set
    options = dataclasses.replace(
        options, model=ckpt.model, recipe=recipe, overrides={**options.overrides, **taken},
        classes=list(ckpt.class_names),
    )
    return options, ckpt


def check_fits(spec, recipe, ckpt, init_from: str) -> None:
    """The model `recipe` builds must be the init checkpoint's: one line naming what differs.
    Fields a checkpoint lacks (stored before they existed) have their defaults."""
    built = dataclasses.asdict(spec.config_for(recipe))
    stored = dataclasses.asdict(spec.config_cls(**ckpt.config))
    ignored = spec.config_cls.training_only  # every model config is a SpikingConfig
    differ = [f"{k} {stored[k]!r} (the recipe's {v!r})" for k, v in built.items()
              if k not in ignored and stored[k] != v]
    if differ:
        raise OptionError(f"--init-from {one_line(init_from)} does not fit the run's model: its "
                          f"{', '.join(differ)}")


@dataclasses.dataclass
class FolderData:
    """A fine-tuning run's data beyond `RunData`'s: the validation parts and the record of
    the folder stored in its checkpoints (`Checkpoint.fine_tuned`)."""

    parts: tuple[Split, Split] | None  # (the folder's held-out images, MNIST validation)
    record: dict[str, Any]


def folder_splits(options) -> tuple[Split, Split, Split, FolderData]:
    """(training, validation, test) images of a fine-tuning run on the labelled folder
    `options.data` (see the module's docstring), and its FolderData. A resumed run checks
    that the folder holds the files it was saved with."""
    from .folders import hold_out_per_class, read_labelled_folder

    folder = read_labelled_folder(options.data, options.classes)
    name = one_line(options.data)
    saved = options.data_fingerprint
    if saved is not None and saved != folder.fingerprint:
        was, now = saved.split(":")[0], folder.fingerprint.split(":")[0]
        change = f"it held {was} image files, now {now}" if was != now else (
            "its files were renamed, moved or rewritten")
        raise SnnError(f"--data {name} has changed since the run was saved ({change}); a "
                       "resumed run trains on the same images: restore them, or start a new "
                       "run")
    images, labels = folder.split.images, folder.split.labels
    train_at, held_at = hold_out_per_class(labels, HOLD_OUT, options.seed)
    own = Split(images[train_at], labels[train_at])
    own_val = Split(images[held_at], labels[held_at])
    copies = max(1, math.ceil(FOLDER_EPOCH / len(own)))
    own = Split(own.images.repeat(copies, 1, 1), own.labels.repeat(copies))

    mnist = load_split("train", options.data_dir, options.train_limit)
    size = options.val_size if options.val_size is not None else min(
        MNIST_VALIDATION, default_val_size(len(mnist)))
    mnist, mnist_val = hold_out(mnist, size, options.seed)
    wanted = round(len(own) * MNIST_SHARE / (1 - MNIST_SHARE))
    picked = torch.randperm(len(mnist), generator=torch.Generator().manual_seed(options.seed))
    picked = picked[:wanted]
    train = Split(torch.cat([own.images, mnist.images[picked]]),
                  torch.cat([own.labels, mnist.labels[picked]]))
    validation = Split(torch.cat([own_val.images, mnist_val.images]),
                       torch.cat([own_val.labels, mnist_val.labels]))
    test = load_split("test", options.data_dir, options.test_limit)
    record = {
        "data": str(Path(options.data).expanduser()),
        "images": len(folder),
        "train_images": len(train_at),
        "held_out": len(held_at),
        "copies": copies,
        "mnist_images": len(picked),
        "skipped": len(folder.skipped),
        "classes": list(folder.found),
        "fingerprint": folder.fingerprint,
    }
    parts = (own_val, mnist_val) if len(own_val) and len(mnist_val) else None
    return train, validation, test, FolderData(parts, record)

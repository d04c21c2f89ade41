"""Training recipes: one typed, frozen `Recipe` whose fields are every training setting.

Each field is declared once, here, with its default (the csnn seed code's value), its allowed
range or choices (snncli.checks) and its help text. The CLI builds its `snn train` options
from these declarations, checkpoints store a recipe as a plain dict and are checked against
them on load, and model modules declare their named recipes as differences from a seed
(`dataclasses.replace`). Torch-free, so `snn --help` stays fast.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .checks import MAX_STEPS, Checked, choice, number, text, whole
from .datasets import DATASETS, DEFAULT_DATASET, get_dataset
from .errors import SnnError


class RecipeError(SnnError):
    """A recipe setting is unknown, of the wrong type or out of range: a usage error."""

    exit_code = 2


# snncli.augment's levels (declared here too: this module stays torch-free); the ones that
# flip images left-right, which digits do not survive.
AUGMENT_LEVELS = ("none", "light", "full", "mirror", "clothing")
MIRRORING_LEVELS = ("mirror", "clothing")


@dataclass(frozen=True)
class Recipe(Checked):
    """How a model is trained. Defaults are the snnTorch tutorial's csnn (the seed code)."""

    dataset: str = choice(
        *DATASETS, default=DEFAULT_DATASET,
        help="The data set to train on: mnist (handwritten digits) or fashion-mnist (clothing).",
    )
    epochs: int = whole(1, 100_000, 1, help="Passes over the training images.")
    batch_size: int = whole(1, 2**20, 128, help="Images per iteration.")
    lr: float = number(0, math.inf, 1e-2, low_open=True, help="Peak learning rate.")
    optimizer: str = choice(
        "adam", "adamw", default="adam",
        help="adam, or adamw (weight decay decoupled from the step).",
    )
    weight_decay: float = number(0, math.inf, 0.0, help="Weight decay of the optimiser.")
    schedule: str = choice(
        "constant", "onecycle", default="constant",
        help="constant, or onecycle (warm-up, then cosine decay).",
    )
    warmup: float = number(
        0, 1, 0.0, high_open=True, help="onecycle: fraction of iterations warming up."
    )
    label_smoothing: float = number(
        0, 1, 0.0, high_open=True, help="Label smoothing of the loss."
    )
    steps: int = whole(1, MAX_STEPS, 100, help="Time steps per image.")
    augment: str = choice(
        *AUGMENT_LEVELS, default="none",
        help="none, light (shifts, small rotations), full (also scale and stroke width), "
        "mirror (half the images flipped left-right; clothing only) or clothing (mirror, "
        "whole-pixel shifts and a random rectangle blanked in half the images; clothing only).",
    )
    styles: float = number(
        0, 1, 0.0,
        help="Extra training images drawn from stroke templates in forms MNIST hardly holds "
        "(European 1s with a flag and serif, crossed 7s), as a fraction of the training set.",
    )
    init: str = choice(
        "pytorch", "calibrated", default="pytorch",
        help="pytorch (default layer init) or calibrated (weights scaled until every spiking "
        "layer fires).",
    )
    norm: str = choice(
        "none", "batch", default="none",
        help="none, or batch (batch norm before each hidden spiking layer; folds away at "
        "inference).",
    )
    loss: str = text(
        "rate", help="Training loss, one of the model's: csnn rate or count (cross-entropy of "
        "each step's spikes, or of the spike counts); mlp mean.",
    )
    dropout: float = number(
        0, 1, 0.0, high_open=True,
        help="Share of the spikes into each fully connected layer dropped in training (the "
        "same neurons at every time step of an image), such as 0.3; 0 turns it off.",
    )
    ema: float = number(
        0, 1, 0.0, high_open=True,
        help="Decay of a moving average of the weights that is evaluated and saved, such as "
        "0.999; 0 turns it off.",
    )
    surrogate: float = number(
        0, math.inf, 25.0, low_open=True,
        help="Surrogate gradient of the spike: csnn fast-sigmoid slope (higher = narrower), mlp "
        "triangle width gamma.",
    )
    decay: str = choice(
        "fixed", "learned", default="fixed",
        help="fixed (csnn beta 0.5, mlp tau 0.5), or learned per spiking layer from there.",
    )

    def __post_init__(self) -> None:
        pass  # built freely (overrides, stored recipes); `check` says what is wrong

    def setting_problems(self, losses: Iterable[str] = ()) -> list[str]:
        """One message per invalid setting (`losses`: the model's; empty = not checked)."""
        found = Checked.check(self)
        losses = tuple(losses)
        if losses and isinstance(self.loss, str) and self.loss not in losses:
            found.append(f"loss {self.loss!r} must be one of: {', '.join(losses)}")
        if self.dataset in DATASETS:
            found += self._unfit_for(get_dataset(self.dataset))
        return found

    def _unfit_for(self, dataset) -> list[str]:
        """The settings that do not fit the data set's images, one message each."""
        if not dataset.digits and isinstance(self.styles, (int, float)) and self.styles > 0:
            return [f"styles {self.styles} adds handwritten digits, which {dataset.title} "
                    "does not hold: set styles 0"]
        if dataset.digits and self.augment in MIRRORING_LEVELS:
            *others, last = (level for level in AUGMENT_LEVELS if level not in MIRRORING_LEVELS)
            return [f"augment {self.augment} flips images left-right, which turns digits into "
                    f"other shapes: use {', '.join(others)} or {last} for {dataset.title}"]
        return []

    def check(self, losses: Iterable[str] = ()) -> Recipe:
        """This recipe, or a RecipeError naming every invalid setting (one per line)."""
        problems = self.setting_problems(losses)
        if problems:
            raise RecipeError("\n".join(problems))
        return self

    def with_overrides(self, overrides: Mapping[str, Any]) -> Recipe:
        """A copy with the settings in `overrides` replaced (None values ignored)."""
        unknown = sorted(set(overrides) - set(SETTINGS))
        if unknown:
            raise RecipeError(
                f"unknown recipe setting {', '.join(unknown)}; known: {', '.join(SETTINGS)}"
            )
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, losses: Iterable[str] = ()) -> Recipe:
        """A checked recipe from a stored mapping (a checkpoint's). A setting added after the
        recipe was stored keeps its default, which leaves training as it was before."""
        if not isinstance(data, Mapping):
            raise RecipeError(f"recipe must be a mapping of settings, not {type(data).__name__}")
        unknown = [f"recipe has an unknown field {k!r}" for k in data if k not in SETTINGS]
        if unknown:
            raise RecipeError("\n".join(unknown))
        return cls(**{k: data[k] for k in SETTINGS if k in data}).check(losses)


SETTINGS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Recipe))


def recipe_fields() -> tuple[dataclasses.Field, ...]:
    """The declarations the CLI builds its options from."""
    return dataclasses.fields(Recipe)

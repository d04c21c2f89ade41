"""Training recipes: one typed, frozen `Recipe` whose fields are every training setting.

Each field is declared once, here, with its default (the csnn seed code's value), its help
text, its allowed choices or range. The CLI builds its `snn train` options from these
declarations, checkpoints store a recipe as a plain dict and are checked against them on load,
and model modules declare their named recipes as differences from a seed
(`dataclasses.replace`). Torch-free, so `snn --help` stays fast.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SnnError


class RecipeError(SnnError):
    """A recipe setting is unknown, of the wrong type or out of range: a usage error."""

    exit_code = 2


def setting(default, help: str, *, choices: tuple = (), minimum=None, exclusive_min=False,
            below=None):
    """A recipe field: `choices` for names; numbers in [minimum, below) (`exclusive_min`
    makes the minimum itself invalid)."""
    meta = {"help": help, "choices": choices, "minimum": minimum, "exclusive_min": exclusive_min,
            "below": below}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Recipe:
    """How a model is trained. Defaults are the snnTorch tutorial's csnn (the seed code)."""

    epochs: int = setting(1, "Passes over the training images.", minimum=1)
    batch_size: int = setting(128, "Images per iteration.", minimum=1)
    lr: float = setting(1e-2, "Peak learning rate.", minimum=0, exclusive_min=True)
    optimizer: str = setting(
        "adam", "adam, or adamw (weight decay decoupled from the step).", choices=("adam", "adamw")
    )
    weight_decay: float = setting(0.0, "Weight decay of the optimiser.", minimum=0)
    schedule: str = setting(
        "constant", "constant, or onecycle (warm-up, then cosine decay).",
        choices=("constant", "onecycle"),
    )
    warmup: float = setting(0.0, "onecycle: fraction of iterations warming up.", minimum=0, below=1)
    label_smoothing: float = setting(0.0, "Label smoothing of the loss.", minimum=0, below=1)
    steps: int = setting(100, "Time steps per image.", minimum=1)
    augment: str = setting(
        "none", "none, light (shifts, small rotations) or full (also scale and stroke width).",
        choices=("none", "light", "full"),
    )
    init: str = setting(
        "pytorch", "pytorch (default layer init) or calibrated (weights scaled until every "
        "spiking layer fires).", choices=("pytorch", "calibrated"),
    )
    norm: str = setting(
        "none", "none, or batch (batch norm before each hidden spiking layer; folds away at "
        "inference).", choices=("none", "batch"),
    )
    loss: str = setting(
        "rate", "Training loss, one of the model's: csnn rate or count (cross-entropy of each "
        "step's spikes, or of the spike counts); mlp mean.",
    )
    ema: float = setting(
        0.0, "Decay of a moving average of the weights that is evaluated and saved, such as "
        "0.999; 0 turns it off.", minimum=0, below=1,
    )
    surrogate: float = setting(
        25.0, "Surrogate gradient of the spike: csnn fast-sigmoid slope (higher = narrower), "
        "mlp triangle width gamma.", minimum=0, exclusive_min=True,
    )
    decay: str = setting(
        "fixed", "fixed (csnn beta 0.5, mlp tau 0.5), or learned per spiking layer from there.",
        choices=("fixed", "learned"),
    )

    def problems(self, losses: Iterable[str] = ()) -> list[str]:
        """One message per invalid setting (`losses`: the model's; empty = not checked)."""
        found = []
        for f in dataclasses.fields(self):
            problem = _field_problem(f, getattr(self, f.name))
            if problem:
                found.append(f"{f.name}: {problem}")
        losses = tuple(losses)
        if losses and isinstance(self.loss, str) and self.loss not in losses:
            found.append(f"loss: unknown loss {self.loss!r}; choose one of: {', '.join(losses)}")
        return found

    def check(self, losses: Iterable[str] = ()) -> Recipe:
        """This recipe, or a RecipeError listing every invalid setting."""
        problems = self.problems(losses)
        if problems:
            raise RecipeError("; ".join(problems))
        return self

    def with_overrides(self, overrides: Mapping[str, Any]) -> Recipe:
        """A copy with the settings in `overrides` replaced (None values ignored)."""
        unknown = sorted(set(overrides) - set(SETTINGS))
        if unknown:
            raise RecipeError(
                f"unknown recipe setting {', '.join(unknown)}; known: {', '.join(SETTINGS)}"
            )
        given = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **given)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, losses: Iterable[str] = ()) -> Recipe:
        """A checked recipe from a stored mapping (a checkpoint's), every problem named."""
        if not isinstance(data, Mapping):
            raise RecipeError(f"recipe must be a mapping of settings, not {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in SETTINGS)
        if unknown:
            raise RecipeError("; ".join(f"{k}: unknown setting" for k in unknown))
        # A setting added after the recipe was stored keeps its default, which leaves training
        # as it was before the setting existed.
        return cls(**{k: data[k] for k in SETTINGS if k in data}).check(losses)


SETTINGS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Recipe))


def _field_problem(f: dataclasses.Field, value: Any) -> str | None:
    meta, kind = f.metadata, f.type
    if kind == "str":
        if not isinstance(value, str):
            return f"must be a name, not {value!r}"
        if meta["choices"] and value not in meta["choices"]:
            return f"unknown {f.name} {value!r}; choose one of: {', '.join(meta['choices'])}"
        return None
    wanted = int if kind == "int" else (int, float)
    if isinstance(value, bool) or not isinstance(value, wanted):
        return f"must be {'a whole number' if kind == 'int' else 'a number'}, not {value!r}"
    if not math.isfinite(value):
        return f"must be a finite number, not {value!r}"
    low, high = meta["minimum"], meta["below"]
    too_low = low is not None and (value <= low if meta["exclusive_min"] else value < low)
    if too_low or (high is not None and value >= high):
        return f"{value!r} is out of range: must be {describe_range(f)}"
    return None


def describe_range(f: dataclasses.Field) -> str:
    meta = f.metadata
    low, high = meta["minimum"], meta["below"]
    if low is not None and high is not None:
        return f"in [{low}, {high})" if not meta["exclusive_min"] else f"in ({low}, {high})"
    if low == 0 and meta["exclusive_min"]:
        return "positive"
    if low is not None:
        return f"at least {low}" if not meta["exclusive_min"] else f"above {low}"
    return "any number"


def recipe_fields() -> tuple[dataclasses.Field, ...]:
    """The declarations the CLI builds its options from."""
    return dataclasses.fields(Recipe)

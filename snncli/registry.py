"""The model registry shared by every command (torchvision/timm style).

Model modules call `register_model` at import time; `snncli.models` imports them all.
This module itself stays free of torch so `snn --help` is fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import SnnError


@dataclass(frozen=True)
class ModelSpec:
    """Everything the tool needs to know about a model besides its weights."""

    name: str
    summary: str
    config_cls: type  # dataclass of architecture + neuron hyperparameters
    build: Callable[[Any], Any]  # config -> torch.nn.Module
    # Named training recipes (see RECIPE_KEYS);
    # `default_recipe` names the one `snn train` uses without --recipe.
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_recipe: str = "seed"
    normalisation: tuple[float, float] = (0.0, 1.0)  # (mean, std) applied to pixels in [0, 1]


_REGISTRY: dict[str, ModelSpec] = {}
RECIPE_KEYS = (
    "epochs",
    "batch_size",
    "lr",
    "optimizer",  # adam, or adamw (decoupled weight decay)
    "weight_decay",
    "schedule",  # constant, or onecycle (warm-up then cosine decay)
    "warmup",  # onecycle: fraction of the iterations spent warming up to lr
    "label_smoothing",
    "steps",
    "augment",  # none, light (MNIST-sized shifts/rotations) or full (also scale and stroke)
    "init",  # pytorch (default layer init), or calibrated (scaled to fire; see calibrate())
    "norm",  # none, or batch (batch norm before each hidden LIF layer; folds away at inference)
    "loss",  # one of the model class's `losses` (csnn: rate or count; mlp: mean)
    "ema",  # 0 = off; else the decay of a moving average of the weights, evaluated and saved
    "surrogate",  # the spike's surrogate-gradient parameter (the model class's surrogate_field)
    "decay",  # fixed (the config's beta/tau), or learned per spiking layer (starting there)
)
AUGMENT_LEVELS = ("none", "light", "full")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "onecycle")
INITS = ("pytorch", "calibrated")
NORMS = ("none", "batch")
DECAYS = ("fixed", "learned")


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    if spec.default_recipe not in spec.recipes:
        raise ValueError(f"model {spec.name!r}: default recipe {spec.default_recipe!r} missing")
    for name, recipe in spec.recipes.items():
        missing = [k for k in RECIPE_KEYS if k not in recipe]
        if missing:
            raise ValueError(f"model {spec.name!r} recipe {name!r} lacks {', '.join(missing)}")
        problem = recipe_problem(spec, recipe)
        if problem:
            raise ValueError(f"model {spec.name!r} recipe {name!r}: {problem}")
    _REGISTRY[spec.name] = spec
    return spec


def recipe_problem(spec: ModelSpec, recipe: dict[str, Any]) -> str | None:
    """The first setting of `recipe` that `spec`'s model cannot train with, as a message."""
    choices = {
        "augment": AUGMENT_LEVELS,
        "optimizer": OPTIMIZERS,
        "schedule": SCHEDULES,
        "init": INITS,
        "norm": NORMS,
        "decay": DECAYS,
        "loss": getattr(spec.build, "losses", (recipe["loss"],)),  # the model class's own
    }
    for key, valid in choices.items():
        if recipe[key] not in valid:
            return f"unknown {key} {recipe[key]!r}; choose one of: {', '.join(valid)}"
    if not 0.0 <= recipe["ema"] < 1.0:
        return f"ema {recipe['ema']!r} must be 0 (off) or a decay in (0, 1), such as 0.999"
    if not recipe["surrogate"] > 0:
        return f"surrogate {recipe['surrogate']!r} must be positive"
    return None


def recipe_config(spec: ModelSpec, recipe: dict[str, Any]) -> dict[str, Any]:
    """The fields of the model's config that `recipe` sets."""
    surrogate = spec.build.surrogate_field  # csnn: fast-sigmoid slope; mlp: triangle width
    return {"steps": recipe["steps"], "norm": recipe["norm"], surrogate: recipe["surrogate"],
            "learn_decay": recipe["decay"] == "learned"}


def list_models() -> list[str]:
    _load_builtin_models()
    return sorted(_REGISTRY)


def get_recipe(spec: ModelSpec, name: str | None) -> dict[str, Any]:
    """A copy of recipe `name` (default: the model's default) with its name recorded."""
    name = name or spec.default_recipe
    if name not in spec.recipes:
        raise SnnError(
            f"model {spec.name!r} has no recipe {name!r}; choose one of: "
            f"{', '.join(sorted(spec.recipes))}"
        )
    return {"recipe": name, **spec.recipes[name]}


def get_model_spec(name: str) -> ModelSpec:
    _load_builtin_models()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise SnnError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}"
        ) from None


def create_model(name: str, **overrides: Any):
    """Build model `name` with its default config, fields overridden by keyword."""
    spec = get_model_spec(name)
    return spec.build(spec.config_cls(**overrides))


def _load_builtin_models() -> None:
    from . import models  # noqa: F401  (registers csnn and mlp on import)

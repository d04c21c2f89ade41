"""The model registry shared by every command (torchvision/timm style).

Model modules call `register_model` at import time; `snncli.models` imports them all.
This module imports no model and no torch, so `snn --help` is fast and there is no cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import SnnError
from .recipes import Recipe


@dataclass(frozen=True)
class ModelSpec:
    """Everything the tool needs to know about a model besides its weights."""

    name: str
    summary: str
    config_cls: type  # dataclass of architecture + neuron hyperparameters
    build: Callable[[Any], Any]  # config -> torch.nn.Module; its class names its `losses`
    recipes: dict[str, Recipe] = field(default_factory=dict)  # named training recipes
    default_recipe: str = "seed"  # the one `snn train` uses without --recipe
    normalisation: tuple[float, float] = (0.0, 1.0)  # (mean, std) applied to pixels in [0, 1]

    @property
    def losses(self) -> tuple[str, ...]:
        return tuple(getattr(self.build, "losses", ()))


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    if spec.default_recipe not in spec.recipes:
        raise ValueError(f"model {spec.name!r}: default recipe {spec.default_recipe!r} missing")
    for name, recipe in spec.recipes.items():
        problems = recipe.setting_problems(spec.losses)
        if problems:
            raise ValueError(f"model {spec.name!r} recipe {name!r}: {'; '.join(problems)}")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    _load_builtin_models()
    return sorted(_REGISTRY)


def get_recipe(spec: ModelSpec, name: str | None) -> tuple[str, Recipe]:
    """(name, recipe) of the model's recipe `name` (default: the model's default)."""
    name = name or spec.default_recipe
    if name not in spec.recipes:
        raise SnnError(
            f"model {spec.name!r} has no recipe {name!r}; choose one of: "
            f"{', '.join(sorted(spec.recipes))}"
        )
    return name, spec.recipes[name]


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

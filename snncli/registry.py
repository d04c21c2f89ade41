"""The model registry shared by every command (torchvision/timm style).

A leaf: it imports no model and no torch, so `snn --help` stays fast and no import can lead
back to it. A model module calls `register_model` when it is imported, and `snncli.models`
imports the built-in ones; code that looks models up imports these functions from
`snncli.models`, which registers the built-ins first (docs/adding-a-model.md).
"""

from __future__ import annotations

import dataclasses
import inspect
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
    # The model's config: a dataclass of architecture and neuron settings (a subclass of
    # snncli.models.base.SpikingConfig), stored in checkpoints field by field.
    config_cls: type
    build: Callable[[Any], Any]  # config -> model (a SpikingNet subclass, which names `losses`)
    # recipe -> {config field: value}: the config fields a training recipe sets (time steps,
    # norm, surrogate width, learned decay); the other fields keep their defaults.
    config_from_recipe: Callable[[Recipe], dict[str, Any]]
    recipes: dict[str, Recipe] = field(default_factory=dict)  # named training recipes
    default_recipe: str = "seed"  # the one `snn train` uses without --recipe
    # {data set: recipe}: the one `snn train --dataset X` uses without --recipe, for data
    # sets other than the default recipe's
    dataset_recipes: dict[str, str] = field(default_factory=dict)
    normalisation: tuple[float, float] = (0.0, 1.0)  # (mean, std) applied to pixels in [0, 1]

    @property
    def losses(self) -> tuple[str, ...]:
        return tuple(getattr(self.build, "losses", ()))

    def config_for(self, recipe: Recipe) -> Any:
        """The config a model trained with `recipe` is built from."""
        return self.config_cls(**self.config_from_recipe(recipe))


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add `spec` to the registry, after checking that it is complete (ValueError if not)."""
    problems = spec_problems(spec)
    if problems:
        raise ValueError(f"model {spec.name!r}: {'; '.join(problems)}")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_model(name: str) -> ModelSpec:
    """Remove model `name` from the registry (for tests that register a model of their own)."""
    try:
        return _REGISTRY.pop(name)
    except KeyError:
        raise ValueError(f"model {name!r} is not registered") from None


def spec_problems(spec: ModelSpec) -> list[str]:
    """What keeps `spec` from being registered: a taken name, a model class with methods
    left abstract, no losses, a default recipe it lacks, or a recipe that is invalid or maps
    to an invalid config."""
    if spec.name in _REGISTRY:
        return ["is already registered"]
    if inspect.isclass(spec.build) and inspect.isabstract(spec.build):
        missing = ", ".join(sorted(spec.build.__abstractmethods__))
        return [f"{spec.build.__name__} does not implement {missing}"]
    if not spec.losses:
        return ["its model names no losses"]
    if spec.default_recipe not in spec.recipes:
        return [f"default recipe {spec.default_recipe!r} missing"]
    for dataset, name in spec.dataset_recipes.items():
        if spec.recipes.get(name, Recipe()).dataset != dataset:
            return [f"recipe {name!r} for data set {dataset!r} missing or for another data set"]
    found = []
    for name, recipe in spec.recipes.items():
        problems = recipe.setting_problems(spec.losses) or _config_problems(spec, recipe)
        if problems:
            found.append(f"recipe {name!r}: {'; '.join(problems)}")
    return found


def _config_problems(spec: ModelSpec, recipe: Recipe) -> list[str]:
    """What is wrong with the config `recipe` maps to (an unknown field, a bad value)."""
    if not dataclasses.is_dataclass(spec.config_cls):
        return [f"config {spec.config_cls.__name__} is not a dataclass"]
    values = spec.config_from_recipe(recipe)
    problems = getattr(spec.config_cls, "problems", None)
    if problems is not None:
        return problems(values, where="config")
    known = {f.name for f in dataclasses.fields(spec.config_cls)}
    return [f"config has an unknown field {name!r}" for name in values if name not in known]


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_recipe(spec: ModelSpec, name: str | None, dataset: str | None = None
               ) -> tuple[str, Recipe]:
    """(name, recipe) of the model's recipe `name` (default: the model's default, or its
    default for `dataset`)."""
    name = name or spec.dataset_recipes.get(dataset, spec.default_recipe)
    if name not in spec.recipes:
        raise SnnError(
            f"model {spec.name!r} has no recipe {name!r}; choose one of: "
            f"{', '.join(sorted(spec.recipes))}"
        )
    return name, spec.recipes[name]


def get_model_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none registered (import snncli.models)"
        raise SnnError(f"unknown model {name!r}; choose one of: {known}") from None


def create_model(name: str, **overrides: Any):
    """Build model `name` with its default config, fields overridden by keyword."""
    spec = get_model_spec(name)
    return spec.build(spec.config_cls(**overrides))

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
    recipe: dict[str, Any] = field(default_factory=dict)  # default training recipe
    normalisation: tuple[float, float] = (0.0, 1.0)  # (mean, std) applied to pixels in [0, 1]


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    _load_builtin_models()
    return sorted(_REGISTRY)


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

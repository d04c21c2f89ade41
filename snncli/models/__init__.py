"""The built-in models. Importing this package registers them (each model module registers
itself), so code that looks models up imports the registry's functions from here, not from
snncli.registry, and finds every built-in model registered."""

from ..registry import (
    ModelSpec,
    create_model,
    get_model_spec,
    get_recipe,
    list_models,
    register_model,
    unregister_model,
)
from . import csnn, mlp, wide  # noqa: F401  (each registers itself)
from .base import SpikingConfig, SpikingNet

__all__ = [
    "ModelSpec",
    "SpikingConfig",
    "SpikingNet",
    "create_model",
    "get_model_spec",
    "get_recipe",
    "list_models",
    "register_model",
    "unregister_model",
]

"""Built-in models; importing this package registers them."""

from . import csnn, mlp  # noqa: F401
from .base import SpikingNet

__all__ = ["SpikingNet"]

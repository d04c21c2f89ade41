"""Device choice and per-device tuning shared by training, evaluation and prediction."""

from __future__ import annotations

import torch

from .errors import SnnError

DEVICES = ("auto", "cpu", "cuda", "mps")
BACKENDS = ("engine", "snntorch")
# On the CPU, running every time step of a layer as one big batch thrashes the cache;
# chunks of about this many (step x image) samples were fastest on a 2-core machine
# (csnn, T=25, batch 128: 1.00 s/iteration in chunks of 2 steps, 1.21 s in 5, 2.7 s in 25).
CPU_SAMPLES_PER_CHUNK = 256


def resolve_device(name: str = "auto") -> torch.device:
    """auto = CUDA, then MPS, then CPU; asking for an absent accelerator is a user error."""
    if name not in DEVICES:
        raise SnnError(f"unknown device {name!r}; choose one of: {', '.join(DEVICES)}")
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise SnnError("--device cuda was asked for but no CUDA GPU is available")
    if name == "mps" and not mps:
        raise SnnError("--device mps was asked for but Apple MPS is not available")
    return torch.device(name)


def tune_for_device(model, device: torch.device, batch_size: int) -> None:
    """Pick how many time steps run together: all on a GPU, small chunks on the CPU."""
    if device.type == "cpu":
        model.time_chunk = max(1, CPU_SAMPLES_PER_CHUNK // max(1, batch_size))
    else:
        model.time_chunk = None


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise SnnError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    return name

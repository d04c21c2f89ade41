"""Device choice and per-device tuning shared by training, evaluation and prediction."""

from __future__ import annotations

import warnings

import torch

from .choices import BACKENDS, DEVICES, PRECISIONS
from .errors import SnnError, SnnWarning

# On the CPU, running every time step of a layer as one big batch thrashes the cache: a layer
# runs over chunks of about this many (step x image) samples, the fastest size on 2 cores
# (benchmarks/README.md).
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


def tune_for_device(
    model, device: torch.device, batch_size: int, *, backend: str = "engine",
    precision: str = "auto",
) -> str:
    """The one way a model is prepared to run on `device` (training, evaluation, prediction
    and the benchmarks all call it). Sets the backend and the precision (returned, resolved),
    and how many time steps run together: all on a GPU, small chunks on the CPU. On CUDA, lets
    cuDNN time its convolution algorithms once per shape (training's shapes repeat) and adds
    conv biases after pooling (cuDNN adds them in a pass of their own)."""
    model.backend = check_backend(backend)
    model.precision = resolve_precision(precision, device)
    if device.type == "cpu":
        model.time_chunk = max(1, CPU_SAMPLES_PER_CHUNK // max(1, batch_size))
        keep_freed_memory()
    else:
        model.time_chunk = None
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            model.pool_before_bias = True
    return model.precision


def native_bf16(device: torch.device) -> bool:
    """Whether this device multiplies bf16 natively (so bf16 autocast is a speed-up)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """auto = bf16 where the device has native bf16 arithmetic, else fp32. bf16 asked for on a
    device without it runs (emulated) after an SnnWarning: on an AVX2-only CPU an emulated
    bf16 iteration takes about 10x as long as an fp32 one."""
    if name not in PRECISIONS:
        raise SnnError(f"unknown precision {name!r}; choose one of: {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if name == "bf16" and device.type not in ("cpu", "cuda"):
        raise SnnError(f"bf16 precision is supported on CPU and CUDA, not on {device.type}")
    if name == "bf16" and not native_bf16(device):
        cost = "about 10x slower than fp32" if device.type == "cpu" else "slower than fp32"
        warnings.warn(SnnWarning(
            f"bf16 precision: this {'CPU' if device.type == 'cpu' else 'GPU'} has no native "
            f"bf16 arithmetic, so bf16 is emulated, {cost} (the default, auto, picks fp32 here)"
        ), stacklevel=2)
    return name


_allocator_tuned = False


def keep_freed_memory() -> None:
    """Let glibc reuse freed tensor memory instead of returning it to the OS.

    Training frees and re-allocates the same activation buffers every step, tens of MB each (a
    batch-norm recipe runs all its time steps as one chunk). By default glibc maps every block
    over its mmap threshold (32 MiB at most) afresh, and the page faults of zero-filling the
    new pages are a sizeable share of a CPU iteration. So no block is mapped on its own and
    freed memory stays in the heap, up to 1 GiB of it.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return
    _allocator_tuned = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-4, 0)  # M_MMAP_MAX: no block gets a mapping of its own
        libc.mallopt(-1, 2**30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of freed memory
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to tune
        pass


def check_backend(name: str) -> str:
    """The backend name, or a one-line error listing the valid ones."""
    if name not in BACKENDS:
        raise SnnError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    return name

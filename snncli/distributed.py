"""Data-parallel training: several processes train one model with PyTorch's
DistributedDataParallel, started by torchrun (one machine or many) or `snn train --nproc N`.

A run on N processes is the same training as on one: every process draws the same batch order
and augmentation, takes a contiguous share of each global batch (the recipe's batch size),
weights its loss by that share so that DDP's average of the gradients is the gradient of the
whole batch, and normalises with batch statistics summed over all processes (time steps x
images, as one process does). Weights, the weight average and the schedule then advance alike
in every process. Backend: nccl on CUDA (one GPU per process, chosen by LOCAL_RANK), gloo on
CPUs; host-side agreements (stop, save) go through gloo in both cases.
"""

from __future__ import annotations

import functools
import gc
import inspect
import os
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .errors import SnnError

# Set by torchrun (and `snn train --nproc`) in each process it starts.
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# A process whose failure is not a user-facing one (SnnError) waits this long before it exits:
# it most likely failed because another process died first, and the launcher, which stops the
# others as soon as one process exits, should report that one.
LINGER_SECONDS = 10.0


def launched() -> bool:
    """Whether this process was started by torchrun as one of several."""
    return all(name in os.environ for name in LAUNCH_VARIABLES) and world_size_from_env() > 1


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank_from_env() -> int:
    return int(os.environ.get("RANK", "0"))


def shard(count: int, rank: int, size: int) -> tuple[int, int]:
    """[start, stop) of process `rank`'s contiguous share of `count` items split among `size`
    processes as evenly as possible (the first count % size shares hold one more)."""
    base, extra = divmod(count, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


@dataclass(frozen=True)
class Group:
    """This process's place in a run (a single process: rank 0 of 1) and its collectives."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    control: Any = None  # a gloo group for host-side values (None: the default group is gloo)

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and reports progress."""
        return self.rank == 0

    def shard(self, count: int) -> tuple[int, int]:
        return shard(count, self.rank, self.size)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` summed over the processes, in place (on its device's backend)."""
        if self.active:
            dist.all_reduce(tensor)
        return tensor

    def sum_counts(self, counts: list[int]) -> list[int]:
        """Whole numbers summed over the processes (on the host)."""
        if not self.active:
            return list(counts)
        values = torch.tensor(counts, dtype=torch.int64)
        dist.all_reduce(values, group=self.control)
        return values.tolist()

    def largest(self, values: list[int]) -> list[int]:
        """Each of `values` as its largest over the processes: what they decide together."""
        if not self.active:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.int64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self.control)
        return tensor.tolist()

    def barrier(self) -> None:
        if self.active:
            dist.barrier(group=self.control)


SINGLE = Group()


def usable_cpus() -> int:
    """The CPU cores this process may run on (its affinity mask, where the system keeps one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_limit(device: torch.device) -> tuple[int, str]:
    """(the most processes of one run on this machine, what bounds them): one per GPU on
    CUDA, one per CPU core otherwise (more only wait for one another, each holding its own
    copy of the data and the model)."""
    if device.type == "cuda":
        gpus = torch.cuda.device_count()
        return gpus, f"{gpus} GPU{'s' * (gpus != 1)} (one per process)"
    cores = usable_cpus()
    return cores, f"{cores} CPU core{'s' * (cores != 1)}"


def check_launched_size(device: torch.device, batch_size: int) -> None:
    """In a run torchrun (or --nproc) started: refuse, in one line and before the processes
    meet, more of them on this machine than it has GPUs or cores, or more in all than a batch
    has images to share among them."""
    here = int(os.environ.get("LOCAL_WORLD_SIZE", world_size_from_env()))
    limit, what = machine_limit(device)
    if here > limit:
        raise SnnError(f"{here} processes of this run on this machine are more than its {what}: "
                       f"start at most {limit} per machine")
    if world_size_from_env() > batch_size:
        raise SnnError(f"{world_size_from_env()} processes are more than a batch of {batch_size} "
                       f"images can be shared among (--batch-size): start at most {batch_size}")


def start(device: torch.device, batch_size: int | None = None) -> tuple[Group, torch.device]:
    """Join the run torchrun started (a no-op for a single process): (this process's group,
    its device, which on CUDA is the GPU of its LOCAL_RANK). With `batch_size`, the number
    of processes is checked first (`check_launched_size`)."""
    if not launched():
        return SINGLE, device
    if device.type not in ("cpu", "cuda"):
        raise SnnError(
            f"training on several processes runs on CUDA GPUs (nccl) or CPUs (gloo), not on "
            f"{device.type}; pass --device cuda or --device cpu"
        )
    if batch_size is not None:
        check_launched_size(device, batch_size)
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise SnnError(
                f"process {rank_from_env()} needs GPU {local_rank} but this machine has "
                f"{torch.cuda.device_count()}: start at most one process per GPU"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)  # its GPU was set above
    elif dist.get_backend() != backend:
        raise SnnError(f"this process already joined a {dist.get_backend()} run, not {backend}")
    control = dist.new_group(backend="gloo") if backend == "nccl" else None
    group = Group(dist.get_rank(), dist.get_world_size(), local_rank, control)
    return group, device


def finish() -> None:
    """Leave the run (at the end of a process that joined one). What still holds the process
    group (the DistributedDataParallel wrapper of a finished run, kept by reference cycles) is
    freed first, and the processes wait for each other (rank 0 writes the files and the plot
    after the last step): gloo's threads left to the interpreter's shutdown can abort the
    process ("terminate called without an active exception")."""
    if dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def lingers_on_failure(function):
    """`function`, which in a process of a data-parallel run fails other than with an SnnError
    only after waiting LINGER_SECONDS to be stopped by the launcher."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            if launched() and not isinstance(exc, SnnError):
                time.sleep(LINGER_SECONDS)
            raise

    return wrapper


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` with synchronised batch norm, wrapped in DistributedDataParallel: call the
    wrapper to train (its backward averages the gradients over the processes); the model itself
    stays what is evaluated and saved, with the same weights and state-dict keys."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [device.index]
    else:  # torch's SyncBatchNorm runs on GPUs only
        replace_batch_norms(model)
        ids = None
    # Buffers are not sent from rank 0 at each forward: every process computes the same ones.
    newer = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    no_sync = {"forward_sync_buffers": False} if newer else {"broadcast_buffers": False}
    return DistributedDataParallel(model, device_ids=ids, **no_sync)


def replace_batch_norms(module: nn.Module) -> None:
    """Every BatchNorm1d/2d inside `module` becomes a SharedBatchNorm1d/2d holding the same
    parameters and buffers (the optimiser's references stay valid)."""
    for name, child in module.named_children():
        kind = {nn.BatchNorm1d: SharedBatchNorm1d, nn.BatchNorm2d: SharedBatchNorm2d}.get(
            type(child)
        )
        if kind is None:
            replace_batch_norms(child)
            continue
        shared = kind(child.num_features, child.eps, child.momentum, child.affine,
                      child.track_running_stats)
        for key, value in [*child.named_parameters(recurse=False),
                           *child.named_buffers(recurse=False)]:
            setattr(shared, key, value)
        setattr(module, name, shared.train(child.training))


class _SumOverProcesses(torch.autograd.Function):
    """A tensor summed over all processes. Every process's loss depends on the sum, so the
    gradient of each process's part is the sum of all processes' gradients of the sum."""

    @staticmethod
    def forward(ctx, tensor):
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


class _SharedStatistics:
    """Batch norm whose training statistics are those of the whole global batch, summed over
    all processes (`_SumOverProcesses`, which autograd differentiates), so the normalised
    values and their gradients are those of one process holding every image. The sums of x and
    x^2 are float64: however the images are shared among processes (whatever the order of the
    sums), the fp32 mean and variance they give are the same to the last bit (but for a chance
    of about 1e-9 per channel), and so are the normalised values, which neurons compare with
    their threshold. The output has the input's dtype. A process may hold no images (the last
    batch of an epoch can be smaller than the number of processes). With one process (no run
    joined) the sums are its own: the same arithmetic, for comparison."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        values = x.float()
        count = torch.full((1,), x.numel() // x.shape[1], dtype=torch.float64, device=x.device)
        sums = torch.cat([values.sum(dims, dtype=torch.float64),
                          (values * values).sum(dims, dtype=torch.float64), count])
        if dist.is_initialized() and dist.get_world_size() > 1:
            sums = _SumOverProcesses.apply(sums)
        channels, count = x.shape[1], sums[-1]
        mean64 = sums[:channels] / count
        var64 = (sums[channels:-1] / count - mean64 * mean64).clamp_min(0)
        mean, var = mean64.float(), var64.float()
        out = (values - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        self._update_running(mean.detach(), var.detach(), float(count.detach()))
        return out.to(x.dtype)

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
        """As nn.BatchNorm does: an exponential (or, with momentum None, cumulative) average,
        of the unbiased variance."""
        if not self.track_running_stats:
            return
        self.num_batches_tracked += 1
        factor = self.momentum if self.momentum is not None else 1 / int(self.num_batches_tracked)
        self.running_mean.lerp_(mean, factor)
        self.running_var.lerp_(var * count / max(count - 1, 1), factor)


class SharedBatchNorm1d(_SharedStatistics, nn.BatchNorm1d):
    pass


class SharedBatchNorm2d(_SharedStatistics, nn.BatchNorm2d):
    pass

"""A paper estimate of data-parallel speed-up for the csnn (issue 20): the compute of one
iteration (measured on one device, passed in) against the ring all-reduce of its gradients at
NVLink and InfiniBand bandwidths, for 1-64 GPUs. Optionally measures that all-reduce between
2 gloo processes on this machine's CPU.

    python benchmarks/scaling_estimate.py --iteration-ms 6.87          # the H100's seed csnn
    python benchmarks/scaling_estimate.py --iteration-ms 6.87 --measure-gloo

Model of one iteration at a fixed global batch on G GPUs: compute = max(t1 / G, floor) (the
per-GPU batch shrinks, but a GPU iteration cannot get shorter than its kernel launches and
Python: `--floor-ms`, an assumption, not a measurement), plus the all-reduce, not overlapped
with the backward pass (DDP does overlap part of it, so this is pessimistic):
2 (G - 1) / G x bytes / bus bandwidth + latency. Within one node (G <= 8) NVLink, beyond it
InfiniBand (one 400 Gb/s NIC per GPU).
"""

from __future__ import annotations

import argparse
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

# Bus bandwidths of NCCL's all-reduce for messages of a few MB (below the large-message peak),
# and per-call latencies: assumptions from published nccl-tests figures, not measured here.
NVLINK = {"name": "NVLink (H100 node)", "bytes_per_s": 250e9, "latency_s": 15e-6}
INFINIBAND = {"name": "InfiniBand NDR 400 Gb/s", "bytes_per_s": 40e9, "latency_s": 50e-6}
GPUS = (1, 2, 4, 8, 16, 32, 64)


def gradient_bytes(norm: str = "none") -> int:
    from snncli.models import create_model

    model = create_model("csnn", norm=norm)
    return sum(p.numel() * p.element_size() for p in model.parameters())


def all_reduce_seconds(size: int, gpus: int) -> float:
    if gpus == 1:
        return 0.0
    link = NVLINK if gpus <= 8 else INFINIBAND
    return 2 * (gpus - 1) / gpus * size / link["bytes_per_s"] + link["latency_s"]


def table(size: int, iteration_ms: float, floor_ms: float) -> str:
    t1 = iteration_ms / 1e3
    rows = ["| GPUs | all-reduce | strong: compute divides perfectly | strong: with the floor | "
            "weak: efficiency |", "| --- | --- | --- | --- | --- |"]
    for g in GPUS:
        comm = all_reduce_seconds(size, g)
        ideal = t1 / (t1 / g + comm)
        floored = t1 / (max(t1 / g, floor_ms / 1e3) + comm)
        weak = t1 / (t1 + comm)
        rows.append(f"| {g} | {comm * 1e6:,.0f} us | {ideal:.1f}x | {floored:.1f}x | "
                    f"{100 * weak:.1f}% |")
    return "\n".join(rows)


def _gloo_process(rank: int, port: int, size: int, repeats: int, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    grads = torch.zeros(size // 4)
    for _ in range(3):
        dist.all_reduce(grads)
    start = time.perf_counter()
    for _ in range(repeats):
        dist.all_reduce(grads)
    if rank == 0:
        out.put((time.perf_counter() - start) / repeats)
    dist.destroy_process_group()


def measure_gloo(size: int, repeats: int = 20) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = mp.get_context("spawn").SimpleQueue()
    mp.start_processes(_gloo_process, args=(port, size, repeats, queue), nprocs=2,
                       start_method="spawn")
    return queue.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iteration-ms", type=float, required=True,
                        help="One training iteration of the global batch on one device.")
    parser.add_argument("--floor-ms", type=float, default=1.0,
                        help="The shortest a GPU iteration can be (launches, Python).")
    parser.add_argument("--measure-gloo", action="store_true")
    args = parser.parse_args()
    size = gradient_bytes()
    print(f"csnn gradients: {size:,} bytes ({size / 1e6:.2f} MB fp32); with batch norm "
          f"{gradient_bytes('batch'):,}")
    print(table(size, args.iteration_ms, args.floor_ms))
    if args.measure_gloo:
        seconds = measure_gloo(size)
        print(f"gloo all-reduce of the csnn's gradients, 2 processes on this CPU: "
              f"{seconds * 1e3:.2f} ms")


if __name__ == "__main__":
    main()

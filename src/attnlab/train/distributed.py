"""Data-parallel training on ``torch.distributed``: one process per rank, gradients averaged.

Processes are started by ``torchrun`` (``attnlab train --nproc N`` starts it for you on this
machine; several machines use ``torchrun --nnodes``). Each rank reads ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment. The backend is gloo on CPU and nccl
when CUDA is available.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup() -> Rank:
    """Join the process group described by the environment (a no-op for a single process)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Rank()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = "cpu", "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Rank(rank, world_size, local_rank, device)


def teardown(rank: Rank) -> None:
    if rank.distributed and dist.is_initialized():
        dist.destroy_process_group()


def mean_across_ranks(value: float, rank: Rank) -> float:
    """The mean of a scalar over all ranks (the value itself for one process)."""
    if not rank.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=rank.device)
    dist.all_reduce(tensor)
    return tensor.item() / rank.world_size


def barrier(rank: Rank) -> None:
    if rank.distributed:
        dist.barrier()


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``attnlab <argv>`` under ``torchrun --standalone`` with ``nproc`` processes.

    Each process gets an equal share of the CPU cores (``OMP_NUM_THREADS``), so the ranks do
    not fight over them.
    """
    if nproc < 1:
        raise ValueError(f"--nproc: expected a positive integer, got {nproc}")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "attnlab.cli.main",
        *argv,
    ]
    return subprocess.run(command, env=env, check=False).returncode

"""Training on several processes started by torchrun: one rank per process, PyTorch's own
DistributedDataParallel to average gradients, NCCL between GPUs and gloo between CPUs.

A run with one process (plain `charrnn train`) uses `SINGLE`, whose every method returns at
once without touching torch.distributed, so it pays nothing for this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from charrnn.errors import ConfigError


@dataclass(frozen=True)
class Group:
    """This process's place among the processes of a run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # the rank on this machine: which GPU to use

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and the progress bar."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def rows(self, total: int) -> slice:
        """This rank's share of `total` parallel streams: a contiguous block, as even as possible."""
        start = self.rank * total // self.world_size
        return slice(start, (self.rank + 1) * total // self.world_size)

    def max(self, *values: float) -> list[float]:
        """The largest of each value over all ranks. Every rank then takes the same decisions
        at every step: whether to stop, and (under --max-time) the learning rate."""
        if not self.active:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.tolist()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of `values` over all ranks."""
        if not self.active:
            return values
        summed = values.to(_collective_device(), copy=True)
        dist.all_reduce(summed)
        return summed.to(values.device)

    def gather_rows(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """Every rank's block of `tensor` along `dim`, joined in rank order (blocks may differ in size)."""
        if not self.active:
            return tensor
        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, tensor.cpu())
        return torch.cat(parts, dim=dim)

    def gather_objects(self, value: Any) -> list[Any]:
        if not self.active:
            return [value]
        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, value)
        return parts

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


SINGLE = Group()


def join(device: torch.device) -> tuple[Group, torch.device]:
    """Join the run torchrun started, if any (it sets RANK, WORLD_SIZE and LOCAL_RANK), and the
    device this rank uses: on CUDA, the GPU numbered by its local rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return SINGLE, device
    group = Group(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "mps":
        raise ConfigError("distributed training runs on CUDA (NCCL) or on CPUs (gloo), not on MPS; use --device cpu")
    if device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return group, device


def leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _collective_device() -> torch.device:
    """NCCL reduces GPU tensors; gloo CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")

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

from charrnn.display import printable
from charrnn.errors import ConfigError, OptionError
from charrnn.settings.spelling import spelled

MAX_PROCESSES = 2**31 - 1  # torch.distributed counts ranks in a C int
_TORCHRUN = (
    "start distributed training with torchrun, which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT"
)


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
    world_size = _environment_int("WORLD_SIZE", 1, MAX_PROCESSES, default=1)
    if world_size == 1:
        return SINGLE, device
    group = Group(
        _environment_int("RANK", 0, world_size - 1),
        world_size,
        _environment_int("LOCAL_RANK", 0, MAX_PROCESSES - 1, default=0),
    )
    # Where the processes meet: without these, torch fails with a long message of its own.
    if not os.environ.get("MASTER_ADDR"):
        raise OptionError("MASTER_ADDR", f"is not set, but WORLD_SIZE asks for distributed training; {_TORCHRUN}")
    _environment_int("MASTER_PORT", 1, 65535)
    if device.type == "mps":
        raise ConfigError(
            f"distributed training runs on CUDA (NCCL) or on CPUs (gloo), not on MPS; use {spelled('device', 'cpu')}"
        )
    if device.type == "cuda" and group.local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"LOCAL_RANK={group.local_rank} names a GPU this machine lacks (it has {torch.cuda.device_count()})"
        )
    if device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return group, device


def _environment_int(name: str, low: int, high: int, default: int | None = None) -> int:
    """An integer that torchrun passes in the environment, checked, since a person may have set
    it by hand: a missing or wrong value gets one line naming it."""
    text = os.environ.get(name)
    if text is None:
        if default is None:
            raise OptionError(name, f"is not set, but WORLD_SIZE asks for distributed training; {_TORCHRUN}")
        return default
    try:
        value = int(text)
    except ValueError:
        raise OptionError(name, f"'{printable(text, limit=50)}' is not an integer") from None
    if not low <= value <= high:
        raise OptionError(name, f"{value} is not in the range {low} to {high:,}")
    return value


def leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _collective_device() -> torch.device:
    """NCCL reduces GPU tensors; gloo CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")

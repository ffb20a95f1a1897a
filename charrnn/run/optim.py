"""The optimizer and its learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from charrnn.settings.budget import Budget
from charrnn.settings.config import TrainConfig


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay (if any) applies to weight matrices, not to biases."""
    matrices = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": matrices, "weight_decay": config.weight_decay},
        {"params": vectors, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr)


def learning_rate(step: int, elapsed: float, budget: Budget, config: TrainConfig) -> float:
    """The rate for update number `step` (0-based), `elapsed` seconds into a run of `budget`.

    A linear warm-up to --lr over the first `warmup_steps(...)` updates, then half a cosine
    that falls to `min_lr_ratio` x --lr: at the run's last update with a step budget (or
    --epochs), or as --max-time runs out. With both, whichever is further along leads. The
    rate is a pure function of where the run is: resuming needs no scheduler state, and a run
    given a larger total simply follows the stretched curve from where it is.
    """
    warmup = warmup_steps(config.warmup_steps, budget.max_steps)
    rising = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    fractions = [0.0]
    if budget.max_steps is not None:  # from the last warm-up update (the peak) to the last update
        peak, last = max(warmup - 1, 0), budget.max_steps - 1
        fractions.append((step - peak) / (last - peak) if last > peak else 1.0)
    if budget.max_time is not None:
        fractions.append(elapsed / budget.max_time)
    progress = min(1.0, max(fractions))
    ratio = config.min_lr_ratio
    return config.lr * rising * (ratio + (1.0 - ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def warmup_steps(asked: int, max_steps: int | None) -> int:
    """The warm-up of a run: --warmup-steps, but at most a tenth of a step budget, so that a
    short run reaches its peak rate and spends most of its steps after it."""
    return asked if max_steps is None else min(asked, max_steps // WARMUP_SHARE)


WARMUP_SHARE = 10  # the warm-up takes at most 1/WARMUP_SHARE of a run's steps


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr

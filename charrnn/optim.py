"""The optimizer and its learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from charrnn.config import TrainConfig


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay (if any) applies to weight matrices, not to biases."""
    matrices = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": matrices, "weight_decay": config.weight_decay},
        {"params": vectors, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr)


def learning_rate(step: int, progress: float, config: TrainConfig) -> float:
    """The rate for update number `step` (0-based) when `progress` (0 to 1) of the run is done.

    A linear warm-up over the first `warmup_steps` updates, times half a cosine that falls
    from 1 at the start of the run to `min_lr_ratio` at its end. Progress is the fraction of
    the run's steps done (or of its time, with --max-time), so the rate is a pure function of
    where the run is: resuming needs no scheduler state, and a run given a larger total
    simply follows the stretched curve from where it is.
    """
    warmup = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps > 0 else 1.0
    ratio = config.min_lr_ratio
    decay = ratio + (1.0 - ratio) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * warmup * decay


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr

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


def learning_rate(step: int, config: TrainConfig, total_steps: int) -> float:
    """The rate for update number `step` (0-based): linear warm-up, then cosine decay.

    The rate rises from lr / warmup_steps to lr over the first `warmup_steps` updates,
    then follows half a cosine down to lr * min_lr_ratio at `total_steps`. A pure
    function of the step, so resuming needs no scheduler state, and a longer run
    (larger total_steps) simply follows the stretched curve from where it is.
    """
    peak, floor = config.lr, config.lr * config.min_lr_ratio
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    decay_steps = total_steps - config.warmup_steps
    if decay_steps <= 0:
        return peak
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr

"""Scoring a model on a text: mean cross-entropy in nats, and in bits per character."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F

from charrnn.data import Streams
from charrnn.model import CharRNN

NATS_PER_BIT = math.log(2)


def nats_to_bits(nats: float) -> float:
    """Bits per character from nats per character (cross-entropy / ln 2)."""
    return nats / NATS_PER_BIT


@torch.inference_mode()
def evaluate_loss(
    model: CharRNN, streams: Streams, device: torch.device, precision: Callable[[], ContextManager] = nullcontext
) -> float:
    """Mean cross-entropy (nats per character) over every target in `streams`.

    The hidden state is carried across windows, as in training, so each character is
    scored with all the context before it in its stream. Dropout is off while scoring.
    """
    was_training = model.training
    model.eval()
    hidden = model.init_hidden(streams.batch_size, device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for inputs, targets in streams.every_window():
        with precision():
            logits, hidden = model(inputs.to(device), hidden)  # (B, T, V)
        targets = targets.to(device)
        total += F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum").double()
        count += targets.numel()
    model.train(was_training)
    return total.item() / count  # the one host sync of an evaluation

"""A CharRNN run one character at a time in PyTorch: the baseline `bench.py` sets charrnn's numpy
sampler beside (a loop of PyTorch's own single-step kernels on the model's weights)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from charrnn.core.model import CharRNN, Hidden

# One layer's state while stepping: (h, c) for an LSTM, h otherwise, each (B, hidden_size).
LayerState = Any


class CharStepper:
    """Runs a CharRNN one character at a time, for generation (inference only: no dropout).

    The fused nn.LSTM/GRU/RNN is the fastest way through many steps at once (training, reading
    a prime), but a single step at batch 1 on a CPU costs several times more through it than
    through PyTorch's single-step cell kernels: oneDNN prepares its kernel on every call. The
    kernels here run on the model's own weights, so both paths compute the same function.
    """

    def __init__(self, model: CharRNN):
        self.model = model
        # PyTorch's single-step kernel of the cell (what nn.LSTMCell, nn.GRUCell and nn.RNNCell call).
        self.cell_step = getattr(torch, model.config.cell_type.torch_step)
        rnn = model.rnn
        self.weights = [
            tuple(getattr(rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            for layer in range(model.config.layers)
        ]

    def layer_states(self, hidden: Hidden) -> list[LayerState]:
        """Split a (layers, B, H) hidden state into per-layer states."""
        if self.model.paired_state:
            return list(zip(hidden[0].unbind(0), hidden[1].unbind(0)))
        return list(hidden[0].unbind(0))

    def hidden(self, states: list[LayerState]) -> Hidden:
        """Per-layer states back into the model's (layers, B, H) hidden state."""
        if self.model.paired_state:
            return (torch.stack([h for h, _ in states]), torch.stack([c for _, c in states]))
        return (torch.stack(states),)

    def step(self, ids: torch.Tensor, states: list[LayerState]) -> tuple[torch.Tensor, list[LayerState]]:
        """ids (B,) -> logits (B, V) for the next character, and the new per-layer states."""
        x = self.model.inputs(ids)  # (B, input_size)
        new_states = []
        for weights, state in zip(self.weights, states):
            state = self.cell_step(x, state, *weights)
            new_states.append(state)
            x = state[0] if self.model.paired_state else state
        return F.linear(x, self.model.head.weight, self.model.head.bias), new_states

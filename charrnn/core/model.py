"""The network: characters -> one-hot or embedding -> fused RNN/LSTM/GRU -> logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from charrnn.settings.config import ModelConfig

# Hidden state is always a tuple of (layers, B, hidden_size) tensors: (h, c) for an LSTM,
# (h,) for an RNN or GRU, so code that carries, detaches or saves it needs no special case.
Hidden = tuple[torch.Tensor, ...]


class CharRNN(nn.Module):
    """A character language model built on PyTorch's fused recurrent layers."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim) if config.input_mode == "embedding" else None
        cell = config.cell_type
        self.rnn = getattr(nn, cell.torch_layer)(
            input_size=config.input_size,
            hidden_size=config.hidden_size,
            num_layers=config.layers,
            # nn.RNN applies dropout between layers only; with one layer there are none.
            dropout=config.dropout if config.layers > 1 else 0.0,
            batch_first=True,
            **dict(cell.torch_options),
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        if config.recurrent_init == "orthogonal":
            self._orthogonal_start()

    def _orthogonal_start(self) -> None:
        """Each gate's hidden-to-hidden block orthogonal (its products neither grow nor shrink a
        state), and an LSTM's forget-gate bias 1 (it starts by keeping its memory)."""
        size, forget = self.config.hidden_size, self.config.cell_type.forget_gate
        with torch.no_grad():
            for layer in range(self.config.layers):
                for block in getattr(self.rnn, f"weight_hh_l{layer}").split(size):
                    nn.init.orthogonal_(block)
                if forget is not None:
                    getattr(self.rnn, f"bias_ih_l{layer}")[forget * size : (forget + 1) * size].fill_(1.0)
                    getattr(self.rnn, f"bias_hh_l{layer}")[forget * size : (forget + 1) * size].zero_()

    @property
    def paired_state(self) -> bool:
        """Whether the torch layer carries its state as a tuple, (h, c), rather than one tensor."""
        return self.config.cell_type.state_tensors > 1

    def forward(self, ids: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        """ids (B, T) int64 -> logits (B, T, V) and the hidden state after the last step."""
        outputs, hidden = self.recurrent(ids, hidden)
        return self.head(self.dropout(outputs)), hidden

    def recurrent(self, ids: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        """ids (B, T) -> the last layer's outputs (B, T, H) and the hidden state after the last
        step: the network without its output layer (reading a prime needs only the last output)."""
        return self.recurrent_from(self.inputs(ids), hidden)

    def recurrent_from(self, inputs: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        """`recurrent` from the vectors the first layer reads (B, T, input_size), `inputs(ids)`:
        a gradient with respect to them measures how far back a prediction reaches (reach.py)."""
        state = None if hidden is None else (hidden if self.paired_state else hidden[0])
        if self.training and self.config.input_dropout > 0:
            inputs = locked_dropout(inputs, self.config.input_dropout)
        if self.training and self.config.weight_drop > 0:
            # DropConnect before the fused call: the kernel runs on the dropped weights, and the
            # gradient reaches the real ones through the dropout.
            weights = {
                name: F.dropout(weight, self.config.weight_drop) if name.startswith("weight_hh") else weight
                for name, weight in self.rnn.named_parameters()
            }
            outputs, state = torch.func.functional_call(self.rnn, weights, (inputs, state))
        else:
            outputs, state = self.rnn(inputs, state)  # (B, T, H)
        return outputs, (tuple(state) if self.paired_state else (state,))

    def inputs(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> the vectors the first recurrent layer reads: embeddings, or one-hot."""
        if self.embedding is not None:
            weight = self.embedding.weight
            if self.training and self.config.embed_dropout > 0:
                weight = locked_dropout(weight.unsqueeze(0), self.config.embed_dropout, rows=True).squeeze(0)
            return F.embedding(ids, weight)  # the functional call: no module overhead per step
        # One-hot, written straight into a float tensor: the same math as an identity
        # embedding, without an int64 one_hot intermediate or a V x V matrix.
        weight = self.head.weight
        one_hot = torch.zeros(*ids.shape, self.config.vocab_size, dtype=weight.dtype, device=ids.device)
        return one_hot.scatter_(-1, ids.unsqueeze(-1), 1.0)

    def init_hidden(self, batch_size: int, device: torch.device | str | None = None) -> Hidden:
        """A zero hidden state for `batch_size` streams."""
        shape = (self.config.layers, batch_size, self.config.hidden_size)
        device = device if device is not None else self.head.weight.device
        return tuple(torch.zeros(shape, device=device) for _ in range(self.config.cell_type.state_tensors))


def locked_dropout(values: torch.Tensor, p: float, rows: bool = False) -> torch.Tensor:
    """Dropout on (B, T, D) `values` with one mask per stream for all T steps (locked, or
    variational, dropout: Gal & Ghahramani 2016), scaled by 1 / (1 - p). With `rows`, one mask
    per row of T instead: whole rows dropped (embedding dropout drops whole characters)."""
    shape = (values.shape[0], values.shape[1], 1) if rows else (values.shape[0], 1, values.shape[2])
    mask = values.new_empty(shape).bernoulli_(1.0 - p) / (1.0 - p)
    return values * mask


def load_grown(model: CharRNN, state: dict[str, torch.Tensor]) -> None:
    """Load weights trained with a smaller vocabulary into `model` (fine-tuning on a new text).

    Old characters keep their ids, so their embedding and output rows (or one-hot input
    columns) are the leading block of each grown tensor: that block is copied, and the rows
    of the new characters keep their fresh initialisation. Every other weight is copied whole.
    """
    own = model.state_dict()
    if set(state) != set(own):
        raise ValueError(f"the weights do not fit the model: {sorted(set(state) ^ set(own))[:4]}")
    with torch.no_grad():
        for name, value in state.items():
            target = own[name]
            if value.dim() != target.dim() or any(old > new for old, new in zip(value.shape, target.shape)):
                raise ValueError(f"{name} has shape {tuple(value.shape)}, which does not fit {tuple(target.shape)}")
            target[tuple(slice(0, size) for size in value.shape)].copy_(value)


def detach_hidden(hidden: Hidden) -> Hidden:
    """Cut the graph between windows (truncated BPTT) while keeping the values."""
    return tuple(h.detach() for h in hidden)


def num_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

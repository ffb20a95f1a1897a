"""Every recurrent cell type, defined once: what the rest of charrnn needs to know of it.

The option table (`--cell`), the configs (weight shapes), the torch model, the numpy twin, the
checkpoint checks, memory sizing and viz all read a cell's facts here instead of comparing its
name. Adding a cell is one entry here plus its numpy step kernel in core/numpy_model.py (`STEPS`).

This is plain data in the settings wing, below core, so that options.py can offer the names as
`--cell` choices: no torch and no numpy here (`charrnn --help` imports this). The torch layer is
named, not imported, and model.py resolves the name when it builds one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    """One recurrent cell type."""

    name: str  # its --cell value
    title: str  # how viz's page names it
    doc: str  # how the reference names it among the --cell choices
    gates: int  # weight blocks PyTorch stacks in each layer's matrices (rows: gates x hidden_size)
    torch_layer: str  # the torch.nn class of its fused layers ("LSTM"), resolved by core/model.py
    torch_step: str  # torch's single-step kernel of one layer ("lstm_cell"): the sampling benchmark's baseline
    state_names: tuple[str, ...] = ("h",)  # its state's tensors, the output h first: ("h", "c") for an LSTM
    gate_names: tuple[str, ...] = ()  # the gates its numpy step hands back, in that order (viz)
    torch_options: tuple[tuple[str, object], ...] = ()  # more keyword arguments of its torch layer
    # The gate block whose biases start as 1 (input) and 0 (recurrent) under --recurrent-init
    # orthogonal, so that it starts by keeping its memory (an LSTM's forget gate); None for none.
    forget_gate: int | None = None
    # Trailing gate blocks whose recurrent bias stays apart from the input's (a GRU's n: the reset
    # gate multiplies W_hn h + b_hn); the numpy twin hands them to the step as `hidden_bias`.
    apart_bias_blocks: int = 0
    shown_state: int = 0  # which state tensor viz colours the text by
    shown_tanh: bool = False  # whether viz shows it through tanh (an LSTM's unbounded c)
    # Floats per hidden unit and position that training keeps for the backward pass, beyond the
    # layer's output and its input: the gates, the cell or candidate (memory sizing, run/sizing.py).
    activations_per_unit: int = 4
    # How a cell without gates rewrites its state, for viz's page to say so; "" for a gated cell.
    update_rule: str = ""

    @property
    def state_tensors(self) -> int:
        """How many tensors a layer's state holds: 2 for an LSTM's (h, c), else 1."""
        return len(self.state_names)

    @property
    def quantity(self) -> str:
        """What viz shows of each unit: "h", or "tanh(c)"."""
        shown = self.state_names[self.shown_state]
        return f"tanh({shown})" if self.shown_tanh else shown


def _registry(*cells: Cell) -> dict[str, Cell]:
    return {cell.name: cell for cell in cells}


CELLS: dict[str, Cell] = _registry(
    Cell(
        "rnn",
        title="vanilla RNN",
        doc="`rnn` (tanh)",
        gates=1,
        torch_layer="RNN",
        torch_step="rnn_tanh_cell",
        update_rule="h = tanh(W x + U h + b)",
    ),
    Cell(
        "lstm",
        title="LSTM",
        doc="`lstm`",
        gates=4,  # PyTorch's order: input, forget, cell, output
        torch_layer="LSTM",
        torch_step="lstm_cell",
        state_names=("h", "c"),
        gate_names=("input", "forget", "output"),
        forget_gate=1,
        shown_state=1,
        shown_tanh=True,
        activations_per_unit=6,
    ),
    Cell(
        "gru",
        title="GRU",
        doc="`gru`",
        gates=3,  # PyTorch's order: reset, update, new
        torch_layer="GRU",
        torch_step="gru_cell",
        gate_names=("reset", "update"),
        apart_bias_blocks=1,
    ),
)

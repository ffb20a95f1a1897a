"""The network for inference, in numpy: the same function as model.CharRNN, without torch.

Sampling is a chain of small steps (one character, batch 1) where importing torch costs more
than the whole sample, and each torch call more than its arithmetic. Here a step is, per
layer, one row gather (layer 0) or one matrix-vector product (the layers above) for the
input, one for the recurrent state, and a few element-wise operations; then the output layer.

Layer 0 reads a character's id, never a vector: its input weights are folded with the
embedding (W_ih @ E^T, or W_ih itself for one-hot input: a one-hot vector picks a column) and
its biases into a table of one row per character. Dropout does nothing at inference.

The arithmetic is float32, as the model trained, or float64 on the same (float32) weight values
(`dtype`): one stream of text is made in float64, where each operation rounds at about 1e-16
rather than 6e-8, so that two programs computing the same formulas in the same order (this one
and the web page `charrnn export --html` writes, charrnn/inspect/model_page.js) agree to about
1e-15 however their libraries order the additions inside a matrix product or round the last bit
of tanh and exp, and write the same text for the same seed. Batches stay in float32, twice as
fast where the weights outgrow the cache.

The gates are in PyTorch's order: LSTM i, f, g, o; GRU r, z, n, with the recurrent bias of n
inside r * (W_hn h + b_hn), as nn.GRU computes it. Each cell's step kernel (STEPS; its other facts
are in settings/cells.py) hands back, beside the new state, the gates it opened (its gate_names), which cost nothing to return: sampling drops them, and
`read_steps` keeps them for looking inside the network (charrnn viz), from the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from charrnn.settings.config import ModelConfig

# One layer's state: (h, c) for an LSTM, (h,) otherwise, each (B, hidden_size) in the model's dtype.
LayerState = tuple[np.ndarray, ...]
State = list[LayerState]
# The gates a step opened, each (B, hidden_size) in [0, 1], in the order of its cell's gate_names.
Gates = tuple[np.ndarray, ...]


@dataclass(frozen=True)
class LayerSteps:
    """What one layer computed at each position of a sequence (B = 1), for looking inside it."""

    states: tuple[np.ndarray, ...]  # its state after each position, part by part as LayerState: each (T, H)
    gates: dict[str, np.ndarray]  # gate name (Cell.gate_names) -> (T, H), its value at each position


@dataclass(frozen=True)
class _Layer:
    """One recurrent layer's weights, laid out for `x @ weight`."""

    input_weights: np.ndarray  # (V, G) for layer 0: one row per character, biases included; else (in, G)
    hidden_weights: np.ndarray  # (H, G)
    input_bias: np.ndarray  # (G,): b_ih, plus b_hh where it simply adds (all of it but the apart blocks)
    hidden_bias: (
        np.ndarray | None
    )  # b_hh of the cell's apart_bias_blocks (GRU: n's (H,), which r multiplies); else None


class NumpyCharRNN:
    """A trained CharRNN's weights, run in numpy for generation (in float32, or float64)."""

    def __init__(self, config: ModelConfig, weights: Mapping[str, Any], dtype: type = np.float32):
        """`weights`: the model's state_dict, as numpy arrays or torch tensors (any float dtype)."""
        self.config = config
        self.dtype = np.dtype(dtype)
        self._weights = weights
        self._twins: dict[np.dtype, NumpyCharRNN] = {self.dtype: self}
        arrays = {name: float32_values(value).astype(self.dtype, copy=False) for name, value in weights.items()}
        self.embedded = config.input_mode == "embedding"
        self.cell = STEPS[config.cell]
        self.layers = [self._layer(arrays, index) for index in range(config.layers)]
        first = self.layers[0]
        # A one-hot input picks a row of W_ih^T; an embedding, a row of E @ W_ih^T.
        projected = arrays["embedding.weight"] @ first.input_weights if self.embedded else first.input_weights
        table = projected + first.input_bias  # (V, G): one row per character
        self.layers[0] = _Layer(np.ascontiguousarray(table), first.hidden_weights, first.input_bias, first.hidden_bias)
        self.head_weights = np.ascontiguousarray(arrays["head.weight"].T)  # (H, V)
        self.head_bias = arrays["head.bias"]

    @classmethod
    def of(cls, model: Any, dtype: type = np.float32) -> NumpyCharRNN:
        """`model` computing in `dtype`: itself, its twin in that dtype (made once), or the
        NumpyCharRNN of a torch CharRNN (its weights copied)."""
        if not isinstance(model, cls):
            return cls(model.config, model.state_dict(), dtype)
        if np.dtype(dtype) not in model._twins:
            twin = cls(model.config, model._weights, dtype)
            twin._twins = model._twins  # each knows the other
            model._twins[twin.dtype] = twin
        return model._twins[np.dtype(dtype)]

    def _layer(self, arrays: dict[str, np.ndarray], index: int) -> _Layer:
        w_ih, w_hh = arrays[f"rnn.weight_ih_l{index}"], arrays[f"rnn.weight_hh_l{index}"]
        b_ih, b_hh = arrays[f"rnn.bias_ih_l{index}"], arrays[f"rnn.bias_hh_l{index}"]
        hidden_bias, apart = None, self.config.cell_type.apart_bias_blocks
        if apart:
            kept = len(b_hh) - apart * self.config.hidden_size
            hidden_bias, b_hh = b_hh[kept:], np.concatenate([b_hh[:kept], np.zeros(len(b_hh) - kept, self.dtype)])
        return _Layer(np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), b_ih + b_hh, hidden_bias)

    def zero_state(self, batch_size: int) -> State:
        shape = (batch_size, self.config.hidden_size)
        count = self.config.cell_type.state_tensors
        return [tuple(np.zeros(shape, self.dtype) for _ in range(count)) for _ in self.layers]

    def step(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """ids (B,) -> logits (B, V) in the model's dtype for the next character, and the state after `ids`."""
        x = None
        new_state = []
        for index, (layer, layer_state) in enumerate(zip(self.layers, state)):
            inputs = layer.input_weights[ids] if index == 0 else x @ layer.input_weights + layer.input_bias
            layer_state, _ = self.cell(inputs, layer_state, layer)
            new_state.append(layer_state)
            x = layer_state[0]
        return self.logits(x), new_state

    def read(self, ids: Sequence[int], state: State) -> tuple[np.ndarray, State]:
        """Read `ids` (one stream, B = 1) from `state`: the last layer's last output (1, H) and
        the state after them. Each layer reads the whole sequence before the next, so its
        input weights meet all positions in one matrix product."""
        outputs = np.empty((len(ids), self.config.hidden_size), self.dtype)
        new_state = []
        for index, (layer, layer_state) in enumerate(zip(self.layers, state)):
            inputs = outputs @ layer.input_weights + layer.input_bias if index else layer.input_weights[np.asarray(ids)]
            for position, row in enumerate(inputs):
                layer_state, _ = self.cell(row[None], layer_state, layer)
                outputs[position] = layer_state[0][0]
            new_state.append(layer_state)
        return outputs[-1:], new_state

    def read_steps(
        self, ids: np.ndarray, state: State, advance: Callable[[int], None] = lambda positions: None
    ) -> tuple[list[LayerSteps], State]:
        """Read `ids` (T,) (one stream, B = 1) from `state` as `read` does, keeping each layer's
        state and gates at every position (T x H floats per part and gate: for a text, not a corpus).
        `advance` is told of each position each layer reads (T x layers in all), for a progress display."""
        gate_names = self.config.cell_type.gate_names
        outputs = np.empty((len(ids), self.config.hidden_size), self.dtype)
        layers, new_state = [], []
        for index, (layer, layer_state) in enumerate(zip(self.layers, state)):
            inputs = outputs @ layer.input_weights + layer.input_bias if index else layer.input_weights[ids]
            states = tuple(np.empty_like(outputs) for _ in layer_state)
            gates = tuple(np.empty_like(outputs) for _ in gate_names)
            for position, row in enumerate(inputs):
                layer_state, opened = self.cell(row[None], layer_state, layer)
                for kept, value in zip(states + gates, layer_state + opened):
                    kept[position] = value[0]
                advance(1)
            outputs = states[0]
            layers.append(LayerSteps(states, dict(zip(gate_names, gates))))
            new_state.append(layer_state)
        return layers, new_state

    def logits(self, outputs: np.ndarray) -> np.ndarray:
        """The last layer's outputs (B, H) -> logits (B, V)."""
        return outputs @ self.head_weights + self.head_bias


def repeated(state: State, rows: np.ndarray) -> State:
    """The state of each stream in `rows` (B',): copies for several samples, or a beam's parents."""
    return [tuple(part[rows] for part in layer_state) for layer_state in state]


def float32_values(value: Any) -> np.ndarray:
    """A weight, a numpy array or a torch tensor (any device or float dtype), as a numpy array of
    its float32 values (as training holds them: float16 and bfloat16 exactly)."""
    if not isinstance(value, np.ndarray):
        value = value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.tanh(x * 0.5) * 0.5 + 0.5  # never overflows, unlike 1 / (1 + exp(-x))


def _lstm(inputs: np.ndarray, state: LayerState, layer: _Layer) -> tuple[LayerState, Gates]:
    h, c = state
    gates = inputs + h @ layer.hidden_weights
    size = h.shape[-1]
    i, f, o = (_sigmoid(gates[:, k * size : (k + 1) * size]) for k in (0, 1, 3))
    c = f * c + i * np.tanh(gates[:, 2 * size : 3 * size])
    return (o * np.tanh(c), c), (i, f, o)


def _gru(inputs: np.ndarray, state: LayerState, layer: _Layer) -> tuple[LayerState, Gates]:
    (h,) = state
    size = h.shape[-1]
    hidden = h @ layer.hidden_weights
    r = _sigmoid(inputs[:, :size] + hidden[:, :size])
    z = _sigmoid(inputs[:, size : 2 * size] + hidden[:, size : 2 * size])
    n = np.tanh(inputs[:, 2 * size :] + r * (hidden[:, 2 * size :] + layer.hidden_bias))
    return (n + z * (h - n),), (r, z)  # (1 - z) * n + z * h


def _rnn(inputs: np.ndarray, state: LayerState, layer: _Layer) -> tuple[LayerState, Gates]:
    return (np.tanh(inputs + state[0] @ layer.hidden_weights),), ()


# Each cell's step: (inputs (B, G), a layer's state, its weights) -> (the new state, the gates it
# opened). One entry per cell of settings/cells.py (tests/test_numpy_model.py checks it).
Step = Callable[[np.ndarray, LayerState, _Layer], tuple[LayerState, Gates]]
STEPS: dict[str, Step] = {"rnn": _rnn, "lstm": _lstm, "gru": _gru}

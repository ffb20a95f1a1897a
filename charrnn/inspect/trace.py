"""Running a model over a text to look inside it: what it predicted at each character, and
what each cell and gate held there (charrnn viz's raw material).

The model reads the text once, from a zero state, as one stream, layer by layer (each layer's
input weights meet all positions in one matrix product, as NumpyCharRNN.read does), so its
predictions are the ones `charrnn eval` scores: a character is predicted from the state after
everything before it. Characters the vocabulary lacks are read as the --unknown policy says
(Vocab.unseen), as eval reads them: as the nearest character the model knows, or its unknown
id, or left out: the model never sees those, its state and activations stay as they were, and
nothing is predicted for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from charrnn.core.nearest import Unseen
from charrnn.core.numpy_model import NumpyCharRNN
from charrnn.core.vocab import Vocab

TOP = 5  # guesses kept per character: the essay's figure shows five
_CHUNK = 1024  # positions per pass through the output layer: bounds memory for a large vocabulary
_NO_GATE_YET = 0.5  # the gates shown before the first character read: sigmoid(0), neither open nor closed


@dataclass(frozen=True)
class Trace:
    """What the model did at each character t of a text (T characters, one per code point)."""

    ids: np.ndarray  # (T,) int64: the id read; -1 for a character left out (no id, no unknown id)
    bits: np.ndarray  # (T,) float64: -log2 p(text[t] | text[:t]); NaN where nothing predicted it
    top_ids: np.ndarray  # (T, TOP) int64: the likeliest characters at t, best first; -1 where none
    top_probs: np.ndarray  # (T, TOP) float32: their probabilities; 0 where none
    cells: list[np.ndarray]  # per layer (T, H) float32 after reading text[t]: tanh(c) for an LSTM, else h
    gates: list[dict[str, np.ndarray]]  # per layer {gate name: (T, H) float32 in [0, 1]}; [] for an RNN


def text_ids(vocab: Vocab, text: str, unseen: Unseen | None = None) -> np.ndarray:
    """The ids of `text` (T,) int64, its characters without an id read as `unseen` says (by
    default as --unknown skip does); -1 for a character left out."""
    return vocab.read_ids(text, unseen or vocab.unseen(vocab.unknown_chars(text), "skip"))


def trace_text(
    model: NumpyCharRNN,
    vocab: Vocab,
    text: str,
    unseen: Unseen | None = None,
    advance: Callable[[int], None] = lambda positions: None,
) -> Trace:
    """Run `model` over `text` from a zero state (see the module's docstring); `unseen`: what its
    characters without an id become (text_ids); `advance` is told of each position each layer
    reads (`read_steps`)."""
    ids = text_ids(vocab, text, unseen)
    read = ids >= 0
    steps, _ = model.read_steps(ids[read], model.zero_state(1), advance)
    cell = model.config.cell_type  # what a unit shows: its h, or an LSTM's tanh(c) (Cell.quantity)
    cells = [layer.states[cell.shown_state] for layer in steps]
    cells = [np.tanh(values) for values in cells] if cell.shown_tanh else cells
    gates = [layer.gates for layer in steps if layer.gates]  # an RNN has none
    bits, top_ids, top_probs = _predictions(model, steps[-1].states[0], ids[read])
    if read.all():
        return Trace(ids, bits, top_ids, top_probs, cells, gates)
    # Back to the text's positions: a character left out repeats the row of the last one read.
    last_read = np.cumsum(read) - 1  # -1 before the first character read
    return Trace(
        ids,
        _scattered(bits, read, np.nan),
        _scattered(top_ids, read, -1),
        _scattered(top_probs, read, 0),
        [_repeated(layer, last_read, 0) for layer in cells],
        [{name: _repeated(values, last_read, _NO_GATE_YET) for name, values in layer.items()} for layer in gates],
    )


def _predictions(model: NumpyCharRNN, outputs: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, ...]:
    """Bits (K,), top ids (K, TOP) and probabilities (K, TOP) of the K characters read, each
    predicted from the last layer's `outputs` (K, H) at the one before (the first: by nothing)."""
    count, vocab_size = len(ids), model.head_bias.shape[0]
    bits = np.full(count, np.nan)
    top_ids = np.full((count, TOP), -1, np.int64)
    top_probs = np.zeros((count, TOP), np.float32)
    kept = min(TOP, vocab_size)
    for begin in range(1, count, _CHUNK):
        end = min(begin + _CHUNK, count)
        logits = model.logits(outputs[begin - 1 : end - 1])  # (n, V), each predicting ids[begin:end]
        shifted = logits - logits.max(axis=-1, keepdims=True)
        exps = np.exp(shifted)
        totals = exps.sum(axis=-1, keepdims=True)
        target = np.take_along_axis(shifted, ids[begin:end, None], axis=-1)
        bits[begin:end] = (np.log(totals[:, 0].astype(np.float64)) - target[:, 0]) / np.log(2)
        best = np.argpartition(-shifted, kept - 1, axis=-1)[:, :kept]
        best = np.take_along_axis(best, np.argsort(-np.take_along_axis(shifted, best, axis=-1), axis=-1), axis=-1)
        top_ids[begin:end, :kept] = best
        top_probs[begin:end, :kept] = np.take_along_axis(exps, best, axis=-1) / totals
    return bits, top_ids, top_probs


def _scattered(rows: np.ndarray, read: np.ndarray, missing: float) -> np.ndarray:
    """`rows` of the characters read, placed at their positions in the text; `missing` elsewhere."""
    placed = np.full((len(read), *rows.shape[1:]), missing, rows.dtype)
    placed[read] = rows
    return placed


def _repeated(rows: np.ndarray, last_read: np.ndarray, before: float) -> np.ndarray:
    """At each position the row of the last character read (`last_read`), `before` before any."""
    padded = np.concatenate([np.full((1, rows.shape[1]), before, rows.dtype), rows])
    return padded[last_read + 1]

"""Looking inside a model (charrnn viz's numbers): predictions equal eval's, a cell set by hand
to track quotes is found, and the text properties and gate counts are right on known inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from charrnn.core.model import CharRNN
from charrnn.core.numpy_model import NumpyCharRNN
from charrnn.core.vocab import UNKNOWN, Vocab
from charrnn.inspect.cell_roles import gate_saturation, rank_cells, text_properties
from charrnn.inspect.trace import TOP, trace_text
from charrnn.run.evaluate import score_text
from charrnn.settings.config import ModelConfig
from charrnn.store.corpus import resolve_corpus
from helpers import random_model, vocab_of

ALPHABET = "abcdefghij klmnop\n"


def _model(cell: str, input_mode: str, vocab_size: int, layers: int = 2, seed: int = 0) -> CharRNN:
    return random_model(cell, input_mode, vocab_size, layers, hidden_size=16, seed=seed)


def _random_text(chars: str, length: int, seed: int = 1) -> str:
    return "".join(np.random.default_rng(seed).choice(list(chars), length))


def _eval_nats(model: CharRNN, vocab: Vocab, text: str, tmp_path) -> float:
    """`charrnn eval`'s score of `text` (short enough to be read as one stream, as a trace reads it;
    ending in a newline, which eval would otherwise add)."""
    path = tmp_path / "held_out.txt"
    path.write_text(text, encoding="utf-8")
    score = score_text(model, vocab, resolve_corpus([str(path)]), torch.device("cpu"))
    assert score.chars == len(text) and score.streams == 1
    return score.nats


@pytest.mark.parametrize("cell, input_mode", list(itertools.product(("lstm", "gru", "rnn"), ("one-hot", "embedding"))))
def test_predictions_are_the_per_character_losses_eval_scores(cell, input_mode, tmp_path):
    vocab = Vocab(list(ALPHABET))
    model = _model(cell, input_mode, len(vocab))
    text = _random_text(ALPHABET, 149) + "\n"
    trace = trace_text(NumpyCharRNN.of(model), vocab, text)
    ids = torch.from_numpy(vocab.encode(text).astype(np.int64))[None]
    with torch.inference_mode():
        outputs, hidden = model.recurrent(ids)  # from a zero state
        logits = model.head(outputs)[0, :-1]  # each predicting the next character
    losses = F.cross_entropy(logits, ids[0, 1:], reduction="none").numpy()
    assert (trace.ids == ids[0].numpy()).all()
    assert np.isnan(trace.bits[0]) and (trace.top_ids[0] == -1).all() and (trace.top_probs[0] == 0).all()
    np.testing.assert_allclose(trace.bits[1:] * math.log(2), losses, atol=1e-4)
    assert np.nanmean(trace.bits) * math.log(2) == pytest.approx(_eval_nats(model, vocab, text, tmp_path), abs=1e-5)
    probs, best = torch.softmax(logits, dim=-1).topk(TOP)
    assert (trace.top_ids[1:] == best.numpy()).all()
    np.testing.assert_allclose(trace.top_probs[1:], probs.numpy(), atol=1e-5)
    # The activations after each character: h for a GRU or RNN; for an LSTM tanh(c), which the
    # output gate turns into h.
    last = trace.gates[-1]["output"] * trace.cells[-1] if cell == "lstm" else trace.cells[-1]
    np.testing.assert_allclose(last, outputs[0].numpy(), atol=1e-5)
    if cell == "lstm":
        np.testing.assert_allclose(np.stack([c[-1] for c in trace.cells]), np.tanh(hidden[1][:, 0].numpy()), atol=1e-5)
    names = {"lstm": ["input", "forget", "output"], "gru": ["reset", "update"], "rnn": None}[cell]
    assert [list(layer) for layer in trace.gates] == ([names] * 2 if names else [])
    assert all(((g >= 0) & (g <= 1)).all() and g.shape == (150, 16) for layer in trace.gates for g in layer.values())


def test_characters_outside_a_vocabulary_without_unknown_are_skipped_as_eval_leaves_them_out(tmp_path):
    vocab = Vocab(list(ALPHABET))
    model = _model("lstm", "embedding", len(vocab))
    text = "é" + _random_text(ALPHABET, 60) + "XY" + _random_text(ALPHABET, 60, seed=2) + "𥫗\n"
    skipped = np.array([c not in ALPHABET for c in text])
    trace = trace_text(NumpyCharRNN.of(model), vocab, text)
    kept = trace_text(NumpyCharRNN.of(model), vocab, "".join(c for c in text if c in ALPHABET))
    assert (trace.ids[skipped] == -1).all() and (trace.ids[~skipped] == kept.ids).all()
    assert np.isnan(trace.bits[skipped]).all() and (trace.top_ids[skipped] == -1).all()
    np.testing.assert_array_equal(trace.bits[~skipped], kept.bits)
    np.testing.assert_array_equal(trace.top_probs[~skipped], kept.top_probs)
    assert np.nanmean(trace.bits) * math.log(2) == pytest.approx(_eval_nats(model, vocab, text, tmp_path), abs=1e-5)
    cells, gates = trace.cells[0], trace.gates[0]["forget"]
    assert (cells[0] == 0).all() and (gates[0] == 0.5).all()  # nothing read yet: the zero state
    x = text.index("X")
    assert (cells[x] == cells[x - 1]).all() and (cells[x + 1] == cells[x - 1]).all()  # the state stays as it was
    assert (cells[-2] == cells[-3]).all() and (gates[x + 1] == gates[x - 1]).all()


def test_characters_outside_a_vocabulary_with_unknown_are_read_as_it(tmp_path):
    vocab = Vocab([*ALPHABET, UNKNOWN])
    model = _model("gru", "one-hot", len(vocab))
    text = "é" + _random_text(ALPHABET, 60) + "X𥫗" + _random_text(ALPHABET, 60, seed=2) + "\n"
    trace = trace_text(NumpyCharRNN.of(model), vocab, text)
    assert [int(i) for i in trace.ids[[0, 61, 62]]] == [vocab.unknown_id] * 3
    assert np.isfinite(trace.bits[1:]).all()
    assert np.nanmean(trace.bits) * math.log(2) == pytest.approx(_eval_nats(model, vocab, text, tmp_path), abs=1e-5)


def test_a_vocabulary_smaller_than_the_top_guesses_fills_the_rest_with_none():
    vocab = Vocab(list("ab\n"))
    trace = trace_text(NumpyCharRNN.of(_model("rnn", "one-hot", 3, layers=1)), vocab, "ab\nba")
    assert (np.sort(trace.top_ids[1:, :3], axis=1) == [0, 1, 2]).all() and (trace.top_ids[:, 3:] == -1).all()
    np.testing.assert_allclose(trace.top_probs.sum(axis=1), [0, 1, 1, 1, 1], atol=1e-6)


def _quoted_text(sentences: int = 40, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "said", "go", "home", "now", "and", "then", "we", "left"]
    parts = [
        " ".join(rng.choice(words, rng.integers(1, 6))) + ' "' + " ".join(rng.choice(words, rng.integers(1, 6))) + '" '
        for _ in range(sentences)
    ]
    return "".join(parts) + "\n"


QUOTE_CELL = 5


def _quote_tracking_lstm(vocab: Vocab) -> NumpyCharRNN:
    """A one-layer LSTM of small random weights but for cell QUOTE_CELL, whose cell state flips
    sign at each '"': its forget gate closes and its input gate opens only there, and its
    candidate is tanh(-K h + 1), the opposite of what it holds (+ at the very first quote)."""
    size, strength, flip = 12, 20.0, 10.0
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell="lstm", layers=1, hidden_size=size, input_mode="one-hot"))
    quote = int(vocab.encode('"')[0])
    rnn = model.rnn
    gate = {name: k * size + QUOTE_CELL for k, name in enumerate("ifgo")}  # PyTorch's gate order
    with torch.no_grad():
        for row in gate.values():
            for weights in (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0):
                weights[row] = 0
        rnn.bias_ih_l0[gate["i"]], rnn.weight_ih_l0[gate["i"], quote] = -strength, 2 * strength
        rnn.bias_ih_l0[gate["f"]], rnn.weight_ih_l0[gate["f"], quote] = strength, -2 * strength
        rnn.bias_ih_l0[gate["g"]], rnn.weight_hh_l0[gate["g"], QUOTE_CELL] = 1.0, -flip
        rnn.bias_ih_l0[gate["o"]] = strength
    return NumpyCharRNN.of(model)


def test_a_cell_set_by_hand_to_track_quotes_is_ranked_first_for_inside_quotes():
    text = _quoted_text()
    vocab = vocab_of(text)
    trace = trace_text(_quote_tracking_lstm(vocab), vocab, text)
    findings = [found for found in rank_cells(trace.cells, text_properties(text)) if found.property == "inside quotes"]
    assert (findings[0].layer, findings[0].cell) == (0, QUOTE_CELL)
    assert abs(findings[0].r) > 0.9


def _properties(text: str) -> dict[str, list[float]]:
    found = text_properties(text)
    assert all(len(p.values) == len(text) and p.values.dtype == np.float64 and p.description for p in found)
    return {p.name: p.values.tolist() for p in found}


def test_inside_quotes_pairs_straight_curly_and_cjk_quotes():
    text = 'a "bc" d “e” 「f『g』」h'
    expected = [0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    assert _properties(text)["inside quotes"] == expected


def test_bracket_depth_never_falls_below_zero():
    assert _properties("a)(b[c]))(")["bracket depth"] == [0, 0, 1, 1, 2, 2, 1, 0, 0, 1]
    assert _properties("f（x｛）")["bracket depth"] == [0, 1, 1, 2, 1]


def test_position_in_line_line_start_and_inside_a_word():
    properties = _properties("ab\ncde\n_1 !")
    assert properties["position in line"] == [1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4]
    assert properties["line start"] == [0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]
    assert properties["inside a word"] == [1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 0]
    assert "verse position" not in properties


def test_verse_position_counts_cjk_characters_since_punctuation_outside_the_bmp_too():
    poem = "春眠不觉晓，𥫗处闻啼鸟。\n夜来风雨声，花落知多少。\n"
    assert len(poem) == 26  # one entry per code point: 𥫗 (U+25AD7) is one character
    properties = _properties(poem)
    line = [1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0, 0]
    assert properties["verse position"] == line * 2
    assert "inside a word" not in properties  # Chinese has no spaces between words


def test_properties_that_never_change_are_left_out():
    assert list(_properties("abc")) == ["position in line"]
    assert _properties("") == {} and _properties("x") == {}


def test_cells_are_ranked_by_the_size_of_their_correlation():
    rng = np.random.default_rng(0)
    quotes = text_properties('ab "cd" e "f" g')[0]
    values = quotes.values.astype(np.float32)
    noise = rng.normal(size=(len(values), 2)).astype(np.float32)
    layer_1 = np.stack([noise[:, 0], np.full_like(values, 0.7), values * 0.5 + noise[:, 1] * 0.05], axis=1)
    layer_2 = np.stack([np.zeros_like(values), 1 - 2 * values], axis=1)
    findings = rank_cells([layer_1, layer_2], [quotes], per_property=5)
    assert [(f.layer, f.cell) for f in findings][:2] == [(1, 1), (0, 2)]
    assert findings[0].r == pytest.approx(-1.0) and 0.9 < findings[1].r < 1.0
    assert all(f.r == 0 for f in findings if (f.layer, f.cell) in ((0, 1), (1, 0)))  # constant cells: 0, not NaN
    assert len(rank_cells([layer_1, layer_2], [quotes], per_property=2)) == 2


def test_gate_saturation_counts_steps_below_0_1_and_above_0_9():
    gates = np.array([[0.05, 0.5], [0.95, 0.5], [0.1, 0.9], [0.0, 1.0]], np.float32)
    (saturation,) = gate_saturation([{"update": gates}])
    assert (saturation.layer, saturation.gate) == (0, "update")
    assert saturation.left.tolist() == [0.5, 0.0] and saturation.right.tolist() == [0.25, 0.25]
    both = gate_saturation([{"input": gates, "forget": 1 - gates}, {"input": gates}])
    assert [(s.layer, s.gate) for s in both] == [(0, "input"), (0, "forget"), (1, "input")]
    assert gate_saturation([]) == []

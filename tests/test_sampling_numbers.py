"""Numbers that go wrong: extreme temperatures, NaN predictions, long primes, long beams."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.cli import session
from charrnn.cli.commands import main
from charrnn.core import sampling as sample
from charrnn.core.beam import beam_search
from charrnn.core.model import CharRNN
from charrnn.core.nearest import Unseen
from charrnn.core.numpy_model import NumpyCharRNN
from charrnn.core.sampling import (
    generate_ids,
    generate_samples,
    generate_text,
    pick_next,
    prime_ids,
    read_prime,
    softmax,
)
from charrnn.core.vocab import UNKNOWN, UNKNOWN_SHOWN, Vocab
from charrnn.errors import CheckpointError
from charrnn.run.evaluate import TextScore, score_text
from charrnn.settings.config import ModelConfig, SampleConfig
from charrnn.store.corpus import resolve_corpus
from charrnn.store.loading import LoadedModel
from helpers import PANGRAM, TINY_OPTIONS, load_model, train


@pytest.fixture(scope="module")
def run_with_unknown(tmp_path_factory):
    """A tiny trained run whose vocabulary has an unknown id (the last one): two rare characters."""
    folder = tmp_path_factory.mktemp("unknown")
    corpus = folder / "corpus.txt"
    corpus.write_text(PANGRAM * 120 + "Zé\n", encoding="utf-8")
    torch.set_num_threads(1)
    train(corpus, folder / "run", {**TINY_OPTIONS, "max_steps": 60, "save_every": 60, "seed": 0, "min_count": 2})
    return folder


@pytest.fixture(scope="module")
def loaded(run_with_unknown):
    model = load_model(run_with_unknown / "run", torch.device("cpu"))
    assert model.vocab.unknown_id == len(model.vocab) - 1
    return model


def _random_model(cell: str, vocab_size: int = 12, seed: int = 0) -> CharRNN:
    torch.manual_seed(seed)
    model = CharRNN(ModelConfig(vocab_size=vocab_size, cell=cell, layers=2, hidden_size=16, embed_dim=8))
    with torch.no_grad():
        model.head.weight.mul_(8)  # confident predictions: fewer near-ties, more varied text
    return model.eval()


def _sample(args, **kwargs):
    return CliRunner().invoke(main, ["sample", *map(str, args)], **kwargs)


# --- temperatures --------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", ["1e-300", "1e-45", "1e-46", "5e-324"])
def test_a_temperature_too_small_to_divide_by_samples_as_small_ones_do(run_with_unknown, temperature):
    """Below 1e-30, as at 1e-20: the most likely character, except that a run continues with
    the model's own probability (see runs_as_the_model_has_them); never U+FFFD nor garbage."""
    common = ["-c", run_with_unknown / "run", "--length", "80", "--seed", "3", "--prime", "the "]
    small = _sample([*common, "--temp", "1e-20"])
    assert small.exit_code == 0, small.output
    for extra in ([], ["--top-p", "0.5"], ["--top-k", "3"], ["--top-k", "2", "--top-p", "0.9"]):
        result = _sample([*common, "--temp", temperature, *extra])
        assert result.exit_code == 0, result.output
        assert result.stdout == small.stdout
    batch = _sample([*common, "--temp", temperature, "-n", "3"])
    assert batch.exit_code == 0, batch.output
    assert batch.stdout.count("the ") >= 3 and "\ufffd" not in batch.stdout


@pytest.mark.parametrize("temperature", ["1e38", "1e300"])
def test_a_huge_temperature_samples_evenly_from_the_known_characters_only(run_with_unknown, loaded, temperature):
    result = _sample(["-c", run_with_unknown / "run", "--length", "2000", "--seed", "1", "--temp", temperature])
    assert result.exit_code == 0, result.output
    written = set(result.stdout)
    assert UNKNOWN_SHOWN not in written
    assert written == set(loaded.vocab.chars) - {UNKNOWN_SHOWN}  # every known character, evenly likely


@settings(max_examples=300, deadline=None)
@given(
    logits=st.lists(st.floats(-1e30, 1e30).map(lambda x: float(np.float32(x))), min_size=2, max_size=8),
    temperature=st.one_of(
        st.floats(5e-324, 1e308), st.sampled_from([5e-324, 1e-300, 1e-45, 1.2e-38, 1e-30, 1.0, 1e30, 3.4e38, 1e300])
    ),
    top_k=st.none() | st.integers(1, 9),
    top_p=st.none() | st.floats(1e-9, 1.0),
    banned=st.none() | st.integers(0, 7),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_finite_logits_and_temperature_give_a_character_that_can_be_written(
    logits, temperature, top_k, top_p, banned, seed
):
    row = np.array([logits], np.float32)
    banned = banned if banned is not None and banned < row.shape[1] else None
    config = SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p)
    picked = int(pick_next(np.repeat(row, 4, axis=0), config, np.random.default_rng(seed), banned)[0])
    assert 0 <= picked < row.shape[1] and picked != banned
    allowed = row[0].copy()
    if banned is not None:
        allowed[banned] = -np.inf
    if temperature <= 1e-300:  # any gap over 1e-270 underflows: greedy, or one of exact ties
        assert allowed[picked] == allowed.max()


def test_unchanged_logits_give_the_same_draws_as_plain_softmax_sampling():
    """At temperature 1 the shift by the best logit changes nothing: seeds keep their text."""
    logits = np.random.default_rng(0).standard_normal((64, 30), dtype=np.float32) * 4
    ours = pick_next(logits, SampleConfig(), np.random.default_rng(5))
    plain = sample.draw(softmax(logits), np.random.default_rng(5))
    assert np.array_equal(ours, plain)


# --- NaN and infinity ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("greedy", [False, True])
def test_nan_or_infinite_logits_are_refused_not_sampled(bad, greedy):
    logits = np.zeros((2, 5), np.float32)
    logits[1, 3] = bad
    with pytest.raises(CheckpointError, match="predicts NaN or infinite scores"):
        pick_next(logits, SampleConfig(greedy=greedy), np.random.default_rng())


def _nan_model(loaded: LoadedModel) -> LoadedModel:
    model = CharRNN(loaded.model.config)
    model.load_state_dict(loaded.model.state_dict())
    with torch.no_grad():
        model.rnn.weight_hh_l0[0, 0] = float("nan")
    return LoadedModel(model.eval(), loaded.vocab, loaded.path, loaded.step)


def test_a_model_that_predicts_nan_is_refused_before_anything_is_generated(loaded):
    broken = _nan_model(loaded)
    with pytest.raises(CheckpointError, match="NaN"):
        generate_text(broken, "the ", SampleConfig(length=10), seed=0)  # not lazily, at the first character
    with pytest.raises(CheckpointError, match="NaN"):
        generate_samples(broken, None, SampleConfig(length=10), num_samples=3, seed=0)
    with pytest.raises(CheckpointError, match="NaN"):
        beam_search(broken.model, [1, 2], 10, beam=3)


def test_predictions_that_turn_nan_later_stop_sampling_and_beam_search(loaded, monkeypatch):
    real_step = NumpyCharRNN.step
    calls = []

    def step_turning_nan(self, ids, state):
        logits, state = real_step(self, ids, state)
        calls.append(1)
        return (logits * np.nan if len(calls) > 5 else logits), state

    monkeypatch.setattr(NumpyCharRNN, "step", step_turning_nan)
    with pytest.raises(CheckpointError, match="NaN"):
        list(generate_ids(loaded.model, [1, 2], SampleConfig(length=20), np.random.default_rng()))
    calls.clear()
    with pytest.raises(CheckpointError, match="NaN"):
        beam_search(loaded.model, [1, 2], 20, beam=4)


def test_eval_refuses_a_model_whose_score_is_not_a_number(loaded, tmp_path):
    text = tmp_path / "held_out.txt"
    text.write_text(PANGRAM * 20, encoding="utf-8")
    corpus = resolve_corpus([str(text)], "utf-8", "strict")
    with pytest.raises(CheckpointError, match=r"scores .*held_out.txt as nan nats per character"):
        score_text(_nan_model(loaded).model, loaded.vocab, corpus, torch.device("cpu"))


def test_eval_of_out_of_range_weights_exits_with_one_line(run_with_unknown, tmp_path):
    from charrnn.store.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(run_with_unknown / "run" / "best.pt")
    state["model"]["head.weight"] = state["model"]["head.weight"] * 1e38  # finite, but the logits overflow
    save_checkpoint(state, tmp_path / "huge.pt")
    result = CliRunner().invoke(main, ["eval", str(run_with_unknown / "corpus.txt"), "-c", str(tmp_path / "huge.pt")])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert (
        lines[-1].startswith("Error: ") and "nats per character: its weights are damaged or out of range" in lines[-1]
    )
    assert "bits per character" not in result.output and "Traceback" not in result.output


def test_a_perplexity_too_large_for_a_float_is_infinite_not_an_error():
    assert TextScore(10, 9, 800.0, Unseen({}), 0, 0, 0).perplexity == math.inf
    assert TextScore(10, 9, 2.0, Unseen({}), 0, 0, 0).perplexity == pytest.approx(math.e**2)


def test_a_vocabulary_of_only_the_unknown_character_is_refused():
    with pytest.raises(CheckpointError, match="no character to generate"):
        prime_ids(Vocab([UNKNOWN]), None, np.random.default_rng())


# --- --min-count ------------------------------------------------------------------------------


def test_a_min_count_that_leaves_no_character_is_refused_in_one_line(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PANGRAM * 60, encoding="utf-8")  # the most frequent character, ' ', appears 480 times
    result = CliRunner().invoke(main, ["train", str(corpus), "--min-count", "481", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    expected = (
        "Error: Invalid value for '--min-count': 481 leaves no character of the text its own id: "
        "the most frequent one appears 480 times (give at most 480)"
    )
    assert lines == [expected]
    assert not (tmp_path / "run").exists()


# --- long primes --------------------------------------------------------------------------------


def _unchunked_prime(model: CharRNN, start_ids):
    """The reading of a prime by PyTorch's fused layers: one forward pass, logits of every position."""
    with torch.inference_mode():
        logits, hidden = model(torch.tensor([list(start_ids)]), model.init_hidden(1))
    return logits[:, -1].numpy(), [h.numpy() for h in hidden]


def _stacked(state):
    """A NumpyCharRNN state as PyTorch's hidden state: each part (layers, B, H)."""
    return [np.stack([layer[part] for layer in state]) for part in range(len(state[0]))]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_prime_read_in_chunks_gives_the_state_of_reading_it_whole(cell, monkeypatch):
    model = _random_model(cell)
    prime = torch.randint(12, (1000,), generator=torch.Generator().manual_seed(1)).tolist()
    whole_logits, whole_hidden = _unchunked_prime(model, prime)
    for chunk in (1000, 333, 64, 1):
        monkeypatch.setattr(sample, "PRIME_CHUNK", chunk)
        logits, state = read_prime(NumpyCharRNN.of(model), prime, num_samples=3)
        assert np.allclose(logits, np.repeat(whole_logits, 3, axis=0), atol=1e-5)
        for ours, theirs in zip(_stacked(state), whole_hidden):
            assert np.allclose(ours, np.repeat(theirs, 3, axis=1), atol=1e-5)


def test_a_long_prime_is_read_in_bounded_pieces_and_through_the_output_layer_once(monkeypatch):
    model = NumpyCharRNN.of(_random_model("lstm"))
    calls = {"read": [], "logits": []}
    real_read, real_logits = NumpyCharRNN.read, NumpyCharRNN.logits
    monkeypatch.setattr(
        NumpyCharRNN, "read", lambda self, ids, state: calls["read"].append(len(ids)) or real_read(self, ids, state)
    )
    monkeypatch.setattr(
        NumpyCharRNN, "logits", lambda self, out: calls["logits"].append(out.shape) or real_logits(self, out)
    )
    read_prime(model, [3] * (2 * sample.PRIME_CHUNK + 5), num_samples=50)
    assert calls["read"] == [sample.PRIME_CHUNK, sample.PRIME_CHUNK, 5]  # once for all 50 samples
    assert calls["logits"] == [(1, 16)]  # only the last position: no (samples, prime, vocabulary) logits


@pytest.mark.parametrize("prime_length", [1, 40, 5000])
@pytest.mark.parametrize("num_samples", [1, 3])
def test_the_same_seed_gives_the_same_text(loaded, prime_length, num_samples):
    prime = (PANGRAM * (prime_length // len(PANGRAM) + 1))[:prime_length]
    start = prime_ids(loaded.vocab, prime, np.random.default_rng())
    config = SampleConfig(length=300, temperature=0.9, top_p=0.95)

    def ids(seed):
        rng = np.random.default_rng(seed)
        return np.stack(list(generate_ids(loaded.model, start, config, rng, num_samples, loaded.vocab.unknown_id)))

    assert np.array_equal(ids(7), ids(7))
    assert not np.array_equal(ids(7), ids(8))


# --- beam search ---------------------------------------------------------------------------------


def _old_beam_search(model, start_ids, length, beam, banned=None):
    """Beam search as it was: every hypothesis's whole sequence copied at every step (quadratic),
    the hypotheses picked by torch.topk."""
    model = NumpyCharRNN.of(model)
    logits, state = read_prime(model, start_ids)
    scores = torch.zeros(1)
    sequences = [[]]
    for position in range(length):
        log_probs = torch.log_softmax(torch.from_numpy(logits), dim=-1)
        if banned is not None:
            log_probs[:, banned] = float("-inf")
        totals = (scores[:, None] + log_probs).flatten()
        scores, best = totals.topk(min(beam, totals.numel()))
        rows, ids = best // log_probs.shape[1], best % log_probs.shape[1]
        sequences = [sequences[row] + [char] for row, char in zip(rows.tolist(), ids.tolist())]
        if position + 1 < length:
            logits, state = model.step(ids.numpy(), [tuple(part[rows.numpy()] for part in layer) for layer in state])
    return sequences[0]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("beam", [1, 3, 20])
def test_beam_search_finds_what_the_old_quadratic_search_found(cell, beam):
    model = _random_model(cell)
    for length in (0, 1, 2, 150):
        for banned in (None, 11):
            expected = _old_beam_search(model, [1, 5, 2], length, beam, banned)
            assert beam_search(model, [1, 5, 2], length, beam, banned) == expected
            assert banned not in expected


def test_beam_search_on_a_trained_model_matches_the_old_search(loaded):
    start = prime_ids(loaded.vocab, "the la", np.random.default_rng())
    for beam in (1, 4, 40):  # 40: more hypotheses than characters at the first step
        expected = _old_beam_search(loaded.model, start, 120, beam, loaded.vocab.unknown_id)
        assert beam_search(loaded.model, start, 120, beam, loaded.vocab.unknown_id) == expected


# --- interactive lines ---------------------------------------------------------------------------


class _RecordingStream(io.StringIO):
    """A stream that remembers the longest read asked of it."""

    largest = 0

    def readline(self, size=-1):
        self.largest = max(self.largest, size if size >= 0 else math.inf)
        return super().readline(size)


@pytest.mark.parametrize(
    "text, lines",
    [
        ("abc\nde", ["abc", "de"]),
        ("a" * 10 + "\n" + "b\n", ["a" * 10, "b"]),  # exactly the limit
        ("a" * 11 + "\nb\n", ["a" * 11, "b"]),  # one over: refused by the caller (more than the limit)
        ("a" * 45 + "\nb\n", ["a" * 11, "b"]),  # far over: only limit + 1 kept, the rest skipped
        ("a" * 30, ["a" * 11]),  # far over, at the end of input
        ("\n\n", ["", ""]),
    ],
)
def test_lines_are_read_with_a_bound_on_their_length(text, lines):
    stream = _RecordingStream(text)
    read = []
    while (line := session._read_line(stream, 10)) is not None:
        read.append(line)
    assert read == lines
    assert stream.largest == 11


def test_interactive_sampling_refuses_an_overlong_line_and_goes_on(run_with_unknown):
    long_line = "the quick " * 20_000  # 200,000 characters: twice the limit
    result = _sample(
        ["-c", run_with_unknown / "run", "-i", "--length", "20", "--seed", "1"], input=f"{long_line}\nlazy\n"
    )
    assert result.exit_code == 0, result.output
    assert "that prime is longer than 100,000 characters; type a shorter one" in result.stderr
    texts = [text for text in result.stdout.split("\n\n") if text.strip()]
    assert len(texts) == 1 and texts[0].startswith("lazy") and len(texts[0]) == 24
    assert result.stderr.count("prime> ") == 3


def test_interactive_sampling_ends_on_input_that_is_not_text(run_with_unknown):
    result = _sample(["-c", run_with_unknown / "run", "-i", "--length", "20"], input=b"the \xff\xfe\n")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: the prime typed is not valid utf-8 text")


def test_a_very_hot_sample_never_writes_the_unknown_character(loaded):
    text = "".join(generate_text(loaded, None, SampleConfig(length=3000, temperature=50.0), seed=0))
    assert UNKNOWN_SHOWN not in text and np.unique(list(text)).size > 10

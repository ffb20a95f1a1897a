"""The numpy inference path: the same model as PyTorch's, and `charrnn sample` without torch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from charrnn.cli.commands import main
from charrnn.core.beam import beam_search, log_softmax
from charrnn.core.model import CharRNN
from charrnn.core.numpy_model import STEPS, NumpyCharRNN
from charrnn.core.sampling import generate_ids
from charrnn.settings.cells import CELLS
from charrnn.settings.config import SampleConfig
from charrnn.store.loading import load_for_sampling
from helpers import PANGRAM, TINY_OPTIONS, cli_in_fresh_process, random_model, train


def _model(cell: str, input_mode: str, layers: int, vocab_size: int = 40, seed: int = 0) -> CharRNN:
    return random_model(cell, input_mode, vocab_size, layers, hidden_size=24, seed=seed)


def _torch_logits(model: CharRNN, ids: list[int]) -> np.ndarray:
    with torch.inference_mode():
        logits, _ = model(torch.tensor([ids]))
    return logits[0].numpy()


@pytest.mark.parametrize("cell, input_mode, layers", list(itertools.product(CELLS, ("one-hot", "embedding"), (1, 2))))
def test_the_numpy_model_predicts_what_pytorch_predicts(cell, input_mode, layers):
    model = _model(cell, input_mode, layers)
    prime = np.random.default_rng(1).integers(40, size=50).tolist()
    expected = _torch_logits(model, prime)
    numpy_model = NumpyCharRNN.of(model)
    state, stepped = numpy_model.zero_state(1), []
    for char in prime:  # one character at a time, as sampling steps
        logits, state = numpy_model.step(np.array([char]), state)
        stepped.append(logits[0])
    assert np.abs(np.stack(stepped) - expected).max() < 1e-5
    outputs, _ = numpy_model.read(prime, numpy_model.zero_state(1))  # the whole prime at once
    assert np.abs(numpy_model.logits(outputs)[0] - expected[-1]).max() < 1e-5


def test_every_cell_of_the_registry_has_a_numpy_step():
    assert set(STEPS) == set(CELLS)


@pytest.mark.parametrize("cell", CELLS)
def test_a_cells_registered_facts_fit_its_torch_layer_and_numpy_step(cell):
    facts = CELLS[cell]
    model = _model(cell, "one-hot", layers=2)
    assert model.rnn.weight_hh_l1.shape == (facts.gates * 24, 24)
    with torch.inference_mode():
        _, hidden = model(torch.tensor([[1, 2, 3]]))
    assert len(hidden) == facts.state_tensors
    numpy_model = NumpyCharRNN.of(model)
    steps, state = numpy_model.read_steps(np.array([1, 2, 3]), numpy_model.zero_state(1))
    assert all(len(layer) == facts.state_tensors for layer in state)
    assert all(tuple(layer.gates) == facts.gate_names and len(layer.states) == facts.state_tensors for layer in steps)
    for torch_state, numpy_state in zip(hidden, zip(*state)):  # the same state, part by part
        assert np.abs(torch_state[:, 0].numpy() - np.concatenate(numpy_state)).max() < 1e-5


def test_greedy_decoding_follows_the_argmax_of_pytorch_logits():
    model = _model("lstm", "embedding", 2)
    prime = [3, 1, 4, 1, 5]
    ids = [
        int(step[0])
        for step in generate_ids(model, prime, SampleConfig(length=40, greedy=True), np.random.default_rng(0))
    ]
    expected = _torch_logits(model, prime + ids)[len(prime) - 1 : -1].argmax(axis=-1)
    assert ids == expected.tolist()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_beam_as_wide_as_every_continuation_finds_the_most_likely_one(cell):
    """On 4 characters and 4 steps, a beam of 4**4 keeps every continuation: it must find the
    one with the highest total log-probability, found here by trying each (the last character,
    as the unknown one, banned)."""
    model = NumpyCharRNN.of(_model(cell, "one-hot", 1, vocab_size=5, seed=2))
    prime, length = [0, 2], 4

    def log_prob(ids):
        state, total = model.zero_state(1), 0.0
        logits = None
        for char in prime + list(ids):
            if logits is not None:
                total += float(log_softmax(logits)[0, char])
            logits, state = model.step(np.array([char]), state)
        return total

    best = max(itertools.product(range(4), repeat=length), key=log_prob)
    assert beam_search(model, prime, length, beam=4**length, banned=4) == list(best)
    assert log_prob(beam_search(model, prime, length, beam=3, banned=4)) <= log_prob(best)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("numpy")
    corpus = folder / "corpus.txt"
    corpus.write_text(PANGRAM * 60, encoding="utf-8")
    torch.set_num_threads(1)
    train(corpus, folder / "run", {**TINY_OPTIONS, "max_steps": 20, "save_every": 20, "seed": 0})
    return folder / "run"


def test_sampling_reads_the_checkpoint_as_numpy_arrays(run):
    loaded = load_for_sampling(run)
    assert isinstance(loaded.model, NumpyCharRNN) and loaded.path.name == "best.pt"
    assert all(isinstance(weight, np.ndarray) for weight in loaded.checkpoint.weights.values())


def _sample(*args):
    result = CliRunner().invoke(main, ["sample", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize(
    "options",
    [
        ["--temp", "0.7", "--top-k", "5"],
        ["--top-p", "0.9", "-n", "3"],
        ["--temp", "1.3", "--stop", "o", "-n", "4"],
    ],
)
def test_seeded_samples_are_reproducible(run, options):
    common = ["-c", run, "--length", "120", "--prime", "the ", *options]
    first = _sample(*common, "--seed", "5")
    assert first == _sample(*common, "--seed", "5")
    assert first != _sample(*common, "--seed", "6")
    if "--stop" in options:  # each of the 4 samples ends at its first "o" after the prime
        texts = [part.split("\n", 1)[1].rstrip("\n") for part in first.split("--- sample ")[1:]]
        assert len(texts) == 4 and all(t.startswith("the ") and t[4:].count("o") <= 1 for t in texts)
        assert all(t.endswith("o") or len(t) == 124 for t in texts)


def test_sample_does_not_import_torch(run):
    """`charrnn sample` in a fresh process, every sampling feature at once, then a look at what it imported."""
    common = ["sample", "-c", run, "--length", "50", "--seed", "1", "--prime", "the "]
    stdout, imported_torch = cli_in_fresh_process(
        [*common, "--temp", "0.8", "--top-p", "0.9", "--stop", "x"],
        [*common, "-n", "3", "--top-k", "4"],
        [*common, "--beam", "3"],
    )
    assert not imported_torch
    assert stdout.count("the ") >= 5

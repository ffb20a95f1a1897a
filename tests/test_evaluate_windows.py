"""Scoring a text as nanoGPT does: independent windows, each from a zero state (`--windows`)."""

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from charrnn import api
from charrnn.cli.commands import main
from charrnn.core.model import CharRNN
from charrnn.errors import ConfigError
from charrnn.run.evaluate import windowed_loss
from charrnn.store.checkpoint import read_checkpoint
from helpers import PANGRAM, TINY_OPTIONS, train

HELD_OUT = "a lazy dog jumps; the brown fox is quick.\nover the dog, the fox!\n" * 3  # 195 characters


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A tiny trained model and a held-out text (the same characters, other sentences)."""
    folder = tmp_path_factory.mktemp("windows")
    corpus = folder / "corpus.txt"
    corpus.write_text(PANGRAM * 40 + ".;,!", encoding="utf-8")
    train(corpus, folder / "run", TINY_OPTIONS)
    text = folder / "held_out.txt"
    text.write_text(HELD_OUT, encoding="utf-8")
    return api.load(folder / "run"), text


def _torch_model(path):
    """The checkpoint's CharRNN and vocabulary, built by hand."""
    checkpoint = read_checkpoint(path)
    model = CharRNN(checkpoint.model_config)
    model.load_state_dict(checkpoint.weights)
    return model, checkpoint.record.vocab


def _by_hand(model, ids, window):
    """Each window of `window` + 1 characters (overlapping by one) run from a zero state; the mean
    cross-entropy of all its `window` targets; a last partial window left out."""
    model.eval()
    losses = []
    with torch.no_grad():
        for start in range(0, len(ids) - window, window):
            piece = torch.tensor(ids[start : start + window + 1], dtype=torch.long)[None]
            logits, _ = model(piece[:, :-1])  # no hidden state given: zeros
            losses.append(F.cross_entropy(logits[0], piece[0, 1:], reduction="none"))
    return torch.cat(losses).double().mean().item(), sum(len(loss) for loss in losses)


def test_windowed_loss_is_the_mean_over_independent_windows_from_a_zero_state(scored):
    model, text = scored
    network, vocab = _torch_model(model.path)
    ids = vocab.encode(HELD_OUT)
    expected, targets = _by_hand(network, ids, 16)
    assert targets == (len(HELD_OUT) - 1) // 16 * 16 == 192  # 12 windows; the last 2 characters left out

    score = model.score(text, windows=16)
    assert score.nats == pytest.approx(expected, rel=1e-5)
    assert (score.scored, score.streams, score.window) == (192, 12, 16)
    # Batches of windows side by side, and windows longer than the evaluation's chunks, change nothing.
    assert windowed_loss(network, ids, 16, torch.device("cpu"), batch=5)[0] == pytest.approx(expected, rel=1e-5)
    long_window, _ = _by_hand(network, ids, 190)
    assert model.score(text, windows=190).nats == pytest.approx(long_window, rel=1e-5)

    carried = model.score(text)  # the state carried through the text: more context, another figure
    assert carried.window == 0 and abs(carried.nats - score.nats) > 1e-4


def test_eval_windows_from_the_command_line(scored):
    model, text = scored
    result = CliRunner().invoke(main, ["eval", str(text), "-c", str(model.path), "--windows", "16"])
    assert result.exit_code == 0, result.output
    assert "scored in 12 independent windows of 16 characters, each from a zero state" in result.stdout
    assert "195 characters, 192 scored" in result.stdout and "the last 2, too few to fill a window" in result.stdout
    assert f"nats per character: {model.score(text, windows=16).nats:.4f}" in result.stdout


@pytest.mark.parametrize("value", ["0", "-3", "abc", "1.5"])
def test_a_bad_window_length_is_refused_with_exit_2(scored, value):
    model, text = scored
    result = CliRunner().invoke(main, ["eval", str(text), "-c", str(model.path), "--windows", value])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: Invalid value for '--windows'") and "Traceback" not in result.output


def test_a_window_longer_than_the_text_is_one_clear_error(scored):
    model, text = scored
    result = CliRunner().invoke(main, ["eval", str(text), "-c", str(model.path), "--windows", "195"])
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        f"Error: {text} has 195 characters in the model's vocabulary; a window of 195 needs 196 "
        "(score it in shorter windows)"
    ]


@pytest.mark.parametrize("value", [0, True, 2.0, "16"])
def test_the_api_refuses_a_bad_window_length(scored, value):
    model, text = scored
    with pytest.raises(ConfigError, match="windows must be an integer >= 1"):
        model.score(text, windows=value)

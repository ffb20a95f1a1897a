"""Dynamic evaluation: a model that learns from a text as it reads it (`eval --adapt`,
`sample --adapt`, `Model.score(adapt=True)`, `Model.adapt`)."""

import hashlib
import json
import math
import random
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from charrnn import api
from charrnn.cli.commands import main
from charrnn.errors import ConfigError
from charrnn.run.adapt import (
    FLOOR,
    AdaptationDiverged,
    Adapter,
    adaptive_losses,
    adaptive_windowed_losses,
    checkpoint_rms,
)
from charrnn.settings.config import AdaptConfig
from charrnn.store.checkpoint import read_checkpoint
from helpers import PANGRAM, TINY_OPTIONS, train

CPU = torch.device("cpu")
# A text of the pangram's characters in other orders: something to learn as it is read.
HELD_OUT = "a lazy dog jumps; the brown fox is quick.\nover the dog, the fox!\n" * 6


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adapt")
    corpus = folder / "corpus.txt"
    corpus.write_text(PANGRAM * 40 + ".;,!", encoding="utf-8")
    train(corpus, folder / "run", {**TINY_OPTIONS, "max_steps": 60})
    text = folder / "held_out.txt"
    text.write_text(HELD_OUT, encoding="utf-8")
    return folder / "run", text


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _by_hand(checkpoint, ids, lr, decay, segment):
    """Score-then-update, written out from the method's equations: the reference for the loop."""
    from charrnn.core.model import CharRNN
    from charrnn.store.training_state import optimizer_parameters

    model = CharRNN(checkpoint.model_config)
    model.load_state_dict(checkpoint.weights)
    model.eval()
    names = [name for group in optimizer_parameters(checkpoint.model_config) for name, _ in group]
    moments = checkpoint.optimizer["state"]
    beta2 = checkpoint.optimizer["param_groups"][0]["betas"][1]
    rms = {}
    for key, name in enumerate(names):
        state = moments[key]
        rms[name] = (state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))).sqrt()
    mean = sum(r.mean().item() for r in rms.values()) / len(rms)
    trained = {name: p.detach().clone() for name, p in model.named_parameters()}
    hidden, total, count = None, 0.0, 0
    for start in range(0, len(ids) - 1, segment):
        piece = torch.tensor(ids[start : start + segment + 1], dtype=torch.long)[None]
        logits, hidden = model(piece[:, :-1], hidden)
        loss = F.cross_entropy(logits[0], piece[0, 1:], reduction="sum")
        total, count = total + loss.item(), count + piece.shape[1] - 1
        model.zero_grad()
        (loss / (piece.shape[1] - 1)).backward()
        with torch.no_grad():
            for name, p in model.named_parameters():
                rate = torch.clamp(rms[name] / mean, max=1 / decay)
                p -= lr * p.grad / torch.clamp(rms[name], min=FLOOR * mean)
                p += decay * rate * (trained[name] - p)
        hidden = tuple(h.detach() for h in hidden)
    return total / count


def test_the_adapted_score_is_a_score_then_update_loop_written_apart(run):
    out, text = run
    checkpoint = read_checkpoint(out / "best.pt")
    ids = checkpoint.vocab.encode(HELD_OUT)
    expected = _by_hand(checkpoint, ids, lr=3e-3, decay=0.02, segment=24)
    score = api.load(out, threads=1).score(text, adapt=True, adapt_lr=3e-3, adapt_decay=0.02, adapt_segment=24)
    assert score.nats == pytest.approx(expected, rel=1e-5)
    assert score.scored == len(HELD_OUT) - 1 and score.streams == 1  # in order, as one stream


def test_adapting_helps_on_a_text_with_something_to_learn_and_changes_no_file(run):
    out, text = run
    before = {path.name: _digest(path) for path in out.iterdir()}
    model = api.load(out, threads=1)
    static = model.score(text)
    adapted = model.score(text, adapt=True, adapt_lr=3e-3, adapt_segment=24)
    assert adapted.nats < static.nats - 0.05
    assert model.score(text).nats == static.nats  # the Model's own weights are back as trained
    assert {path.name: _digest(path) for path in out.iterdir()} == before


def test_a_repeated_passage_is_predicted_better_the_second_time_and_its_first_time_cannot_see_it(run):
    """Honesty: each character is scored before any step that has seen it, so what follows a
    passage cannot change its score by a single bit; and a passage read once is predicted better
    the second time."""
    out, _ = run
    checkpoint = read_checkpoint(out / "best.pt")
    words = PANGRAM.split()
    rng = random.Random(0)
    chosen = [rng.choice(words) for _ in range(12)]
    passage, other = " ".join(chosen) + "\n", " ".join(reversed(chosen)) + "\n"  # the same words, another order
    assert len(passage) == len(other) == 55
    filler = (PANGRAM * 3)[:120]

    def losses(text):
        model = api.load(out).torch_model()
        settings = AdaptConfig(adapt_lr=1e-2, adapt_decay=0.0, adapt_segment=20)
        return adaptive_losses(Adapter(model, settings, checkpoint_rms(checkpoint)), checkpoint.vocab.encode(text), CPU)

    repeated = losses(filler + passage + filler + passage)  # the passage starts at 120 and at 295
    once = losses(filler + passage + filler + other)
    first, second = slice(119, 174), slice(294, 349)  # the targets that are the passage's characters
    assert (repeated[:294] == once[:294]).all()  # what comes after a character cannot change its score
    assert repeated[second].mean() < repeated[first].mean() - 0.5


def test_two_runs_give_the_same_figure_to_the_last_digit(run):
    out, text = run
    first = api.load(out, threads=1).score(text, adapt=True, adapt_segment=30)
    second = api.load(out, threads=1).score(text, adapt=True, adapt_segment=30)
    assert first.nats == second.nats


def test_each_window_adapts_on_its_own_past_only(run):
    out, text = run
    checkpoint = read_checkpoint(out / "best.pt")
    ids, settings = checkpoint.vocab.encode(HELD_OUT), AdaptConfig(adapt_lr=3e-3, adapt_segment=16)

    def adapter():
        return Adapter(api.load(out).torch_model(), settings, checkpoint_rms(checkpoint))

    windowed = adaptive_windowed_losses(adapter(), ids, 64, CPU)
    apart = [adaptive_losses(adapter(), ids[first : first + 65], CPU) for first in range(0, len(ids) - 64, 64)]
    assert len(windowed) == 384 and (windowed == np.concatenate(apart)).all()  # each from the trained weights

    model = api.load(out, threads=1)
    static, adapted = (
        model.score(text, windows=64),
        model.score(text, windows=64, adapt=True, adapt_lr=3e-3, adapt_segment=16),
    )
    assert adapted.scored == static.scored == 384 and adapted.nats == pytest.approx(windowed.mean(), rel=1e-9)
    # one segment a window: each scored before any step inside it, so as without adaptation
    same = model.score(text, windows=64, adapt=True, adapt_lr=3e-3, adapt_segment=64)
    assert same.nats == pytest.approx(static.nats, rel=1e-6)


def test_a_model_without_training_statistics_gathers_them_from_the_first_segments_unchanged(run):
    """Until its rms is known the model only scores, as without adaptation."""
    out, _ = run
    checkpoint = read_checkpoint(out / "best.pt")
    model = api.load(out).torch_model()
    ids = checkpoint.vocab.encode(HELD_OUT)
    cpu = torch.device("cpu")
    gathering = Adapter(model, AdaptConfig(adapt_lr=1e-2, adapt_segment=20), rms=None)
    gathered = adaptive_losses(gathering, ids, cpu).mean()
    assert gathering.gathered == math.ceil((len(ids) - 1) / 20) and not gathering.ready  # fewer than 100 segments
    with torch.inference_mode():
        logits, _ = model(torch.as_tensor(ids[:-1], dtype=torch.long)[None])
        static = F.cross_entropy(logits[0], torch.as_tensor(ids[1:], dtype=torch.long)).item()
    assert gathered == pytest.approx(static, rel=1e-5)
    trained = Adapter(model, AdaptConfig(adapt_lr=1e-2, adapt_segment=20), rms=checkpoint_rms(checkpoint))
    assert adaptive_losses(trained, ids, cpu).mean() < gathered - 0.05


def test_the_adapted_model_writes_in_the_text_s_style_and_predicts_more_of_it_better(run, tmp_path):
    out, _ = run
    lines = ("dog fox dog\n", "lazy brown\n", "quick quick fox\n")
    pattern = "".join(lines[n % 3] for n in range(300))  # a distinctive pattern of the pangram's characters
    read, more = tmp_path / "read.txt", tmp_path / "more.txt"
    read.write_text(pattern[: len(pattern) // 2], encoding="utf-8")
    more.write_text(pattern[len(pattern) // 2 :], encoding="utf-8")
    model = api.load(out, threads=1)
    adapted = model.adapt(read, adapt_lr=3e-3, adapt_segment=32)
    assert adapted.score(more).nats < model.score(more).nats - 0.3  # the part it did not read
    assert adapted.adapted_score.scored == len(pattern) // 2 - 1
    assert model.sample(50, seed=1) != adapted.sample(50, seed=1)


def test_a_long_prime_is_read_learning_from_it_too(run, tmp_path):
    out, text = run
    prime = tmp_path / "prime.txt"
    prime.write_text("dog fox dog\nlazy brown\n" * 4, encoding="utf-8")  # longer than a segment of 30
    arguments = ["sample", "-c", str(out), "--adapt", str(text), "--length", "30", "--seed", "1"]
    result = CliRunner().invoke(main, [*arguments, "--prime-file", str(prime)])
    assert result.exit_code == 0, result.output
    assert "adapted to the prime: " in result.stderr
    model = api.load(out).adapt(text)
    by_hand = model.adapt(texts=[prime.read_text(encoding="utf-8")]).sample(
        30, prime.read_text(encoding="utf-8"), seed=1
    )
    assert result.stdout == by_hand + "\n"


def test_sample_adapt_save_writes_a_new_checkpoint_that_says_where_it_came_from(run, tmp_path):
    out, text = run
    saved = tmp_path / "adapted.pt"
    runner = CliRunner()
    result = runner.invoke(
        main, ["sample", "-c", str(out), "--adapt", str(text), "--save", str(saved), "--length", "20", "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "adapted to" in result.stderr and saved.exists()
    info = runner.invoke(main, ["info", str(saved)])
    assert "adapted to: " in info.output and str(out / "best.pt") in info.output
    again = runner.invoke(main, ["sample", "-c", str(saved), "--length", "20", "--seed", "1"])
    assert again.exit_code == 0 and again.stdout == result.stdout  # the saved model samples as the adapted one
    kept = _digest(saved)
    taken = runner.invoke(main, ["sample", "-c", str(out), "--adapt", str(text), "--save", str(saved)])
    assert taken.exit_code == 2 and "already exists" in taken.stderr and _digest(saved) == kept


@pytest.mark.parametrize(
    "arguments, code, message",
    [
        (["--adapt-lr", "0"], 2, "--adapt-lr"),
        (["--adapt-lr", "2"], 2, "--adapt-lr"),
        (["--adapt-lr", "nan"], 2, "--adapt-lr"),
        (["--adapt-segment", "0"], 2, "--adapt-segment"),
        (["--adapt-segment", "100000000"], 2, "--adapt-segment"),
        (["--adapt-decay", "-1"], 2, "--adapt-decay"),
        (["--adapt-segment", "5000"], 1, "adapting in segments of 5,000 needs at least 5,001"),
    ],
)
def test_bad_adaptation_settings_get_one_line(run, arguments, code, message):
    out, text = run
    result = CliRunner().invoke(main, ["eval", str(text), "-c", str(out), "--adapt", *arguments])
    assert result.exit_code == code
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "bits per character" not in result.stdout


def test_an_empty_text_to_adapt_to_is_refused_in_one_line(run, tmp_path):
    out, _ = run
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    result = CliRunner().invoke(main, ["sample", "-c", str(out), "--adapt", str(empty)])
    assert result.exit_code != 0 and "empty" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_a_diverging_adaptation_is_reported_never_printed_as_a_score(run):
    out, text = run
    result = CliRunner().invoke(
        main,
        ["eval", str(text), "-c", str(out), "--adapt", "--adapt-lr", "1", "--adapt-decay", "0", "--adapt-segment", "8"],
    )
    assert result.exit_code == 1 and "bits per character" not in result.stdout
    assert "adapting diverged after " in result.stderr and "--adapt-lr 1 is too high" in result.stderr
    checkpoint = read_checkpoint(out / "best.pt")
    model = api.load(out).torch_model()
    with torch.no_grad():
        dict(model.named_parameters())["head.bias"][0] = math.inf  # what a runaway step can leave behind
    adapter = Adapter(model, AdaptConfig(), checkpoint_rms(checkpoint))
    with pytest.raises(AdaptationDiverged, match="adapting diverged after 0 characters"):
        adaptive_losses(adapter, checkpoint.vocab.encode(HELD_OUT), CPU)


def test_the_api_names_its_adaptation_arguments(run):
    out, text = run
    model = api.load(out)
    with pytest.raises(ConfigError, match=r"^adapt_lr must be .*got 5$"):
        model.score(text, adapt=True, adapt_lr=5)
    with pytest.raises(ConfigError, match="unknown options: lr"):
        model.adapt(text, lr=0.1)


def test_viz_adapt_gives_the_page_each_character_s_surprise_while_learning(run, tmp_path):
    out, text = run
    page = tmp_path / "page.html"
    result = CliRunner().invoke(
        main, ["viz", str(text), "-c", str(out), "-o", str(page), "--adapt", "--adapt-lr", "3e-3"]
    )
    assert result.exit_code == 0, result.output
    html = page.read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script type="application/json" id="charrnn-data">(.*?)</script>', html, re.S)[1])
    adapted = data["adapted"]
    assert len(adapted["bits"]) == len(data["bits"]) == len(HELD_OUT)
    assert [b is None for b in adapted["bits"]] == [b is None for b in data["bits"]]  # the same characters predicted
    checkpoint = read_checkpoint(out / "best.pt")
    adapter = Adapter(api.load(out).torch_model(), AdaptConfig(adapt_lr=3e-3), checkpoint_rms(checkpoint))
    by_hand = adaptive_losses(adapter, checkpoint.vocab.encode(HELD_OUT), CPU) / math.log(2)
    assert adapted["bits"][1:] == pytest.approx(by_hand.tolist(), abs=6e-4)  # rounded to 3 decimals
    assert adapted["mean_bits"] < data["mean_bits"]
    refused = CliRunner().invoke(main, ["viz", str(text), "-c", str(out), "--adapt", "--ansi"])
    assert refused.exit_code == 2 and "--adapt shades the page" in refused.stderr

import numpy as np
import pytest
import torch

from charrnn.core.numpy_model import NumpyCharRNN
from charrnn.core.sampling import draw, filter_logits, generate_ids, generate_samples, generate_text, pick_next
from charrnn.errors import OptionError
from charrnn.settings.config import SampleConfig
from charrnn.store.loading import load_for_sampling
from helpers import PANGRAM, TINY_OPTIONS, train


@pytest.fixture(scope="module")
def pangram_model(tmp_path_factory):
    """A tiny LSTM that has learned the pangram (about 0.05 bits per character)."""
    folder = tmp_path_factory.mktemp("pangram")
    corpus = folder / "pangram.txt"
    corpus.write_text(PANGRAM * 120, encoding="utf-8")
    torch.set_num_threads(1)
    train(corpus, folder / "out", {**TINY_OPTIONS, "max_steps": 300, "save_every": 300, "seed": 0})
    return load_for_sampling(folder / "out")


def _text(loaded, prime=None, seed=None, **options):
    return "".join(generate_text(loaded, prime, SampleConfig(**options), seed))


def test_greedy_continuation_reproduces_the_learned_text(pangram_model):
    text = _text(pangram_model, prime="the quick", length=len(PANGRAM) * 2, greedy=True)
    assert text.startswith("the quick brown fox jumps over the lazy dog\nthe quick brown")


def test_the_same_seed_gives_the_same_text_and_another_seed_differs(pangram_model):
    hot = {"length": 300, "temperature": 3.0}
    assert _text(pangram_model, seed=1, **hot) == _text(pangram_model, seed=1, **hot)
    assert _text(pangram_model, seed=1, **hot) != _text(pangram_model, seed=2, **hot)


def test_greedy_ignores_the_seed_and_top_k_1_is_greedy(pangram_model):
    greedy = _text(pangram_model, seed=1, length=100, greedy=True)
    assert greedy == _text(pangram_model, seed=2, length=100, greedy=True)
    assert greedy == _text(pangram_model, seed=3, length=100, top_k=1, temperature=5.0)


def test_output_streams_the_prime_then_one_character_at_a_time(pangram_model):
    pieces = list(generate_text(pangram_model, "lazy", SampleConfig(length=5), seed=0))
    assert pieces[0] == "lazy" and len(pieces) == 6 and all(len(p) == 1 for p in pieces[1:])


def test_unknown_prime_characters_are_named_with_their_nearest_known_forms(pangram_model):
    with pytest.raises(OptionError) as caught:
        "".join(generate_text(pangram_model, "Zebra Q!", SampleConfig(length=5), seed=0, unknown="refuse"))
    assert caught.value.option == "--prime"
    assert caught.value.detail == (
        "has characters the model never saw in training: '!', 'Q' (the model knows its other case 'q'), "
        "'Z' (the model knows its other case 'z')"
    )


def _record_calls(monkeypatch):
    """(batch, characters) of every read of a prime's characters, and the batch of every single step."""
    calls = []
    real_read, real_step = NumpyCharRNN.read, NumpyCharRNN.step

    def recording_read(self, ids, state):
        calls.append(("read", (len(state[0][0]), len(ids))))
        return real_read(self, ids, state)

    def recording_step(self, ids, state):
        calls.append(("step", tuple(ids.shape)))
        return real_step(self, ids, state)

    monkeypatch.setattr(NumpyCharRNN, "read", recording_read)
    monkeypatch.setattr(NumpyCharRNN, "step", recording_step)
    return calls


def test_generation_reads_the_prime_once_then_one_character_per_step(pangram_model, monkeypatch):
    calls = _record_calls(monkeypatch)
    ids = list(generate_ids(pangram_model.model, [1, 2, 3, 4], SampleConfig(length=50), np.random.default_rng(0)))
    assert len(ids) == 50
    assert calls == [("read", (1, 4))] + [("step", (1,))] * 49  # constant work per character


def test_top_k_keeps_only_the_k_most_likely():
    logits = np.array([[1.0, 5.0, 3.0, 4.0, 2.0]], np.float32)
    kept = np.isfinite(filter_logits(logits, top_k=2, top_p=None))
    assert kept.tolist() == [[False, True, False, True, False]]


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = np.log(np.array([[0.05, 0.5, 0.3, 0.15]], np.float32))
    kept = np.isfinite(filter_logits(logits, top_k=None, top_p=0.75))
    assert kept.tolist() == [[False, True, True, False]]  # 0.5 + 0.3 reaches 0.75
    tiny = np.isfinite(filter_logits(logits, top_k=None, top_p=0.01))
    assert tiny.tolist() == [[False, True, False, False]]  # the most likely always stays


def test_top_k_keeps_exactly_k_among_ties():
    kept = np.isfinite(filter_logits(np.zeros((1, 6), np.float32), top_k=2, top_p=None))
    assert kept.sum() == 2


def test_sampling_draws_only_from_the_kept_characters():
    # Nearly uniform: unfiltered, 1,000 draws would hit all six characters.
    logits = np.tile(np.array([0.3, 0.2, 0.1, 0.0, -0.1, -0.2], np.float32), (1000, 1))
    rng = np.random.default_rng(0)
    assert set(pick_next(logits, SampleConfig(), rng).tolist()) == {0, 1, 2, 3, 4, 5}
    assert set(pick_next(logits, SampleConfig(top_k=3), rng).tolist()) == {0, 1, 2}
    nucleus = pick_next(logits, SampleConfig(top_p=0.3), rng)  # 0.3 needs the two most likely
    assert set(nucleus.tolist()) == {0, 1}


# Inside a run of spaces: the model continues it with probability 0.9 and spreads the rest
# over 20 characters, one of them (id 1) a little likelier than the others.
RUN_PROBS = np.array([0.9, 0.1 * 3 / 22] + [0.1 / 22] * 19, np.float32)
SPACE = np.zeros(4000, dtype=np.int64)


@pytest.mark.parametrize(
    "config",
    [SampleConfig(temperature=0.8), SampleConfig(temperature=0.3), SampleConfig(top_k=3), SampleConfig(top_p=0.5)],
)
def test_sharpening_never_makes_a_run_likelier_to_go_on_than_the_model_says(config):
    logits = np.tile(np.log(RUN_PROBS), (len(SPACE), 1))
    picks = pick_next(logits, config, np.random.default_rng(0), previous=SPACE)
    assert abs(float((picks == 0).mean()) - 0.9) < 0.02  # sharpened alone: 0.97 to 1.0
    others = picks[picks != 0]
    assert float((others == 1).mean()) > 3 / 22  # the others are still sharpened


@pytest.mark.parametrize(
    "config", [SampleConfig(temperature=0.3, sharpen_runs=True), SampleConfig(top_k=1, sharpen_runs=True)]
)
def test_sharpen_runs_lets_the_choices_sharpen_the_repeat_too(config):
    logits = np.tile(np.log(RUN_PROBS), (len(SPACE), 1))
    picks = pick_next(logits, config, np.random.default_rng(0), previous=SPACE)
    assert float((picks == 0).mean()) > 0.99  # the run rule would keep it at 0.9


def test_a_character_that_is_not_a_repeat_is_sharpened_as_usual():
    logits = np.tile(np.log(RUN_PROBS), (len(SPACE), 1))
    picks = pick_next(logits, SampleConfig(temperature=0.5), np.random.default_rng(0), previous=SPACE + 1)
    assert float((picks == 0).mean()) > 0.97


def test_runs_of_the_only_character_a_model_can_write_go_on():
    logits = np.array([[0.0, -np.inf]], np.float32)  # the second is the unknown character, never written
    picks = pick_next(logits, SampleConfig(temperature=0.5), np.random.default_rng(), previous=np.array([0]))
    assert picks.tolist() == [0]


def test_several_samples_come_from_one_batched_pass_and_differ(pangram_model, monkeypatch):
    calls = _record_calls(monkeypatch)
    samples = generate_samples(pangram_model, "the ", SampleConfig(length=60, temperature=2.0), num_samples=4, seed=0)
    assert len(samples) == 4 and all(s.startswith("the ") and len(s) == 64 for s in samples)
    assert len(set(samples)) == 4  # independent draws
    assert calls == [("read", (1, 4))] + [("step", (4,))] * 59  # the prime read once for all four


def test_draws_follow_the_probabilities_and_skip_impossible_characters():
    probs = np.tile(np.array([0.0, 0.5, 0.0, 0.3, 0.2, 0.0], np.float32), (20_000, 1))
    counts = np.bincount(draw(probs, np.random.default_rng(0)), minlength=6) / 20_000
    assert counts[[0, 2, 5]].sum() == 0
    # 20,000 draws: each frequency within 4 standard deviations (at most 0.014) of its probability
    assert np.allclose(counts, probs[0], atol=0.014)


def test_a_torch_model_samples_as_its_numpy_copy_does(pangram_model):
    """Training's previews pass a torch CharRNN: the same text as the NumpyCharRNN of the same
    weights, with the same seed."""
    from helpers import load_model

    torch_loaded = load_model(pangram_model.path, torch.device("cpu"))
    config = SampleConfig(length=80, temperature=0.9)
    ours = list(generate_ids(torch_loaded.model, [1, 2], config, np.random.default_rng(3)))
    theirs = list(generate_ids(pangram_model.model, [1, 2], config, np.random.default_rng(3)))
    assert np.array_equal(np.stack(ours), np.stack(theirs))

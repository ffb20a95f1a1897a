import math

import pytest
import torch

from charrnn.core.model import CharRNN
from charrnn.errors import CheckpointError, ConfigError
from charrnn.run.loop import train_step
from charrnn.run.optim import build_optimizer, learning_rate
from charrnn.run.training import TrainRequest, run_training
from charrnn.settings.budget import Budget
from charrnn.settings.cells import CELLS
from charrnn.settings.config import ModelConfig, TrainConfig
from charrnn.settings.option import INPUT_MODES
from charrnn.store.checkpoint import read_checkpoint
from charrnn.store.outdir import BEST, LATEST
from helpers import (
    PANGRAM,
    TINY_OPTIONS,
    Crash,
    CrashAtStep,
    assert_same_training_state,
    train,
)

# The pangram's unigram entropy is 4.44 bits per character (the best a model that ignores
# context can do), but given enough context each character is certain (0 bits). Below
# 0.5 bits the model must be using its memory; 300 steps reach 0.03-0.17 bits for every
# cell and input on several seeds, so the bound has a wide margin.
LEARNED_BITS = 0.5


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("input_mode", INPUT_MODES)
def test_every_cell_and_input_mode_learns_a_repeating_text(tmp_path, pangram_file, cell, input_mode):
    # Three evaluations and logs, not thirty: the assertion reads the best of them.
    every = {"eval_every": 100, "log_every": 100, "save_every": 300}
    options = {**TINY_OPTIONS, **every, "cell": cell, "input_mode": input_mode, "max_steps": 300, "seed": 0}
    result = train(pangram_file, tmp_path / "out", options)
    assert result.best_val_loss / math.log(2) < LEARNED_BITS


@pytest.fixture
def step_setup():
    """A small model, its optimizer, and one random (4, 8) window."""
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=10, hidden_size=16))
    return model, build_optimizer(model, TrainConfig()), torch.randint(0, 10, (4, 8)), torch.randint(0, 10, (4, 8))


def test_clipping_bounds_the_gradient_norm(step_setup):
    model, optimizer, inputs, targets = step_setup
    _, norm_before, _ = train_step(model, optimizer, inputs, targets, model.init_hidden(4), clip=0.01)
    norm_after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert norm_before > 0.01  # clipping had work to do
    assert norm_after <= 0.01 * (1 + 1e-5)


def test_train_step_returns_a_detached_hidden_state_that_carries_information(step_setup):
    model, optimizer, inputs, targets = step_setup
    _, _, hidden = train_step(model, optimizer, inputs, targets, model.init_hidden(4), clip=5.0)
    assert all(not h.requires_grad and h.abs().sum() > 0 for h in hidden)
    # A second window backpropagates through itself only: no "backward through the graph a second time" error.
    train_step(model, optimizer, inputs, targets, hidden, clip=5.0)


def test_learning_rate_warms_up_then_decays_to_the_floor():
    config = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    rates = [learning_rate(step, 0.0, Budget(110, None), config) for step in range(110)]
    assert rates[0] == pytest.approx(0.1)  # 1/10 of the way through warm-up
    assert all(a < b for a, b in zip(rates[:9], rates[1:10]))  # rising during warm-up
    assert rates[9] == pytest.approx(1.0)  # the peak, at the last warm-up update
    assert all(a > b for a, b in zip(rates[9:], rates[10:]))  # then falling
    assert rates[59] == pytest.approx(0.55)  # half-way down the cosine half-way from the peak to the end
    assert rates[109] == pytest.approx(0.1)  # the last update is at the floor


def test_the_schedule_follows_time_when_time_is_the_budget():
    config = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.0)
    assert learning_rate(5000, 30.0, Budget(None, 60.0), config) == pytest.approx(0.5)
    assert learning_rate(5000, 60.0, Budget(None, 60.0), config) == pytest.approx(0.0)


class _FakeClock:
    """time.perf_counter for training: 10 ms more at every reading, however fast the machine."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 0.01
        return self.now


def test_max_time_stops_the_run_evaluates_and_saves(tmp_path, pangram_file, monkeypatch):
    clock = _FakeClock()  # the run's clock (parts.Clock) and its pauses' (loop) read the same one
    monkeypatch.setattr("charrnn.run.parts.time", clock)
    monkeypatch.setattr("charrnn.run.loop.time", clock)
    options = {**TINY_OPTIONS, "max_time": 1.5, "max_steps": None, "eval_every": 10**6, "save_every": 10**6}
    result = train(pangram_file, tmp_path / "run", options)
    assert 1.5 <= result.elapsed < 1.6 and result.step > 10
    saved = read_checkpoint(tmp_path / "run" / LATEST)
    assert saved.step == result.step and saved.elapsed >= 1.5
    assert result.best_val_loss is not None  # the final evaluation ran
    again = train(pangram_file, tmp_path / "run", {}, resume=str(tmp_path / "run"))
    assert again.already_complete


def _resume_options():
    # A short text (12 windows per epoch) so the run crosses epoch boundaries, and dropout
    # so the random generator's state matters.
    return {**TINY_OPTIONS, "max_steps": 40, "save_every": 10, "eval_every": 10, "dropout": 0.3}


@pytest.fixture
def short_corpus(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text(PANGRAM * 20, encoding="utf-8")
    return path


@pytest.mark.parametrize("crash_step", [14, 27, 39])
def test_resume_after_a_crash_is_bit_identical_to_an_uninterrupted_run(tmp_path, short_corpus, crash_step):
    options = _resume_options()
    train(short_corpus, tmp_path / "whole", options)

    with pytest.raises(Crash):
        train(short_corpus, tmp_path / "broken", options, reporter=CrashAtStep(crash_step))
    assert read_checkpoint(tmp_path / "broken" / LATEST).step == crash_step // 10 * 10
    result = train(short_corpus, tmp_path / "broken", options, resume=str(tmp_path / "broken"))

    assert result.step == 40
    assert_same_training_state(tmp_path / "whole" / LATEST, tmp_path / "broken" / LATEST)
    assert_same_training_state(tmp_path / "whole" / BEST, tmp_path / "broken" / BEST)


def test_resume_with_no_options_continues_with_the_checkpoint_config(tmp_path, short_corpus):
    options = {**_resume_options(), "hidden_size": 24, "cell": "gru"}
    with pytest.raises(Crash):
        train(short_corpus, tmp_path / "run", options, reporter=CrashAtStep(15))
    result = train(None, tmp_path / "run", {}, resume=str(tmp_path / "run"))  # corpus taken from the checkpoint
    saved = read_checkpoint(tmp_path / "run" / LATEST)
    assert result.step == 40 and saved.model_config.hidden_size == 24 and saved.model_config.cell == "gru"


def test_resuming_a_finished_run_says_it_is_complete_and_a_larger_total_trains_further(tmp_path, short_corpus):
    options = _resume_options()
    train(short_corpus, tmp_path / "run", options)
    again = train(short_corpus, tmp_path / "run", options, resume=str(tmp_path / "run"))
    assert again.already_complete and again.step == 40
    further = train(short_corpus, tmp_path / "run", {**options, "max_steps": 60}, resume=str(tmp_path / "run"))
    assert not further.already_complete and further.step == 60
    assert read_checkpoint(tmp_path / "run" / LATEST).train_config.max_steps == 60


def test_resume_refuses_a_different_architecture(tmp_path, short_corpus):
    options = _resume_options()
    train(short_corpus, tmp_path / "run", options)
    with pytest.raises(ConfigError, match=r"--hidden-size 64 \(checkpoint: 32\)"):
        train(
            short_corpus,
            tmp_path / "run",
            {**options, "hidden_size": 64, "max_steps": 80},
            resume=str(tmp_path / "run"),
        )


def test_resume_refuses_a_corpus_with_characters_outside_the_vocabulary(tmp_path, short_corpus):
    train(short_corpus, tmp_path / "run", _resume_options())
    other = tmp_path / "other.txt"
    other.write_text("ZEBRAS 123\n" * 200, encoding="utf-8")
    with pytest.raises(CheckpointError, match="vocabulary lacks"):
        train(other, tmp_path / "run", {"max_steps": 80}, resume=str(tmp_path / "run"))


def test_a_new_run_never_overwrites_an_existing_one(tmp_path, short_corpus):
    train(short_corpus, tmp_path / "run", _resume_options())
    before = (tmp_path / "run" / LATEST).read_bytes()
    with pytest.raises(ConfigError, match=r"other settings: --lr 0.02 \(checkpoint: 0.01\); add --resume"):
        train(short_corpus, tmp_path / "run", {**_resume_options(), "lr": 0.02})
    assert train(short_corpus, tmp_path / "run", _resume_options()).already_complete  # the same run: it goes on
    assert (tmp_path / "run" / LATEST).read_bytes() == before


def test_epochs_set_the_run_length_in_passes_over_the_text(tmp_path, short_corpus):
    result = train(short_corpus, tmp_path / "run", {**_resume_options(), "epochs": 2.5})
    assert result.step == 30  # 12 windows per epoch


def _cpu_runs_bfloat16_lstm() -> bool:
    """Whether oneDNN builds a bfloat16 LSTM on this CPU (some x86 CPUs lack what it needs)."""
    lstm = torch.nn.LSTM(4, 4)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(2, 1, 4))
    except RuntimeError:
        return False
    return True


@pytest.mark.skipif(not _cpu_runs_bfloat16_lstm(), reason="oneDNN cannot build a bfloat16 LSTM on this CPU")
def test_bfloat16_autocast_learns_and_resumes_exactly(tmp_path, short_corpus):
    def request(out, resume=None, dtype="bfloat16"):
        return TrainRequest(
            corpus=(str(short_corpus),),
            out_dir=out,
            device="cpu",
            dtype=dtype,
            resume=resume,
            options=_resume_options(),
        )

    whole = run_training(request(tmp_path / "whole"))
    full_precision = run_training(request(tmp_path / "float32", dtype="float32"))
    # It learns as float32 does (measured: 3.418 and 3.420 bits after these 40 steps, from 4.8 for a uniform guess).
    assert abs(whole.best_val_loss - full_precision.best_val_loss) / math.log(2) < 0.05
    with pytest.raises(Crash):
        run_training(request(tmp_path / "cut"), CrashAtStep(25))
    run_training(request(tmp_path / "cut", resume=str(tmp_path / "cut")))
    assert_same_training_state(tmp_path / "whole" / LATEST, tmp_path / "cut" / LATEST)


@pytest.mark.slow
def test_a_compiled_model_trains_and_saves_plain_weights(tmp_path, short_corpus):
    request = TrainRequest(
        corpus=(str(short_corpus),),
        out_dir=tmp_path / "run",
        device="cpu",
        compile=True,
        options={**_resume_options(), "max_steps": 12},
    )
    run_training(request)
    saved = read_checkpoint(tmp_path / "run" / LATEST)
    assert not any(key.startswith("_orig_mod") for key in saved.weights)  # loadable without torch.compile

"""A model sized to its text and budget, and the memory its run needs (refused before it allocates)."""

from __future__ import annotations

from click.testing import CliRunner

from charrnn.api import load
from charrnn.cli.commands import main
from charrnn.run import sizing
from charrnn.run.sizing import training_memory
from charrnn.settings.config import ModelConfig, TrainConfig
from helpers import PANGRAM, fast_args


def test_the_memory_a_run_needs_grows_with_its_model_vocabulary_and_batch():
    base = training_memory(ModelConfig(vocab_size=65), TrainConfig())
    assert base.total > sizing.RUNTIME_BYTES
    wider = training_memory(ModelConfig(vocab_size=65, hidden_size=1024), TrainConfig())
    assert wider.model == 5 * 4 * ModelConfig(vocab_size=65, hidden_size=1024).parameter_count
    assert wider.total > base.total
    assert training_memory(ModelConfig(vocab_size=9589), TrainConfig()).working > base.working  # the logits
    assert training_memory(ModelConfig(vocab_size=65), TrainConfig(batch_size=512)).working > base.working


def test_a_run_that_would_not_fit_in_memory_is_refused_before_anything_is_built(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PANGRAM * 60, encoding="utf-8")
    monkeypatch.setattr(sizing, "available_memory", lambda device_type="cpu": 100 << 20)
    built = []
    monkeypatch.setattr("charrnn.run.training.CharRNN", lambda *args: built.append(args))
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(corpus), *fast_args(), "--out", str(out)])
    assert result.exit_code == 1 and not built
    line = result.stderr.strip()
    assert line.startswith("Error: this run needs about ") and "of memory, and 100 MiB is free" in line
    assert "a smaller --hidden-size" in line and "\n" not in line
    assert not out.exists()  # nothing was written


def test_the_header_states_the_memory_the_run_will_need(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PANGRAM * 60, encoding="utf-8")
    result = CliRunner().invoke(main, ["train", str(corpus), *fast_args(), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    training = next(line for line in result.stderr.splitlines() if line.startswith("training: "))
    assert "memory about " in training and " free)" in training


def _sized(chars: int, vocab_size: int, options: dict | None = None, **train: object) -> dict:
    return sizing.sized_options(options or {}, chars, vocab_size, TrainConfig(**train))[0]


def test_dropout_rises_with_the_passes_a_run_makes_over_its_text():
    training_chars = 900_000  # a 1,000,000-character corpus less its held-out tenth

    def dropout_at(passes: float) -> float:
        steps = round(passes * training_chars / (16 * 64))
        return _sized(1_000_000, 65, max_steps=steps)["dropout"]

    levels = sizing.DROPOUT_BY_PASSES
    assert levels[0][1] == 0.0 and [rate for _, rate in levels] == sorted({rate for _, rate in levels})
    for (limit, rate), (_, next_rate) in zip(levels, levels[1:]):
        assert (dropout_at(limit - 0.05), dropout_at(limit + 0.05)) == (rate, next_rate)


def test_a_run_given_in_steps_keeps_the_reference_size_whatever_its_text():
    for chars, vocab_size in ((25_605, 2_574), (1_115_394, 65), (3_725_685, 9_589)):
        assert _sized(chars, vocab_size, max_steps=12_000)["hidden_size"] == sizing.STEP_BUDGET_SIZE


def test_a_time_budget_gets_the_largest_size_that_trains_enough_steps_in_it():
    def size(seconds: float, chars: int = 1_115_394, vocab_size: int = 65) -> int:
        return _sized(chars, vocab_size, max_steps=None, max_time=seconds)["hidden_size"]

    assert [size(s) for s in (30, 120, 600)] == [128, 256, 512]  # longer budgets afford larger models
    assert size(600, chars=3_725_685, vocab_size=9_589) == 128  # a large vocabulary makes every step dearer
    assert size(600, chars=25_605, vocab_size=2_574) == 256  # a small text: never larger than 256
    assert size(5) == 128  # too short for any: the smallest


def test_the_step_estimate_follows_the_measured_rates_within_a_fifth():
    # Seconds per step measured on two cores (docs/benchmarks.md), against the estimate.
    measured = {(65, 128): 0.0335, (65, 512): 0.2546, (2_574, 256): 0.1499, (9_589, 512): 0.7239}
    train = TrainConfig()
    for (vocab_size, hidden_size), seconds in measured.items():
        model = ModelConfig(vocab_size=vocab_size, hidden_size=hidden_size)
        estimate = sizing._seconds(sizing.STEP_COST, model, train.batch_size * train.seq_len)
        assert abs(estimate / seconds - 1) < 0.2, (vocab_size, hidden_size, estimate)


def test_an_option_the_user_gives_wins_and_the_other_is_chosen_for_it():
    chosen = _sized(1_115_394, 65, {"hidden_size": 1024}, max_steps=None, max_time=600)
    assert chosen["hidden_size"] == 1024
    # 1024 trains far fewer steps in ten minutes than 512: fewer passes, so less dropout
    assert chosen["dropout"] <= _sized(1_115_394, 65, max_steps=None, max_time=600)["dropout"]
    assert _sized(25_605, 2_574, {"dropout": 0.05}, max_steps=12_000) == {"dropout": 0.05, "hidden_size": 256}
    assert sizing.sized_options({"hidden_size": 64, "dropout": 0.1}, 1000, 30, TrainConfig()) == (
        {"hidden_size": 64, "dropout": 0.1},
        None,
    )


def test_the_header_says_what_was_chosen_and_why_and_a_resumed_run_keeps_it(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PANGRAM * 60, encoding="utf-8")
    out = tmp_path / "run"
    args = ["train", str(corpus), *fast_args(hidden_size=None), "--out", str(out), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    model_line = next(line for line in result.stderr.splitlines() if line.startswith("model: "))
    chars = len(PANGRAM * 60)
    assert f"LSTM 1x{sizing.STEP_BUDGET_SIZE}" in model_line and "dropout 0," in model_line
    assert f"sized for {chars:,} characters of text and 20 steps, about 0.54 of a pass over it" in model_line
    assert model_line.endswith("set --hidden-size and --dropout to choose)")
    # A rule that would now choose otherwise does not change the run: it keeps its own choices.
    monkeypatch.setattr(sizing, "DROPOUT_BY_PASSES", ((float("inf"), 0.7),))
    monkeypatch.setattr(sizing, "STEP_BUDGET_SIZE", 32)
    more = CliRunner().invoke(main, ["train", "--resume", "--out", str(out), "--max-steps", "30", "-q"])
    assert more.exit_code == 0, more.output
    model = load(out).loaded
    config = model.checkpoint.model_config
    assert (config.hidden_size, config.dropout, model.step) == (256, 0.0, 30)
    fresh = CliRunner().invoke(main, [*args[:-3], "--out", str(tmp_path / "fresh"), "-q"])
    assert fresh.exit_code == 0, fresh.output
    assert "LSTM 1x32" in fresh.stderr and "dropout 0.7," in fresh.stderr  # a new run follows the rule

"""A model sized to its text and budget, and the memory its run needs (refused before it allocates)."""

from __future__ import annotations

from click.testing import CliRunner

from charrnn import sizing
from charrnn.cli import main
from charrnn.config import ModelConfig, TrainConfig
from charrnn.sizing import training_memory
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
    monkeypatch.setattr("charrnn.training.CharRNN", lambda *args: built.append(args))
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

"""Shared fixtures: small texts written into tmp_path, and options for tiny, fast models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# A sentence whose characters recur in several contexts ('o' is followed by w, x, v, g, ...),
# so predicting it well needs memory beyond the previous character.
PANGRAM = "the quick brown fox jumps over the lazy dog\n"

# Small enough to train in a second or two, large enough to learn a repeating text.
TINY_OPTIONS = {
    "hidden_size": 32,
    "layers": 2,
    "embed_dim": 16,
    "seq_len": 16,
    "batch_size": 4,
    "dropout": 0.1,
    "lr": 1e-2,
    "warmup_steps": 5,
    "max_steps": 30,
    "eval_every": 10,
    "save_every": 10,
    "log_every": 5,
}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Encoded corpora go to a cache of the test session's own, never ~/.cache."""
    monkeypatch.setenv("CHARRNN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests are tiny: one thread avoids oversubscribing CI's two cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def pangram_file(tmp_path: Path) -> Path:
    path = tmp_path / "pangram.txt"
    path.write_text(PANGRAM * 120, encoding="utf-8")
    return path


def mixed_script_text() -> str:
    """English, Chinese, emoji (outside the BMP) and a CJK extension-B character."""
    return "Hello, 世界! 春眠不觉晓，处处闻啼鸟。🙂🚀 𥫗 naïve café\n"

"""Fixtures for every test: a private corpus cache, one thread, a small text (constants and
helpers that tests import are in helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import PANGRAM


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

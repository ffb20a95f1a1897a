"""Fixtures for every test: a private corpus cache, one thread, a small text, headless Chromium
(constants and helpers that tests import are in helpers.py)."""

from __future__ import annotations

import shutil
import subprocess
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


@pytest.fixture
def chromium(tmp_path: Path):
    """Run headless Chromium with some arguments; its stdout."""
    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if binary is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it where it can)")

    def run(*arguments: str, profile: str = "chromium-profile") -> str:
        """`profile`: a folder of its own for each browser that runs at the same time."""
        flags = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-dev-shm-usage"]
        profile = f"--user-data-dir={tmp_path / profile}"
        done = subprocess.run([binary, *flags, profile, *arguments], capture_output=True, timeout=180)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        return done.stdout.decode("utf-8")

    return run

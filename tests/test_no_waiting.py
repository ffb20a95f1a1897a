"""Nothing waits forever: every file charrnn opens may be a FIFO that nothing writes to (or
reads), which a plain open() would wait on for ever. Each is refused in one line, passed
over, or read as a stream where a stream is meant. Every case runs in a process of its own
with a timeout, so that a regression fails here instead of hanging the suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from charrnn.cli.commands import main
from charrnn.store.outdir import BEST, LATEST, LOCK_FILE, RUN_FILE
from charrnn.store.runfiles import METRICS, SAMPLES
from helpers import PANGRAM, fast_args

FAST = fast_args(quiet=True)
TIMEOUT = 120  # seconds: far more than any of these takes, far less than for ever


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    (folder / "corpus.txt").write_text(PANGRAM * 60, encoding="utf-8")
    result = CliRunner().invoke(
        main, ["train", str(folder / "corpus.txt"), *FAST, "--preview-chars", "20", "--out", str(folder / "run")]
    )
    assert result.exit_code == 0, result.output
    return folder


def _charrnn(*args, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "charrnn", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


def _one_error(result: subprocess.CompletedProcess, code: int, excerpt: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert excerpt in lines[0], lines[0]


def _run_with_fifo(trained: Path, tmp_path: Path, name: str) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    (run / name).unlink()
    os.mkfifo(run / name)
    return run


@pytest.mark.slow  # a process of its own per file, so that a wait cannot hang the suite
@pytest.mark.parametrize("name", [RUN_FILE, LOCK_FILE, METRICS, SAMPLES, LATEST, BEST])
def test_resuming_refuses_a_fifo_in_place_of_one_of_the_runs_files(tmp_path, trained, name):
    run = _run_with_fifo(trained, tmp_path, name)
    result = _charrnn("train", trained / "corpus.txt", *FAST, "--resume", "--max-steps", "30", "--out", run)
    _one_error(result, 1, f"{run / name} is a named pipe, not a regular file, so charrnn will not write to it")


def test_sampling_passes_over_a_fifo_in_place_of_best_pt(tmp_path, trained):
    run = _run_with_fifo(trained, tmp_path, BEST)
    result = _charrnn("sample", "-c", run, "--length", "5", "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert "warning: passed over best.pt" in result.stderr and "not a regular file" in result.stderr


@pytest.mark.parametrize("command", ["sample", "info"])
def test_a_fifo_given_as_the_checkpoint_is_refused(tmp_path, command):
    os.mkfifo(tmp_path / "model.pt")
    result = _charrnn(command, *(["-c"] if command == "sample" else []), tmp_path / "model.pt")
    _one_error(result, 1, "is not a regular file (a device, pipe or socket), so not a checkpoint")


def test_a_prime_file_that_is_a_fifo_with_no_writer_is_refused_at_once(tmp_path, trained):
    os.mkfifo(tmp_path / "prime")
    result = _charrnn("sample", "-c", trained / "run", "--prime-file", tmp_path / "prime")
    _one_error(result, 2, "--prime-file': ")
    assert "is empty; nothing was writing to it" in result.stderr


def test_a_prime_file_that_is_a_fifo_with_a_writer_is_read_as_a_stream(tmp_path, trained):
    os.mkfifo(tmp_path / "prime")

    def write() -> None:
        with open(tmp_path / "prime", "w", encoding="utf-8") as pipe:  # waits for charrnn to open it
            pipe.write("the quick")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    result = _charrnn("sample", "-c", trained / "run", "--prime-file", tmp_path / "prime", "--length", "5")
    writer.join(TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("the quick")


def test_a_config_file_that_is_a_fifo_is_refused(tmp_path, trained):
    os.mkfifo(tmp_path / "run.toml")
    result = _charrnn("train", trained / "corpus.txt", "--config", tmp_path / "run.toml", "--out", tmp_path / "o")
    _one_error(result, 2, "run.toml is not a regular file")


@pytest.mark.slow  # a process of its own, so that a wait cannot hang the suite
@pytest.mark.parametrize("command", ["eval", "viz"])
def test_a_text_that_is_a_fifo_with_no_writer_is_refused_at_once(tmp_path, trained, command):
    os.mkfifo(tmp_path / "text")
    result = _charrnn(command, tmp_path / "text", "-c", trained / "run")
    _one_error(result, 1, "gave no text: nothing was writing to it")


def test_plot_refuses_a_fifo_in_place_of_metrics_jsonl(tmp_path, trained):
    run = _run_with_fifo(trained, tmp_path, METRICS)
    result = _charrnn("plot", run, "-o", tmp_path / "bpc.png")
    _one_error(result, 1, "metrics.jsonl is not a regular file")


@pytest.mark.slow  # two trainings in processes of their own
def test_fifos_in_place_of_cache_entries_are_rebuilt(tmp_path, trained):
    cache = tmp_path / "cache"
    first = _charrnn("train", trained / "corpus.txt", *FAST, "--out", tmp_path / "a", env={"CHARRNN_CACHE": str(cache)})
    assert first.returncode == 0, first.stderr
    entries = [path for path in cache.rglob("*") if path.is_file()]
    assert entries
    for path in entries:
        path.unlink()
        os.mkfifo(path)
    again = _charrnn("train", trained / "corpus.txt", *FAST, "--out", tmp_path / "b", env={"CHARRNN_CACHE": str(cache)})
    assert again.returncode == 0, again.stderr
    assert all(path.is_file() for path in entries)  # each written anew

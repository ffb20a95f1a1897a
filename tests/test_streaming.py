"""How `charrnn sample` writes its text: the same characters as ever, flushed every FLUSH_EVERY
seconds rather than one by one (on a terminal at each newline too), all of it by the end; and a
reader that leaves early (`| head`) still ends it quietly."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import stdio
from charrnn.cli.commands import main
from charrnn.cli.stdio import write_streaming
from helpers import fast_args


class Stream:
    """A stdout of the test's own: what was written, and what had been written at each flush."""

    def __init__(self, terminal: bool):
        self.terminal = terminal
        self.text, self.flushed = "", []

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        self.flushed.append(self.text)

    def isatty(self) -> bool:
        return self.terminal


class Clock:
    """Each reading a further `step` seconds on."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_into_a_pipe_the_text_is_flushed_every_so_often_and_at_the_end(monkeypatch):
    monkeypatch.setattr(stdio, "FLUSH_EVERY", 1.0)
    stream = Stream(terminal=False)
    pieces = [f"{i % 10}" + ("\n" if i % 7 == 6 else "") for i in range(42)]
    write_streaming(pieces, stream, Clock(0.25))  # four pieces to a flush: newlines make no difference
    assert stream.text == "".join(pieces)
    assert stream.flushed[:-1] == ["".join(pieces[: 4 * n]) for n in range(1, 11)]
    assert stream.flushed[-1] == stream.text  # the end flushes what is left


def test_on_a_terminal_each_line_is_flushed_as_it_ends():
    stream = Stream(terminal=True)
    write_streaming(["ROMEO:", "\n", "a", "b", "\n", "c"], stream, Clock(0.0))  # no time passes
    assert stream.flushed == ["ROMEO:\n", "ROMEO:\nab\n", "ROMEO:\nab\nc"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("streaming")
    corpus = folder / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog\n" * 120, encoding="utf-8")
    assert (
        CliRunner().invoke(main, ["train", str(corpus), *fast_args(), "--out", str(folder / "run"), "-q"]).exit_code
        == 0
    )
    return folder / "run"


def test_the_command_prints_the_text_the_sampler_makes_for_a_seed(run):
    result = CliRunner().invoke(main, ["sample", "-c", str(run), "--length", "3000", "--seed", "7", "--prime", "the"])
    assert result.exit_code == 0, result.output
    assert result.stdout == charrnn.load(run).sample(3000, "the", seed=7) + "\n"


# In a fresh process on a pseudo-terminal: the sampler's text comes from a stand-in that writes a
# line and then waits for the test's go-ahead on a pipe, with flushing by time put off for good.
PAUSING_SAMPLE = """
import os, sys
import charrnn.api, charrnn.cli.stdio
from charrnn.cli.commands import entry_point

charrnn.cli.stdio.FLUSH_EVERY = float("inf")
go_ahead = int(sys.argv[1])

def stream(self, *args, **kwargs):
    yield "line one\\n"
    os.read(go_ahead, 1)
    yield "line two"

charrnn.api.Model.stream = stream
sys.argv = ["charrnn", "sample", "-c", sys.argv[2]]
entry_point()
"""


def _read_until(fd: int, wanted: bytes) -> bytes:
    """What `fd` gives until `wanted` appears or it ends (60 s at most: a guard against a hang)."""
    seen = b""
    while wanted not in seen and select.select([fd], [], [], 60)[0]:
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # Linux: the terminal's other side closed
            break
        if not chunk:
            break
        seen += chunk
    return seen


def test_on_a_pseudo_terminal_a_line_shows_as_soon_as_it_ends(run):
    terminal, other_side = pty.openpty()
    go_read, go_write = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-c", PAUSING_SAMPLE, str(go_read), str(run)],
        stdout=other_side,
        stderr=subprocess.DEVNULL,
        pass_fds=(go_read,),
    )
    os.close(other_side)
    os.close(go_read)
    try:
        assert b"line one\r\n" in _read_until(terminal, b"line one\r\n")  # the terminal turns \n into \r\n
        assert process.poll() is None  # still waiting for the go-ahead: the newline flushed the line
        os.write(go_write, b"x")
        assert b"line two" in _read_until(terminal, b"line two\r\n")
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
        process.wait()
        os.close(go_write)
        os.close(terminal)


def test_a_reader_that_leaves_early_ends_the_command_quietly(run):
    command = [sys.executable, "-m", "charrnn", "sample", "-c", str(run), "--length", "1000000"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert len(process.stdout.read(100)) == 100
        process.stdout.close()  # as `| head -c 100` does
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=120) == 1
    assert "Traceback" not in stderr and "Error" not in stderr and "Exception ignored" not in stderr, stderr


RETITLE = "\x1b]0;pwned\x07"  # an escape sequence that retitles a terminal (OSC 0 ... BEL)


def test_on_a_terminal_control_characters_but_newline_and_tab_are_shown_escaped():
    terminal, pipe = Stream(terminal=True), Stream(terminal=False)
    for stream in (terminal, pipe):
        write_streaming([RETITLE, "a\tb\n", "\r\x9b\u202e"], stream, Clock(0.0))
    assert terminal.text == "\\x1b]0;pwned\\x07a\tb\n\\x0d\\x9b\\u202e"
    assert pipe.text == RETITLE + "a\tb\n\r\x9b\u202e"  # into a file or a pipe: the text as it is


def test_a_vocabulary_spelling_an_escape_sequence_cannot_reach_the_terminal(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(f"{RETITLE} the lazy dog\n" * 120, encoding="utf-8")
    run = tmp_path / "run"
    assert CliRunner().invoke(main, ["train", str(corpus), *fast_args(), "--out", str(run), "-q"]).exit_code == 0
    terminal, other_side = pty.openpty()
    command = [sys.executable, "-m", "charrnn", "sample", "-c", str(run), "--prime", RETITLE, "-l", "40"]
    process = subprocess.Popen(command, stdout=other_side, stderr=subprocess.DEVNULL)
    os.close(other_side)
    try:
        shown = _read_until(terminal, b"\\x1b]0;pwned\\x07")
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
        process.wait()
        os.close(terminal)
    assert b"\\x1b]0;pwned\\x07" in shown and b"\x1b" not in shown and b"\x07" not in shown

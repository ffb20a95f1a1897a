"""Corpora that are not plain files: standard input, pipes, devices, file names that are not
UTF-8, folders with parts that cannot be read. Each trains correctly or is refused in one
line; nothing hangs, nothing is silently skipped."""

from __future__ import annotations

import os
import pty
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

import charrnn.store.corpus
from charrnn.cli.commands import main
from charrnn.errors import CorpusError
from charrnn.store.checkpoint import load_checkpoint
from charrnn.store.corpus import resolve_corpus
from charrnn.store.encoded import CorpusCache
from helpers import PANGRAM, assert_same_training_state, fast_args

TEXT = PANGRAM * 60
FAST = fast_args(max_steps=10, quiet=True)
TIMEOUT = 120  # seconds: a hang fails the test instead of blocking the suite


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def _invoke(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def _charrnn(*args, **kwargs) -> subprocess.CompletedProcess:
    """charrnn in a process of its own, for what a CliRunner cannot stand in for (a terminal,
    a shell's pipes); the timeout turns a hang into a failure."""
    return subprocess.run(
        [sys.executable, "-m", "charrnn", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        **kwargs,
    )


# Standard input


def test_standard_input_trains_exactly_as_the_same_text_in_a_file(corpus, tmp_path):
    assert _invoke("train", corpus, *FAST, "--out", tmp_path / "file").exit_code == 0
    piped = _invoke("train", "-", *FAST, "--out", tmp_path / "piped", input=TEXT)
    assert piped.exit_code == 0, piped.output
    assert_same_training_state(tmp_path / "file" / "latest.pt", tmp_path / "piped" / "latest.pt")
    recorded = load_checkpoint(tmp_path / "piped" / "latest.pt")["corpus"]
    assert recorded["paths"] == ["-"] and recorded["description"] == "standard input"
    assert recorded["sha256"] == load_checkpoint(tmp_path / "file" / "latest.pt")["corpus"]["sha256"]


def test_eval_of_standard_input_scores_as_the_file(corpus, tmp_path):
    assert _invoke("train", corpus, *FAST, "--out", tmp_path / "run").exit_code == 0
    from_file = _invoke("eval", corpus, "-c", tmp_path / "run")
    piped = _invoke("eval", "-", "-c", tmp_path / "run", input=TEXT)
    assert piped.exit_code == 0, piped.output
    assert "text: standard input: " in piped.stdout
    score = [line for line in piped.stdout.splitlines() if line.startswith("bits per character")]
    assert score and score[0] in from_file.stdout


def test_a_run_on_standard_input_resumes_on_the_text_piped_again(tmp_path):
    assert _invoke("train", "-", *FAST, "--out", tmp_path / "run", input=TEXT).exit_code == 0
    resumed = _invoke("train", "--resume", "--max-steps", "20", "--out", tmp_path / "run", input=TEXT)
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(tmp_path / "run" / "latest.pt")["step"] == 20
    nothing = _invoke("train", "--resume", "--max-steps", "30", "--out", tmp_path / "run", input="")
    assert nothing.exit_code == 1 and "standard input is empty" in _one_error_line(nothing)


def _with_a_terminal(*args) -> subprocess.CompletedProcess:
    controller, terminal = pty.openpty()
    try:
        return _charrnn(*args, stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)


@pytest.mark.slow  # a process of its own on a pseudo-terminal
@pytest.mark.parametrize(
    "command", [["train", "-"], ["eval", "-", "-c", "{run}"], ["train", "--resume", "--out", "{run}"]]
)
def test_a_terminal_on_standard_input_is_refused_at_once(tmp_path, command):
    assert _invoke("train", "-", *FAST, "--out", tmp_path / "run", input=TEXT).exit_code == 0
    result = _with_a_terminal(*[part.format(run=tmp_path / "run") for part in command])
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        (
            "Error: the corpus is standard input (-), which is a terminal here: pipe the text in (cat *.txt | charrnn train -), "
            "or name its files; a run trained on standard input resumes the same way (cat *.txt | charrnn train --resume)"
        )
    ]


def test_standard_input_goes_alone(corpus, tmp_path):
    result = _invoke("train", "-", corpus, *FAST, "--out", tmp_path / "run", input=TEXT)
    assert result.exit_code == 1 and "must be the only corpus argument" in _one_error_line(result)


def test_binary_on_standard_input_is_refused_before_it_is_stored(tmp_path):
    result = _invoke("train", "-", *FAST, "--out", tmp_path / "run", input=b"text\x00" + bytes(1 << 20))
    assert result.exit_code == 1
    assert "standard input looks like a binary file (NUL byte at offset 4), not text" in _one_error_line(result)


def test_the_same_text_piped_twice_is_encoded_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE", str(tmp_path / "cache"))
    first = _invoke("train", "-", *FAST[:-1], "--out", tmp_path / "a", input=TEXT)
    second = _invoke("train", "-", *FAST[:-1], "--out", tmp_path / "b", input=TEXT)
    assert "encoded and cached" in first.stderr and "cached encoding reused" in second.stderr
    assert len(list((tmp_path / "cache" / "spooled").iterdir())) == 1


# Pipes and devices


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def test_a_named_pipe_with_a_writer_trains(fifo, corpus, tmp_path, monkeypatch):
    # A deterministic writer: it holds the pipe open (read-write, so that opening does not wait)
    # from before charrnn opens it, writes once charrnn has opened it, then closes its end.
    keeper = os.open(fifo, os.O_RDWR)
    opened = threading.Event()
    real_open = os.open

    def watching_open(path, flags, *args, **kwargs):
        descriptor = real_open(path, flags, *args, **kwargs)
        if Path(path) == fifo:
            opened.set()
        return descriptor

    def write() -> None:
        opened.wait(TIMEOUT)
        os.write(keeper, TEXT.encode())
        os.close(keeper)

    monkeypatch.setattr(charrnn.store.corpus.os, "open", watching_open)
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    result = _invoke("train", fifo, *FAST, "--out", tmp_path / "piped")
    writer.join(TIMEOUT)
    assert result.exit_code == 0, result.output
    monkeypatch.undo()
    assert _invoke("train", corpus, *FAST, "--out", tmp_path / "file").exit_code == 0
    assert_same_training_state(tmp_path / "file" / "latest.pt", tmp_path / "piped" / "latest.pt")
    assert load_checkpoint(tmp_path / "piped" / "latest.pt")["corpus"]["paths"] == [str(fifo)]


@pytest.mark.slow  # a process of its own, so that a wait cannot hang the suite
def test_a_named_pipe_without_a_writer_is_refused_at_once(fifo, tmp_path):
    result = _charrnn("train", fifo, *FAST, "--out", tmp_path / "run")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {fifo} gave no text: nothing was writing to it (start the writer first: cat *.txt > {fifo} &)"
    ]


@pytest.mark.slow  # two trainings in processes of their own
def test_a_shell_s_process_substitution_and_dev_stdin_train(corpus, tmp_path):
    substituted = subprocess.run(
        [
            "bash",
            "-c",
            f'"{sys.executable}" -m charrnn train <(cat "{corpus}") {" ".join(FAST)} --out "{tmp_path / "a"}"',
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert substituted.returncode == 0, substituted.stderr
    from_stdin = _charrnn("train", "/dev/stdin", *FAST, "--out", tmp_path / "b", input=TEXT)
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert_same_training_state(tmp_path / "a" / "latest.pt", tmp_path / "b" / "latest.pt")


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_devices_are_refused(device, tmp_path):
    result = _invoke("train", device, *FAST, "--out", tmp_path / "run")
    assert result.exit_code == 1 and _one_error_line(result) == f"Error: {device} is a device, not a text file"


def test_a_socket_is_refused(tmp_path):
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock"))
        result = _invoke("train", tmp_path / "sock", *FAST, "--out", tmp_path / "run")
    assert result.exit_code == 1 and "sock is a socket, not a text file" in _one_error_line(result)


def test_a_file_replaced_by_a_pipe_after_it_was_found_does_not_hang(corpus, tmp_path):
    found = resolve_corpus([str(corpus)])
    corpus.unlink()
    os.mkfifo(corpus)  # nobody will ever write to it
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            CorpusCache(found, root=tmp_path / "cache").counts()
        except CorpusError as error:
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(TIMEOUT)
    assert not reader.is_alive() and "is a named pipe, not a text file" in str(outcome[0])


# File names that are not UTF-8


@pytest.fixture
def latin1_named(tmp_path) -> Path:
    """A file whose name is the Latin-1 bytes of café.txt: not UTF-8, as Python sees it (surrogates)."""
    path = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.txt"))
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_a_file_name_that_is_not_utf8_trains_evaluates_and_is_shown_escaped(latin1_named, tmp_path):
    result = _invoke("train", latin1_named, *FAST[:-1], "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "corpus: " + str(tmp_path) + "/caf\\udce9.txt (" in result.stderr
    scored = _invoke("eval", latin1_named, "-c", tmp_path / "run")
    assert scored.exit_code == 0 and "caf\\udce9.txt" in scored.stdout
    resumed = _invoke("train", "--resume", "--max-steps", "20", "--out", tmp_path / "run")
    assert resumed.exit_code == 0, resumed.output  # the recorded path found the file again


def test_a_file_name_that_is_not_utf8_in_a_message_is_escaped(tmp_path):
    path = Path(os.fsdecode(bytes(tmp_path) + b"/bin\xff\x1b[2J"))
    path.write_bytes(b"\x7fELF\x00" * 20)
    result = _invoke("train", path, *FAST, "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert "bin\\udcff\\x1b[2J looks like a binary file" in _one_error_line(result)


def test_a_folder_with_names_that_are_not_utf8_trains(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    Path(os.fsdecode(bytes(folder) + b"/\xe9t\xe9.txt")).write_text(TEXT, encoding="utf-8")
    (folder / "plain.txt").write_text(TEXT, encoding="utf-8")
    result = _invoke("train", folder, *FAST, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output


# Folders: nothing skipped without a word


@pytest.fixture
def texts(tmp_path) -> Path:
    folder = tmp_path / "texts"
    (folder / "private").mkdir(parents=True)
    (folder / "a.txt").write_text(TEXT, encoding="utf-8")
    (folder / "private" / "b.txt").write_text(TEXT, encoding="utf-8")
    return folder


def _unreadable(monkeypatch, folder: Path) -> None:
    """Make `folder` unreadable. Tests run as root, whom `chmod 000` does not stop, so the
    listing itself is made to fail as it would for anyone else."""
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(os.fsdecode(path)) == folder:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


@pytest.mark.parametrize("argument", ["{texts}", "{texts}/**/*.txt", "{texts}/*/*.txt"])
def test_an_unreadable_subfolder_is_refused_naming_it(texts, tmp_path, monkeypatch, argument):
    _unreadable(monkeypatch, texts / "private")
    result = _invoke("train", argument.format(texts=texts), *FAST, "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert _one_error_line(result) == (
        f"Error: cannot read folder {texts / 'private'} of the corpus: Permission denied; "
        "give access to it, or name the files to read"
    )


def test_a_pattern_over_readable_folders_only_looks_as_deep_as_it_reaches(texts, tmp_path, monkeypatch):
    _unreadable(monkeypatch, texts / "private")
    result = _invoke("train", f"{texts}/*.txt", *FAST, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output


def test_an_unreadable_file_in_a_folder_is_refused_naming_it(texts, tmp_path, monkeypatch):
    real_open = os.open

    def denying_open(path, flags, *args, **kwargs):
        if Path(path) == texts / "private" / "b.txt":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(charrnn.store.corpus.os, "open", denying_open)  # as root, chmod 000 would not stop the read
    result = _invoke("train", texts, *FAST, "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert _one_error_line(result) == f"Error: cannot read corpus {texts / 'private' / 'b.txt'}: Permission denied"


def test_a_broken_link_or_a_pipe_in_a_folder_is_refused_naming_it(texts, tmp_path):
    (texts / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    result = _invoke("train", texts, *FAST, "--out", tmp_path / "run")
    assert result.exit_code == 1 and f"{texts / 'gone.txt'} in the corpus folder is a broken link" in _one_error_line(
        result
    )
    (texts / "gone.txt").unlink()
    os.mkfifo(texts / "pipe")
    result = _invoke("train", texts, *FAST, "--out", tmp_path / "run")
    assert (
        result.exit_code == 1
        and f"{texts / 'pipe'} in the corpus folder is a named pipe, not a text file" in _one_error_line(result)
    )


def test_linked_folders_are_followed_once_and_a_loop_ends(texts, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "c.txt").write_text("third\n", encoding="utf-8")
    (texts / "linked").symlink_to(elsewhere)
    (elsewhere / "loop").symlink_to(texts)  # texts -> linked -> loop -> texts ...
    found = resolve_corpus([str(texts)])
    assert sorted(path.name for path in found.files) == ["a.txt", "b.txt", "c.txt"]  # each once


def test_a_pattern_that_matches_a_folder_reads_its_files(texts):
    found = resolve_corpus([str(texts / "priv*")])
    assert [path.name for path in found.files] == ["b.txt"]

"""A run's own files never become text: a corpus folder leaves out charrnn's out folders inside
it and the corpus cache, and an out folder named itself (or reached by a pattern) leaves out
the files charrnn wrote there; so the same command, a resume and eval all read the same text."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from charrnn.cli.commands import main
from charrnn.store.corpus import resolve_corpus
from helpers import PANGRAM, fast_args

FAST = fast_args(quiet=True, preview_chars=40)


def _charrnn(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


@pytest.fixture
def data(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_text(PANGRAM * 60, encoding="utf-8")
    return folder


def _chars(*arguments) -> int:
    return sum(len(chunk) for chunk in resolve_corpus([str(a) for a in arguments]).chunks())


def test_an_out_folder_inside_the_corpus_folder_is_left_out_so_the_same_command_goes_on(data):
    command = ["train", data, *FAST, "--out", data / "run"]
    assert _charrnn(*command).exit_code == 0

    again = _charrnn(*command)  # the run's metrics.jsonl and samples.txt are now in data/
    resumed = _charrnn(*command, "--resume", "--max-steps", "30")

    assert again.exit_code == 0 and "holds a run with other settings" not in again.output, again.output
    assert resumed.exit_code == 0, resumed.output
    assert "differs from the one the checkpoint was trained on" not in resumed.output
    corpus = resolve_corpus([str(data)])
    assert corpus.files == ((data / "a.txt").resolve(),)
    assert f"1 charrnn folder left out ({data / 'run'})" in corpus.description


def test_eval_of_a_folder_scores_its_texts_and_not_the_runs_inside_it(data):
    assert _charrnn("train", data / "a.txt", *FAST, "--out", data / "run").exit_code == 0
    folder = _charrnn("eval", data, "-c", data / "run")
    alone = _charrnn("eval", data / "a.txt", "-c", data / "run")
    assert folder.exit_code == alone.exit_code == 0, folder.output
    assert "1 charrnn folder left out" in folder.stdout
    assert folder.stdout.splitlines()[-3:] == alone.stdout.splitlines()[-3:]  # the same bits, nats, perplexity


def test_a_pattern_leaves_out_the_files_charrnn_wrote_in_an_out_folder(data):
    assert _charrnn("train", data / "a.txt", *FAST, "--out", data / "run").exit_code == 0
    (data / "run" / "notes.txt").write_text("the user's notes on the run\n", encoding="utf-8")
    corpus = resolve_corpus([str(data / "**" / "*.txt")])
    assert (data / "run" / "samples.txt").resolve() not in corpus.files
    assert (data / "run" / "notes.txt").resolve() in corpus.files  # a user's file stays
    assert "1 file charrnn wrote left out" in corpus.description


def test_an_out_folder_a_pattern_matches_is_left_out_whole(data):
    assert _charrnn("train", data / "a.txt", *FAST, "--out", data / "run").exit_code == 0
    (data / "run" / "notes.txt").write_text("the user's notes on the run\n", encoding="utf-8")
    by_pattern, by_folder = resolve_corpus([str(data / "*")]), resolve_corpus([str(data)])
    assert by_pattern.files == by_folder.files == ((data / "a.txt").resolve(),)
    assert f"1 charrnn folder left out ({data / 'run'})" in by_pattern.description


def test_an_out_folder_named_as_the_corpus_folder_gives_only_the_users_texts(data):
    command = ["train", data, *FAST, "--out", data]
    assert _charrnn(*command).exit_code == 0
    assert _chars(data) == _chars(data / "a.txt")
    again = _charrnn(*command)  # data/ now holds the run's files beside a.txt
    assert again.exit_code == 0 and "holds a run with other settings" not in again.output, again.output


def test_an_out_folder_of_only_charrnns_files_is_no_corpus(data, tmp_path):
    assert _charrnn("train", data / "a.txt", *FAST, "--out", tmp_path / "run").exit_code == 0
    result = _charrnn("eval", tmp_path / "run", "-c", tmp_path / "run")
    assert result.exit_code == 1
    assert f"corpus folder {tmp_path / 'run'} holds no files but " in result.stderr
    assert "files charrnn wrote" in result.stderr


def test_the_corpus_cache_inside_the_corpus_folder_is_left_out(data, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE", str(data / "cache"))
    piped = CliRunner().invoke(main, ["train", "-", *FAST, "--out", data.parent / "piped"], input=PANGRAM.upper() * 60)
    assert piped.exit_code == 0, piped.output  # the cache now holds a text copied from standard input
    corpus = resolve_corpus([str(data)])
    assert corpus.files == ((data / "a.txt").resolve(),)
    assert f"1 charrnn folder left out ({data / 'cache'})" in corpus.description


def test_training_on_a_file_the_run_itself_writes_is_refused(data):
    assert _charrnn("train", data / "a.txt", *FAST, "--out", data / "run").exit_code == 0
    before = (data / "run" / "samples.txt").read_bytes()
    result = _charrnn("train", data / "run" / "samples.txt", *FAST, "--out", data / "run")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "is one that this run writes into its out folder, so it would change as the run trains" in lines[0]
    assert (data / "run" / "samples.txt").read_bytes() == before
    copy = data.parent / "previews.txt"
    copy.write_bytes(before)  # a copy elsewhere is a text like any other
    assert _charrnn("train", copy, *FAST, "--out", data.parent / "other").exit_code == 0

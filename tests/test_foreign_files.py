"""charrnn writes into an out folder only files it can show are its own: a user's file, a
symbolic link or a hard link under one of charrnn's names is refused in one line naming it,
before any work (no corpus encoded, no checkpoint written), and the user's bytes stay as they
were. (FIFOs under those names: tests/test_no_waiting.py, each in a process of its own.)"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from charrnn.cli.commands import main
from charrnn.run.preview import PreviewLog
from charrnn.store.files import TEMPORARY_TAG
from charrnn.store.metrics import MetricsLog, MetricsRecords
from charrnn.store.outdir import BEST, LATEST, LOCK_FILE, RUN_FILE, step_file_name
from charrnn.store.runfiles import METRICS, SAMPLES
from helpers import PANGRAM, TINY_OPTIONS, Crash, CrashAtStep, fast_args, train

FAST = fast_args(quiet=True)
NAMES = [LOCK_FILE, RUN_FILE, METRICS, SAMPLES, LATEST, BEST, step_file_name(10)]
USERS = b"the user's own words\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished small run (steps 10 and 20 saved) and its corpus, beside it."""
    folder = tmp_path_factory.mktemp("trained")
    (folder / "corpus.txt").write_text(PANGRAM * 60, encoding="utf-8")
    result = CliRunner().invoke(
        main, ["train", str(folder / "corpus.txt"), *FAST, "--preview-chars", "20", "--out", str(folder / "run")]
    )
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(PANGRAM * 60, encoding="utf-8")
    return path


@pytest.fixture
def users_file(tmp_path) -> Path:
    path = tmp_path / "elsewhere" / "thesis.txt"
    path.parent.mkdir()
    path.write_bytes(USERS)
    return path


def _symlink(path: Path, users_file: Path) -> None:
    path.symlink_to(users_file)


def _hard_link(path: Path, users_file: Path) -> None:
    os.link(users_file, path)


def _users_own(path: Path, users_file: Path) -> None:
    # What a user might keep under the name: a log of another tool, notes, a file of their own.
    path.write_bytes(b'{"step": 1, "loss": 2.5}\n' if path.name == METRICS else USERS)


def _refused(result, path: Path) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: {path} ") and "so charrnn will not write to it" in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("make", [_symlink, _hard_link, _users_own])
@pytest.mark.parametrize("name", NAMES)
def test_a_new_run_refuses_a_file_of_charrnns_names_it_did_not_write(tmp_path, corpus, users_file, name, make):
    out = tmp_path / "out"
    out.mkdir()
    make(out / name, users_file)
    before = (out / name).read_bytes()
    cache = tmp_path / "cache"

    result = CliRunner().invoke(
        main, ["train", str(corpus), *FAST, "--out", str(out)], env={"CHARRNN_CACHE": str(cache)}
    )

    _refused(result, out / name)
    assert users_file.read_bytes() == USERS and (out / name).read_bytes() == before
    assert not cache.exists()  # refused before the corpus was encoded
    assert sorted(p.name for p in out.iterdir()) == sorted({name, LOCK_FILE})


@pytest.mark.parametrize("make", [_symlink, _hard_link])
@pytest.mark.parametrize("name", NAMES)
def test_resuming_refuses_a_link_in_place_of_one_of_the_runs_files(tmp_path, trained, users_file, name, make):
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    (run / name).unlink()
    make(run / name, users_file)
    cache = tmp_path / "cache"

    result = CliRunner().invoke(
        main,
        ["train", str(trained / "corpus.txt"), *FAST, "--resume", "--max-steps", "30", "--out", str(run)],
        env={"CHARRNN_CACHE": str(cache)},
    )

    _refused(result, run / name)
    assert users_file.read_bytes() == USERS
    assert not cache.exists() and not (run / step_file_name(30)).exists()


def test_a_dangling_link_under_a_name_is_refused_and_never_followed(tmp_path, corpus):
    out = tmp_path / "out"
    out.mkdir()
    (out / METRICS).symlink_to(tmp_path / "would-be-created.txt")
    result = CliRunner().invoke(main, ["train", str(corpus), *FAST, "--out", str(out)])
    _refused(result, out / METRICS)
    assert not (tmp_path / "would-be-created.txt").exists()


def test_a_link_where_charrnn_writes_its_temporary_file_is_never_written_through(tmp_path, corpus, users_file):
    """The temporary names hold this process's pid, which anyone can guess."""
    out = tmp_path / "out"
    out.mkdir()
    tag = f"{TEMPORARY_TAG}{os.getpid()}@{socket.gethostname()}"
    (out / f".{RUN_FILE}{tag}").symlink_to(users_file)
    (out / f".{step_file_name(10)}{tag}").symlink_to(tmp_path / "would-be-created.pt")
    result = CliRunner().invoke(main, ["train", str(corpus), *FAST, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert users_file.read_bytes() == USERS and not (tmp_path / "would-be-created.pt").exists()
    assert not [p for p in out.iterdir() if TEMPORARY_TAG in p.name]


def test_the_files_a_run_left_before_its_first_checkpoint_are_its_own_and_start_afresh(tmp_path, corpus):
    options = {
        **TINY_OPTIONS,
        "log_every": 2,
        "save_every": 10,
        "preview_chars": 10,
        "eval_every": 4,
        "val_fraction": 0,
    }
    with pytest.raises(Crash):  # metrics.jsonl and samples.txt written, no checkpoint, no run.json
        train(corpus, tmp_path / "out", options, reporter=CrashAtStep(8))
    assert {METRICS, SAMPLES} <= {p.name for p in (tmp_path / "out").iterdir()}
    assert not (tmp_path / "out" / RUN_FILE).exists()

    train(corpus, tmp_path / "out", options)  # the same command again: a new run, in the same folder

    run_id = json.loads((tmp_path / "out" / RUN_FILE).read_text())["id"]
    first = json.loads((tmp_path / "out" / METRICS).read_text().splitlines()[0])
    assert first == {"kind": "run", "step": 0, "run": run_id}
    steps = [(r["kind"], r["step"]) for r in MetricsRecords(tmp_path / "out")]
    assert len(steps) == len(set(steps))  # the lines of the run that never saved are gone
    assert (tmp_path / "out" / SAMPLES).read_text().startswith(f"--- charrnn previews of run {run_id} ---\n")


def test_a_user_file_beside_a_run_is_never_taken_for_one_of_its_files(tmp_path, trained):
    """Files under other names are the user's business: kept, and never refused."""
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    (run / "notes.txt").write_bytes(USERS)
    (run / "metrics.jsonl.bak").symlink_to(trained / "corpus.txt")
    result = CliRunner().invoke(
        main, ["train", str(trained / "corpus.txt"), *FAST, "--resume", "--max-steps", "30", "--out", str(run)]
    )
    assert result.exit_code == 0, result.output
    assert (run / "notes.txt").read_bytes() == USERS


def _swap_in_a_link(path: Path, users_file: Path) -> None:
    path.unlink()
    path.symlink_to(users_file)


def _swap_in_a_users_file(path: Path, users_file: Path) -> None:
    path.unlink()
    path.write_bytes(USERS)


@pytest.mark.parametrize("swap", [_swap_in_a_link, _hard_link, _swap_in_a_users_file])
@pytest.mark.parametrize("log_class", [MetricsLog, PreviewLog])
def test_a_file_put_in_place_of_a_log_while_training_is_never_written(tmp_path, users_file, log_class, swap):
    """After the check at the start: a link, a second name or another file put in its place costs
    one warning, and the run goes on without the log."""
    warnings = []
    log = log_class(tmp_path, warn=warnings.append, run="0123abcd")
    write = (
        (lambda: log.append({"kind": "train", "step": 1})) if log_class is MetricsLog else (lambda: log.append(1, "x"))
    )
    write()
    if swap is _hard_link:
        os.link(log.path, tmp_path / "second-name")
        before = (tmp_path / "second-name").read_bytes()
    else:
        swap(log.path, users_file)
    write()
    write()
    assert len(warnings) == 1 and f"warning: cannot write {log.path} (it " in warnings[0], warnings
    assert users_file.read_bytes() == USERS
    if swap is _hard_link:
        assert (tmp_path / "second-name").read_bytes() == before
    if swap is _swap_in_a_users_file:
        assert log.path.read_bytes() == USERS

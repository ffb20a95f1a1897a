"""The out folder: retention, newest-by-number, fallback past damaged files, write failures."""

import errno
import os

import pytest
import torch

from charrnn.errors import CheckpointError
from charrnn.store.checkpoint import read_checkpoint
from charrnn.store.outdir import (
    BEST,
    LATEST,
    LOCK_FILE,
    RUN_FILE,
    OutDir,
    load_from,
    step_file_name,
)
from helpers import PANGRAM, TINY_OPTIONS, assert_same_training_state, train

OPTIONS = {**TINY_OPTIONS, "max_steps": 40, "save_every": 10, "eval_every": 20, "keep": 2}


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text(PANGRAM * 20, encoding="utf-8")
    return path


def test_keeps_the_newest_step_files_and_points_latest_at_the_newest(tmp_path, corpus):
    train(corpus, tmp_path / "run", OPTIONS)
    out = OutDir(tmp_path / "run")
    assert [step for step, _ in out.step_files()] == [30, 40]
    assert (out.path / LATEST).samefile(out.path / step_file_name(40))
    assert sorted(p.name for p in out.path.iterdir()) == sorted(
        [BEST, LATEST, "metrics.jsonl", "samples.txt", "step-00000030.pt", "step-00000040.pt", RUN_FILE, LOCK_FILE]
    )


def test_the_newest_checkpoint_is_found_by_step_number_not_file_time(tmp_path, corpus):
    train(corpus, tmp_path / "run", OPTIONS)
    out = OutDir(tmp_path / "run")
    os.utime(out.path / step_file_name(30), (2e9, 2e9))  # the older step now looks newer
    os.utime(out.path / LATEST, (1e9, 1e9))
    assert out.newest().checkpoint.step == 40


def _damage(path):
    data = bytearray(path.read_bytes())
    data[-50] ^= 0xFF
    path.write_bytes(bytes(data))  # writes in place: step-40.pt, latest.pt's twin, is damaged too


def test_resume_passes_over_a_damaged_checkpoint_says_so_and_still_ends_exact(tmp_path, corpus):
    options = OPTIONS
    train(corpus, tmp_path / "whole", options)
    train(corpus, tmp_path / "run", options)
    _damage(tmp_path / "run" / LATEST)
    (tmp_path / "run" / BEST).unlink()  # it may hold step 40 too, a good place to resume from

    found = OutDir(tmp_path / "run").newest()
    assert found.checkpoint.step == 30
    assert any("step-00000040.pt" in note and "corrupted" in note for note in found.passed_over)

    result = train(corpus, tmp_path / "run", {**options, "max_steps": 40}, resume=str(tmp_path / "run"))
    assert result.step == 40  # steps 31-40 redone
    assert_same_training_state(tmp_path / "whole" / LATEST, tmp_path / "run" / LATEST)


def test_a_truncated_newest_file_falls_back_to_the_previous_one(tmp_path, corpus):
    train(corpus, tmp_path / "run", OPTIONS)
    newest = tmp_path / "run" / step_file_name(40)
    (tmp_path / "run" / LATEST).unlink()
    newest.write_bytes(newest.read_bytes()[:1000])
    (tmp_path / "run" / BEST).unlink()
    found = load_from(tmp_path / "run", prefer="newest")
    assert found.path.name == step_file_name(30)
    assert "truncated" in found.passed_over[0]


def test_sampling_falls_back_from_a_damaged_best(tmp_path, corpus):
    train(corpus, tmp_path / "run", OPTIONS)
    (tmp_path / "run" / BEST).write_bytes(b"charrnn checkpoint\ngarbage")
    found = load_from(tmp_path / "run", prefer="best")
    assert found.path.name == LATEST and "best.pt" in found.passed_over[0]


def test_a_folder_of_only_damaged_checkpoints_names_each(tmp_path):
    (tmp_path / LATEST).write_text("nonsense")
    with pytest.raises(CheckpointError, match="no usable checkpoint.*latest.pt.*not a charrnn checkpoint"):
        OutDir(tmp_path).newest()


def test_acquiring_clears_charrnn_leftovers_and_nothing_else(tmp_path):
    ours = tmp_path / ".latest.pt.charrnn-tmp-999999999@otherhost"
    users = [tmp_path / ".thesis.md.tmp-4000000", tmp_path / ".notes.tmp-1", tmp_path / "draft.charrnn-tmp-5"]
    for path in [ours, *users]:
        path.write_text("contents")
    out = OutDir(tmp_path)
    out.acquire()
    out.release()
    assert not ours.exists() and all(path.read_text() == "contents" for path in users)


def test_an_out_folder_that_cannot_be_created_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CheckpointError, match="cannot write to the out folder"):
        OutDir(blocker / "run").acquire()


def test_a_full_disk_stops_with_a_clear_error_and_keeps_earlier_checkpoints(tmp_path, corpus, monkeypatch):
    train(corpus, tmp_path / "run", {**OPTIONS, "max_steps": 20})
    before = read_checkpoint(tmp_path / "run" / LATEST)

    def disk_full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)  # every checkpoint write now fails as on a full disk
    with pytest.raises(CheckpointError, match="No space left on device; earlier checkpoints are intact"):
        train(corpus, tmp_path / "run", {**OPTIONS, "max_steps": 40}, resume=str(tmp_path / "run"))
    monkeypatch.undo()

    after = read_checkpoint(tmp_path / "run" / LATEST)
    assert after.step == before.step == 20
    assert all(torch.equal(after.weights[k], before.weights[k]) for k in before.weights)
    assert not [p for p in (tmp_path / "run").iterdir() if "tmp-" in p.name]

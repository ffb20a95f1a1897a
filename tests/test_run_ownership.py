"""A folder holds one run, owned by one process: no path loses a user's work.

Each of the four ways the first round lost work (resuming from elsewhere into the default
folder, two processes on one folder, an older step resumed over newer ones, user files taken
for leftovers) is tried here as a user would, through the command line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from charrnn.cli.commands import main
from charrnn.store.checkpoint import RunIdentity, read_checkpoint, write_checkpoint
from charrnn.store.outdir import BEST, LATEST, LOCK_FILE, RUN_FILE, OutDir, step_file_name
from helpers import PANGRAM, TINY_OPTIONS, Crash, CrashAtStep, assert_same_training_state, fast_args, train

FAST = fast_args(max_steps=None, keep=5, quiet=True)


def _charrnn(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def _fingerprint(folder: Path) -> dict[str, str]:
    """Every file's hash, but the lock's: each process that takes the lock notes in it who it is
    and since when (a refused process too, so the note's clock time would make this depend on speed)."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and p.name != LOCK_FILE]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture
def texts(tmp_path) -> tuple[Path, Path]:
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text(PANGRAM * 40, encoding="utf-8")
    second.write_text(PANGRAM.upper() * 40, encoding="utf-8")
    return first, second


def _run_id(folder: Path) -> str:
    return json.loads((folder / RUN_FILE).read_text())["id"]


def test_every_checkpoint_carries_the_identity_of_its_folder(tmp_path, texts):
    assert _charrnn("train", texts[0], *FAST, "--max-steps", "20", "--out", tmp_path / "a").exit_code == 0
    run_id = _run_id(tmp_path / "a")
    for name in OutDir(tmp_path / "a").checkpoint_names():
        assert read_checkpoint(tmp_path / "a" / name).record.run == RunIdentity(run_id, None)


def test_resuming_a_checkpoint_from_elsewhere_continues_in_its_own_folder_not_the_default(tmp_path, texts, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _charrnn("train", texts[0], *FAST, "--max-steps", "20", "--out", "runs/a").exit_code == 0
    assert _charrnn("train", texts[1], *FAST, "--max-steps", "20").exit_code == 0  # a different run in checkpoints/
    default_before = _fingerprint(tmp_path / "checkpoints")

    result = _charrnn("train", texts[0], "--resume", "runs/a/latest.pt", "--max-steps", "30", "--quiet")

    assert result.exit_code == 0, result.output
    assert _fingerprint(tmp_path / "checkpoints") == default_before
    assert read_checkpoint(tmp_path / "runs" / "a" / LATEST).step == 30


def test_resuming_into_a_folder_that_holds_another_run_is_refused_naming_both(tmp_path, texts):
    assert _charrnn("train", texts[0], *FAST, "--max-steps", "20", "--out", tmp_path / "a").exit_code == 0
    assert _charrnn("train", texts[1], *FAST, "--max-steps", "20", "--out", tmp_path / "b").exit_code == 0
    before = _fingerprint(tmp_path / "a"), _fingerprint(tmp_path / "b")

    result = _charrnn(
        "train", texts[1], "--resume", tmp_path / "a" / BEST, "--out", tmp_path / "b", "--max-steps", "30"
    )

    assert result.exit_code == 1
    message = result.stderr.strip()
    assert message.count("\n") == 0 and "holds another run" in message
    assert (
        f"run {_run_id(tmp_path / 'b')[:8]} at step 20" in message and f"run {_run_id(tmp_path / 'a')[:8]}" in message
    )
    assert (_fingerprint(tmp_path / "a"), _fingerprint(tmp_path / "b")) == before


def test_a_second_process_on_a_folder_in_use_is_refused_naming_the_holder(tmp_path, texts):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from charrnn.store.outdir import OutDir; OutDir(sys.argv[1]).acquire(); "
            "print('held', flush=True); time.sleep(120)",
            str(tmp_path / "a"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = _charrnn("train", texts[0], *FAST, "--max-steps", "20", "--out", tmp_path / "a")
        assert result.exit_code == 1
        assert f"is in use by another charrnn training process (pid {holder.pid} on " in result.stderr
        assert ", since 20" in result.stderr and "give another --out" in result.stderr
        assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [LOCK_FILE]  # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding the lock: the OS releases it
        holder.wait()
    result = _charrnn("train", texts[0], *FAST, "--max-steps", "20", "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output


def test_resuming_an_older_step_into_its_own_folder_is_refused_and_forking_it_works(tmp_path, texts):
    run = tmp_path / "a"
    assert _charrnn("train", texts[0], *FAST, "--max-steps", "40", "--out", run).exit_code == 0
    before = _fingerprint(run)

    result = _charrnn("train", texts[0], "--resume", run / step_file_name(20), "--out", run, "--max-steps", "40")
    assert result.exit_code == 1
    assert "holds newer checkpoints of this run (step 40)" in result.stderr and "fork step 20" in result.stderr
    result = _charrnn(
        "train", texts[0], "--resume", run / step_file_name(20), "--max-steps", "40"
    )  # no --out: the same
    assert result.exit_code == 1 and "holds newer checkpoints" in result.stderr
    assert _fingerprint(run) == before

    fork = tmp_path / "fork"
    result = _charrnn("train", "--resume", run / step_file_name(20), "--out", fork, "--max-steps", "30", "--quiet")
    assert result.exit_code == 0, result.output
    assert _fingerprint(run) == before
    forked = json.loads((fork / RUN_FILE).read_text())
    assert forked["id"] != _run_id(run)
    assert forked["forked_from"] == {"id": _run_id(run), "step": 20, "path": str((run / step_file_name(20)).resolve())}
    assert read_checkpoint(fork / LATEST).step == 30


def test_best_pt_never_gets_worse(tmp_path, texts):
    run = tmp_path / "a"
    assert _charrnn("train", texts[0], *FAST, "--max-steps", "20", "--out", run).exit_code == 0
    best = read_checkpoint(run / BEST)
    out = OutDir(run)
    out.acquire()
    out.claim(best.record.run)
    try:
        worse = dataclasses.replace(best, best_val_loss=best.best_val_loss + 0.5, step=99)
        assert out.save_best(worse) is False
        assert read_checkpoint(run / BEST).step == best.step
        better = dataclasses.replace(best, best_val_loss=best.best_val_loss - 0.5, step=98)
        assert out.save_best(better) is True
        assert read_checkpoint(run / BEST).step == 98
    finally:
        out.release()


def test_a_resume_from_before_a_better_best_keeps_that_best(tmp_path, texts):
    """A run resumed from an earlier save (its later best.pt kept) can only improve best.pt."""
    run = tmp_path / "a"
    assert _charrnn("train", texts[0], *FAST, "--max-steps", "40", "--out", run).exit_code == 0
    best = read_checkpoint(run / BEST)
    for step, _ in OutDir(run).step_files():  # as if the run had died after best.pt was written
        if step > 10:
            (run / step_file_name(step)).unlink()
    (run / LATEST).unlink()
    brilliant = dataclasses.replace(best, best_val_loss=0.001)
    write_checkpoint(brilliant, run / BEST)  # a best no retraining can reach, at step 40

    result = _charrnn("train", texts[0], "--resume", run / step_file_name(10), "--max-steps", "40")

    assert result.exit_code == 1 and "holds newer checkpoints of this run (step 40)" in result.stderr
    (run / BEST).rename(tmp_path / "kept-best.pt")  # now step 10 is the newest: resuming goes on
    write_checkpoint(dataclasses.replace(brilliant, step=10), run / BEST)
    assert _charrnn("train", texts[0], "--resume", run, "--max-steps", "40", "--quiet").exit_code == 0
    assert read_checkpoint(run / BEST).best_val_loss == 0.001
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert not [r for r in records if r["kind"] == "validation" and r["step"] > 10 and r["best"]]


def test_starting_a_run_keeps_every_user_file_in_the_folder(tmp_path, texts):
    run = tmp_path / "a"
    run.mkdir()
    users = {".thesis.md.tmp-4000000": "chapter one", ".latest.pt.tmp-999999": "not ours", "notes.txt": "mine"}
    for name, text in users.items():
        (run / name).write_text(text)
    ours = run / ".step-00000010.pt.charrnn-tmp-999999999@somehost"
    ours.write_bytes(b"half a checkpoint from a killed charrnn")

    assert _charrnn("train", texts[0], *FAST, "--max-steps", "20", "--out", run).exit_code == 0

    assert {name: (run / name).read_text() for name in users} == users
    assert not ours.exists()


def test_a_failed_start_leaves_no_folder_behind(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café\n".encode("latin-1") * 200)
    result = _charrnn("train", bad, *FAST, "--out", tmp_path / "a")
    assert result.exit_code == 1 and "is not valid UTF-8" in result.stderr
    assert not (tmp_path / "a").exists()


@pytest.mark.slow  # fault injection: kills a training process
def test_a_run_killed_while_holding_its_folder_resumes(tmp_path, texts):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [
        sys.executable,
        "-m",
        "charrnn",
        "train",
        str(texts[0]),
        *FAST,
        "--max-steps",
        "100000",
        "--out",
        str(tmp_path / "a"),
    ]
    process = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "a" / LATEST).exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    result = _charrnn(
        "train",
        "--resume",
        tmp_path / "a",
        "--max-steps",
        str(read_checkpoint(tmp_path / "a" / LATEST).step + 10),
        "--quiet",
    )
    assert result.exit_code == 0, result.output


# The same command again (issue 13): `charrnn train && charrnn sample` must work a second time.

SHOWN = fast_args(max_steps=None, keep=5)  # not --quiet: the line that says the run goes on is asserted


def test_the_same_command_again_continues_its_complete_run_and_changes_nothing(tmp_path, texts):
    command = ["train", texts[0], *SHOWN, "--max-steps", "20", "--out", tmp_path / "a"]
    assert _charrnn(*command).exit_code == 0
    before = _fingerprint(tmp_path / "a")

    result = _charrnn(*command, "--log-every", "7", "--preview-chars", "0")  # display options may differ

    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'a'} holds this run (step 20, " in result.stderr and "continuing it" in result.stderr
    assert f"The run in {tmp_path / 'a'} is complete (step 20 " in result.stderr
    assert _fingerprint(tmp_path / "a") == before


def test_the_same_command_after_an_interruption_finishes_the_run_exactly(tmp_path, texts):
    options = {**TINY_OPTIONS, "max_steps": 40, "dropout": 0.3}
    train(texts[0], tmp_path / "whole", options)
    with pytest.raises(Crash):
        train(texts[0], tmp_path / "broken", options, reporter=CrashAtStep(27))
    assert read_checkpoint(tmp_path / "broken" / LATEST).step == 20

    result = train(texts[0], tmp_path / "broken", options)  # the same request, no resume asked for

    assert result.step == 40 and not result.already_complete
    assert_same_training_state(tmp_path / "whole" / LATEST, tmp_path / "broken" / LATEST)
    assert_same_training_state(tmp_path / "whole" / BEST, tmp_path / "broken" / BEST)
    assert _run_id(tmp_path / "broken") == read_checkpoint(tmp_path / "broken" / LATEST).record.run.id


def test_the_same_options_on_another_corpus_are_refused_naming_the_corpus(tmp_path, texts):
    assert _charrnn("train", texts[0], *FAST, "--max-steps", "20", "--out", tmp_path / "a").exit_code == 0
    before = _fingerprint(tmp_path / "a")

    result = _charrnn("train", texts[1], *FAST, "--max-steps", "20", "--out", tmp_path / "a")

    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {tmp_path / 'a'} holds a run with other settings: another corpus text (checkpoint: {texts[0]}, "
        "1,760 characters); add --resume to continue it with these, or give another --out to start a new one"
    )
    assert _fingerprint(tmp_path / "a") == before


def test_other_options_are_refused_naming_each(tmp_path, texts):
    assert _charrnn("train", texts[0], *FAST, "--max-steps", "20", "--out", tmp_path / "a").exit_code == 0
    before = _fingerprint(tmp_path / "a")

    longer = _charrnn("train", texts[0], *FAST, "--max-steps", "30", "--lr", "0.002", "--out", tmp_path / "a")
    wider = _charrnn("train", texts[0], *FAST, "--max-steps", "20", "--hidden-size", "32", "--out", tmp_path / "a")

    assert longer.exit_code == wider.exit_code == 1
    assert longer.stderr.strip() == (
        f"Error: {tmp_path / 'a'} holds a run with other settings: --lr 0.002 (checkpoint: 0.003), --max-steps 30 "
        "(checkpoint: 20); add --resume to continue it with these, or give another --out to start a new one"
    )
    # --resume cannot change the architecture, so it is not offered
    assert wider.stderr.strip() == (
        f"Error: {tmp_path / 'a'} holds a run with other settings: --hidden-size 32 (checkpoint: 24); "
        "give another --out to start a new one"
    )
    assert _fingerprint(tmp_path / "a") == before

"""metrics.jsonl: a line per training-loss report and per validation; a resume appends without
repeats; a damaged or unwritable file never stops a run."""

import json
import os

import pytest
from click.testing import CliRunner

from charrnn.cli.commands import main
from charrnn.store.metrics import NAME, MetricsLog
from helpers import PANGRAM, fast_args, read_metrics

FAST = fast_args(
    hidden_size=32,
    log_every=10,
    eval_every=15,
    save_every=15,
    min_lr_ratio=1,
    max_steps=None,
    warmup_steps=None,
    quiet=True,
)


def train(corpus, out, *extra):
    result = CliRunner().invoke(main, ["train", str(corpus), *FAST, "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    records, skipped = read_metrics(out)
    assert skipped == 0
    return records


def test_each_report_and_validation_is_a_line_and_a_resume_appends_without_repeats(tmp_path):
    corpus = tmp_path / "pangram.txt"
    corpus.write_text(PANGRAM * 300, encoding="utf-8")
    records = train(corpus, tmp_path / "run", "--max-steps", "30")
    assert [(r["kind"], r["step"]) for r in records] == [
        ("train", 10),
        ("validation", 15),
        ("train", 20),
        ("train", 30),
        ("validation", 30),
    ]
    first = records[0]
    assert set(first) == {
        "kind",
        "step",
        "epoch",
        "train_bpc",
        "lr",
        "chars_per_sec",
        "grad_norm",
        "threads",
        "elapsed",
    }
    assert 0 < first["epoch"] < 1 and first["grad_norm"] > 0 and first["lr"] > 0 and first["chars_per_sec"] > 0
    assert records[-1]["val_bpc"] < records[1]["val_bpc"]  # it learns, and the file shows it

    # A crash after step 30 left lines for steps the checkpoint does not hold, the last cut short.
    with open(tmp_path / "run" / NAME, "a", encoding="utf-8") as file:
        file.write(json.dumps({"kind": "train", "step": 40, "train_bpc": 1.0}) + "\n" + '{"kind": "tra')
    resumed = train(corpus, tmp_path / "run", "--resume", "--max-steps", "45")
    steps = [(r["kind"], r["step"]) for r in resumed]
    assert steps == [
        ("train", 10),
        ("validation", 15),
        ("train", 20),
        ("train", 30),
        ("validation", 30),
        ("train", 40),
        ("train", 45),
        ("validation", 45),
    ]
    assert resumed[5]["train_bpc"] != 1.0  # the crashed run's line for step 40 was dropped, not kept


def record(step, kind="train"):
    return {"kind": kind, "step": step, "train_bpc": 2.0}


def lines(*records):
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


@pytest.mark.parametrize(
    "damage",
    [
        b"\xff\xfe not UTF-8\n",
        b"\x00" * 100 + b"\n",
        b"[1, 2]\n",
        b'"text"\n',
        b'{"step": "x"}\n',
        b'{"step": true}\n',
        b'{"step": -1}\n',
        b"[" * 50_000 + b"\n",
        b"[" * 100_000 + b"\n",
        b"{" + b"x" * 200_000 + b"\n",
    ],
)
def test_resuming_drops_damaged_lines_with_one_warning_and_keeps_the_rest(tmp_path, damage):
    (tmp_path / NAME).write_bytes(lines(record(1)) + damage + lines(record(2), record(9)))
    warnings = []
    log = MetricsLog(tmp_path, warn=warnings.append)
    log.forget_after(5)
    log.append(record(6))
    assert [r["step"] for r in read_metrics(tmp_path)[0]] == [1, 2, 6]
    assert warnings == [f"warning: 1 damaged lines of {tmp_path / NAME} were dropped; 2 records are kept"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]  # no temporary left behind


def test_a_line_cut_short_by_a_crash_is_dropped_without_a_warning(tmp_path):
    (tmp_path / NAME).write_bytes(lines(record(1)) + b'{"kind": "tra')
    warnings = []
    MetricsLog(tmp_path, warn=warnings.append).forget_after(5)
    assert (tmp_path / NAME).read_bytes() == lines(record(1)) and warnings == []


def _folder(path):
    path.mkdir()


def _fifo(path):
    os.mkfifo(path)  # opening it would wait for a writer forever


@pytest.mark.parametrize("make", [_folder, _fifo])
def test_something_other_than_a_file_in_its_place_costs_one_warning_not_the_run(tmp_path, make):
    make(tmp_path / NAME)
    warnings = []
    log = MetricsLog(tmp_path, warn=warnings.append)
    log.forget_after(5)
    log.append(record(6))
    log.append(record(7))
    assert len(warnings) == 1 and "cannot write" in warnings[0] and "not a regular file" in warnings[0]


def test_a_file_that_cannot_be_written_costs_one_warning_not_the_run(tmp_path, monkeypatch):
    (tmp_path / NAME).write_bytes(lines(record(1)))
    warnings = []
    log = MetricsLog(tmp_path, warn=warnings.append)
    log.forget_after(5)

    def refuse(*args, **kwargs):  # as a read-only file or a full disk would (root may write anything)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", refuse)
    log.append(record(6))
    log.append(record(7))
    monkeypatch.undo()
    assert warnings == [
        f"warning: cannot write {tmp_path / NAME} (Permission denied); training goes on without recording its figures there"
    ]
    assert [r["step"] for r in read_metrics(tmp_path)[0]] == [1]


def test_a_resume_with_a_damaged_metrics_file_trains_on_and_logs_again(tmp_path):
    corpus = tmp_path / "pangram.txt"
    corpus.write_text(PANGRAM * 300, encoding="utf-8")
    train(corpus, tmp_path / "run", "--max-steps", "15")
    with open(tmp_path / "run" / NAME, "ab") as file:
        file.write(b"\xff\xfe\x00 garbage\n")
    result = CliRunner().invoke(
        main, ["train", str(corpus), *FAST, "--out", str(tmp_path / "run"), "--resume", "--max-steps", "30"]
    )
    assert result.exit_code == 0, result.output
    assert "warning: 1 damaged lines of" in result.stderr
    assert [(r["kind"], r["step"]) for r in read_metrics(tmp_path / "run")[0]][-2:] == [
        ("train", 30),
        ("validation", 30),
    ]
    (tmp_path / "run" / NAME).unlink()
    (tmp_path / "run" / NAME).mkdir()  # a folder where the file should be: not charrnn's, refused before any work
    (tmp_path / "run" / NAME / "mine.txt").write_text("the user's")
    result = CliRunner().invoke(
        main, ["train", str(corpus), *FAST, "--out", str(tmp_path / "run"), "--resume", "--max-steps", "40"]
    )
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
    assert (
        f"{tmp_path / 'run' / NAME} is a folder, not a regular file, so charrnn will not write to it" in result.stderr
    )
    assert (tmp_path / "run" / NAME / "mine.txt").read_text() == "the user's"

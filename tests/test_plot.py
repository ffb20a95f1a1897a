"""charrnn plot: a readable PNG of train and validation bpc against step, runs overlaid; damaged
metrics are skipped (and counted) or refused in one line."""

import json
import os
import struct
import sys

import pytest
from click.testing import CliRunner

from charrnn.cli.commands import main
from helpers import PANGRAM, fast_args

FAST = fast_args(
    hidden_size=32, log_every=10, eval_every=20, max_steps=60, save_every=None, warmup_steps=None, quiet=True
)


def png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


def test_plot_overlays_runs_into_a_png_of_the_expected_size(tmp_path):
    corpus = tmp_path / "pangram.txt"
    corpus.write_text(PANGRAM * 300, encoding="utf-8")
    for name, lr in (("slow", "0.002"), ("fast", "0.01")):
        result = CliRunner().invoke(main, ["train", str(corpus), *FAST, "--lr", lr, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        main, ["plot", str(tmp_path / "slow"), str(tmp_path / "fast"), "-o", str(tmp_path / "bpc.png")]
    )
    assert result.exit_code == 0, result.output
    assert png_size(tmp_path / "bpc.png") == (900, 550)


def test_plot_says_what_is_missing(tmp_path, monkeypatch):
    empty = CliRunner().invoke(main, ["plot", str(tmp_path), "-o", str(tmp_path / "x.png")])
    assert empty.exit_code == 1 and "no metrics.jsonl in" in empty.stderr
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 1, "train_bpc": 3.0}\n', encoding="utf-8")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    result = CliRunner().invoke(main, ["plot", str(tmp_path), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 1 and "pip install matplotlib" in result.stderr
    assert "charrnn[" not in result.stderr  # `charrnn` on PyPI is an unrelated project
    assert len(result.stderr.strip().splitlines()) == 1


def _record_lines(*records):
    return "".join(json.dumps(record) + "\n" for record in records).encode()


GOOD = _record_lines(
    {"kind": "train", "step": 10, "train_bpc": 3.0},
    {"kind": "validation", "step": 10, "val_bpc": 2.9},
    {"kind": "train", "step": 20, "train_bpc": 2.5},
)
DAMAGE = [
    b"\xff\xfe\x00\x01 binary garbage\n",
    b"\xc3\x28 invalid UTF-8\n",
    b"[1, 2, 3]\n",
    b'"a string"\n',
    b"null\n",
    b'{"kind": "train", "step": "x", "train_bpc": 1.0}\n',
    b'{"kind": "validation", "step": 30, "val_bpc": "nan"}\n',
    b'{"kind": "validation", "step": 30, "val_bpc": NaN}\n',
    b'{"kind": "train", "step": 30, "train_bpc": "low"}\n',
    b'{"kind": "train", "step": 30, "train_bpc": true}\n',
    b'{"kind": "train", "step": 1e400, "train_bpc": 1.0}\n',
    b'{"kind": "train", "step": 30}\n',
    b"[" * 50_000 + b"\n",
    b"x" * 200_000 + b"\n",
]


def test_plot_draws_what_is_valid_and_says_how_many_lines_it_skipped(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_bytes(GOOD + b"".join(DAMAGE) + _record_lines({"kind": "other", "step": 5}))
    result = CliRunner().invoke(main, ["plot", str(run), "-o", str(tmp_path / "bpc.png")])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"warning: skipped {len(DAMAGE)} damaged lines of {run / 'metrics.jsonl'}",
        f"wrote {tmp_path / 'bpc.png'}",
    ]
    assert png_size(tmp_path / "bpc.png") == (900, 550)


@pytest.mark.parametrize(
    "make, excerpt",
    [
        (lambda path: path.mkdir(), "metrics.jsonl is not a regular file"),
        (lambda path: os.mkfifo(path), "metrics.jsonl is not a regular file"),
        (lambda path: path.write_bytes(os.urandom(100_000)), "(its metrics.jsonl has only "),
        (lambda path: path.write_bytes(b"".join(DAMAGE)), f"(its metrics.jsonl has only {len(DAMAGE)} damaged lines)"),
    ],
)
def test_plot_refuses_a_metrics_file_with_nothing_to_draw_in_one_line(tmp_path, make, excerpt):
    make(tmp_path / "metrics.jsonl")
    result = CliRunner().invoke(main, ["plot", str(tmp_path), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and excerpt in lines[0], lines


def test_plot_output_that_cannot_be_written_is_one_line_and_any_name_gets_a_png(tmp_path):
    run = tmp_path / "odd $x^{$ run"  # matplotlib would read text between two $ as mathematics
    run.mkdir()
    (run / "metrics.jsonl").write_bytes(GOOD)
    missing = CliRunner().invoke(main, ["plot", str(run), "-o", str(tmp_path / "nosuch" / "x.png")])
    assert missing.exit_code == 2 and len(missing.stderr.splitlines()) == 1  # as viz says it, before the work
    assert missing.stderr.startswith("Error: Invalid value for '--output': is in a folder that does not exist")
    named = CliRunner().invoke(main, ["plot", str(run), "-o", str(tmp_path / "bpc.txt")])
    assert named.exit_code == 0, named.output
    assert png_size(tmp_path / "bpc.txt") == (900, 550)

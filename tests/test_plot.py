"""charrnn plot: a readable PNG of train and validation bpc against step, runs overlaid."""

import struct
import sys

from click.testing import CliRunner

from charrnn.cli import main
from conftest import PANGRAM

FAST = ["--hidden-size", "32", "--layers", "1", "--seq-len", "16", "--batch-size", "4", "--log-every", "10",
        "--eval-every", "20", "--max-steps", "60", "--quiet"]


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
    result = CliRunner().invoke(main, ["plot", str(tmp_path / "slow"), str(tmp_path / "fast"), "-o", str(tmp_path / "bpc.png")])
    assert result.exit_code == 0, result.output
    assert png_size(tmp_path / "bpc.png") == (900, 550)


def test_plot_says_what_is_missing(tmp_path, monkeypatch):
    empty = CliRunner().invoke(main, ["plot", str(tmp_path), "-o", str(tmp_path / "x.png")])
    assert empty.exit_code == 1 and "no metrics.jsonl in" in empty.stderr
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 1, "train_bpc": 3.0}\n', encoding="utf-8")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    result = CliRunner().invoke(main, ["plot", str(tmp_path), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 1 and "pip install 'charrnn[plot]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

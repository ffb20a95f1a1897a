"""metrics.jsonl: a line per training-loss report and per validation; a resume appends without repeats."""

import json

from click.testing import CliRunner

from charrnn.cli import main
from charrnn.metrics import NAME, read_metrics
from conftest import PANGRAM

FAST = ["--hidden-size", "32", "--layers", "1", "--seq-len", "16", "--batch-size", "4", "--log-every", "10",
        "--eval-every", "15", "--save-every", "15", "--min-lr-ratio", "1", "--quiet"]


def train(corpus, out, *extra):
    result = CliRunner().invoke(main, ["train", str(corpus), *FAST, "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return read_metrics(out)


def test_each_report_and_validation_is_a_line_and_a_resume_appends_without_repeats(tmp_path):
    corpus = tmp_path / "pangram.txt"
    corpus.write_text(PANGRAM * 300, encoding="utf-8")
    records = train(corpus, tmp_path / "run", "--max-steps", "30")
    assert [(r["kind"], r["step"]) for r in records] == [
        ("train", 10), ("validation", 15), ("train", 20), ("train", 30), ("validation", 30)
    ]
    first = records[0]
    assert set(first) == {"kind", "step", "epoch", "train_bpc", "lr", "chars_per_sec", "grad_norm", "elapsed"}
    assert 0 < first["epoch"] < 1 and first["grad_norm"] > 0 and first["lr"] > 0 and first["chars_per_sec"] > 0
    assert records[-1]["val_bpc"] < records[1]["val_bpc"]  # it learns, and the file shows it

    # A crash after step 30 left lines for steps the checkpoint does not hold, the last cut short.
    with open(tmp_path / "run" / NAME, "a", encoding="utf-8") as file:
        file.write(json.dumps({"kind": "train", "step": 40, "train_bpc": 1.0}) + "\n" + '{"kind": "tra')
    resumed = train(corpus, tmp_path / "run", "--resume", "--max-steps", "45")
    steps = [(r["kind"], r["step"]) for r in resumed]
    assert steps == [("train", 10), ("validation", 15), ("train", 20), ("train", 30), ("validation", 30),
                     ("train", 40), ("train", 45), ("validation", 45)]
    assert resumed[5]["train_bpc"] != 1.0  # the crashed run's line for step 40 was dropped, not kept

"""What a run needs, read from its own curves: made-up curves for each rule, and real runs."""

import math
import random

from click.testing import CliRunner

from charrnn.cli import main
from charrnn.diagnosis import curves, diagnose
from helpers import PANGRAM, TINY_OPTIONS, train


def _curve(*losses, every=500):
    return [(every * (i + 1), loss) for i, loss in enumerate(losses)]


def test_validation_rising_while_training_falls_is_overfitting():
    validation = _curve(2.60, 2.30, 2.15, 2.10, 2.13, 2.16, 2.20)
    training = _curve(2.70, 2.30, 2.10, 1.95, 1.85, 1.75, 1.65)
    lines = diagnose(validation, training)
    assert lines[0].startswith("Diagnosis: overfitting.")
    assert "best at step 2,000 (2.1000 bpc; best.pt holds it)" in lines[0] and "rose to 2.2000" in lines[0]
    assert "--dropout" in lines[1] and "--hidden-size" in lines[1]


def test_a_rise_within_the_wobble_of_evaluation_says_nothing():
    validation = _curve(2.60, 2.30, 2.15, 2.10, 2.105, 2.11)  # a tenth of a percent: no verdict
    training = _curve(2.70, 2.30, 2.10, 1.95, 1.90, 1.88)
    assert diagnose(validation, training) == []


def test_both_curves_still_falling_at_the_end_is_underfitting():
    validation = _curve(3.2, 2.9, 2.7, 2.55, 2.45, 2.35)
    training = _curve(3.3, 3.0, 2.75, 2.6, 2.5, 2.4)
    lines = diagnose(validation, training)
    assert lines[0].startswith("Diagnosis: underfitting: training and validation loss were still falling")
    assert "--max-steps" in lines[1] and "--resume" in lines[1] and "--hidden-size" in lines[1]


def test_without_validation_the_training_curve_speaks_alone():
    assert "the training loss was still falling" in diagnose([], _curve(3.3, 3.0, 2.75, 2.6, 2.5, 2.4))[0]
    assert diagnose([], _curve(2.0, 1.9, 1.85, 1.849, 1.848, 1.847)) == []


def test_validation_still_improving_slowly_gets_one_calm_line():
    validation = _curve(2.5, 2.2, 2.12, 2.11, 2.105, 2.10)  # 0.5-3 % over the second half
    training = _curve(2.6, 2.2, 2.05, 2.03, 2.02, 2.01)
    assert diagnose(validation, training) == ["Validation is still improving slowly: more steps may help a little."]


def test_a_loss_that_becomes_nan_or_explodes_is_divergence():
    nan = diagnose(_curve(2.5, 2.3), _curve(2.6, math.nan))
    assert nan[0].startswith("Diagnosis: the loss diverged") and "lower --lr" in nan[1]
    exploded = diagnose(_curve(2.5, 2.3, 2.4, 4.0), _curve(2.6, 2.3, 2.2, 3.1, 4.2))
    assert exploded[0].startswith("Diagnosis: the training loss exploded, from 2.2000") and "lower --lr" in exploded[1]


def test_validation_far_above_its_best_with_no_better_training_is_divergence():
    lines = diagnose(_curve(2.5, 2.2, 2.1, 2.9, 3.4), _curve(2.6, 2.2, 2.0, 2.1, 2.2))
    assert lines[0].startswith("Diagnosis: the run diverged: validation rose from 2.1000 bpc (step 1,500")
    assert "lower --lr" in lines[1]


def test_a_model_that_learned_its_text_by_heart_has_not_diverged():
    """A training loss wobbling near zero (0.0004 to 0.0006 bpc) rises by half: not an explosion."""
    lines = diagnose(_curve(2.26, 2.95, 3.07, 3.17), _curve(0.27, 0.006, 0.0004, 0.0006))
    assert lines[0].startswith("Diagnosis: overfitting.")


def test_a_training_loss_flat_after_many_steps_has_stalled():
    training = _curve(4.75, 4.74, 4.73, 4.74, 4.72, every=100)
    lines = diagnose(_curve(4.74, every=500), training)
    assert lines[0].startswith("Diagnosis: the loss stalled: training went only from 4.7500 to 4.7200 bpc in 500 steps")
    assert "--lr" in lines[1]
    assert diagnose([], _curve(4.75, 4.74, 4.73, 4.74, 4.72, every=10)) == []  # 50 steps: too short to say


def test_curves_come_from_the_records_of_metrics_jsonl():
    records = [
        {"kind": "train", "step": 10, "train_bpc": 3.0},
        {"kind": "validation", "step": 10, "val_bpc": 2.9, "best": True},
        {"kind": "train", "step": 20, "train_bpc": None},  # not a figure: left out
        {"kind": "something else", "step": 20, "val_bpc": 1.0},
        {"kind": "train", "step": 5, "train_bpc": 3.5},
    ]
    assert curves(records) == ([(10, 2.9)], [(5, 3.5), (10, 3.0)])


def _overfitting_corpus(path):
    """A sentence repeated, then a tail of the same words in other orders: the last 10 % held out."""
    words, rng = PANGRAM.split(), random.Random(0)
    tail = "".join(" ".join(rng.sample(words, len(words))) + "\n" for _ in range(10))
    path.write_text(PANGRAM * 90 + tail, encoding="utf-8")
    return path


def test_a_run_built_to_overfit_is_told_so_when_patience_stops_it(tmp_path):
    """A wide model, no dropout and a high learning rate learn the sentence by heart within 40
    steps; validation on the other orders rises from then on, and --patience stops the run."""
    corpus = _overfitting_corpus(tmp_path / "corpus.txt")
    args = "--hidden-size 128 --layers 1 --seq-len 32 --batch-size 8 --lr 0.01 --warmup-steps 5 --dropout 0"
    run = "--max-steps 400 --eval-every 20 --log-every 10 --patience 3 --threads 1 --quiet"
    result = CliRunner().invoke(
        main, ["train", str(corpus), "--out", str(tmp_path / "run"), *args.split(), *run.split()]
    )
    assert result.exit_code == 0, result.output
    assert "stopping early at step 80" in result.stderr
    assert "Diagnosis: overfitting. Validation was best at step 20 (" in result.stderr
    assert "best.pt holds it" in result.stderr and "--dropout" in result.stderr


def test_a_run_built_to_underfit_is_told_so(tmp_path):
    """Forty steps of a small model: both curves are still falling steeply when the run ends."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PANGRAM * 60, encoding="utf-8")
    args = "--hidden-size 32 --seq-len 16 --batch-size 4 --max-steps 40 --eval-every 5 --log-every 5 --threads 1 -q"
    result = CliRunner().invoke(main, ["train", str(corpus), "--out", str(tmp_path / "run"), *args.split()])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    finished = next(i for i, line in enumerate(lines) if line.startswith("Finished at step 40"))
    assert lines[finished + 1].startswith("Diagnosis: underfitting: training and validation loss were still falling")
    assert "--max-steps" in lines[finished + 2]


def test_the_python_api_returns_the_diagnosis(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PANGRAM * 60, encoding="utf-8")
    from charrnn import api

    result = api.train(corpus, out=tmp_path / "run", progress=False, threads=1, **TINY_OPTIONS)
    assert result.diagnosis and all(isinstance(line, str) for line in result.diagnosis)
    assert train(corpus, tmp_path / "plain", TINY_OPTIONS).diagnosis == ()  # the trainer alone does not read curves

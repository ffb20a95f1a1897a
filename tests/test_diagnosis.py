"""What a run needs, read from its own curves: made-up curves for each rule, the curves of real
runs stored under tests/data/runs, and the command the advice ends with."""

import json
import math
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from charrnn.cli.commands import main
from charrnn.run.diagnosis import Command, Curves, NextRun, RunFacts, curves, diagnose, next_command
from charrnn.store.metrics import MetricsRecords
from helpers import PANGRAM, TINY_OPTIONS, train

RUNS = Path(__file__).parent / "data" / "runs"


def _curve(*losses, every=500):
    return [(every * (i + 1), loss) for i, loss in enumerate(losses)]


def _cosine(steps, every=500, peak=3e-3, floor=0.1):
    """The learning rate at each report of a run of `steps` (no warm-up: it is short here)."""
    return [
        (step, peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * step / steps))))
        for step in range(every, steps + 1, every)
    ]


def _facts(steps=3000, **changes):
    base = dict(
        steps=steps, max_steps=steps, max_time=None, elapsed=60.0, hidden_size=256, dropout=0.2, lr=3e-3, vocab_size=65
    )
    return RunFacts(**{**base, **changes})


def _diagnose(validation, training, every=500, **facts):
    steps = training[-1][0]
    return diagnose(Curves(validation, training, _cosine(steps, every)), _facts(steps, **facts))


def test_validation_rising_while_training_falls_is_overfitting():
    validation = _curve(2.60, 2.30, 2.15, 2.10, 2.13, 2.16, 2.20)
    training = _curve(2.70, 2.30, 2.10, 1.95, 1.85, 1.75, 1.65)
    found = _diagnose(validation, training)
    assert found.finding.startswith("Diagnosis: overfitting.")
    assert "best at step 2,000 (2.1000 bpc; best.pt holds it)" in found.finding and "rose to 2.2000" in found.finding
    assert found.next_run == NextRun(False, {"dropout": 0.4})


def test_overfitting_with_dropout_at_its_highest_asks_for_a_smaller_model():
    validation = _curve(2.60, 2.30, 2.15, 2.10, 2.13, 2.16, 2.20)
    training = _curve(2.70, 2.30, 2.10, 1.95, 1.85, 1.75, 1.65)
    assert _diagnose(validation, training, dropout=0.6).next_run == NextRun(False, {"hidden_size": 128})


def test_a_rise_within_the_wobble_of_evaluation_is_no_overfitting():
    validation = _curve(2.60, 2.30, 2.15, 2.10, 2.105, 2.11)  # a tenth of a percent
    training = _curve(2.70, 2.30, 2.10, 1.95, 1.90, 1.88)
    found = _diagnose(validation, training)
    assert found is None or not found.finding.startswith("Diagnosis: overfitting")


def test_a_run_still_falling_at_full_rate_is_told_to_go_on_whatever_its_flat_end():
    """A cosine schedule flattens every run's end: steep in the middle means a longer run pays."""
    training = _curve(3.3, 3.0, 2.75, 2.6, 2.55, 2.54, every=100)  # flat over the last two reports
    validation = [(300, 2.8), (600, 2.58)]  # two evaluations: too few to see the flattening
    found = _diagnose(validation, training, every=100)
    assert found.finding.startswith("Diagnosis: still learning:") and "learning rate's decay" in found.finding
    assert found.next_run == NextRun(True, {"max_steps": 1200})


def test_a_run_by_time_is_told_to_take_more_time():
    training = _curve(3.3, 3.0, 2.75, 2.6, 2.55, 2.54, every=100)
    found = _diagnose([(600, 2.6)], training, every=100, max_steps=None, max_time=120.0)
    assert found.next_run == NextRun(True, {"max_time": 240.0})


def test_without_validation_the_training_curve_speaks_alone():
    found = _diagnose([], _curve(3.3, 3.0, 2.75, 2.6, 2.5, 2.4))
    assert found.finding.startswith("Diagnosis: still learning:") and "training reached 2.4000" in found.finding


def test_a_loss_flat_at_full_rate_with_no_gap_asks_for_a_larger_model():
    training = _curve(3.5, 2.02, 2.01, 2.006, 2.005, 2.004)
    validation = _curve(3.4, 2.04, 2.035, 2.03, 2.03, 2.028)
    found = _diagnose(validation, training)
    assert found.finding.startswith("Diagnosis: the model has no room left")
    assert found.next_run == NextRun(False, {"hidden_size": 512})


def test_training_far_below_a_flat_validation_is_memorising():
    training = _curve(3.0, 2.2, 1.6, 1.45, 1.40, 1.39)
    validation = _curve(2.5, 2.3, 2.25, 2.24, 2.24, 2.239)
    found = _diagnose(validation, training)
    assert found.finding.startswith("Diagnosis: memorising:") and found.next_run == NextRun(False, {"dropout": 0.4})


def test_a_loss_that_becomes_nan_or_explodes_is_divergence():
    nan = _diagnose(_curve(2.5, 2.3), _curve(2.6, math.nan))
    assert nan.finding.startswith("Diagnosis: the loss diverged") and nan.next_run == NextRun(False, {"lr": 0.001})
    exploded = _diagnose(_curve(2.5, 2.3, 2.4, 4.0), _curve(2.6, 2.3, 2.2, 3.1, 4.2))
    assert exploded.finding.startswith("Diagnosis: the training loss exploded, from 2.2000")


def test_a_loss_above_a_uniform_guess_is_divergence():
    """A run starts at log2(vocabulary) bits and falls: above it, the rate throws the model about."""
    found = _diagnose(_curve(4.5, 4.4, every=200), _curve(22.6, 7.8, 4.5, 4.4, every=100), every=100)
    assert found.finding.startswith("Diagnosis: the loss went above a uniform guess (22.6000 bpc at step 100;")
    assert "among 65 characters scores 6.0224" in found.finding and found.next_run == NextRun(False, {"lr": 0.001})


def test_a_model_no_better_than_the_characters_frequencies_learned_nothing_of_their_order():
    flat = (_curve(4.50, 4.47, 4.46), _curve(4.6, 4.5, 4.47, 4.46, 4.46, every=100))
    high = _diagnose(*flat, every=100, lr=0.05, unigram_bits=4.42)
    assert high.finding.startswith("Diagnosis: the model learned only which characters are common: its best is 4.4600")
    assert "frequencies alone score 4.4200. The learning rate is too high." in high.finding
    assert high.next_run == NextRun(False, {"lr": 0.005})
    assert _diagnose(*flat, every=100, lr=1e-4, unigram_bits=4.42).next_run == NextRun(False, {"lr": 0.001})
    typical = _diagnose(*flat, every=100, unigram_bits=4.42)
    assert "little order to learn" in typical.finding and typical.next_run is None
    assert not _diagnose(*flat, every=100, unigram_bits=5.2).finding.startswith("Diagnosis: the model learned only")


def test_validation_far_above_its_best_with_no_better_training_is_divergence():
    found = _diagnose(_curve(2.5, 2.2, 2.1, 2.9, 3.4), _curve(2.6, 2.2, 2.0, 2.1, 2.2))
    assert found.finding.startswith("Diagnosis: the run diverged: validation rose from 2.1000 bpc (step 1,500")


def test_a_model_that_learned_its_text_by_heart_has_not_diverged():
    """A training loss wobbling near zero (0.0004 to 0.0006 bpc) rises by half: not an explosion."""
    found = _diagnose(_curve(2.26, 2.95, 3.07, 3.17), _curve(0.27, 0.006, 0.0004, 0.0006))
    assert found.finding.startswith("Diagnosis: overfitting.")


def test_a_training_loss_flat_after_many_steps_has_stalled():
    training = _curve(4.75, 4.74, 4.73, 4.74, 4.72, every=100)
    found = _diagnose(_curve(4.74, every=500), training, every=100)
    assert found.finding.startswith("Diagnosis: the loss stalled: training went only from 4.7500 to 4.7200 bpc")
    assert found.next_run == NextRun(False, {"lr": 0.03})  # it barely moves: a larger rate
    jumpy = _diagnose([], _curve(4.75, 5.2, 4.9, 5.1, 4.74, every=100), every=100)
    assert "jumps about" in jumpy.finding and jumpy.next_run == NextRun(False, {"lr": 0.0003})
    short = _diagnose([], _curve(4.75, 4.74, 4.73, 4.74, 4.72, every=10), every=10)  # 50 steps: too short to say
    assert short is None or not short.finding.startswith("Diagnosis: the loss stalled")


def test_curves_come_from_the_records_of_metrics_jsonl():
    records = [
        {"kind": "train", "step": 10, "train_bpc": 3.0, "lr": 0.003},
        {"kind": "validation", "step": 10, "val_bpc": 2.9, "best": True},
        {"kind": "train", "step": 20, "train_bpc": None},  # not a figure: left out
        {"kind": "something else", "step": 20, "val_bpc": 1.0},
        {"kind": "train", "step": 5, "train_bpc": 3.5, "lr": 0.001},
    ]
    assert curves(records) == Curves([(10, 2.9)], [(5, 3.5), (10, 3.0)], [(5, 0.001), (10, 0.003)])


def test_a_log_of_any_length_is_read_into_a_bounded_curve():
    records = ({"kind": "train", "step": step, "train_bpc": 1.0, "lr": 0.1} for step in range(1, 100_001))
    read = curves(records)
    assert len(read.training) < 8192 and read.training[-1][0] == 100_000 and read.training[0][0] < 100


# The next command, written for the shell and for Python.

RUN = Command(corpus=["poems.txt"], out="runs/poems", options={"hidden_size": 512, "max_time": 600.0})


def test_a_new_run_repeats_the_options_given_with_the_change_and_a_new_folder():
    assert (
        next_command(NextRun(False, {"dropout": 0.4}), RUN)
        == "charrnn train poems.txt --hidden-size 512 --max-time 10m --dropout 0.4 --out runs/poems-2"
    )
    taken = {"runs/poems-2", "runs/poems-3"}
    assert next_command(NextRun(False, {"dropout": 0.4}), RUN, taken=taken.__contains__).endswith("--out runs/poems-4")


def test_a_longer_run_resumes_this_one():
    assert next_command(NextRun(True, {"max_steps": 24000}), RUN) == (
        "charrnn train --out runs/poems --resume --max-steps 24000"
    )
    default_out = Command(corpus=[], out="checkpoints")
    assert next_command(NextRun(True, {"max_steps": 24000}), default_out) == "charrnn train --resume --max-steps 24000"
    assert next_command(NextRun(True, {"max_time": 5400.0}), default_out).endswith("--max-time 1h30m")


def test_in_python_the_next_run_is_a_call_of_charrnn_train():
    assert next_command(NextRun(False, {"dropout": 0.4}), RUN, python=True) == (
        "charrnn.train('poems.txt', hidden_size=512, max_time=600.0, dropout=0.4, out='runs/poems-2')"
    )
    assert next_command(NextRun(True, {"max_steps": 24000}), RUN, python=True) == (
        "charrnn.train(out='runs/poems', resume=True, max_steps=24000)"
    )


def test_names_are_quoted_for_the_shell():
    odd = Command(corpus=["my poems.txt", "-x"], out="runs/a b", options={})
    assert next_command(NextRun(False, {"lr": 0.001}), odd) == (
        "charrnn train 'my poems.txt' -x --lr 0.001 --out 'runs/a b-2'"
    )


# Real runs: their metrics.jsonl and facts, stored (tests/data/runs/*/facts.json says how each was made).


def _stored(name):
    folder = RUNS / name
    facts = json.loads((folder / "facts.json").read_text(encoding="utf-8"))
    found = diagnose(curves(MetricsRecords(folder)), RunFacts(**facts["facts"]))
    return found, Command(facts["corpus"], facts["out"], facts["options"])


def test_a_short_shakespeare_run_is_told_to_train_longer():
    """600 steps of tiny Shakespeare reach 2.7 bpc; the default 12,000 reach 2.07."""
    found, command = _stored("shakespeare-600")
    assert found.finding.startswith("Diagnosis: still learning:")
    assert next_command(found.next_run, command) == "charrnn train --out runs/shakespeare --resume --max-steps 1200"


def test_a_tang_poems_run_still_learning_at_its_end_is_told_to_go_on_not_to_stop():
    """2,500 steps of 300 Tang poems at dropout 0.2: training far below validation, but validation
    still falling when the schedule ended (7.19 bpc): not overfitting yet, so go on."""
    found, command = _stored("tang300-2500")
    assert found.finding.startswith("Diagnosis: still learning:")
    assert "not the model running out of room" in found.finding
    assert next_command(found.next_run, command) == "charrnn train --out runs/tang --resume --max-steps 5000"


def test_a_diverged_run_is_told_to_lower_the_learning_rate():
    found, command = _stored("diverged")
    assert "learning rate is too high" in found.finding
    assert "--lr" in next_command(found.next_run, command)


# End to end.


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
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(corpus), "--out", str(out), *args.split(), *run.split()])
    assert result.exit_code == 0, result.output
    assert "stopping early at step 80" in result.stderr
    assert "Diagnosis: overfitting. Validation was best at step 20 (" in result.stderr
    assert "best.pt holds it" in result.stderr
    same = "--seq-len 32 --batch-size 8 --lr 0.01 --warmup-steps 5 --max-steps 400 --eval-every 20 --log-every 10"
    next_run = f"charrnn train {corpus} --layers 1 --hidden-size 128 --dropout 0.2 {same} --patience 3 --out {out}-2"
    assert f"Next: {next_run}\n" in result.stderr  # the options given, in --help's order, with more dropout


def test_a_run_built_to_underfit_is_told_to_go_on(tmp_path):
    """Forty steps of a small model: both curves are still falling steeply when the run ends."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PANGRAM * 60, encoding="utf-8")
    out = tmp_path / "run"
    args = "--hidden-size 32 --seq-len 16 --batch-size 4 --max-steps 40 --eval-every 5 --log-every 5 --threads 1 -q"
    result = CliRunner().invoke(main, ["train", str(corpus), "--out", str(out), *args.split()])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    finished = next(i for i, line in enumerate(lines) if line.startswith("Finished at step 40"))
    assert lines[finished + 1].startswith("Diagnosis: still learning:")
    assert lines[finished + 2] == f"Next: charrnn train --out {out} --resume --max-steps 80"


@pytest.mark.parametrize("python", [False, True])
def test_the_python_api_returns_the_diagnosis_in_its_own_words(tmp_path, python):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PANGRAM * 60, encoding="utf-8")
    from charrnn import api

    result = api.train(corpus, out=tmp_path / "run", progress=False, threads=1, **TINY_OPTIONS)
    advice = result.advice(python=python)
    assert advice[0].startswith("Diagnosis:")
    assert advice[-1].startswith("Next: charrnn.train(" if python else "Next: charrnn train ")
    assert train(corpus, tmp_path / "plain", TINY_OPTIONS).diagnosis is None  # the trainer alone does not read curves

"""`--threads auto`: the tuner keeps the faster thread count (on made-up step times, never the
clock), train's option takes auto or a count, and switching counts mid-run changes nothing a
run computes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from charrnn import api
from charrnn.cli.commands import main
from charrnn.core.threads import (
    DECIDE_AFTER,
    FIRST_INTERVAL,
    FIRST_WINDOW,
    MAX_INTERVAL,
    PROBE_STEPS,
    WINDOW,
    ThreadTuner,
    candidate_counts,
)
from charrnn.errors import ConfigError
from charrnn.run import training
from charrnn.run.training import TrainRequest, run_training
from charrnn.store.checkpoint import read_checkpoint
from helpers import PANGRAM, fast_args, training_state_differences

# Seconds per 100 steps of the default model on two cores, as measured (scripts/bench_threads.py):
# alone, two threads win; beside one busy process, two threads crawl and one is barely touched.
ALONE = {1: 3.54, 2: 2.49}
BUSY = {1: 3.38, 2: 7.83}


def simulate(busy_at, steps: int, tables=(ALONE, BUSY), most: int = 2, seed: int = 0):
    """Runs the tuner on made-up step times (the table of the moment, +-20 % noise, and a 4x
    stall every 97 steps); returns the count each step ran on, the count chosen at each step
    (probes aside), and the time lost against always running the faster count (a fraction)."""
    rng = random.Random(seed)
    settings: list[int] = []
    tuner = ThreadTuner(settings.append, most)
    counts, chosen, total, best = [], [], 0.0, 0.0
    for step in range(steps):
        table = tables[busy_at(step)]
        factor = rng.uniform(0.8, 1.2) * (4 if step % 97 == 0 else 1)
        counts.append(tuner.current)
        chosen.append(tuner.chosen)
        total += table[tuner.current] * factor
        best += min(table.values()) * factor
        tuner.observe(table[tuner.current] * factor)
        assert not settings or settings[-1] == tuner.current  # it set what it says it runs
    return counts, chosen, total / best - 1


def faster(table: dict[int, float]) -> int:
    return min(table, key=table.get)


@pytest.mark.parametrize("busy", [False, True])
def test_the_tuner_settles_on_the_faster_count_and_probing_costs_little(busy):
    table = (ALONE, BUSY)[busy]
    counts, chosen, lost = simulate(lambda step: busy, 5000)
    assert chosen[WINDOW + PROBE_STEPS :] == [faster(table)] * (5000 - WINDOW - PROBE_STEPS)
    slower_steps = sum(count != faster(table) for count in counts[100:]) / len(counts[100:])
    assert slower_steps < 0.02
    assert lost < 0.03


def test_the_tuner_follows_a_neighbour_that_comes_and_goes():
    _, chosen, _ = simulate(lambda step: 1000 <= step < 3000, 5000)
    assert set(chosen[100:1000]) == {2}
    # The neighbour arrives: two threads' steps triple, which brings a probe within a window.
    assert set(chosen[1000 + WINDOW + PROBE_STEPS : 3000]) == {1}
    # It leaves: one thread's steps hardly change; the periodic probe finds two threads faster.
    assert set(chosen[3000 + MAX_INTERVAL + WINDOW + PROBE_STEPS :]) == {2}


def test_with_many_cores_it_climbs_among_a_few_counts():
    assert candidate_counts(1) == [1] and candidate_counts(2) == [1, 2] and candidate_counts(4) == [1, 2, 3, 4]
    assert candidate_counts(16) == [1, 8, 15, 16]
    alone = {16: 1.0, 15: 1.05, 8: 1.7, 1: 9.0}
    busy = {16: 3.0, 15: 1.1, 8: 1.8, 1: 9.0}  # a neighbour takes one core: all threads wait for the slowest
    _, chosen, lost = simulate(lambda step: step >= 500, 3000, tables=(alone, busy), most=16)
    assert set(chosen[:500]) == {16} and set(chosen[500 + WINDOW + PROBE_STEPS :]) == {15} and lost < 0.05


def test_the_first_probe_comes_after_a_few_steps_and_a_far_slower_one_ends_after_its_first():
    settings: list[int] = []
    tuner = ThreadTuner(settings.append, 2)
    for _ in range(FIRST_WINDOW):
        tuner.observe(3.0)  # two threads beside a busy program
    assert settings == [1]  # a short loop (eval's windows) is not half over before it probes
    for _ in range(DECIDE_AFTER):
        tuner.observe(1.0)
    assert tuner.chosen == 1 and tuner.probing is None and settings == [1]
    for _ in range(FIRST_INTERVAL + WINDOW):
        if tuner.probing is None:
            tuner.observe(1.0)
    assert settings == [1, 2]  # the periodic probe of two threads
    tuner.observe(3.0)
    assert settings == [1, 2, 1] and tuner.probing is None  # over after one step: each costs three


def test_on_a_crowded_machine_probes_of_a_far_slower_count_stay_rare():
    crowded = {1: 1.0, 2: 35.0}  # measured: two threads beside two busy processes on two cores
    counts, chosen, lost = simulate(lambda step: True, 10_000, tables=(crowded, crowded))
    assert set(chosen[FIRST_WINDOW + DECIDE_AFTER :]) == {1}
    assert counts.count(2) <= FIRST_WINDOW + 10 and lost < 0.05  # the first window included


def test_one_core_leaves_nothing_to_tune():
    settings: list[int] = []
    tuner = ThreadTuner(settings.append, 1)
    for step in range(1000):
        tuner.observe(0.01 * (1 + step % 7))
    tuner.restore()
    assert settings == [] and tuner.current == 1


def test_restore_gives_back_the_count_it_started_with():
    settings: list[int] = []
    tuner = ThreadTuner(settings.append, 2)
    for _ in range(WINDOW):
        tuner.observe(1.0)
    assert settings == [1]  # the first probe, once a window of steps is timed
    tuner.restore()
    assert settings == [1, 2]


# The option ----------------------------------------------------------------------------------


def parsed_threads(*args: str) -> object:
    return main.commands["train"].make_context("train", ["corpus.txt", *args]).params["threads"]


def test_train_threads_is_auto_unless_a_count_is_given(tmp_path):
    assert parsed_threads() == "auto"
    assert parsed_threads("--threads", "auto") == "auto"
    assert parsed_threads("--threads", "3") == 3
    config = tmp_path / "run.toml"
    config.write_text('threads = "auto"\n', encoding="utf-8")
    assert parsed_threads("--config", str(config)) == "auto"
    config.write_text("threads = 2\n", encoding="utf-8")
    assert parsed_threads("--config", str(config)) == 2


@pytest.mark.parametrize(
    "args, env, toml, fragment",
    [
        (["--threads", "0"], {}, None, "0 is not in the range x>=1"),
        (["--threads", "x"], {}, None, "'x' is neither auto nor an integer"),
        (["--threads", "1.5"], {}, None, "'1.5' is neither auto nor an integer"),
        ([], {"CHARRNN_TRAIN_THREADS": "x"}, None, "(from the environment variable CHARRNN_TRAIN_THREADS)"),
        ([], {"CHARRNN_TRAIN_THREADS": "0"}, None, "0 is not in the range x>=1"),
        ([], {}, 'threads = "x"', "threads: 'x' is neither auto nor an integer"),
        ([], {}, "threads = 0", "threads: 0 is not in the range x>=1"),
        ([], {}, "threads = 1.5", 'threads: must be "auto" or an integer, got 1.5'),
    ],
)
def test_a_bad_threads_value_is_one_line_and_exit_2(tmp_path, args, env, toml, fragment):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PANGRAM * 50, encoding="utf-8")
    if toml is not None:
        (tmp_path / "run.toml").write_text(toml + "\n", encoding="utf-8")
        args = ["--config", str(tmp_path / "run.toml")]
    result = CliRunner().invoke(main, ["train", str(corpus), *args, "--out", str(tmp_path / "run")], env=env)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_the_api_takes_auto_or_a_count(tmp_path):
    with pytest.raises(ConfigError, match='threads must be "auto" or an integer >= 1'):
        api.train(tmp_path / "corpus.txt", out=tmp_path / "run", threads="x", progress=False)
    for bad in ("x", 0, 1.5, True):
        with pytest.raises(ConfigError, match='threads must be "auto" or an integer >= 1'):
            api.load(tmp_path, threads=bad)  # refused before any checkpoint is looked for


# The training loop -----------------------------------------------------------------------------


class Recording:
    """Stands for the tuner: counts the step times it is fed, on one thread."""

    made: list[Recording] = []

    def __init__(self, set_threads, most: int):
        self.times: list[float] = []
        self.restored = False
        self.chosen = most
        Recording.made.append(self)
        torch.set_num_threads(1)

    def observe(self, seconds: float) -> None:
        self.times.append(seconds)

    def restore(self) -> None:
        self.restored = True


def test_a_default_run_feeds_the_tuner_every_training_step_and_records_the_thread_count(
    tmp_path, pangram_file, monkeypatch
):
    monkeypatch.setattr(training, "ThreadTuner", Recording)
    Recording.made = []
    torch.set_num_threads(2)  # one thread leaves nothing to tune (conftest gives it back)
    # A model whose step is the same on each count (a smaller one's may not be: then nothing is tuned).
    wide = fast_args(hidden_size=192, layers=2, embed_dim=32, batch_size=8)
    result = CliRunner().invoke(main, ["train", str(pangram_file), *wide, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "device cpu (threads: auto)" in result.stderr
    [tuner] = Recording.made
    assert len(tuner.times) == 20 and all(seconds > 0 for seconds in tuner.times)  # steps, not evaluations
    assert tuner.restored
    lines = (tmp_path / "run" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert {r["threads"] for r in records if r["kind"] == "train"} == {2}  # the count chosen


def test_a_fixed_count_is_kept_and_recorded(tmp_path, pangram_file, monkeypatch):
    monkeypatch.setattr(training, "ThreadTuner", Recording)
    Recording.made = []
    result = CliRunner().invoke(
        main, ["train", str(pangram_file), *fast_args(), "--threads", "1", "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 0, result.output
    assert "device cpu (1 thread)" in result.stderr and Recording.made == []
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {r["threads"] for r in records if r["kind"] == "train"} == {1}


class Switching(Recording):
    """Stands for the tuner: runs each few steps on another thread count, 1 and 2 in turn."""

    def observe(self, seconds: float) -> None:
        super().observe(seconds)
        torch.set_num_threads(1 + len(self.times) // 3 % 2)


# Wide enough that a second thread has work: AdamW's updates of each recurrent weight matrix
# (at least 192 x 192) pass torch's 32,768-element grain for threading.
WIDE = {
    "hidden_size": 192,
    "layers": 2,
    "embed_dim": 32,
    "seq_len": 16,
    "batch_size": 8,
    "warmup_steps": 3,
    "max_steps": 18,
    "eval_every": 9,
    "save_every": 9,
    "preview_chars": 0,
}


@pytest.mark.parametrize(
    "cell, input_mode",
    [("lstm", "embedding")]  # the default; the rest in the slow tier (two threads crawl on a busy machine)
    + [pytest.param(c, i, marks=pytest.mark.slow) for c in ("lstm", "gru", "rnn") for i in ("embedding", "one-hot")][
        1:
    ],
)
def test_switching_thread_counts_mid_run_trains_bit_identically(tmp_path, monkeypatch, cell, input_mode):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PANGRAM * 400 + "0123456789 ,.;:!?\n" * 50, encoding="utf-8")
    options = {**WIDE, "cell": cell, "input_mode": input_mode}

    def run(name: str, threads: int | str) -> Path:
        torch.set_num_threads(2 if threads == "auto" else threads)  # auto: from two, the stand-in switches
        request = TrainRequest(
            corpus=(str(corpus),), out_dir=tmp_path / name, device="cpu", threads=threads, options=options
        )
        run_training(request)
        return tmp_path / name / "latest.pt"

    monkeypatch.setattr(training, "ThreadTuner", Switching)
    Recording.made = []
    switching = run("switching", "auto")
    assert len(Recording.made[0].times) == WIDE["max_steps"]
    one, two = run("one", 1), run("two", 2)
    # Weights, optimizer moments, hidden state and generator state. (Not the validation loss: a
    # forward pass over the validation windows may differ in its last bits between thread counts.)
    assert training_state_differences(read_checkpoint(switching), read_checkpoint(one)) == []
    assert training_state_differences(read_checkpoint(switching), read_checkpoint(two)) == []


def test_a_step_is_compared_bit_for_bit_on_every_count_and_the_count_is_put_back():
    torch.set_num_threads(2)
    same = training._same_on_every_count(lambda: [torch.ones(3)], [1, 2])
    differs = training._same_on_every_count(lambda: [torch.full((3,), float(torch.get_num_threads()))], [1, 2])
    assert (same, differs, torch.get_num_threads()) == (True, False, 2)


def test_auto_threads_never_make_a_run_depend_on_timing(tmp_path, monkeypatch):
    # A small model, whose step (oneDNN's LSTM) may differ in its last bits between thread counts:
    # where it does, auto keeps the count it has; where it does not, switching is harmless. Either
    # way, auto switching counts on any schedule trains the run a fixed count trains.
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PANGRAM * 40, encoding="utf-8")
    monkeypatch.setattr(training, "ThreadTuner", Switching)

    def run(name: str, threads: int | str) -> Path:
        torch.set_num_threads(2)
        request = TrainRequest(
            corpus=(str(corpus),), out_dir=tmp_path / name, device="cpu", threads=threads, options=SMALL
        )
        run_training(request)
        return tmp_path / name / "latest.pt"

    auto, fixed = run("auto", "auto"), run("two", 2)
    assert training_state_differences(read_checkpoint(auto), read_checkpoint(fixed)) == []


SMALL = {**WIDE, "hidden_size": 24, "layers": 1, "embed_dim": 24, "batch_size": 4}

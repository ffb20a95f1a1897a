"""--threads auto beyond training: eval's windows, Model.score, viz's memory plot and batched
sampling run on the count the tuner chooses (timed by a made-up clock, never the real one), give
the process back the count they found, and compute the same results at any count."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import charrnn
from charrnn.cli.commands import main
from charrnn.core import threads
from charrnn.core.threads import DECIDE_AFTER, FIRST_WINDOW, Pool, blas_threads, running_on, torch_threads
from helpers import PANGRAM, fast_args

BUSY = {1: 1.0, 2: 3.0}  # seconds a piece takes on each count beside a busy program (made up)


class CountClock:
    """Stands for threads.clock: each reading moves on by what a piece costs on the pool's count
    at that moment, and notes that count. A piece is timed by two readings, and its count does
    not change in between, so every second reading is the count a piece ran on."""

    def __init__(self, pool: Pool, costs: dict[int, float] = BUSY):
        self.pool, self.costs = pool, costs
        self.now, self.readings = 0.0, []

    def __call__(self) -> float:
        count = self.pool.get()
        self.readings.append(count)
        self.now += self.costs[count]
        return self.now

    @property
    def ran_on(self) -> list[int]:
        return self.readings[1::2]


def assert_tuned_then_restored(clock: CountClock, pool: Pool) -> None:
    """The first pieces ran on two threads, the rest on one (the probe found it faster), but for
    the later probes of two, each over after its first piece; and afterwards the process is back
    on two."""
    first, rest = clock.ran_on[:FIRST_WINDOW], clock.ran_on[FIRST_WINDOW:]
    assert first == [2] * FIRST_WINDOW and rest[:DECIDE_AFTER] == [1] * DECIDE_AFTER, clock.ran_on
    assert rest.count(2) <= len(rest) / 40 and "2, 2" not in str(rest), clock.ran_on
    assert pool.get() == 2


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained run, and beside it a text long enough for several windows of eval (32
    streams of 256 characters each)."""
    folder = tmp_path_factory.mktemp("threads")
    (folder / "corpus.txt").write_text(PANGRAM * 120, encoding="utf-8")
    (folder / "held_out.txt").write_text(PANGRAM * 1900, encoding="utf-8")
    args = ["train", str(folder / "corpus.txt"), *fast_args(), "--out", str(folder / "run"), "--quiet"]
    assert CliRunner().invoke(main, args).exit_code == 0
    return folder


@pytest.fixture
def two_torch_threads():
    torch.set_num_threads(2)  # one thread leaves nothing to tune (conftest gives the count back)
    return torch_threads()


@pytest.fixture
def two_blas_threads():
    if not threads._blas_libraries():
        pytest.skip("numpy has no BLAS library that threadpoolctl knows")
    pool = blas_threads()
    before = pool.get()
    pool.set(2)
    yield pool
    pool.set(before)


def _cli(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


# The context every command runs its loop in ----------------------------------------------------


def recording_pool(count: int) -> tuple[Pool, list[int]]:
    settings: list[int] = []
    state = {"count": count}

    def set_count(n: int) -> None:
        settings.append(n)
        state["count"] = n

    return Pool(lambda: state["count"], set_count), settings


def test_a_fixed_count_holds_inside_the_block_and_the_count_before_comes_back_even_after_an_error():
    pool, settings = recording_pool(4)
    with pytest.raises(RuntimeError), running_on(pool, 1) as tuning:
        assert pool.get() == 1 and tuning.tuner is None
        raise RuntimeError
    assert pool.get() == 4 and settings == [1, 4]


def test_none_leaves_the_count_alone_and_one_thread_leaves_nothing_to_tune():
    pool, settings = recording_pool(3)
    with running_on(pool, None) as tuning:
        assert tuning.tuner is None
    assert settings == []
    pool, settings = recording_pool(1)
    with running_on(pool, "auto") as tuning:
        assert tuning.tuner is None and list(tuning.timed(range(3))) == [0, 1, 2]
    assert pool.get() == 1


def test_in_a_short_loop_a_probe_ends_after_one_clearly_slower_piece():
    """Alone, one thread scores about half as fast as two: in a loop of a dozen windows, three
    probe pieces on it would cost a fifth of the loop, so the first slow one ends the probe."""
    pool, settings = recording_pool(2)
    seconds = {1: 1.9, 2: 1.0}  # a piece's time on each count
    with running_on(pool, "auto") as tuning:
        ran = []
        for _ in range(FIRST_WINDOW + 3):
            ran.append(pool.get())
            tuning.tuner.observe(seconds[pool.get()])
    assert ran == [2] * FIRST_WINDOW + [1, 2, 2]  # one piece on the slower count, then back for good
    assert pool.get() == 2


# eval and Model.score ------------------------------------------------------------------------


def test_eval_runs_on_the_count_the_tuner_chooses_then_gives_it_back(run, two_torch_threads, monkeypatch):
    fixed = [_cli("eval", run / "held_out.txt", "-c", run / "run", "--threads", count) for count in (1, 2)]
    clock = CountClock(two_torch_threads)
    monkeypatch.setattr(threads, "clock", clock)
    tuned = _cli("eval", run / "held_out.txt", "-c", run / "run")  # --threads auto, the default
    assert_tuned_then_restored(clock, two_torch_threads)
    assert tuned == fixed[0] == fixed[1]  # every figure, to the digits eval prints
    assert "bits per character: " in tuned


def test_eval_in_windows_is_tuned_across_its_batches_of_windows(run, two_torch_threads, monkeypatch):
    fixed = _cli("eval", run / "held_out.txt", "-c", run / "run", "--windows", 16, "--threads", 1)
    clock = CountClock(two_torch_threads)
    monkeypatch.setattr(threads, "clock", clock)
    assert _cli("eval", run / "held_out.txt", "-c", run / "run", "--windows", 16) == fixed
    assert_tuned_then_restored(clock, two_torch_threads)


def test_model_score_is_tuned_and_a_fixed_count_is_given_back_too(run, two_torch_threads, monkeypatch):
    one = charrnn.load(run / "run", threads=1).score(run / "held_out.txt")
    assert torch.get_num_threads() == 2  # the call's count, not the process's from then on
    clock = CountClock(two_torch_threads)
    monkeypatch.setattr(threads, "clock", clock)
    tuned = charrnn.load(run / "run").score(run / "held_out.txt")
    assert_tuned_then_restored(clock, two_torch_threads)
    assert f"{tuned.bits:.4f} {tuned.nats:.4f} {tuned.perplexity:.3f}" == (
        f"{one.bits:.4f} {one.nats:.4f} {one.perplexity:.3f}"
    )


# viz -------------------------------------------------------------------------------------------


def memory_plot(run: Path, tmp_path: Path, *args) -> dict:
    page = tmp_path / "page.html"
    _cli("viz", run / "held_out.txt", "-c", run / "run", "-o", page, "--chars", 1000, *args)
    found = re.search(r'<script type="application/json" id="charrnn-data">(.*?)</script>', page.read_text(), re.S)
    return json.loads(found[1])["memory"]


def test_the_memory_plot_is_tuned_on_its_warm_up_and_the_same_at_any_count(
    run, tmp_path, two_torch_threads, monkeypatch
):
    fixed = [memory_plot(run, tmp_path, "--threads", count) for count in (1, 2)]
    clock = CountClock(two_torch_threads)
    monkeypatch.setattr(threads, "clock", clock)
    tuned = memory_plot(run, tmp_path)
    assert_tuned_then_restored(clock, two_torch_threads)  # the warm-up's 20 pieces of 10 characters
    assert tuned == fixed[0] == fixed[1]  # as the page rounds it


# sample -n and --beam (numpy's BLAS threads) -------------------------------------------------------


def test_batched_samples_and_beam_search_are_tuned_and_draw_the_same_text(run, two_blas_threads, monkeypatch):
    ways = {"samples": lambda m: m.samples(3, 60, "the ", seed=5), "beam": lambda m: m.sample(40, "the ", beam=4)}
    for make in ways.values():
        on_one = make(charrnn.load(run / "run", threads=1))
        assert two_blas_threads.get() == 2
        clock = CountClock(two_blas_threads)
        monkeypatch.setattr(threads, "clock", clock)
        assert make(charrnn.load(run / "run")) == on_one
        assert_tuned_then_restored(clock, two_blas_threads)


def test_sample_n_from_the_command_line_is_tuned_and_prints_the_same(run, two_blas_threads, monkeypatch):
    args = ["sample", "-c", run / "run", "-n", 3, "--length", 60, "--seed", 2]
    fixed = _cli(*args, "--threads", 1)
    clock = CountClock(two_blas_threads)
    monkeypatch.setattr(threads, "clock", clock)
    assert _cli(*args) == fixed
    assert_tuned_then_restored(clock, two_blas_threads)


@pytest.mark.parametrize("torch_first, kept", [(False, "1"), (True, None)])
def test_sample_holds_numpy_to_one_thread_unless_pytorch_adapts_first(torch_first, kept):
    """One stream of sampling runs numpy on one thread. PyTorch reads MKL_NUM_THREADS as well,
    so before --adapt's training steps the count is left to PyTorch (all its cores). numpy is
    not imported yet in a fresh process, as in the command."""
    environment = {key: value for key, value in os.environ.items() if not key.endswith("_NUM_THREADS")}
    script = (
        "import os\nfrom charrnn.cli.params import limit_blas_threads\n"
        f"limit_blas_threads('auto', 1, torch_first={torch_first})\n"
        "print(os.environ.get('MKL_NUM_THREADS'), os.environ.get('OPENBLAS_NUM_THREADS'))"
    )
    shown = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True, check=True)
    assert shown.stdout.split() == [str(kept)] * 2

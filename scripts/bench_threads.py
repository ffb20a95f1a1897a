#!/usr/bin/env python3
"""Each command's speed by thread setting, alone and beside one busy process (a laptop with a browser).

Every command that runs a loop of similar pieces is measured with charrnn's default, `--threads
auto`, and with each fixed setting (one thread, and one a core), on the default model (LSTM
2x256, a checkpoint of one training step: speed does not depend on the weights) and tiny
Shakespeare:

    train             seconds per 100 steps, steps 100-300 of a real `charrnn train` (its metrics.jsonl)
    eval              a whole `charrnn eval` of the held-out tenth (111,540 characters)
    Model.score       the call on the held-out tenth alone, timed inside a fresh process (start-up left out)
    viz               a whole `charrnn viz` of the held-out tenth's first 10,000 characters (its memory plot)
    sample -n 32      a whole `charrnn sample -n 32 --length 2000` (numpy's BLAS threads)
    sample --beam 32  a whole `charrnn sample --beam 32 --length 1000`

The settings alternate, round after round (their order reversed every other round), first alone
and then beside a process that keeps one core busy (`python -c 'while True: pass'`); each command
runs once first, untimed (caches, the corpus's encoding). The figures are medians, with ranges,
over the rounds. The section checks the targets of auto, its time over the best fixed setting's:
train 1.05 alone and 1.11 beside the busy process (0.95 and 0.9 of the speed), the rest 1.1 and 1.2.

    python scripts/bench_threads.py                 # everything, 3 rounds (about 15-20 minutes on 2 cores);
                                                    # writes the "threads" section of docs/benchmarks.md
    python scripts/bench_threads.py --commands eval,viz --rounds 1   # some commands: printed, not written
    python scripts/bench_threads.py --quick         # a smoke run: tiny model and text, one round, nothing written
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_doc import check_section, machine_description, replace_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
STEPS, FROM_STEP = 300, 100
QUICK = ["--hidden-size", "16", "--layers", "1", "--batch-size", "4", "--seq-len", "16"]  # --quick: a smoke run
# The environment's own thread settings would hide what charrnn chooses.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
ENV = {key: value for key, value in os.environ.items() if key not in THREAD_VARIABLES}


def _one_a_core() -> int:
    """torch's own thread count here: one a core (charrnn's default before --threads auto)."""
    import torch

    return torch.get_num_threads()


CORES = _one_a_core()
AUTO = "`--threads auto` (the default)"
ONE_A_CORE = f"`--threads {CORES}` (one a core)"
SETTINGS = {AUTO: None, ONE_A_CORE: CORES, "`--threads 1`": 1}  # name -> the --threads value (None: not given)


@dataclass(frozen=True)
class Setup:
    """What every measurement reads: the corpus, a checkpoint of the default (or --quick) model, scratch."""

    corpus: Path
    run: Path
    scratch: Path
    model: list[str]  # the model's options for `charrnn train`
    quick: bool

    @property
    def heldout(self) -> Path:
        """The corpus's last tenth (its validation text), which eval, score and viz read."""
        return self.scratch / "heldout.txt"


def _charrnn(*args: object) -> list[str]:
    return [sys.executable, "-m", "charrnn", *map(str, args)]


def _threads(threads: int | None) -> list[str]:
    return [] if threads is None else ["--threads", str(threads)]


def _seconds(command: list[str]) -> float:
    """The wall time of a whole command, its output thrown away."""
    start = time.perf_counter()
    subprocess.run(command, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def train_seconds(setup: Setup, threads: int | None) -> float:
    """Seconds per 100 steps, over steps FROM_STEP-STEPS (start-up left out), in a new out folder."""
    out = Path(tempfile.mkdtemp(dir=setup.scratch))
    options = ["--max-steps", STEPS, "--eval-every", 100_000, "--save-every", 100_000, "--log-every", 100]
    command = _charrnn("train", setup.corpus, "--out", out, *options, "--preview-chars", 0, "--quiet", *setup.model)
    subprocess.run([*command, *_threads(threads)], env=ENV, check=True, capture_output=True)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    elapsed = {r["step"]: r["elapsed"] for r in records if r["kind"] == "train"}
    return (elapsed[STEPS] - elapsed[FROM_STEP]) / ((STEPS - FROM_STEP) / 100)


def eval_seconds(setup: Setup, threads: int | None) -> float:
    return _seconds(_charrnn("eval", setup.heldout, "-c", setup.run, *_threads(threads)))


SCORE = """
import sys, time
import charrnn
model = charrnn.load(sys.argv[1], threads=sys.argv[3] if sys.argv[3] == "auto" else int(sys.argv[3]))
model.torch_model()  # loaded and built before the clock starts
start = time.perf_counter()
model.score(sys.argv[2])
print(time.perf_counter() - start)
"""


def score_seconds(setup: Setup, threads: int | None) -> float:
    """Model.score alone, in a fresh process (as a script or notebook calls it)."""
    setting = "auto" if threads is None else str(threads)
    command = [sys.executable, "-c", SCORE, str(setup.run), str(setup.heldout), setting]
    return float(subprocess.run(command, env=ENV, check=True, capture_output=True, text=True).stdout)


def viz_seconds(setup: Setup, threads: int | None) -> float:
    page = setup.scratch / "page.html"
    chars = ["--chars", 2000] if setup.quick else []
    return _seconds(_charrnn("viz", setup.heldout, "-c", setup.run, "-o", page, *chars, *_threads(threads)))


def samples_seconds(setup: Setup, threads: int | None) -> float:
    length = 200 if setup.quick else 2000
    return _seconds(_charrnn("sample", "-c", setup.run, "-n", 32, "--length", length, "--seed", 1, *_threads(threads)))


def beam_seconds(setup: Setup, threads: int | None) -> float:
    length = 100 if setup.quick else 1000
    return _seconds(_charrnn("sample", "-c", setup.run, "--beam", 32, "--length", length, *_threads(threads)))


@dataclass(frozen=True)
class Command:
    seconds: Callable[[Setup, int | None], float]
    what: str  # what a figure is
    targets: tuple[float, float]  # auto's time / the best fixed setting's, at most: alone, beside a busy process


COMMANDS = {
    "train": Command(train_seconds, "s per 100 steps", (1 / 0.95, 1 / 0.9)),
    "eval": Command(eval_seconds, "s, the whole command", (1.1, 1.2)),
    "Model.score": Command(score_seconds, "s, the call", (1.1, 1.2)),
    "viz": Command(viz_seconds, "s, the whole command", (1.1, 1.2)),
    "sample -n 32": Command(samples_seconds, "s, the whole command", (1.1, 1.2)),
    "sample --beam 32": Command(beam_seconds, "s, the whole command", (1.1, 1.2)),
}
Times = dict[tuple[str, str, bool], list[float]]  # (command, setting, busy) -> seconds, a round each


def measure(setup: Setup, commands: list[str], rounds: int) -> Times:
    for name in commands:  # untimed: the corpus's encoding cached, files in the page cache
        COMMANDS[name].seconds(setup, None)
    times: Times = {}
    for busy in (False, True):
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            for round_number in range(rounds):
                for name in commands:
                    settings = list(SETTINGS) if round_number % 2 == 0 else list(reversed(SETTINGS))
                    for setting in settings:
                        seconds = COMMANDS[name].seconds(setup, SETTINGS[setting])
                        times.setdefault((name, setting, busy), []).append(seconds)
                        print(f"{'busy' if busy else 'alone'}: {name}: {setting}: {seconds:.2f} s", flush=True)
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()
    return times


def section(times: Times, commands: list[str], rounds: int, corpus: Path) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"

    def ratio(name: str, busy: bool) -> tuple[float, str]:
        """auto's median over the best fixed setting's, and which that is."""
        fixed = {s: statistics.median(times[(name, s, busy)]) for s in SETTINGS if s != AUTO}
        best = min(fixed, key=fixed.get)
        return statistics.median(times[(name, AUTO, busy)]) / fixed[best], best

    rows, verdicts = [], []
    for name in commands:
        command = COMMANDS[name]
        for i, setting in enumerate(SETTINGS):
            label = f"{name} ({command.what})" if i == 0 else ""
            rows.append(
                f"| {label} | {setting} | {cell(times[(name, setting, False)])} | {cell(times[(name, setting, True)])} |"
            )
        judged = []
        for busy, target in zip((False, True), command.targets):
            value, best = ratio(name, busy)
            judged.append(
                f"{value:.2f} ({best.split(' (')[0]}; target <= {target:.2f}: {'met' if value <= target else 'NOT met'})"
            )
        verdicts.append(f"| {name} | {judged[0]} | {judged[1]} |")
    return (
        f"Seconds by `--threads` setting on the default model (LSTM 2x256) and {corpus.name}; median (range) of "
        f"{rounds} round{'s' if rounds > 1 else ''}, settings alternating; {machine_description()}. Busy: beside "
        "`python -c 'while True: pass'` (one core taken). Command: `python scripts/bench_threads.py`.\n\n"
        "| command | setting | alone | beside one busy process |\n| --- | --- | --- | --- |\n"
        + "\n".join(rows)
        + "\n\nauto's time / the best fixed setting's (which it is):\n\n"
        "| command | alone | beside one busy process |\n| --- | --- | --- |\n" + "\n".join(verdicts) + "\n"
    )


def make_setup(folder: Path, quick: bool) -> Setup:
    corpus = SHAKESPEARE if SHAKESPEARE.exists() and not quick else _generated_corpus(folder, quick)
    model = QUICK if quick else []
    run = folder / "run"
    command = _charrnn("train", corpus, "--out", run, "--max-steps", 1, "--preview-chars", 0, "--quiet", *model)
    subprocess.run(command, env=ENV, check=True, capture_output=True)
    setup = Setup(corpus, run, folder, model, quick)
    text = corpus.read_text(encoding="utf-8")
    setup.heldout.write_text(text[len(text) - len(text) // 10 :], encoding="utf-8")
    return setup


def _generated_corpus(folder: Path, quick: bool) -> Path:
    path = folder / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog.\n" * (3_000 if quick else 30_000), encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every setting, alone and busy (default 3)")
    parser.add_argument(
        "--commands",
        default=",".join(COMMANDS),
        help=f"which to measure, comma-separated (default all: {', '.join(COMMANDS)})",
    )
    parser.add_argument("--no-write", action="store_true", help="print the section; leave docs/benchmarks.md alone")
    parser.add_argument(
        "--quick", action="store_true", help="a tiny model and text, one round, nothing written (a smoke run)"
    )
    args = parser.parse_args()
    commands = [name.strip() for name in args.commands.split(",")]
    unknown = [name for name in commands if name not in COMMANDS]
    if unknown:
        parser.error(f"unknown commands: {', '.join(unknown)} (choose from {', '.join(COMMANDS)})")
    if args.quick:
        args.rounds, args.no_write = 1, True
    if commands != list(COMMANDS):
        args.no_write = True  # the section shows every command or none
    if not args.no_write:
        check_section("threads")
    with tempfile.TemporaryDirectory() as folder:
        setup = make_setup(Path(folder), args.quick)
        text = section(measure(setup, commands, args.rounds), commands, args.rounds, setup.corpus)
    print(text)
    if not args.no_write:
        replace_section("threads", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

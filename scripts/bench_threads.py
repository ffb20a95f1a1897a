#!/usr/bin/env python3
"""Training speed by thread setting, alone and beside one busy process (a laptop with a browser).

Each setting runs a real `charrnn train` (defaults otherwise, previews off) for 300 steps and is
timed over steps 100-300 from its metrics.jsonl (`elapsed`), so start-up is left out. The
settings alternate, round after round, first alone and then beside a process that keeps one
core busy; the figures are medians (and ranges) over the rounds. The section also checks the
targets of charrnn's default, `--threads auto`: alone, at least 0.95 x the speed of one thread a
core (torch's default, charrnn's before auto); beside the busy process, at least 0.9 x the speed
of the best fixed setting.

    python scripts/bench_threads.py              # writes the "threads" section of docs/benchmarks.md
    python scripts/bench_threads.py --rounds 1 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_doc import check_section, machine_description, replace_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
STEPS, FROM_STEP = 300, 100
QUICK = ["--hidden-size", "16", "--layers", "1", "--batch-size", "4", "--seq-len", "16"]  # --quick: a smoke run
AUTO_TARGET, BUSY_TARGET = 0.95, 0.9  # auto alone / one thread a core alone; auto busy / best fixed busy


def _one_a_core() -> int:
    """torch's own thread count here: one a core (charrnn's default before --threads auto)."""
    import torch

    return torch.get_num_threads()


CORES = _one_a_core()
AUTO = "charrnn's default, `--threads auto`"
ONE_A_CORE = f"`--threads {CORES}` (one a core: the default before auto)"
# name -> the --threads value (None: not given, charrnn's default)
SETTINGS = {AUTO: None, ONE_A_CORE: CORES, "`--threads 1`": 1}


def seconds_per_100_steps(corpus: Path, threads: int | None, out: Path, model: list[str]) -> tuple[float, int]:
    """The time, and the thread count of the last training record (what auto chose)."""
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    extra = [] if threads is None else ["--threads", str(threads)]
    command = [
        sys.executable,
        "-m",
        "charrnn",
        "train",
        str(corpus),
        "--out",
        str(out),
        "--max-steps",
        str(STEPS),
        "--eval-every",
        "100000",
        "--save-every",
        "100000",
        "--log-every",
        "100",
        "--preview-chars",
        "0",
        "--quiet",
        *model,
        *extra,
    ]
    subprocess.run(command, env=env, check=True, capture_output=True)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    elapsed = {r["step"]: r["elapsed"] for r in train}
    return (elapsed[STEPS] - elapsed[FROM_STEP]) / ((STEPS - FROM_STEP) / 100), train[-1].get("threads", 0)


def measure(corpus: Path, rounds: int, model: list[str]) -> dict[tuple[str, bool], list[float]]:
    """{(setting, busy): [seconds per 100 steps, a round each]}"""
    times: dict[tuple[str, bool], list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for busy in (False, True):
            burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                for round_number in range(rounds):
                    names = list(SETTINGS) if round_number % 2 == 0 else list(reversed(SETTINGS))
                    for name in names:
                        out = Path(folder) / f"run-{sum(map(len, times.values()))}"  # a new folder for every run
                        time, threads = seconds_per_100_steps(corpus, SETTINGS[name], out, model)
                        times.setdefault((name, busy), []).append(time)
                        print(
                            f"{'busy' if busy else 'alone'}: {name}: {time:.2f} s / 100 steps (ended on {threads} thread{'s' if threads != 1 else ''})",
                            flush=True,
                        )
            finally:
                if burner is not None:
                    burner.kill()
                    burner.wait()
    return times


def section(times: dict[tuple[str, bool], list[float]], rounds: int) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"

    median = {key: statistics.median(values) for key, values in times.items()}
    best_busy = min(median[(name, True)] for name in SETTINGS if name != AUTO)
    best_fixed = next(name for name in SETTINGS if name != AUTO and median[(name, True)] == best_busy)
    alone_ratio = median[(ONE_A_CORE, False)] / median[(AUTO, False)]  # speed ratio: the inverse of times
    busy_ratio = best_busy / median[(AUTO, True)]

    def verdict(ratio: float, target: float) -> str:
        return f"{ratio:.2f} (target >= {target}: {'met' if ratio >= target else 'not met'})"

    rows = [
        f"| {name} | {cell(times[(name, False)])} | {cell(times[(name, True)])} | "
        f"{best_busy / median[(name, True)]:.2f} |"
        for name in SETTINGS
    ]
    targets = (
        f"Targets of `--threads auto`: alone, its speed / the speed of {ONE_A_CORE.split(' (')[0]} = "
        f"{verdict(alone_ratio, AUTO_TARGET)}; beside the busy process, its speed / the best fixed setting's "
        f"({best_fixed}) = {verdict(busy_ratio, BUSY_TARGET)}.\n"
    )
    return (
        f"Seconds per 100 training steps of the default model (LSTM 2x256, 16 x 64) on tiny Shakespeare, "
        f"steps {FROM_STEP}-{STEPS} of a real `charrnn train`; median (range) of {rounds} rounds, settings "
        f"alternating; {machine_description()}. Busy: beside `python -c 'while True: pass'` (one core taken). "
        f"Command: `python scripts/bench_threads.py`.\n\n"
        "| setting | alone | beside one busy process | busy speed / best fixed busy speed |\n"
        "| --- | --- | --- | --- |\n" + "\n".join(rows) + "\n\n" + targets
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print the section; leave docs/benchmarks.md alone")
    parser.add_argument("--quick", action="store_true", help="a tiny model, one round, nothing written (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.no_write = 1, True
    if not args.no_write:
        check_section("threads")
    corpus = SHAKESPEARE if SHAKESPEARE.exists() else _generated_corpus()
    text = section(measure(corpus, args.rounds, QUICK if args.quick else []), args.rounds)
    print(text)
    if not args.no_write:
        replace_section("threads", text)
    return 0


def _generated_corpus() -> Path:
    path = Path(tempfile.mkdtemp()) / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog.\n" * 30_000, encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())

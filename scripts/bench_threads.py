#!/usr/bin/env python3
"""Training speed by thread setting, alone and beside one busy process (a laptop with a browser).

Each setting runs a real `charrnn train` (defaults otherwise, previews off) for 300 steps and is
timed over steps 100-300 from its metrics.jsonl (`elapsed`), so start-up is left out. The
settings alternate, round after round, first alone and then beside a process that keeps one
core busy; the figures are medians (and ranges) over the rounds.

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
# name -> (the --threads value, or None for torch's own choice; the OpenMP wait policy, or None)
SETTINGS = {
    "charrnn's default: one thread a core (`--threads 2` here)": ("default", None),
    "`--threads 1`": (1, None),
    "one thread a core, `OMP_WAIT_POLICY=PASSIVE`": (None, "PASSIVE"),
}


def seconds_per_100_steps(corpus: Path, setting: tuple, out: Path, model: list[str]) -> float:
    threads, wait_policy = setting
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    if wait_policy is not None:
        env["OMP_WAIT_POLICY"] = wait_policy
    extra = [] if threads in (None, "default") else ["--threads", str(threads)]
    if threads is None:
        extra = ["--threads", str(os.cpu_count() or 1)]
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
    elapsed = {r["step"]: r["elapsed"] for r in records if r["kind"] == "train"}
    return (elapsed[STEPS] - elapsed[FROM_STEP]) / ((STEPS - FROM_STEP) / 100)


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
                        out = Path(folder) / f"{len(times)}-{round_number}-{name[:3]}-{busy}"
                        time = seconds_per_100_steps(corpus, SETTINGS[name], out, model)
                        times.setdefault((name, busy), []).append(time)
                        print(f"{'busy' if busy else 'alone'}: {name}: {time:.2f} s / 100 steps", flush=True)
            finally:
                if burner is not None:
                    burner.kill()
                    burner.wait()
    return times


def section(times: dict[tuple[str, bool], list[float]], rounds: int) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"

    best_busy = min(statistics.median(times[(name, True)]) for name in SETTINGS)
    rows = [
        f"| {name} | {cell(times[(name, False)])} | {cell(times[(name, True)])} | "
        f"{best_busy / statistics.median(times[(name, True)]):.2f} |"
        for name in SETTINGS
    ]
    return (
        f"Seconds per 100 training steps of the default model (LSTM 2x256, 16 x 64) on tiny Shakespeare, "
        f"steps {FROM_STEP}-{STEPS} of a real `charrnn train`; median (range) of {rounds} rounds, settings "
        f"alternating; {machine_description()}. Busy: beside `python -c 'while True: pass'` (one core taken). "
        f"Command: `python scripts/bench_threads.py`.\n\n"
        "| setting | alone | beside one busy process | busy speed / best busy speed |\n| --- | --- | --- | --- |\n"
        + "\n".join(rows)
        + "\n"
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

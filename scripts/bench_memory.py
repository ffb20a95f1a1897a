#!/usr/bin/env python3
"""The memory a training run needs: the header's estimate (charrnn/run/sizing.py) against the peak
resident memory of a real `charrnn train` process, for models and vocabularies of several sizes.

Each run trains a few steps and evaluates once (the peak is reached by then: the step's
activations, the evaluation's, the optimizer's state), in a fresh process whose peak is read
from the operating system (`resource.getrusage`, RUSAGE_CHILDREN). Memory does not depend on the
machine's load, so this can run beside other work.

    python scripts/bench_memory.py              # writes the "memory" section of docs/benchmarks.md
    python scripts/bench_memory.py --no-write   # prints it only
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_doc import check_section, machine_description, replace_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
CASES = (  # corpus file, options
    ("tinyshakespeare.txt", ["--hidden-size", "256"]),
    ("tinyshakespeare.txt", ["--hidden-size", "1024"]),
    ("tang300.txt", ["--hidden-size", "256"]),
    ("tang_poems.txt", ["--hidden-size", "256"]),
    ("tang_poems.txt", ["--hidden-size", "512", "--batch-size", "32"]),
)
RUN = ["--max-steps", "12", "--eval-every", "10", "--save-every", "10", "--eval-chars", "250000", "--threads", "2"]

PEAK = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
sys.stderr.write(done.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
sys.exit(done.returncode)
"""


def measure(corpus: Path, options: list[str]) -> tuple[str, str, int]:
    """The header's vocabulary and memory estimate, and the process's peak resident bytes."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "charrnn", "train", str(corpus), "--out", out, *RUN, *options, "--quiet"]
        done = subprocess.run([sys.executable, "-c", PEAK, *command], check=True, capture_output=True, text=True)
    header = done.stderr
    vocabulary = re.search(r"^vocabulary: ([\d,]+) characters", header, re.M)
    estimate = re.search(r"memory about ([\d,.]+ [MG]iB)", header)
    if vocabulary is None or estimate is None:
        raise SystemExit(f"no vocabulary or memory in the header:\n{header}")
    return vocabulary[1], estimate[1], int(done.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true", help="print the section; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if not args.no_write:
        check_section("memory")
    rows = []
    for name, options in CASES:
        corpus = DATA / name
        if not corpus.exists():
            raise SystemExit(f"{corpus} not found")
        vocabulary, expected, measured = measure(corpus, options)
        rows.append((name, " ".join(options), vocabulary, expected, measured))
        print(json.dumps(rows[-1]), flush=True)
    mib = 1 << 20
    table = "\n".join(
        f"| {name} | `{options}` | {vocab} | {expected} | {measured / mib:,.0f} MiB |"
        for name, options, vocab, expected, measured in rows
    )
    body = (
        f"Command: `python scripts/bench_memory.py`  \nMachine: {machine_description()}\n\n"
        f"Each: `charrnn train CORPUS {' '.join(RUN)} OPTIONS` (LSTM, 2 layers, batch 16 x 64 unless given), "
        "its peak resident memory against the header's estimate.\n\n"
        "| corpus | options | vocabulary | the header's estimate | measured peak |\n"
        "| --- | --- | ---: | ---: | ---: |\n" + table + "\n"
    )
    print(body)
    if not args.no_write:
        replace_section("memory", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

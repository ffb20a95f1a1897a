#!/usr/bin/env python3
"""How good a model charrnn trains with its defaults in a wall-clock budget.

Runs `charrnn train CORPUS --max-time BUDGET` as a real process (defaults otherwise) and
reports the best validation loss in nats and bits per character. On tiny Shakespeare the
validation text is its last 10 %, 111,540 characters: the standard split.

    python scripts/quality.py                            # 5 and 30 minutes; writes docs/benchmarks.md
    python scripts/quality.py --budget 5m
    python scripts/quality.py --budget 10s --corpus small.txt --no-write    # a smoke run
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
# nats: what issue #4 asks of the defaults on tiny Shakespeare, by budget
TARGETS = {300.0: 1.50, 1800.0: 1.45}


@dataclass(frozen=True)
class Outcome:
    budget: float  # seconds asked for
    wall: float  # seconds the whole process took, start-up and final evaluation included
    steps: int
    best_val_nats: float

    @property
    def best_val_bpc(self) -> float:
        return self.best_val_nats / math.log(2)


def train_for(budget: float, corpus: Path, flags: list[str]) -> Outcome:
    """Train with `flags` for `budget` seconds in a fresh process; return its best validation loss."""
    from charrnn.checkpoint import read_checkpoint

    with tempfile.TemporaryDirectory(prefix="charrnn-quality-") as out:
        command = [
            sys.executable,
            "-m",
            "charrnn",
            "train",
            str(corpus),
            "--max-time",
            f"{budget}s",
            "--out",
            out,
            "--quiet",
            *flags,
        ]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"training failed: {result.stderr.strip().splitlines()[-1]}")
        best = read_checkpoint(Path(out) / "best.pt")
        latest = read_checkpoint(Path(out) / "latest.pt")
    return Outcome(budget, wall, latest.step, best.best_val_loss)


def main() -> int:
    from benchmark_doc import check_section, machine_description, replace_section

    from charrnn.budget import format_duration, parse_duration

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", action="append", help="training time, e.g. 5m (repeatable; default 5m and 30m)")
    parser.add_argument("--corpus", type=Path, default=SHAKESPEARE)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if not args.corpus.exists():
        parser.error(f"no corpus at {args.corpus}; give --corpus (tiny Shakespeare: scripts/fetch_tinyshakespeare.py)")
    labels = args.budget or ["5m", "30m"]
    for label in labels if not args.no_write else []:
        check_section(f"quality-{label}")
    for label in labels:
        budget = parse_duration(label)
        outcome = train_for(budget, args.corpus, [])
        target = TARGETS.get(budget) if args.corpus == SHAKESPEARE else None
        verdict = (
            "—" if target is None else (f"≤ {target:.2f}: {'met' if outcome.best_val_nats <= target else 'NOT met'}")
        )
        command = f"python scripts/quality.py --budget {label}" + (
            "" if args.corpus == SHAKESPEARE else f" --corpus {args.corpus}"
        )
        body = (
            f"Command: `{command}`  \nMachine: {machine_description()}  \nCorpus: {args.corpus.name}\n\n"
            "| budget | steps | wall time (process) | best val nats | best val bpc | target (nats) |\n"
            "| --- | ---: | ---: | ---: | ---: | --- |\n"
            f"| {format_duration(budget)} | {outcome.steps:,} | {format_duration(outcome.wall)} | "
            f"{outcome.best_val_nats:.4f} | {outcome.best_val_bpc:.4f} | {verdict} |\n"
        )
        if not args.no_write:  # a section per budget, so that each run updates only its own
            replace_section(f"quality-{label}", body)
        print(body, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The sweep behind charrnn's training defaults: best validation loss per CPU-minute.

Each candidate is a real `charrnn train --max-time BUDGET` run on tiny Shakespeare (see
quality.py), one after another so that each has the machine to itself.

    python scripts/sweep.py --budget 5m                  # the 5-minute candidates
    python scripts/sweep.py --budget 30m                 # the 30-minute candidates
    python scripts/sweep.py --budget 5m --only default   # some candidates only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_doc import check_section, machine_description, replace_section  # noqa: E402
from quality import SHAKESPEARE, train_for  # noqa: E402

# Candidates by budget: name -> flags on top of the defaults (the defaults are what `charrnn
# train` uses; an empty list measures them as they are).
CANDIDATES = {
    "5m": {
        "default": [],
        "lr 4e-3": ["--lr", "0.004"],
        "batch 32, lr 4e-3": ["--batch-size", "32", "--lr", "0.004"],
        "seq 32": ["--seq-len", "32"],
        "hidden 384": ["--hidden-size", "384"],
        "bfloat16": ["--dtype", "bfloat16"],
        # Issue 14's levers, one at a time (AWD-LSTM's regularisation, initialisation)
        "weight drop 0.2": ["--weight-drop", "0.2"],
        "input dropout 0.1": ["--input-dropout", "0.1"],
        "embedding dropout 0.1": ["--embed-dropout", "0.1"],
        "orthogonal init": ["--recurrent-init", "orthogonal"],
        "dropout 0.3": ["--dropout", "0.3"],
        "no weight decay": ["--weight-decay", "0"],  # the default before issue 14: 0.1 won the sweep
    },
    "30m": {
        "default": [],
        "weight decay 0.2": ["--weight-decay", "0.2"],
        "weight decay 0.2, embedding dropout 0.1": ["--weight-decay", "0.2", "--embed-dropout", "0.1"],
        "hidden 384, dropout 0.3": ["--hidden-size", "384", "--dropout", "0.3"],
        "hidden 512, dropout 0.35": ["--hidden-size", "512", "--dropout", "0.35"],
        "weight drop 0.3": ["--weight-drop", "0.3"],
        "dropout 0.3, weight drop 0.3, input dropout 0.2": [
            "--dropout",
            "0.3",
            "--weight-drop",
            "0.3",
            "--input-dropout",
            "0.2",
        ],
        "hidden 512, weight drop 0.4, dropout 0.3": [
            "--hidden-size",
            "512",
            "--weight-drop",
            "0.4",
            "--dropout",
            "0.3",
        ],
        "bfloat16": ["--dtype", "bfloat16"],
    },
}


def main() -> int:
    from charrnn.settings.budget import format_duration, parse_duration

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", choices=sorted(CANDIDATES), required=True)
    parser.add_argument("--only", action="append", help="run just this candidate (repeatable)")
    parser.add_argument("--corpus", type=Path, default=SHAKESPEARE)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if not args.no_write:
        check_section(f"sweep-{args.budget}")
    budget = parse_duration(args.budget)
    candidates = {name: flags for name, flags in CANDIDATES[args.budget].items() if not args.only or name in args.only}
    rows = []
    for name, flags in candidates.items():
        outcome = train_for(budget, args.corpus, flags)
        rows.append(
            (
                outcome.carried_nats,
                f"| {name} | `{' '.join(flags) or '(defaults)'}` | {outcome.steps:,} | "
                f"{outcome.carried_nats:.4f} | {outcome.windowed_nats:.4f} |",
            )
        )
        print(rows[-1][1], flush=True)
    table = "\n".join(row for _, row in sorted(rows))
    command = "python scripts/sweep.py " + " ".join(sys.argv[1:])
    body = (
        f"Command: `{command}`  \nMachine: {machine_description()}  \nBudget: {format_duration(budget)} of training per run, "
        f"corpus {args.corpus.name}; best.pt scored on the validation text with the state carried, and in "
        f"independent windows of 256 as nanoGPT scores (see quality.py); one run each\n\n"
        "| candidate | flags | steps | carried nats | windows of 256 nats |\n"
        f"| --- | --- | ---: | ---: | ---: |\n{table}\n"
    )
    if not args.no_write:
        replace_section(f"sweep-{args.budget}", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""How predictable each corpus is before any model: its distinct characters and the bits per
character of a guess that knows only how common each character is (the unigram entropy, the
loss a model starts near and must get below to have learned anything from context).

    python scripts/corpus_scale.py                 # the built-in corpus and ../shared/data's; writes docs/benchmarks.md
    python scripts/corpus_scale.py a.txt --no-write
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_doc import check_section, replace_section  # noqa: E402

from charrnn.store.corpus import builtin_corpus, resolve_corpus  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SHARED_CORPORA = ("tinyshakespeare.txt", "timemachine.txt", "tang300.txt", "tang_poems.txt")


def counts(corpus) -> Counter:
    found: Counter = Counter()
    for chunk in corpus.chunks():
        found.update(chunk)
    return found


def unigram_bits(found: Counter) -> float:
    total = sum(found.values())
    return -sum(n / total * math.log2(n / total) for n in found.values())


def row(name: str, corpus) -> str:
    found = counts(corpus)
    return f"| {name} | {sum(found.values()):,} | {len(found):,} | {unigram_bits(found):.2f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="*", help="text files (default: the built-in corpus and the shared corpora)")
    parser.add_argument("--no-write", action="store_true", help="print the table without writing docs/benchmarks.md")
    args = parser.parse_args()
    if not args.no_write:
        check_section("corpus-scale")
    named = [(name, resolve_corpus([name])) for name in args.corpus]
    if not named:
        shared = [SHARED / name for name in SHARED_CORPORA if (SHARED / name).exists()]
        named = [
            ("the built-in corpus", builtin_corpus()),
            *((path.name, resolve_corpus([str(path)])) for path in shared),
        ]
    lines = ["| corpus | characters | distinct | unigram bits per character |", "| --- | ---: | ---: | ---: |"]
    lines += [row(name, corpus) for name, corpus in named]
    command = " ".join(["python scripts/corpus_scale.py", *args.corpus])
    body = "\n".join(lines) + f"\n\nCommand: `{command}`"
    print(body)
    if not args.no_write:
        replace_section("corpus-scale", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

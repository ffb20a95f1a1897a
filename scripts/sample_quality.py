#!/usr/bin/env python3
"""What a model's samples look like beside its corpus, in numbers a reader can check.

Samples `--seeds` texts of `--length` characters at `--temp` (0.8: the README's example) from a
checkpoint and measures, for the samples and for the corpus alike:
- the longest run of spaces and of blank lines (a model that degenerates writes runs far longer
  than any in its text);
- the share of spaces;
- for Python, the share of non-blank lines that Python's tokenizer reads as a line of code.

    python scripts/sample_quality.py -c checkpoints        # the quick start's model; writes docs/benchmarks.md
    python scripts/sample_quality.py -c runs/a corpus.txt --no-write
"""

from __future__ import annotations

import argparse
import io
import re
import statistics
import sys
import tokenize
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_doc import check_section, machine_description, replace_section  # noqa: E402

import charrnn  # noqa: E402
from charrnn.store.corpus import builtin_corpus, resolve_corpus  # noqa: E402


def longest(pattern: str, text: str) -> int:
    return max((len(run) for run in re.findall(pattern, text)), default=0)


def longest_blank_lines(text: str) -> int:
    best = run = 0
    for line in text.splitlines():
        run = run + 1 if not line.strip() else 0
        best = max(best, run)
    return best


def tokenizes(line: str) -> bool:
    """Whether Python's tokenizer reads the line (its indentation removed) as code."""
    try:
        list(tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline))
        return True
    except (tokenize.TokenError, SyntaxError):  # an unclosed bracket or string, a stray character
        return False


def measures(text: str) -> dict:
    lines = [line for line in text.splitlines() if line.strip()]
    return {
        "longest_spaces": longest(r" +", text),
        "longest_blank_lines": longest_blank_lines(text),
        "space_share": text.count(" ") / max(len(text), 1),
        "code_lines": sum(map(tokenizes, lines)) / max(len(lines), 1),
    }


def sample_measures(model, seeds: int, length: int, temperature: float) -> list[dict]:
    return [measures(model.sample(length, temperature=temperature, seed=seed)) for seed in range(seeds)]


def corpus_text(names: list[str]) -> str:
    corpus = resolve_corpus(names) if names else builtin_corpus()
    return "".join(corpus.chunks())


def table(corpus: dict, samples: list[dict]) -> str:
    rows = [
        ("longest run of spaces", "longest_spaces", "{:,}"),
        ("longest run of blank lines", "longest_blank_lines", "{:,}"),
        ("share of spaces", "space_share", "{:.1%}"),
        ("non-blank lines that tokenize as Python", "code_lines", "{:.1%}"),
    ]
    lines = ["| measure | corpus | samples: median (low) | samples: range |", "| --- | --- | --- | --- |"]
    for label, key, form in rows:
        values = [sample[key] for sample in samples]
        spread = f"{form.format(min(values))} to {form.format(max(values))}"
        lines.append(
            f"| {label} | {form.format(corpus[key])} | {form.format(statistics.median_low(values))} | {spread} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="*", help="the model's corpus (default: the built-in one)")
    parser.add_argument("-c", "--checkpoint", default="checkpoints")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--length", type=int, default=2000)
    parser.add_argument("--temp", type=float, default=0.8)
    parser.add_argument("--no-write", action="store_true", help="print the table without writing docs/benchmarks.md")
    args = parser.parse_args()
    if not args.no_write:
        check_section("sample-quality")
    model = charrnn.load(args.checkpoint)
    samples = sample_measures(model, args.seeds, args.length, args.temp)
    corpus = measures(corpus_text(args.corpus))
    worst = max(sample["longest_spaces"] for sample in samples)
    verdict = "no sample" if worst <= corpus["longest_spaces"] else "some sample"
    body = (
        f"{args.seeds} samples of {args.length:,} characters at temperature {args.temp} (seeds 0-{args.seeds - 1}) "
        f"from the model in `{args.checkpoint}` ({model.describe()[1].removeprefix('model: ')}; {model.describe()[3].removeprefix('trained: ')}), beside its corpus; {verdict} has a run of spaces longer than the corpus's "
        f"longest.\n\n{table(corpus, samples)}\n\n"
        f"Command: `python scripts/sample_quality.py -c {args.checkpoint} {' '.join(args.corpus)}`. "
        f"Machine: {machine_description()}."
    )
    print(body)
    if not args.no_write:
        replace_section("sample-quality", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

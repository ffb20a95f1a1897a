#!/usr/bin/env python3
"""Corpora larger than memory: encoding throughput and the memory `charrnn train` needs.

Writes a generated text of --size (default 1 GiB; words, punctuation and accented letters,
so some characters take two UTF-8 bytes) and measures:
1. the counting pass and the encoding pass, in MB/s of UTF-8 read;
2. the peak resident memory of a real `charrnn train` process on it, with an empty cache
   (both passes included) and again with the cache built (it should start at once);
3. the peak resident memory of reading every training window once, as an epoch does (pages
   of the memory-mapped ids are released at each save, so this stays flat).

    python scripts/bench_corpus.py                 # 1 GiB; writes docs/benchmarks.md
    python scripts/bench_corpus.py --size 20M --no-write      # a smoke run
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "it",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
    "from",
    "have",
    "or",
    "by",
    "one",
    "had",
    "not",
    "but",
    "what",
    "all",
    "were",
    "when",
    "we",
    "there",
    "can",
    "an",
    "your",
    "which",
    "their",
    "said",
    "if",
    "do",
    "will",
    "each",
    "about",
    "how",
    "up",
    "out",
    "them",
    "café",
    "naïve",
    "façade",
    "déjà",
    "vu",
    "über",
    "straße",
    "señor",
]


def write_text(path: Path, size: int, seed: int = 0) -> None:
    """`size` bytes of generated prose: a few distinct 4 MiB blocks, repeated (the pass speed
    does not depend on the blocks being all different)."""
    rng = random.Random(seed)
    blocks = []
    for _ in range(4):
        lines, length = [], 0
        while length < 4 << 20:
            line = (
                " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))).capitalize() + rng.choice(".,;!?") + "\n"
            )
            lines.append(line)
            length += len(line.encode("utf-8"))
        blocks.append("".join(lines).encode("utf-8"))
    with open(path, "wb") as file:
        written = 0
        while written < size:
            block = blocks[(written >> 22) % len(blocks)][: size - written]
            file.write(block)
            written += len(block)


def pass_speeds(path: Path, cache: Path) -> tuple[float, float, int]:
    """MB/s of the counting pass and of the encoding pass, and the vocabulary size."""
    from charrnn.core.vocab import Vocab
    from charrnn.store.corpus import resolve_corpus
    from charrnn.store.encoded import CorpusCache

    size = path.stat().st_size / 1e6
    corpus_cache = CorpusCache(resolve_corpus([str(path)]), root=cache)
    start = time.perf_counter()
    result = corpus_cache.counts()
    counted = time.perf_counter()
    vocab, _ = Vocab.from_counts(result[0].counts)
    corpus_cache.encoded(vocab, counted=result)
    encoded = time.perf_counter()
    return size / (counted - start), size / (encoded - counted), len(vocab)


def train_peak_rss(path: Path, cache: Path, out: Path) -> tuple[float, float]:
    """Peak RSS (MiB) and wall time (s) of `charrnn train` on `path`, a few steps, measured
    from a small wrapper process (see bench.py)."""
    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    command = [
        sys.executable,
        "-m",
        "charrnn",
        "train",
        str(path),
        "--max-steps",
        "20",
        "--eval-every",
        "20",
        "--out",
        str(out),
        "--quiet",
    ]
    env = {**os.environ, "CHARRNN_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *command], capture_output=True, text=True, env=env, check=True
    )
    return int(result.stdout.strip()) / 1024, time.perf_counter() - start


# Reads every training window of a corpus once, as an epoch of training does, without a model;
# prints its peak RSS in KiB. argv: corpus, "release" (drop read pages at every 500th window,
# as training does at each save) or "keep".
EPOCH_READER = """
import resource, sys
from charrnn.store.corpus import resolve_corpus
from charrnn.core.data import Streams, split_train_val
from charrnn.store.encoded import CorpusCache
from charrnn.core.vocab import Vocab
cache = CorpusCache(resolve_corpus([sys.argv[1]]))
counted = cache.counts()
encoded = cache.encoded(Vocab.from_counts(counted[0].counts)[0], counted=counted)
streams = Streams(split_train_val(encoded.ids, 0.1)[0], 16, 64)
for window in range(streams.num_windows):
    streams.window(window)
    if sys.argv[2] == "release" and window % 500 == 0:
        encoded.release_pages()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def epoch_peak_rss(path: Path, cache: Path, release: bool) -> float:
    """Peak RSS (MiB) of reading every training window of `path` once (cache already built)."""
    env = {**os.environ, "CHARRNN_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", EPOCH_READER, str(path), "release" if release else "keep"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return int(result.stdout.strip()) / 1024


def parse_size(text: str) -> int:
    """Bytes in `1G`, `200M`, `64K` or `1000`."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    suffix = text[-1].upper()
    return int(float(text[:-1]) * units[suffix]) if suffix in units else int(text)


def main() -> int:
    from benchmark_doc import check_section, machine_description, replace_section

    from charrnn.settings.budget import format_duration

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1G", help="text size: 1G, 200M, ... (bytes, binary multiples)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write the text and the cache (default: a temporary folder)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if not args.no_write:
        check_section("corpus-1gb")
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix="charrnn-corpus-", dir=args.dir) as folder:
        folder = Path(folder)
        text = folder / "big.txt"
        write_text(text, size)
        counting, encoding, vocab_size = pass_speeds(text, folder / "speed-cache")
        cold_rss, cold_time = train_peak_rss(text, folder / "cache", folder / "cold")
        warm_rss, warm_time = train_peak_rss(text, folder / "cache", folder / "warm")
        epoch_released = epoch_peak_rss(text, folder / "cache", release=True)
        epoch_kept = epoch_peak_rss(text, folder / "cache", release=False)
    mib = size / 2**20
    body = (
        f"Command: `python scripts/bench_corpus.py {' '.join(sys.argv[1:])}`  \nMachine: {machine_description()}\n\n"
        f"A generated text of {mib:,.0f} MiB ({vocab_size} distinct characters, some of two UTF-8 bytes):\n\n"
        "| measure | value |\n| --- | ---: |\n"
        f"| counting pass (vocabulary, content hash) | {counting:,.0f} MB/s |\n"
        f"| encoding pass (ids written to the cache) | {encoding:,.0f} MB/s |\n"
        f"| `charrnn train` (20 steps), empty cache: peak RSS | {cold_rss:,.0f} MiB |\n"
        f"| `charrnn train` (20 steps), empty cache: wall time | {format_duration(cold_time)} |\n"
        f"| `charrnn train` (20 steps), cache built: peak RSS | {warm_rss:,.0f} MiB |\n"
        f"| `charrnn train` (20 steps), cache built: wall time | {format_duration(warm_time)} |\n"
        f"| every training window read once (an epoch's data, no model), pages released as training does | {epoch_released:,.0f} MiB |\n"
        f"| the same, pages never released | {epoch_kept:,.0f} MiB |\n"
    )
    print(body)
    if not args.no_write:
        replace_section("corpus-1gb", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

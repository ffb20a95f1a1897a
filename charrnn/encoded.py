"""A corpus encoded once into an on-disk array of character ids, read through a memory map.

Two streaming passes, each holding one chunk at a time: the first counts every character
(and hashes the bytes); the second writes each character's id, as uint8, uint16 or uint32
as the vocabulary needs. Both results are cached, keyed by each file's path, size and
modification time, so a second run or a resume starts at once:

    <cache>/<corpus key>/counts.npz           character counts, total, content hash
    <cache>/<corpus key>/ids-<vocab key>.bin  the ids, for one vocabulary

The cache is `$CHARRNN_CACHE`, else `$XDG_CACHE_HOME/charrnn`, else `~/.cache/charrnn`.
Files are written atomically, so a killed run never leaves half an array behind.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.corpus import Corpus
from charrnn.errors import CorpusError
from charrnn.vocab import CODE_POINTS, Vocab, code_points

# Tells whoever encodes a corpus how it goes: (description, total bytes) -> a function that
# takes each chunk's size in bytes, and is called with None when the pass ends.
Progress = Callable[[str, int], Callable[[int | None], None]]
_FORMAT = 1  # bump when what the cache holds changes


def no_progress(description: str, total: int) -> Callable[[int | None], None]:
    return lambda n: None


def cache_root() -> Path:
    if "CHARRNN_CACHE" in os.environ:
        return Path(os.environ["CHARRNN_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "charrnn"


@dataclass(frozen=True)
class CharCounts:
    """How often each code point occurs in a corpus, and the hash of its bytes."""

    counts: np.ndarray  # (CODE_POINTS,) int64
    sha256: str

    @property
    def total(self) -> int:
        return int(self.counts.sum())


@dataclass(frozen=True)
class Encoded:
    """A corpus as ids on disk, read through a memory map (copy-on-write: never written back)."""

    ids: np.ndarray  # a view of `mapping`
    mapping: mmap.mmap
    path: Path
    counts: CharCounts
    counts_reused: bool
    ids_reused: bool

    def release_pages(self) -> None:
        """Drop the pages of ids read so far from this process's memory. They stay in the
        system's file cache and come back on the next read, so resident memory stays flat
        over an epoch of a corpus larger than memory instead of growing to the whole file."""
        self.mapping.madvise(mmap.MADV_DONTNEED)


class CorpusCache:
    """The cached analysis and encodings of one corpus."""

    def __init__(self, corpus: Corpus, root: Path | None = None):
        self.corpus = corpus
        identity = {
            "format": _FORMAT, "encoding": corpus.encoding, "errors": corpus.errors,
            "files": [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in corpus.files],
        }
        self.folder = (root or cache_root()) / _digest(identity)

    def counts(self, progress: Progress = no_progress) -> tuple[CharCounts, bool]:
        """The corpus's character counts, and whether they came from the cache."""
        path = self.folder / "counts.npz"
        if path.exists():
            try:
                with np.load(path) as stored:
                    counts = np.zeros(CODE_POINTS, dtype=np.int64)
                    counts[stored["codes"]] = stored["counts"]
                    return CharCounts(counts, str(stored["sha256"])), True
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache entry is simply rebuilt
        counts = count_chars(self.corpus, progress)
        present = np.flatnonzero(counts.counts)
        _atomic(path, lambda f: np.savez(f, codes=present, counts=counts.counts[present], sha256=counts.sha256))
        return counts, False

    def encoded(
        self, vocab: Vocab, progress: Progress = no_progress, counted: tuple[CharCounts, bool] | None = None
    ) -> Encoded:
        """The corpus as ids of `vocab`, memory-mapped from the cache (built first if needed).
        `counted`: what `counts()` already returned, so that it is not read again."""
        counts, counts_reused = counted or self.counts(progress)
        _check_has_text(counts, self.corpus.description)
        path = self.folder / f"ids-{_digest(vocab.entries)}.bin"
        ids_reused = path.exists() and path.stat().st_size == counts.total * vocab.id_dtype.itemsize
        if not ids_reused:
            _atomic(path, lambda f: encode_chars(self.corpus, vocab, f, progress))
        with open(path, "rb") as file:
            mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
        return Encoded(np.frombuffer(mapping, dtype=vocab.id_dtype), mapping, path, counts, counts_reused, ids_reused)


def count_chars(corpus: Corpus, progress: Progress = no_progress) -> CharCounts:
    """First pass: every character's count (by code point), and the sha256 of the bytes."""
    counts = np.zeros(CODE_POINTS, dtype=np.int64)
    hasher = hashlib.sha256()
    advance = progress(f"counting the characters of {corpus.description}", corpus.total_bytes)

    def on_read(raw: bytes) -> None:
        hasher.update(raw)
        advance(len(raw))

    for text in corpus.chunks(on_read):
        counts += np.bincount(code_points(text), minlength=CODE_POINTS)
    advance(None)
    return CharCounts(counts, hasher.hexdigest())


def encode_chars(corpus: Corpus, vocab: Vocab, file, progress: Progress = no_progress) -> None:
    """Second pass: each character's id, written to `file` in `vocab.id_dtype`."""
    advance = progress(f"encoding {corpus.description}", corpus.total_bytes)
    for text in corpus.chunks(lambda raw: advance(len(raw))):
        file.write(vocab.encode_codes(code_points(text)).tobytes())
    advance(None)


def _check_has_text(counts: CharCounts, name: str) -> None:
    present = np.flatnonzero(counts.counts)
    if not len(present):
        raise CorpusError(f"{name} is empty")
    if all(chr(code).isspace() for code in present):
        raise CorpusError(f"{name} holds only whitespace")


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False).encode()).hexdigest()[:24]


def _atomic(path: Path, write: Callable) -> None:
    """Write through `write(file)` to a temporary file, then rename it to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise

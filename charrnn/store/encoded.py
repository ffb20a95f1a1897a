"""A corpus encoded once into an on-disk array of character ids, read through a memory map.

Two streaming passes, each holding one chunk at a time: the first counts every character
(and hashes the bytes); the second writes each character's id, as uint8, uint16 or uint32
as the vocabulary needs (and hashes the bytes again: a text that changes between the passes
is refused, never encoded half old, half new). Both results are cached, keyed by each file's
path, size, modification time, inode number and change time (which `touch` cannot set, so a
text edited in place is encoded again), so a second run or a resume starts at once:

    <cache>/<corpus key>/counts.bin           character counts, total, content hash
    <cache>/<corpus key>/ids-<vocab key>.bin  the ids, for one vocabulary (its entries and aliases)

Both are sealed entries of charrnn.store.cache (where the cache is, how entries are written
crash-safe and checked): a damaged entry is rebuilt, never trained on or scored with.
Checking the ids costs one SHA-256 pass over them at each reuse (0.5-0.7 s per GB, measured);
hashing the text again while encoding costs about 9% of the encoding pass.
"""

from __future__ import annotations

import hashlib
import json
import mmap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from charrnn.core.vocab import CODE_POINTS, Vocab, code_points
from charrnn.display import printable
from charrnn.errors import CorpusError
from charrnn.store.cache import (
    HEADER_BYTES,
    cache_root,
    open_sealed,
    remove_leftovers,
    write_sealed,
)
from charrnn.store.corpus import Corpus
from charrnn.store.files import open_to_read

_FORMAT = 2  # bump when what the cache holds changes


class Progress(Protocol):
    """Tells whoever does a long pass how it goes (encoding a corpus, scoring a text): called
    with the pass's description and its total (in bytes, or in `unit`: "characters"), it gives a
    function that takes the size of each piece done, and is called with None when the pass ends."""

    def __call__(self, description: str, total: int, unit: str = ...) -> Callable[[int | None], None]: ...


def no_progress(description: str, total: int, unit: str = "bytes") -> Callable[[int | None], None]:
    return lambda n: None


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
        self.root = root or cache_root()
        self.folder = self.root / _digest(
            {
                "format": _FORMAT,
                "encoding": corpus.encoding,
                "errors": corpus.errors,
                "files": [_file_identity(path) for path in corpus.files],
            }
        )

    def counts(self, progress: Progress = no_progress) -> tuple[CharCounts, bool]:
        """The corpus's character counts, and whether they came from the cache."""
        remove_leftovers(self.root)
        path = self.folder / "counts.bin"
        counts = _stored_counts(path)
        reused = counts is not None
        if counts is None:
            counts = count_chars(self.corpus, progress)
            present = np.flatnonzero(counts.counts)
            payload = np.stack([present, counts.counts[present]]).astype("<i8").tobytes()
            fields = {"kind": "counts", "format": _FORMAT, "corpus_sha256": counts.sha256}
            write_sealed(
                path, fields, len(payload), lambda file: file.write(payload), f"counting {self.corpus.description}"
            )
        _check_has_text(counts, self.corpus.description)  # before anyone builds a vocabulary from it
        return counts, reused

    def encoded(
        self, vocab: Vocab, progress: Progress = no_progress, counted: tuple[CharCounts, bool] | None = None
    ) -> Encoded:
        """The corpus as ids of `vocab`, memory-mapped from the cache (built first if needed).
        `counted`: what `counts()` already returned, so that it is not read again."""
        counts, counts_reused = counted or self.counts(progress)
        key = _vocab_key(vocab)
        path = self.folder / f"ids-{key}.bin"
        fields = {
            "kind": "ids",
            "format": _FORMAT,
            "vocab": key,
            "dtype": vocab.id_dtype.str,
            "count": counts.total,
            "corpus_sha256": counts.sha256,
        }
        payload_bytes = counts.total * vocab.id_dtype.itemsize
        checking = f"checking the cached encoding of {self.corpus.description}"
        opened = _checked(path, fields, progress(checking, payload_bytes)) if path.is_file() else None
        if opened is None:
            doing = f"encoding {self.corpus.description}"
            write_sealed(
                path,
                fields,
                payload_bytes,
                lambda file: encode_chars(self.corpus, vocab, file, progress, counts),
                doing,
            )
        try:
            with opened or open_to_read(path) as file:
                mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
            ids = np.frombuffer(mapping, dtype=vocab.id_dtype, count=counts.total, offset=HEADER_BYTES)
        except (OSError, ValueError) as error:  # ValueError: cut short since it was written
            raise CorpusError(
                f"cannot read the corpus cache entry {printable(path)}: {getattr(error, 'strerror', None) or error}"
            ) from None
        return Encoded(ids, mapping, path, counts, counts_reused, opened is not None)


def _checked(path: Path, fields: dict, advance: Callable[[int | None], None]):
    """The ids entry at `path`, open, if it is whole and holds `fields`; else None."""
    opened = open_sealed(path, fields, advance)
    advance(None)
    return opened[0] if opened else None


def _file_identity(path: Path) -> list:
    try:
        status = path.stat()
    except OSError as error:
        raise CorpusError(f"cannot read corpus {printable(path)}: {error.strerror}") from None
    return [str(path), status.st_size, status.st_mtime_ns, status.st_ino, status.st_ctime_ns]


def _stored_counts(path: Path) -> CharCounts | None:
    opened = open_sealed(path, {"kind": "counts", "format": _FORMAT})
    if opened is None:
        return None
    file, fields = opened
    with file:
        file.seek(HEADER_BYTES)
        pairs = np.frombuffer(file.read(), dtype="<i8")
    if len(pairs) % 2 or not isinstance(fields.get("corpus_sha256"), str):
        return None
    codes, stored = pairs.reshape(2, -1)
    if len(codes) and (codes.min() < 0 or codes.max() >= CODE_POINTS or stored.min() < 0):
        return None
    counts = np.zeros(CODE_POINTS, dtype=np.int64)
    counts[codes] = stored
    return CharCounts(counts, fields["corpus_sha256"])


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


def encode_chars(
    corpus: Corpus, vocab: Vocab, file, progress: Progress = no_progress, counted: CharCounts | None = None
) -> None:
    """Second pass: each character's id, written to `file` in `vocab.id_dtype`. With `counted`
    (the first pass's result), a text whose bytes changed since is refused."""
    advance = progress(f"encoding {corpus.description}", corpus.total_bytes)
    hasher = hashlib.sha256()

    def on_read(raw: bytes) -> None:
        hasher.update(raw)
        advance(len(raw))

    for text in corpus.chunks(on_read):
        file.write(vocab.encode_codes(code_points(text)).tobytes())
    advance(None)
    if counted is not None and hasher.hexdigest() != counted.sha256:
        raise CorpusError(f"{corpus.description} changed while it was being read; run again once it stays the same")


def _check_has_text(counts: CharCounts, name: str) -> None:
    present = np.flatnonzero(counts.counts)
    if not len(present):
        raise CorpusError(f"{name} is empty")
    if all(chr(code).isspace() for code in present):
        raise CorpusError(f"{name} holds only whitespace")


def _vocab_key(vocab: Vocab) -> str:
    """What names a vocabulary's encoding: its entries, and its aliases (which change the ids of
    their characters) where it has any, so that an encoding folded otherwise is never reused."""
    if not vocab.aliases:
        return _digest(vocab.entries)  # as before aliases existed: those entries stay in use
    return _digest({"entries": vocab.entries, "aliases": sorted(vocab.aliases.items())})


def _digest(value) -> str:
    # ASCII JSON: file names that are not UTF-8 hold lone surrogates, which only escaping can encode
    return hashlib.sha256(json.dumps(value).encode("ascii")).hexdigest()[:24]

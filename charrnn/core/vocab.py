"""The character vocabulary: Unicode code points <-> integer ids, with an optional unknown id."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from charrnn.core.nearest import NearestForms, Unseen, read_unseen
from charrnn.errors import CorpusError, OptionError
from charrnn.settings.spelling import spelled

CODE_POINTS = 0x110000  # every Unicode code point, astral planes included
UNKNOWN = ""  # the entry that stands for every character left out of the vocabulary
UNKNOWN_SHOWN = "\ufffd"  # how the unknown character is printed


def code_points(text: str) -> np.ndarray:
    """The code points of `text` as a uint32 array (UTF-32 has one unit per code point)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def smallest_id_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned integer dtype that holds every id."""
    if vocab_size <= 2**8:
        return np.dtype(np.uint8)
    if vocab_size <= 2**16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def folded_variants(count: int) -> str:
    """`173 variants folded into them`: how training and `charrnn info` speak of aliases."""
    return f"{count:,} variant{'' if count == 1 else 's'} folded into them"


@dataclass(frozen=True)
class Coverage:
    """How much of a text a vocabulary covers."""

    kept_chars: int  # distinct characters with an id of their own
    dropped_chars: int  # distinct characters without one
    total: int  # characters in the text
    outside: int  # of them, characters without an id of their own
    folded: int = 0  # distinct characters read as a variant of theirs (aliases)

    @property
    def covered(self) -> float:
        """Fraction of the text's characters with an id of their own."""
        return 1.0 - self.outside / self.total if self.total else 1.0

    def describe(self) -> str:
        folded = f" ({folded_variants(self.folded)})" if self.folded else ""
        if not self.dropped_chars:
            return f"{self.kept_chars:,} characters{folded}"
        return (
            f"{self.kept_chars:,} characters{folded} + unknown, covering {self.covered:.2%} of the text "
            f"({self.dropped_chars:,} rare characters map to unknown)"
        )


class Vocab:
    """An ordered list of entries, id = position: distinct characters (code points, not bytes),
    and at most one UNKNOWN entry standing for every other character. Aliases are characters
    read as another entry's id (`--fold-variants`: 牀 read as 床); nothing decodes to them."""

    def __init__(self, entries: Sequence[str], aliases: Mapping[str, int] | None = None):
        entries = list(entries)
        if not entries:
            raise ValueError("the vocabulary is empty")
        if any(not isinstance(c, str) or len(c) > 1 for c in entries):
            raise ValueError("vocabulary entries must be single characters")
        if len(set(entries)) != len(entries):
            raise ValueError("the vocabulary has repeated entries")
        self.entries = entries
        self.unknown_id = entries.index(UNKNOWN) if UNKNOWN in entries else None
        self.aliases = _checked_aliases(aliases or {}, entries, self.unknown_id)
        self.id_dtype = smallest_id_dtype(len(entries))
        # code point -> id (-1: not in the vocabulary): one gather encodes any amount of text
        self._lookup = np.full(CODE_POINTS, -1 if self.unknown_id is None else self.unknown_id, dtype=np.int32)
        known = [(ord(c), i) for i, c in enumerate(entries) if c != UNKNOWN]
        known += [(ord(c), i) for c, i in self.aliases.items()]
        if known:
            codes, ids = zip(*known)
            self._lookup[list(codes)] = ids

    @classmethod
    def from_counts(
        cls,
        counts: np.ndarray,
        min_count: int = 1,
        max_vocab: int | None = None,
        folds: Mapping[str, str] | None = None,
    ) -> tuple[Vocab, Coverage]:
        """The characters of a text given their counts (indexed by code point), in code-point order.

        Characters seen fewer than `min_count` times, and all but the `max_vocab` most frequent
        (ties broken by code point), share one unknown id; a `min_count` that leaves no character
        its own id is refused. Each character of `folds` (nearest.variant_folds) is an alias of
        the one it folds into, whose count it adds to.
        """
        text_counts, folds = counts, folds or {}
        if folds:
            counts = counts.copy()
            for alias, into in folds.items():
                counts[ord(into)] += counts[ord(alias)]
                counts[ord(alias)] = 0
        present = np.flatnonzero(counts)
        kept = present[counts[present] >= min_count]
        if present.size and not kept.size:  # only the unknown id: nothing a model could learn or write
            most = int(counts[present].max())
            raise OptionError(
                spelled("min_count"),
                f"{min_count:,} leaves no character of the text its own id: the most frequent one "
                f"appears {most:,} times (give at most {most:,})",
            )
        if max_vocab is not None and len(kept) > max_vocab:
            by_frequency = kept[np.lexsort((kept, -counts[kept]))]
            kept = np.sort(by_frequency[:max_vocab])
        entries = [chr(code) for code in kept] + ([UNKNOWN] if len(kept) < len(present) else [])
        ids = {char: i for i, char in enumerate(entries)}
        vocab = cls(entries, {alias: ids[into] for alias, into in folds.items() if into in ids})
        return vocab, vocab.coverage(text_counts)

    def entry_counts(self, counts: np.ndarray) -> list[int]:
        """How often each entry (by id) occurs in a text with these character counts (indexed by
        code point): a variant folded into an entry, and every character read as unknown, count for it."""
        present = np.flatnonzero(counts)
        ids = self._lookup[present]
        read = ids >= 0
        return np.bincount(ids[read], weights=counts[present][read], minlength=len(self)).astype(np.int64).tolist()

    def coverage(self, counts: np.ndarray) -> Coverage:
        """How much of a text with these character counts (indexed by code point) has ids of its own."""
        present = np.flatnonzero(counts)
        own = self._lookup[present]
        has_own = own >= 0 if self.unknown_id is None else own != self.unknown_id
        outside = int(counts[present[~has_own]].sum())
        alias = np.isin(present, [ord(c) for c in self.aliases])
        return Coverage(
            int((has_own & ~alias).sum()), int((~has_own).sum()), int(counts.sum()), outside, int(alias.sum())
        )

    def extended(self, counts: np.ndarray, folds: Mapping[str, str] | None = None) -> Vocab:
        """This vocabulary with the characters of `counts` it lacks appended (old ids and aliases
        unchanged); each character of `folds` becomes an alias of the one it folds into instead."""
        folds = folds or {}
        new = [
            chr(code)
            for code in np.flatnonzero(counts)
            if self._lookup[code] in (-1, self.unknown_id) and chr(code) not in folds
        ]
        if not new and not folds:
            return self
        entries = self.entries + new
        ids = {**{char: i for i, char in enumerate(entries)}, **self.aliases}
        return Vocab(entries, {**self.aliases, **{alias: ids[into] for alias, into in folds.items()}})

    def __len__(self) -> int:
        return len(self.entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.entries == other.entries and self.aliases == other.aliases

    @property
    def chars(self) -> list[str]:
        """Each id's character as printed (the unknown entry as U+FFFD)."""
        return [c or UNKNOWN_SHOWN for c in self.entries]

    def __contains__(self, char: str) -> bool:
        return self._lookup[ord(char)] != -1 and self._lookup[ord(char)] != self.unknown_id

    def unknown_chars(self, text: str) -> list[str]:
        """The distinct characters of `text` without an id of their own, sorted."""
        return self._without_id(np.unique(code_points(text)))

    def unknown_chars_counted(self, counts: np.ndarray) -> list[str]:
        """The characters of a text with these counts (indexed by code point) without an id of their own, sorted."""
        return self._without_id(np.flatnonzero(counts))

    def _without_id(self, codes: np.ndarray) -> list[str]:
        own = self._lookup[codes]
        return [chr(code) for code in codes[(own == -1) | (own == self.unknown_id)]]

    @property
    def known_chars(self) -> frozenset[str]:
        """Every character read as an id of its own: the entries but the unknown one, and the aliases."""
        return frozenset([c for c in self.entries if c != UNKNOWN] + list(self.aliases))

    @functools.cached_property
    def nearest(self) -> NearestForms:
        """The nearest known character of each character without an id (built when first asked)."""
        return NearestForms(self.known_chars)

    def unseen(self, chars: Sequence[str], policy: str) -> Unseen:
        """What becomes of `chars` (from `unknown_chars`) under the --unknown `policy`."""
        return read_unseen(chars, self.nearest, policy, self.unknown_id is not None)

    def reading(self, unseen: Unseen) -> Vocab:
        """This vocabulary, reading a text as `unseen` says: each mapped character as an alias of
        its nearest, and, where characters are left out, one more entry that marks them (the
        unknown id of a vocabulary that has none): drop its ids to leave them out."""
        if not unseen.mapped and not unseen.left_out:
            return self
        mapped = {char: int(self._lookup[ord(near.char)]) for char, near in unseen.mapped.items()}
        return Vocab(self.entries + ([UNKNOWN] if unseen.left_out else []), {**self.aliases, **mapped})

    def read_ids(self, text: str, unseen: Unseen) -> np.ndarray:
        """The ids (T,) int64 that `text` is read as under `unseen`; -1 for a character left out."""
        reading = self.reading(unseen)
        ids = reading.encode(text).astype(np.int64)
        if unseen.left_out:
            ids[ids == reading.unknown_id] = -1
        return ids

    def encode_codes(self, codes: np.ndarray) -> np.ndarray:
        """Ids (`self.id_dtype`) of code points; characters without an id raise unless there is
        an unknown id to take them."""
        ids = self._lookup[codes]
        if self.unknown_id is None and (ids < 0).any():
            shown = "".join(chr(c) for c in np.unique(codes[ids < 0])[:20])
            raise CorpusError(f"text has characters outside the vocabulary: {shown!r}")
        return ids.astype(self.id_dtype)

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of `text` (1-D, `self.id_dtype`)."""
        return self.encode_codes(code_points(text))

    def decode(self, ids: Iterable[int]) -> str:
        """The text for a sequence of ids (the unknown id as U+FFFD)."""
        chars = self.chars
        return "".join(chars[int(i)] for i in ids)

    def describe(self, limit: int = 40, order: Sequence[int] | None = None) -> str:
        """A short printable preview of the vocabulary: its first `limit` entries, by id or in `order` (ids)."""
        chars = self.chars
        preview = "".join(chars[id] for id in (order if order is not None else range(len(chars)))[:limit])
        more = f" ... (+{len(self) - limit:,})" if len(self) > limit else ""
        return f"{preview!r}{more}"


MAX_ALIASES = 100_000  # OpenCC's character tables pair fewer than 10,000 variants


def _checked_aliases(aliases: Mapping[str, int], entries: list[str], unknown_id: int | None) -> dict[str, int]:
    """`aliases` (character -> id), each a single character that is not an entry and reads as a
    character entry; else ValueError."""
    if len(aliases) > MAX_ALIASES:
        raise ValueError(f"the vocabulary has {len(aliases):,} aliases, more than {MAX_ALIASES:,}")
    names = set(entries)
    for char, id in aliases.items():
        if not isinstance(char, str) or len(char) != 1 or char in names:
            raise ValueError(f"vocabulary alias {char!r} is not a single character outside the entries")
        if not isinstance(id, int) or isinstance(id, bool) or not 0 <= id < len(entries) or id == unknown_id:
            raise ValueError(f"vocabulary alias {char!r} reads as {id!r}, which is no character's id")
    return dict(aliases)

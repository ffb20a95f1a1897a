"""The character vocabulary: Unicode code points <-> integer ids."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from charrnn.errors import CorpusError


def _code_points(text: str) -> np.ndarray:
    """The code points of `text` as a uint32 array (UTF-32 has one unit per code point)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def smallest_id_dtype(vocab_size: int) -> np.dtype:
    """The narrowest integer dtype torch can index with that holds every id."""
    if vocab_size <= 256:
        return np.dtype(np.uint8)
    if vocab_size <= 2**15:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


class Vocab:
    """An ordered list of distinct characters (code points, not bytes); id = position."""

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        if not chars:
            raise ValueError("the vocabulary is empty")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("vocabulary entries must be single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("the vocabulary has repeated characters")
        self.chars = chars
        codes = np.array([ord(c) for c in chars], dtype=np.uint32)
        # Encoding looks code points up by binary search in sorted order.
        self._order = np.argsort(codes, kind="stable")
        self._sorted_codes = codes[self._order]
        self.id_dtype = smallest_id_dtype(len(chars))

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        """Every distinct character of `text`, in code-point order (deterministic)."""
        return cls([chr(code) for code in np.unique(_code_points(text))])

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def __contains__(self, char: str) -> bool:
        return len(self.unknown_chars(char)) == 0

    def unknown_chars(self, text: str) -> list[str]:
        """The distinct characters of `text` that are not in the vocabulary, sorted."""
        codes = np.unique(_code_points(text))
        _, known = self._lookup(codes)
        return [chr(code) for code in codes[~known]]

    def _lookup(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of `codes` in sorted order, and which of them are in the vocabulary."""
        positions = np.searchsorted(self._sorted_codes, codes).clip(max=len(self) - 1)
        return positions, self._sorted_codes[positions] == codes

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of `text` (1-D, `self.id_dtype`); unknown characters raise."""
        positions, known = self._lookup(_code_points(text))
        if not known.all():
            shown = "".join(self.unknown_chars(text)[:20])
            raise CorpusError(f"text has characters outside the vocabulary: {shown!r}")
        return self._order[positions].astype(self.id_dtype)

    def decode(self, ids: Iterable[int]) -> str:
        """The text for a sequence of ids."""
        chars = self.chars
        return "".join(chars[int(i)] for i in ids)

    def describe(self, limit: int = 40) -> str:
        """A short printable preview of the vocabulary."""
        preview = "".join(self.chars[:limit])
        more = f" ... (+{len(self) - limit})" if len(self) > limit else ""
        return f"{preview!r}{more}"

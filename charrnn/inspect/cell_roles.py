"""Which cells mean something: simple properties of a text, the cells whose activations follow
them best, and how often each gate is saturated.

Karpathy's essay found, by eye, single cells that track quotes, brackets or the position in a
line. Here the same search is automatic: each property is a number per character, and every
cell of every layer is scored by its Pearson correlation with it, all cells of a layer at once.
A property is measured after reading text[t], as the activations are, and a text is a Python
str: one entry per code point, characters outside the BMP included.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np

from charrnn.core.vocab import code_points

# Karpathy, Johnson & Fei-Fei (2015), "Visualizing and Understanding Recurrent Networks", call a
# gate left-saturated where it is below 0.1 and right-saturated where it is above 0.9.
LEFT_SATURATED = 0.1
RIGHT_SATURATED = 0.9
# A cell whose activations spread less than this never varies: activations are bounded by 1, so
# this is float32 rounding (a few units in the last place), whose correlation would mean nothing.
_CONSTANT_SPREAD = 1e-6

STRAIGHT_QUOTE = '"'  # opens and closes: inside or not flips at each (apostrophes are too ambiguous)
OPENING_QUOTES = "“「『"
CLOSING_QUOTES = "”」』"
OPENING_BRACKETS = "([{（［｛"
CLOSING_BRACKETS = ")]}）］｝"

# What each property is, as the page says it.
DESCRIPTIONS = {
    "inside quotes": '1 inside a quotation (" ", “ ”, 「 」, 『 』), else 0.',
    "bracket depth": "How many brackets ( [ { are open.",
    "position in line": "Characters since the last line break.",
    "line start": "1 just after a line break: the next character begins a line.",
    "inside a word": "1 on a letter, digit or underscore, else 0.",
    "verse position": "CJK characters since the last punctuation mark or line break.",
}

# The CJK ideographs: the unified blocks and their extensions (A, B to F, G to H), and the
# compatibility ones.
_CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F), (0x30000, 0x323AF))


@dataclass(frozen=True)
class Property:
    """A number per character of a text, which a cell might track."""

    name: str  # short label: "inside quotes", "bracket depth", ...
    description: str  # one sentence for the page
    values: np.ndarray  # (T,) float64, the property after reading text[t]


@dataclass(frozen=True)
class Finding:
    """A cell whose activations follow a property."""

    property: str
    layer: int  # 0-based
    cell: int
    r: float  # Pearson correlation, signed


@dataclass(frozen=True)
class Saturation:
    """How often each cell's gate is nearly closed or nearly open, over a text."""

    layer: int  # 0-based
    gate: str
    left: np.ndarray  # (H,) fraction of steps the gate is below LEFT_SATURATED
    right: np.ndarray  # (H,) fraction of steps the gate is above RIGHT_SATURATED


def text_properties(text: str) -> list[Property]:
    """The properties that vary over `text` (a constant one correlates with nothing). Chinese
    text (mostly CJK ideographs) gets the verse position instead of "inside a word", which in a
    script without spaces would only mark punctuation."""
    codes = code_points(text)
    newline = codes == ord("\n")
    cjk = _is_cjk(codes)
    values = {
        "inside quotes": _inside_quotes(text),
        "bracket depth": _depth(text, OPENING_BRACKETS, CLOSING_BRACKETS),
        "position in line": _since(newline, np.ones_like(newline)),
        "line start": newline * 1.0,
    }
    if cjk.sum() > 0.5 * (~_is_space(text)).sum():
        values["verse position"] = _since(newline | _is_punctuation(text), cjk)
    else:
        values["inside a word"] = _is_word(text) * 1.0
    return [
        Property(name, DESCRIPTIONS[name], varying)
        for name, varying in values.items()
        if len(varying) and varying.min() < varying.max()
    ]


def rank_cells(cells: list[np.ndarray], properties: list[Property], per_property: int = 3) -> list[Finding]:
    """For each property, the `per_property` cells (of all layers' (T, H) activations) whose
    Pearson correlation with it is largest in magnitude, best first. A cell (or property) that
    never varies has r = 0."""
    if not properties:
        return []
    targets = _standardised(np.stack([found.values for found in properties], axis=1))  # (T, P)
    # (P, cells of all layers): every correlation at once, one matrix product per layer
    r = np.concatenate([targets.T @ _standardised(layer) for layer in cells], axis=1)
    where = [(layer, cell) for layer, activations in enumerate(cells) for cell in range(activations.shape[1])]
    findings = []
    for found, row in zip(properties, r):
        best = np.argsort(-np.abs(row), kind="stable")[:per_property]
        findings += [Finding(found.name, *where[index], float(row[index])) for index in best]
    return findings


def gate_saturation(gates: list[dict[str, np.ndarray]]) -> list[Saturation]:
    """Per layer and gate, the fraction of steps each cell's gate (T, H) is left- or right-saturated."""
    return [
        Saturation(layer, name, _fraction(values < LEFT_SATURATED), _fraction(values > RIGHT_SATURATED))
        for layer, named in enumerate(gates)
        for name, values in named.items()
    ]


def _fraction(hits: np.ndarray) -> np.ndarray:
    return hits.mean(axis=0) if len(hits) else np.zeros(hits.shape[1])


def _standardised(values: np.ndarray) -> np.ndarray:
    """Columns of `values` (T, N) centred and scaled to unit length, so that the dot product of
    two is their Pearson correlation; a column that never varies becomes 0."""
    centred = values - values.mean(axis=0, dtype=np.float64)
    lengths = np.sqrt((centred**2).sum(axis=0))
    spread = lengths / np.sqrt(max(len(values), 1))
    return np.divide(centred, lengths, out=np.zeros_like(centred), where=spread > _CONSTANT_SPREAD)


def _inside_quotes(text: str) -> np.ndarray:
    straight = _marks(text, STRAIGHT_QUOTE).cumsum() % 2 == 1
    paired = _depth(text, OPENING_QUOTES, CLOSING_QUOTES) > 0
    return (straight | paired) * 1.0


def _depth(text: str, opening: str, closing: str) -> np.ndarray:
    """Nesting depth after each character, never below 0 (a stray closing mark is ignored)."""
    total = (_marks(text, opening) - _marks(text, closing)).cumsum()
    # A walk floored at 0 is the free walk lifted by its deepest dip so far (Skorokhod's reflection).
    return (total - np.minimum(np.minimum.accumulate(total), 0)) * 1.0


def _since(resets: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """How many `counted` characters there have been since the last of `resets` (0 on one)."""
    totals = np.cumsum(counted, dtype=np.float64)
    last_reset = np.maximum.accumulate(np.where(resets, np.arange(len(resets)), -1))
    return totals - np.concatenate([[0.0], totals])[last_reset + 1]


def _marks(text: str, chars: str) -> np.ndarray:
    return np.fromiter((c in chars for c in text), np.int64, len(text))


def _is_cjk(codes: np.ndarray) -> np.ndarray:
    return np.any([(codes >= low) & (codes <= high) for low, high in _CJK_RANGES], axis=0)


def _is_space(text: str) -> np.ndarray:
    return np.fromiter((c.isspace() for c in text), bool, len(text))


def _is_word(text: str) -> np.ndarray:
    return np.fromiter((c.isalnum() or c == "_" for c in text), bool, len(text))


def _is_punctuation(text: str) -> np.ndarray:
    return np.fromiter((unicodedata.category(c).startswith("P") for c in text), bool, len(text))

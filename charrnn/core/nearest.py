"""Characters a model never saw: the nearest one it knows, and what a text's unseen ones become.

A prime or a text may hold characters outside a model's vocabulary: 床 where the corpus wrote
the variant 牀, ',' where a Chinese corpus has only '，', 'Z' where it had only 'z'. Each is
answered with the nearest character the vocabulary knows, looked for in this order:

1. a variant of a Chinese character: traditional and simplified, and the forms of Taiwan, Hong
   Kong and Japan, through OpenCC, an optional extra (`pip install "charrnn-tool[chinese]"`);
2. its full-width or half-width form (NFKC, both ways);
3. the other case of a letter.

OpenCC's conversions are not symmetric: it converts 牀 to 床 (t2s), yet none of its simplifying
configs turns 床 into 牀. So both ways are looked at: the unseen character's own conversions,
and the conversions of every known character, indexed back to it. That index is built once per
vocabulary, when the first Chinese character outside it appears.

The --unknown policy (`read_unseen`) says what a text's unseen characters become, and
`variant_folds` groups a corpus's variants into one character each for `train --fold-variants`.
No torch and no numpy here: sampling imports this.
"""

from __future__ import annotations

import functools
import itertools
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from charrnn.errors import OptionError
from charrnn.settings.option import UNKNOWN_POLICIES
from charrnn.settings.spelling import spelled

INSTALL_CHINESE = 'pip install "charrnn-tool[chinese]"'
# OpenCC configs whose conversions count as variants, the likelier first: simplified and
# traditional, then the regional standards (Taiwan, Hong Kong, Japanese shinjitai).
VARIANT_CONFIGS = ("t2s", "s2t", "tw2s", "t2tw", "hk2s", "t2hk", "jp2t", "t2jp")
# --fold-variants groups characters by their simplified form: a function, so the groups never
# chain (tw2s would also fold 著 into 着, which simplified Chinese keeps apart).
FOLD_CONFIG = "t2s"
SHOWN = 10  # characters named in one message
# Where Unicode puts Chinese characters (is_han's two kinds): the unified ideographs, their
# extensions A to H and the compatibility ideographs, as [first, past the last) code points.
HAN_BLOCKS = ((0x3400, 0xA000), (0xF900, 0xFB00), (0x20000, 0x32400))


@functools.cache
def variant_converters() -> dict[str, Callable[[str], str]] | None:
    """OpenCC's converter of each of VARIANT_CONFIGS, or None where OpenCC is not installed
    (loaded once per process: about 0.3 s)."""
    try:
        import opencc
    except ImportError:
        return None
    return {name: opencc.OpenCC(f"{name}.json").convert for name in VARIANT_CONFIGS}


def is_han(char: str) -> bool:
    """Whether `char` is a Chinese character (a CJK unified or compatibility ideograph)."""
    return unicodedata.name(char, "").startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))


@dataclass(frozen=True)
class Near:
    """The known character nearest to an unseen one, and how it is near."""

    char: str
    kind: str  # "variant", "width" (or "form": another NFKC form, '2' for '²') or "case"

    def describe(self) -> str:
        """`its variant '牀'`, as a message puts it."""
        if self.kind == "width":
            wide = unicodedata.east_asian_width(self.char) in _WIDE
            return f"its {'full-width' if wide else 'half-width'} form {self.char!r}"
        return f"its {_KIND_WORDS[self.kind]} {self.char!r}"


_WIDE = ("F", "W")
_KIND_WORDS = {"variant": "variant", "form": "compatibility form", "case": "other case"}


class NearestForms:
    """The nearest character of `known` to each character outside it (see the module's docstring)."""

    def __init__(self, known: Collection[str]):
        self.known = known
        self._found: dict[str, Near | None] = {}
        self._variants: dict[str, str] | None = None  # a known character's variant -> it
        self._widths: dict[str, str] | None = None  # a known character's NFKC form -> it

    def of(self, char: str) -> Near | None:
        """The known character nearest to `char`, or None where none is near."""
        if char not in self._found:
            self._found[char] = self._variant(char) or self._width(char) or self._case(char)
        return self._found[char]

    def _variant(self, char: str) -> Near | None:
        converters = variant_converters() if is_han(char) else None
        if not converters:
            return None
        return self._variant_among(char, [convert(char) for convert in converters.values()])

    def _variant_among(self, char: str, forms: Sequence[str]) -> Near | None:
        """The known variant of `char`, whose own conversions (VARIANT_CONFIGS' order) are `forms`."""
        converters = variant_converters()
        for form in forms:
            if form != char and form in self.known:
                return Near(form, "variant")
        if self._variants is None:
            self._variants = _index(self.known, converters.values(), is_han)
        found = next((self._variants[form] for form in (char, *forms) if form in self._variants), None)
        return Near(found, "variant") if found else None

    def _width(self, char: str) -> Near | None:
        plain = unicodedata.normalize("NFKC", char)
        if plain == char or plain not in self.known:
            if self._widths is None:
                self._widths = _index(self.known, [lambda c: unicodedata.normalize("NFKC", c)])
            plain = self._widths.get(char, "")
        if not plain:
            return None
        widths = {unicodedata.east_asian_width(c) for c in (char, plain)}
        return Near(plain, "width" if widths & {*_WIDE, "H"} else "form")

    def _case(self, char: str) -> Near | None:
        other = char.lower() if char.isupper() else char.upper() if char.islower() else char
        return Near(other, "case") if other != char and other in self.known else None


def page_indexes(known: Collection[str]) -> dict[str, dict[str, str]]:
    """What a page needs to answer as NearestForms(known).of does, without OpenCC: each Chinese
    character outside `known` (every one Unicode has) -> the known variant `of` finds for it
    (empty without OpenCC, or when `known` holds no Chinese character), and each character a known
    one's NFKC form is -> that known one."""
    nearest, variants = NearestForms(known), {}
    converters = variant_converters()
    if converters and any(map(is_han, known)):
        codes = itertools.chain.from_iterable(range(first, end) for first, end in HAN_BLOCKS)
        unseen = [char for char in map(chr, codes) if char not in known and is_han(char)]
        forms = [_each_converted(convert, unseen) for convert in converters.values()]
        for char, its_forms in zip(unseen, zip(*forms)):
            if near := nearest._variant_among(char, its_forms):
                variants[char] = near.char
    return {"variants": variants, "widths": _index(known, [lambda c: unicodedata.normalize("NFKC", c)])}


def _each_converted(convert: Callable[[str], str], chars: Sequence[str]) -> list[str]:
    """convert(char) for each of `chars`, in one call (seven times faster): OpenCC converts
    characters on lines of their own as it converts each alone."""
    lines = convert("\n".join(chars)).split("\n")
    return lines if len(lines) == len(chars) else [convert(char) for char in chars]


def _index(
    known: Iterable[str], conversions: Iterable[Callable[[str], str]], which: Callable[[str], bool] = lambda c: True
) -> dict[str, str]:
    """Each single character a known one converts to -> that known one (the first conversion,
    then the lowest code point, wins)."""
    chosen = sorted(c for c in known if which(c))
    index: dict[str, str] = {}
    for convert in conversions:
        for char in chosen:
            form = convert(char)
            if len(form) == 1 and form != char:
                index.setdefault(form, char)
    return index


@dataclass(frozen=True)
class Unseen:
    """What becomes of the characters of a text that a model never saw, under one policy."""

    mapped: dict[str, Near]  # read as the nearest character the model knows
    as_unknown: tuple[str, ...] = ()  # read as the vocabulary's unknown id
    left_out: tuple[str, ...] = ()  # not read at all
    refusal: str | None = None  # why the text cannot be read (`has characters ...`); None: it can

    @property
    def chars(self) -> list[str]:
        return sorted([*self.mapped, *self.as_unknown, *self.left_out])

    @property
    def hint(self) -> str:
        """`; pip install ... would look for variants ...` where OpenCC could have found some; else ""."""
        return _install_hint([*self.as_unknown, *self.left_out])

    def note(self) -> str | None:
        """One line saying what was read as what: `read '床' as '牀' (the model never saw '床')`."""
        parts = []
        if self.mapped:
            pairs = [f"{c!r} as {near.char!r}" for c, near in sorted(self.mapped.items())]
            parts.append("read " + _listed(pairs))
        if self.as_unknown:
            parts.append(f"read {_listed(map(repr, self.as_unknown))} as the unknown character")
        if self.left_out:
            parts.append(f"left out {_listed(map(repr, self.left_out))}")
        if not parts:
            return None
        chars = self.chars
        which = f"the model never saw {chars[0]!r}" if len(chars) == 1 else "characters the model never saw"
        return f"{'; '.join(parts)} ({which}){self.hint}"


def read_unseen(chars: Sequence[str], nearest: NearestForms, policy: str, has_unknown: bool) -> Unseen:
    """What becomes of `chars`, the distinct characters of a text a vocabulary has no id for,
    under `policy` (UNKNOWN_POLICIES):

    - refuse: any of them is an error, naming them and the nearest known forms;
    - map: each is read as its nearest known character; one with none as the unknown id where
      the vocabulary has one, else it is an error (naming it, and --unknown skip);
    - skip: as map, but a character with no near one and no unknown id is left out.
    """
    if policy not in UNKNOWN_POLICIES:
        raise ValueError(f"unknown policy {policy!r}")
    nearest_of = {char: nearest.of(char) for char in chars}
    if policy == "refuse" and chars:
        return Unseen({}, refusal=_never_saw(chars, nearest_of))
    mapped = {char: near for char, near in nearest_of.items() if near is not None}
    unmatched = tuple(char for char in chars if nearest_of[char] is None)
    if has_unknown or not unmatched:
        return Unseen(mapped, as_unknown=unmatched)
    if policy == "map":
        near = f"it knows no character near them ({spelled('unknown', 'skip')} leaves them out)"
        refusal = f"{_never_saw(unmatched, nearest_of, hint=False)}; {near}{_install_hint(unmatched)}"
        return Unseen(mapped, refusal=refusal)
    return Unseen(mapped, left_out=unmatched)


def _never_saw(chars: Sequence[str], nearest_of: Mapping[str, Near | None], hint: bool = True) -> str:
    shown = [_named(char, nearest_of[char]) for char in chars]
    return f"has characters the model never saw in training: {_listed(shown)}{_install_hint(chars) if hint else ''}"


def _named(char: str, near: Near | None) -> str:
    return f"{char!r} (the model knows {near.describe()})" if near else repr(char)


def _listed(items: Iterable[str]) -> str:
    items = list(items)
    more = f" and {len(items) - SHOWN:,} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def _install_hint(chars: Iterable[str]) -> str:
    """Where OpenCC is missing and a Chinese character found nothing near: how to look for its variants."""
    if variant_converters() is not None or not any(map(is_han, chars)):
        return ""
    return f"; {INSTALL_CHINESE} would look for variants of its Chinese characters"


def require_variants() -> dict[str, Callable[[str], str]]:
    """The variant converters, or the refusal of --fold-variants where OpenCC is not installed."""
    converters = variant_converters()
    if converters is None:
        raise OptionError(
            spelled("fold_variants"), f"needs OpenCC to find variants, which is not installed: {INSTALL_CHINESE}"
        )
    return converters


def variant_folds(counts: Mapping[str, int], fixed: Collection[str] = ()) -> dict[str, str]:
    """For `train --fold-variants`: each character of `counts` (character -> times seen) that
    folds into another, -> that other. Chinese characters with one simplified form (OpenCC t2s)
    are one group; the most frequent member (ties: the lowest code point) is the one kept, and
    the others fold into it. A group with `fixed` members (a fine-tuned model's characters)
    keeps them all, and folds the rest into the most frequent of them."""
    simplified = require_variants()[FOLD_CONFIG]
    groups: dict[str, list[str]] = {}
    for char in sorted({*counts, *fixed}):
        if is_han(char):
            groups.setdefault(simplified(char), []).append(char)
    folds = {}
    for members in groups.values():
        keepers = [char for char in members if char in fixed] or members
        kept = min(keepers, key=lambda char: (-counts.get(char, 0), ord(char)))
        folds.update({char: kept for char in members if char != kept and char not in fixed and char in counts})
    return folds

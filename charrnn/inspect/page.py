"""The page `charrnn viz` writes, and the same colours for a terminal.

The page is one self-contained HTML file that opens from disk, offline, in any browser: its
style and script are inline (the template is viz_page.html, beside this module) and the
data rides along as one `<script type="application/json">`, which the page's script turns into
the shaded text, the cell browser and the plots. The text comes from anywhere, so the JSON is
escaped for the one place it goes (no character of it can close the script element) and the
page only ever sets it as textContent.

The colour scales are defined here once, for both: the page reads them from the file too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from charrnn.display import printable, terminal_safe
from charrnn.store.output import OutputFile
from charrnn.version import __version__

Colour = tuple[int, int, int]
Scale = tuple[tuple[float, Colour], ...]

# Surprise in bits: white when the model expected the character, through yellow to orange
# when it did not (8 bits: p = 1/256); dark text stays readable on every colour.
SURPRISE: Scale = (
    (0.0, (255, 255, 255)),
    (1.0, (255, 247, 188)),
    (2.0, (254, 227, 145)),
    (4.0, (254, 196, 79)),
    (6.0, (254, 153, 41)),
    (8.0, (236, 112, 20)),
)
# A cell's value: blue -1, white 0, red +1.
ACTIVATION: Scale = ((-1.0, (59, 130, 205)), (0.0, (255, 255, 255)), (1.0, (214, 69, 65)))
# Bits that learning from the text saved at a character (viz --adapt): green saved, purple lost.
SAVED: Scale = ((-2.0, (153, 112, 171)), (0.0, (255, 255, 255)), (2.0, (90, 174, 97)))
SCALES = {"surprise": SURPRISE, "activation": ACTIVATION, "saved": SAVED}

PAGE_BUDGET = 3_000_000  # bytes: the page opens at once and can be mailed; activations fill what the rest leaves
_TEMPLATE = "viz_page.html"
_PLACEHOLDER = re.compile(r"__CHARRNN_(DATA|SCALES|VERSION)__")
PAGE_MARK = b'<meta name="generator" content="charrnn '  # in the head of every page charrnn writes
# Characters that could end the script element or a JS string early once the JSON is in
# the page (`</script>`, `<!--`, U+2028/9), and lone surrogates, which UTF-8 cannot encode.
_UNSAFE_IN_SCRIPT = re.compile("[<>&\u2028\u2029\ud800-\udfff]")

RESET = "\x1b[0m"
_DARK_INK = (24, 24, 24)  # the terminal's own text colour may be light: on these backgrounds it must be dark


def render_html(data: dict[str, Any]) -> str:
    """The whole self-contained page for a report's data (the dict `charrnn viz` builds)."""
    _check(data)
    blocks = {"DATA": script_json(data), "SCALES": script_json(SCALES), "VERSION": printable(__version__)}
    return _PLACEHOLDER.sub(lambda match: blocks[match[1]], _template())  # one pass: the data is never rescanned


def page_output(path: Path, force: bool = False) -> OutputFile:
    """Where a page is to be written: over nothing but a page charrnn wrote, unless `force`."""
    return OutputFile(Path(path), PAGE_MARK, force)


def write_html(data: dict[str, Any], output: OutputFile) -> None:
    """Render the page and write it to `output` (checked first: page_output), whole or not at all."""
    output.write(render_html(data).encode("utf-8"))


def cell_chars_that_fit(data: dict[str, Any], cell_count: int, budget: int = PAGE_BUDGET) -> int:
    """How many characters of activations of `cell_count` cells (all layers together) fit in a
    page of `budget` bytes beside the rest of `data` (whose "cells" entry is not counted)."""
    rest = {name: value for name, value in data.items() if name != "cells"}
    used = len(_template().encode("utf-8")) + len(script_json(rest).encode("utf-8")) + len(script_json(SCALES))
    room = budget - used - 1_000  # the cells entry's own keys and a margin
    return max(0, min(len(data["text"]), room * 3 // 4 // max(1, cell_count)))  # base64: 4 bytes per 3


def script_json(value: Any) -> str:
    """`value` as JSON safe inside a `<script>` element: `<`, `>`, `&`, U+2028/9 and lone surrogates
    written as \\u escapes (they can occur only inside JSON strings, where the escape means the same)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _UNSAFE_IN_SCRIPT.sub(lambda match: f"\\u{ord(match[0]):04x}", text)


def _template() -> str:
    return page_resource(_TEMPLATE)


def page_resource(name: str) -> str:
    """A file of a page's template beside these modules (viz_page.html, model_page.js, ...)."""
    return resources.files("charrnn.inspect").joinpath(name).read_text(encoding="utf-8")


def _check(data: dict[str, Any]) -> None:
    """Refuse data whose parts disagree in length: the page would show one character's numbers
    under another."""
    count = len(data["text"])
    problems = [
        f"{name} has {len(data[name]):,} entries for {count:,} characters (expected {count * per:,})"
        for name, per in (("bits", 1), ("top_ids", 5), ("top_probs", 5))
        if len(data[name]) != count * per
    ]
    adapted = data.get("adapted")
    if adapted is not None and len(adapted["bits"]) != count:
        problems.append(f"the adapted bits have {len(adapted['bits']):,} entries for {count:,} characters")
    cells = data["cells"]
    if cells["chars"] > count:
        problems.append(f"cells cover {cells['chars']:,} characters of a text of {count:,}")
    for number, layer in enumerate(cells["layers"], 1):
        if len(layer["data"]) != 4 * math.ceil(layer["size"] * cells["chars"] / 3):
            problems.append(f"layer {number}'s activations are not {layer['size']} x {cells['chars']:,} bytes")
    if problems:
        raise ValueError("report data: " + "; ".join(problems))


def colour(value: float, scale: str) -> Colour:
    """The colour of `value` on a scale, interpolated between its stops and clamped at its ends."""
    stops = SCALES[scale]
    if value <= stops[0][0]:
        return stops[0][1]
    for (low, low_colour), (high, high_colour) in zip(stops, stops[1:]):
        if value <= high:
            fraction = (value - low) / (high - low)
            return tuple(round(a + (b - a) * fraction) for a, b in zip(low_colour, high_colour))  # type: ignore[return-value]
    return stops[-1][1]


def ansi_text(text: Sequence[str], values: Sequence[float | None], scale: str, coloured: bool = True) -> str:
    """`text` for a terminal, each character on the background colour of its value on `scale`
    ("surprise" in bits, or "activation" from -1 to 1; None or NaN: uncoloured). Colours are
    reset before every newline (so no colour bleeds into the next line) and at the end; control
    characters other than newline and tab are shown escaped (\\x1b), never sent. Not
    `coloured` (--color, display.no_colour_reason): the text alone, escaped the same way."""
    if len(text) != len(values):
        raise ValueError(f"{len(text):,} characters but {len(values):,} values")
    if not coloured:
        return terminal_safe("".join(text))
    pieces, painted = [], None
    for char, value in zip(text, values):
        if char == "\n":
            pieces.append(RESET + "\n")
            painted = None
            continue
        wanted = None if value is None or not math.isfinite(value) else colour(value, scale)
        if wanted != painted:
            pieces.append(RESET if wanted is None else _paint(wanted))
            painted = wanted
        pieces.append(char if char == "\t" else printable(char))
    pieces.append(RESET)
    return "".join(pieces)


def ansi_legend(scale: str) -> str:
    """One line (no newline) saying what the colours of `ansi_text` mean on `scale`."""
    if scale == "surprise":
        swatches = [(bits, f" {bits:g} ") for bits, _ in SURPRISE[:-1]] + [(SURPRISE[-1][0], f" {SURPRISE[-1][0]:g}+ ")]
        return "surprise in bits: " + _swatches(swatches, scale) + "  (uncoloured: not predicted)"
    swatches = [(value, f" {value:+g} " if value else " 0 ") for value in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    return "activation: " + _swatches(swatches, scale) + "  (blue: negative, red: positive)"


def _swatches(labelled: list[tuple[float, str]], scale: str) -> str:
    return "".join(_paint(colour(value, scale)) + label for value, label in labelled) + RESET


def _paint(background: Colour) -> str:
    """The escape sequence for dark text on a 24-bit `background`."""
    return "\x1b[38;2;{};{};{};48;2;{};{};{}m".format(*_DARK_INK, *background)

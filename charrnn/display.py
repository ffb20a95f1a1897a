"""Showing text on a terminal: text charrnn did not write, and whether to colour.

Text charrnn did not write (file names, strings stored in checkpoints) may hold terminal
escape sequences (a crafted checkpoint could move the cursor, retitle the window or hide what
follows) or bytes that are not UTF-8 (file names decoded with surrogate escapes, which cannot
be printed at all). `printable` makes it safe to show.

Colour escape codes go only where `--color` (and, under auto, the terminal and NO_COLOR) say:
`no_colour_reason` is the one decision, for every command that colours.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Any

_MAX_SHOWN = 500  # characters of one untrusted string shown; the rest is elided


def printable(value: object, limit: int = _MAX_SHOWN) -> str:
    """`value` as text safe for a terminal: control and format characters (ESC, CR, BEL,
    bidirectional overrides, ...) and lone surrogates escaped as \\xNN / \\uNNNN, at most
    `limit` characters."""
    text = os.fsdecode(value) if isinstance(value, (bytes, Path)) else str(value)
    shown = "".join(_escaped(char) for char in text[:limit])
    return shown + (f"... (+{len(text) - limit:,} characters)" if len(text) > limit else "")


def terminal_safe(text: str) -> str:
    """Generated text as a terminal may show it: newlines and tabs kept, every other control
    or format character escaped as `printable` does (a model's vocabulary is a stranger's: it
    may spell an escape sequence that retitles or rewrites the user's terminal)."""
    return "".join(char if char in "\n\t" else _escaped(char) for char in text)


def _escaped(char: str) -> str:
    if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    return char


def is_terminal(stream: Any) -> bool:
    """Whether `stream` is a terminal (a missing or closed stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):  # no stream (`>&-`), or a closed one
        return False


def no_colour_reason(choice: str, stream: Any) -> str | None:
    """Why `stream` gets no colour escape codes under `--color choice` (options.COLOR_CHOICES),
    or None if it gets them. always colours; never does not; auto colours a terminal unless the
    NO_COLOR variable is set to anything but the empty string (no-color.org), never a file or a pipe."""
    if choice == "always":
        return None
    if choice == "never":
        return "--color never"
    if os.environ.get("NO_COLOR"):
        return "NO_COLOR is set"
    return None if is_terminal(stream) else "standard output is not a terminal"


def shown(value: Any) -> str:
    """A value as a one-line message quotes it: its repr, escaped and cut short."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a repr that fails: an object's own, or an int of 10,000 digits
        text = "an integer too long to show" if isinstance(value, int) else f"<{type(value).__name__}>"
    return printable(text, limit=100)

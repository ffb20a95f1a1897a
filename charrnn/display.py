"""Showing text that charrnn did not write: file names, strings stored in checkpoints.

Such text may hold terminal escape sequences (a crafted checkpoint could move the cursor,
retitle the window or hide what follows) or bytes that are not UTF-8 (file names decoded
with surrogate escapes, which cannot be printed at all). `printable` makes it safe to show.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

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

"""The Python API's arguments, checked at its door by the rules the command line's options
have (options.py): a value of the wrong type or out of range is one ConfigError naming the
Python argument (`seed must be an integer >= 0 and at most ..., got -1`), before any work.
No torch here: sampling imports this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from charrnn.display import printable
from charrnn.errors import ConfigError
from charrnn.settings.option import MAX_HELD, Option


def argument(name: str, value: Any, option: Option, optional: bool = False) -> Any:
    """`value` if it meets `option`'s rule (or is None, where `optional`); else a ConfigError."""
    if value is None and optional:
        return None
    if option.problem(value) is not None:
        raise ConfigError(f"{name} must be {option.rule()}, got {shown(value)}")
    return value


def texts(name: str, value: Any) -> tuple[str, ...]:
    """A string, or a sequence of them, as a tuple of non-empty strings (`stop`)."""
    items = (value,) if isinstance(value, str) else value
    if isinstance(items, Sequence) and all(isinstance(item, str) and item for item in items):
        return tuple(items)
    raise ConfigError(f"{name} must be a non-empty string or a sequence of them, got {shown(value)}")


def documents(name: str, value: Any) -> tuple[str, ...]:
    """A list or tuple of non-empty strings, each a document (`texts`), as a tuple."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, str) and item for item in value):
        return tuple(value)
    raise ConfigError(
        f"{name} must be a non-empty list or tuple of non-empty strings (each a document), got {shown(value)}"
    )


def too_much_held(streams: int, length: int) -> str | None:
    """Why `streams` side by side of `length` characters each cannot be made when all of it is
    held in memory until the end (batched samples, beam back-pointers, a joined sample), or None.
    Checked before anything is made: past MAX_HELD, memory would run out only hours later."""
    if streams * length <= MAX_HELD:
        return None
    return (
        f"would hold {streams * length:,} characters at once (the limit is {MAX_HELD:,}): "
        f"give at most {MAX_HELD // streams:,}"
    )


def shown(value: Any) -> str:
    """A value as a one-line message quotes it: its repr, escaped and cut short."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a repr that fails: an object's own, or an int of 10,000 digits
        text = "an integer too long to show" if isinstance(value, int) else f"<{type(value).__name__}>"
    return printable(text, limit=100)

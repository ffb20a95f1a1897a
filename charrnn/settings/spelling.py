"""How a message names an option, for the reader who will act on it: a flag on the command line,
a keyword in Python."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from charrnn.settings.options import COMMANDS

# --- how a message names an option: for the reader who will act on it -----------------------
#
# The command line's user types flags (`--max-steps 24000`), a Python caller keywords
# (`max_steps=24000`): every message that names an option asks `spelled`, and the reader is
# said once, around a command (cli/commands.py) or an API call (api.py). Unsaid: flags.
COMMAND_LINE, PYTHON = "command line", "python"
_READER: ContextVar[str | None] = ContextVar("charrnn_reader", default=None)
# Where the API's argument differs from the option's name (`charrnn.train(compile=True)`).
_PYTHON_NAMES = {
    "compile_model": "compile",
    "stops": "stop",
    "checkpoint": "location",
    "literal_text": "text",
    "output": "path",  # Model.generate_to_file(path, overwrite=True)
    "force": "overwrite",
}
# Each name's flag, train's first where commands share a name.
_FLAGS = {option.name: option.flag for table in reversed(COMMANDS.values()) for option in table}
_BARE = object()  # no value: the option's name alone


@contextmanager
def read_by(reader: str, unless_said: bool = False) -> Iterator[None]:
    """Messages raised inside name options for `reader` (COMMAND_LINE or PYTHON); with
    `unless_said`, only where no reader was said already (the CLI calling the API)."""
    token = None if unless_said and _READER.get() is not None else _READER.set(reader)
    try:
        yield
    finally:
        if token is not None:
            _READER.reset(token)


def for_python() -> bool:
    """Whether messages now go to a Python caller."""
    return _READER.get() == PYTHON


def spelled(name: str, value: Any = _BARE) -> str:
    """The option `name` (its Python name: `max_steps`), with `value` if given, as the reader
    types it: `--max-steps 24000` or `max_steps=24000`; `--resume` or `resume=True`."""
    if for_python():
        keyword = _PYTHON_NAMES.get(name, name)
        return keyword if value is _BARE else f"{keyword}={value!r}"
    flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
    if value is _BARE or value is True:
        return flag
    return f"{flag} {'none' if value is None else value}"

"""How a command's failure reaches the user: one line on stderr and an exit code, never a traceback.

click's usage errors (a bad option value, wherever it came from) exit 2, as do charrnn's own
OptionErrors; its other errors (CharRNNError) carry their exit code; anything else is a bug or
the machine failing, reported in one line that says which (out of memory, a float32 overflow).
`charrnn --debug ...` shows the traceback as well.
"""

from __future__ import annotations

import re
import sys
import traceback

import click

from charrnn.cli.params import environment_variable
from charrnn.cli.stdio import Stdout, abandon_stdout
from charrnn.display import printable
from charrnn.errors import CharRNNError, OptionError

INTERRUPTED = 130  # the shell's code for a program ended by Ctrl-C


def fail(error: BaseException, debug: bool) -> None:
    """Report `error` in one line (or silently, for a reader that left) and exit."""
    if isinstance(error, (BrokenPipeError, Stdout.Error)):  # `charrnn sample | head`, or a full disk
        abandon_stdout()
    if isinstance(error, BrokenPipeError):  # the reader left, as it may: nothing to say
        sys.exit(1)
    message, exit_code = described(error)
    if debug:
        traceback.print_exception(error)
    # printable: a value quoted in the message (a file name, an option's value) may hold a
    # newline or a terminal escape sequence; the message stays one harmless line.
    click.echo(f"Error: {printable(message, limit=2000)}", err=True)
    sys.exit(exit_code)


def described(error: BaseException) -> tuple[str, int]:
    """The line a failure is shown as, and the exit code it ends with."""
    if isinstance(error, click.UsageError):
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
        return f"{error.format_message()}{_environment_source(error)}{hint}", error.exit_code
    if isinstance(error, click.ClickException):
        return error.format_message(), error.exit_code
    if isinstance(error, OptionError):
        return f"Invalid value for '{error.option}': {error.detail}", 2
    if isinstance(error, CharRNNError):
        return str(error), error.exit_code
    if isinstance(error, (click.Abort, KeyboardInterrupt)):
        return "interrupted", INTERRUPTED
    if isinstance(error, UnicodeError):  # a codec that refuses the text in its own way (utf-16 without BOM, idna)
        return f"cannot {'encode' if isinstance(error, UnicodeEncodeError) else 'decode'} the text: {error}", 1
    if isinstance(error, Stdout.Error):
        return f"cannot write to standard output: {error.strerror}", 1
    return _out_of_memory(error) or _overflow(error) or _unexpected(error), 1


def _unexpected(error: BaseException) -> str:
    first_line = str(error).strip().split("\n")[0]  # torch's C++ errors append a stack of frames
    return f"unexpected {type(error).__name__}: {first_line} (rerun with --debug for the traceback)"


_OUT_OF_MEMORY = re.compile(r"out of memory|can't allocate memory", re.IGNORECASE)


def _out_of_memory(error: BaseException) -> str | None:
    """A one-line report of an allocation that failed (torch raises RuntimeError subclasses), else None."""
    message = str(error)
    if not (isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and _OUT_OF_MEMORY.search(message))):
        return None
    asked = re.search(r"tried to allocate (\d+) bytes", message)
    size = f": {int(asked[1]) / 2**30:,.1f} GiB asked for" if asked else ""
    return f"out of memory{size}; smaller sizes (--batch-size, --hidden-size, -n, --beam, --length) need less"


def _overflow(error: BaseException) -> str | None:
    """A one-line report of a number torch could not hold in float32, else None: an extreme
    --lr or --weight-decay, say, once AdamW's bias correction or the decay multiplies it."""
    if isinstance(error, RuntimeError) and "cannot be converted to type float without overflow" in str(error):
        return "a number grew past what float32 holds while training; a smaller --lr or --weight-decay avoids it"
    return None


def _environment_source(error: click.UsageError) -> str:
    """` (from the environment variable CHARRNN_TRAIN_LR)` when the bad value came from the
    environment, which the command line does not show."""
    variable = environment_variable(error)
    return f" (from the environment variable {variable})" if variable else ""

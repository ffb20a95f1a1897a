"""Standard output and error as the commands use them: a closed or full stdout fails with an
error main reports in one line; stderr never stops the work it reports on."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from charrnn.display import is_terminal, terminal_safe

# Streamed text (charrnn sample) is flushed at least this often, in seconds: soon enough to look
# live, where a flush of every character (a system call and a wake-up of the reader each) took
# the command from the sampler's 13,900 characters a second to 8,600 into a pipe.
FLUSH_EVERY = 0.05


def abandon_stdout() -> None:
    """Drop what could not be written, so the interpreter's final flush cannot fail with a traceback."""
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until the process ends


class Stdout:
    """Standard output, its write errors (closed, or a full disk) raised as `Stdout.Error`, which
    main reports in one line. A process started without stdout (`charrnn sample >&-`) fails only
    in the commands that write to it (train does not)."""

    class Error(OSError):
        pass

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._guarded("write", text)

    def flush(self) -> None:
        if self._stream is not None:
            self._guarded("flush")

    def _guarded(self, method: str, *args: Any) -> Any:
        if self._stream is None:
            raise self.Error(errno.EBADF, "it is closed")
        try:
            return getattr(self._stream, method)(*args)
        except BrokenPipeError:  # the reader left (`| head`): main ends quietly
            raise
        except OSError as error:
            raise self.Error(error.errno, error.strerror) from error

    def __getattr__(self, name: str) -> Any:
        if self._stream is None:
            raise AttributeError(name)
        return getattr(self._stream, name)


class Diagnostics:
    """Standard error for messages and progress: a full or broken stderr must not stop the work
    it reports on (a training run, say); what cannot be written there is dropped."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def prepare_standard_streams() -> None:
    """Text that the terminal's encoding cannot show is written escaped (\\u4e16), not a crash;
    a closed stdout fails only the commands that write to it; stderr never stops the work."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    sys.stdout = Stdout(sys.stdout)
    sys.stderr = Diagnostics(sys.stderr if sys.stderr is not None else open(os.devnull, "w"))  # noqa: SIM115


def write_streaming(pieces: Iterable[str], stream: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
    """Write `pieces` to `stream` (stdout) as they come: each flushed within FLUSH_EVERY seconds
    of the last flush, on a terminal at each newline too (so lines appear as they are made),
    and all of it by the end. On a terminal, control characters but newline and tab are shown
    escaped (display.terminal_safe); into a file or a pipe the text goes as it is."""
    stream = sys.stdout if stream is None else stream
    on_terminal = is_terminal(stream)
    pending: list[str] = []
    flushed = clock()
    for piece in pieces:
        pending.append(terminal_safe(piece) if on_terminal else piece)
        now = clock()
        if now - flushed >= FLUSH_EVERY or (on_terminal and "\n" in piece):
            _write(stream, pending)
            flushed = now
    _write(stream, pending)


def _write(stream: Any, pending: list[str]) -> None:
    stream.write("".join(pending))
    stream.flush()
    pending.clear()

"""Writing a file whole or not at all, and recognising what such writes leave behind.

A file is written to a temporary file beside it, flushed to disk (fsync), renamed over the
old one, and the rename flushed too: a crash or a power cut leaves the old file or the new
one, never half of either. Checkpoints, run.json, metrics.jsonl and the corpus cache all
write this way.

Temporary files carry a tag no other program would choose, the writer's pid and its host
(`.NAME.charrnn-tmp-PID@HOST`), so that charrnn only ever removes leftovers it can prove it
wrote (never a user's `.notes.md.tmp-123`). No torch here: the cache and metrics use it too.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMPORARY_TAG = ".charrnn-tmp-"
_LEFTOVER = re.compile(r"\..+" + re.escape(TEMPORARY_TAG) + r"(\d+)@(.+)")


def temporary_name(path: Path) -> Path:
    """Where this process writes a file before renaming it to `path`."""
    return path.with_name(f".{path.name}{TEMPORARY_TAG}{os.getpid()}@{socket.gethostname()}")


def leftover_writer(name: str) -> tuple[int, str] | None:
    """(pid, host) of the process that was writing a temporary file of this name; None for
    a name charrnn does not write."""
    match = _LEFTOVER.fullmatch(name)
    return (int(match[1]), match[2]) if match else None


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write `path` through `write(file)`, whole or not at all (an OSError leaves the old file)."""
    temporary = temporary_name(path)
    try:
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:  # a full disk, or a second Ctrl-C: leave no temporary file behind
        temporary.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened or flushed)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)

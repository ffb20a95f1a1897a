"""Opening files safely, writing a file whole or not at all, and recognising what such writes
leave behind. No torch here, and no charrnn imports: every module that touches a file uses it.

Reading: a file is opened only if it is a regular file (or, where a stream is meant, a pipe).
A FIFO that nothing writes to would make open() wait forever, and a device (/dev/zero) feeds
bytes forever; so the path is looked at before it is opened, opened without waiting
(O_NONBLOCK), and looked at again on the open descriptor (it may have been swapped since).

Writing in place (appending, truncating) happens only to a regular file with no other name:
opened without following a symbolic link (O_NOFOLLOW), and refused if the opened file has a
second name (a hard link), whose owner would see it change.

Writing whole: a file is written to a temporary file beside it, flushed to disk (fsync),
renamed over the old one, and the rename flushed too: a crash or a power cut leaves the old
file or the new one, never half of either. A rename replaces the name, never writes through
a link. Checkpoints, run.json, metrics.jsonl, the corpus cache and viz's and plot's outputs
all write this way.

Temporary files carry a tag no other program would choose, the writer's pid and its host
(`.NAME.charrnn-tmp-PID@HOST`), so that charrnn only ever removes leftovers it can prove it
wrote (never a user's `.notes.md.tmp-123`); they are created anew (O_EXCL), never opened
through something already there.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import stat
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

TEMPORARY_TAG = ".charrnn-tmp-"
_LEFTOVER = re.compile(r"\..+" + re.escape(TEMPORARY_TAG) + r"(\d+)@(.+)")
# Flags some systems lack (Windows: no links to follow, no FIFOs to wait on).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class NotAFile(OSError):
    """Something other than what may be read or written is at a path: a folder, a pipe, a
    device, a link, a file with a second name. `what` says so ("is a named pipe, not a
    regular file"); `strerror` too, as a clause ("it is a named pipe, ...")."""

    def __init__(self, path: str | Path, what: str, mode: int | None = None):
        super().__init__(errno.EINVAL, f"it {what}", str(path))
        self.what = what
        self.mode = mode  # what was found there, where it was looked at


def kind(mode: int) -> str:
    """What a file of this mode is, for messages: "a folder", "a named pipe", "a device"..."""
    kinds = {
        stat.S_ISLNK: "a symbolic link",
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a named pipe",
        stat.S_ISCHR: "a device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
        stat.S_ISREG: "a file",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def not_regular(path: str | Path, mode: int) -> NotAFile:
    return NotAFile(path, f"is {kind(mode)}, not a regular file", mode)


def not_a_file(path: str | Path) -> NotAFile | None:
    """Why what is at `path` is not a regular file (a link, a folder, a pipe), looked at without
    following a link; None where it is one, or where nothing is."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    return None if stat.S_ISREG(mode) else not_regular(path, mode)


def open_to_read(path: str | Path, pipes: bool = False) -> BinaryIO:
    """`path` open for reading (binary), if it is a regular file, or with `pipes` a pipe (a
    pipe nothing writes to reads as empty, at once). Raises OSError as open() does, or
    NotAFile for anything else, before opening it where it can."""
    allowed = (stat.S_ISREG, stat.S_ISFIFO) if pipes else (stat.S_ISREG,)
    mode = os.stat(path).st_mode
    if not any(test(mode) for test in allowed):  # not opened at all: opening a device can do things
        raise not_regular(path, mode)
    descriptor = os.open(path, os.O_RDONLY | _NONBLOCK | _BINARY | _CLOEXEC)
    try:
        mode = os.fstat(descriptor).st_mode
        if not any(test(mode) for test in allowed):  # swapped for something else since the stat
            raise not_regular(path, mode)
        if _NONBLOCK:
            os.set_blocking(descriptor, True)  # a pipe with a writer now waits for its text, as it should
    except BaseException:
        os.close(descriptor)
        raise
    return os.fdopen(descriptor, "rb")


def own_opener(path: str | Path, flags: int) -> int:
    """A descriptor on `path` to write in place (an `opener` for open()): never through a link,
    never a file with another name, never waiting on a pipe; raises NotAFile for those."""
    try:
        descriptor = os.open(path, flags | _NOFOLLOW | _NONBLOCK | _CLOEXEC, 0o666)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise not_regular(path, stat.S_IFLNK) from None
        if error.errno == errno.ENXIO:  # a FIFO that nothing reads
            raise not_regular(path, stat.S_IFIFO) from None
        raise
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise not_regular(path, status.st_mode)
        if status.st_nlink != 1:
            raise NotAFile(path, "has another name (a hard link)", status.st_mode)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def create_new(path: Path) -> BinaryIO:
    """A new file at `path`, open for writing (binary); whatever was at the name is removed
    first (a temporary name, which only its writer uses), never written through."""
    with suppress(FileNotFoundError):
        os.unlink(path)
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY | _CLOEXEC, 0o666), "wb")


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
        with create_new(temporary) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:  # a full disk, or a second Ctrl-C: leave no temporary file behind
        with suppress(OSError):
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

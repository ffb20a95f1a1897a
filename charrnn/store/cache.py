"""The corpus cache folder: where it is, and writing into it so that nothing half-written or
damaged is ever read back as good.

- Where: `$CHARRNN_CACHE`, else `$XDG_CACHE_HOME/charrnn`, else `~/.cache/charrnn`; an empty
  `$CHARRNN_CACHE` or a home folder that cannot be found is refused, never taken for the
  current folder. It holds one folder per corpus (charrnn.store.encoded) and `spooled/`: texts that
  could be read only once (standard input, pipes), each under the SHA-256 of its bytes.
- Writing: into a temporary file that is flushed to disk (fsync) before it is renamed into
  place, and the rename flushed too, so a crash or a power cut leaves the old entry or the new
  one. SIGTERM and SIGHUP while writing raise an exception, so the temporary file is removed
  on the way out; those that a `kill -9` leaves are removed the next time the cache is used.
  Temporary names carry a tag, the writer's pid and its host (`.NAME.charrnn-tmp-PID@HOST`),
  and only those whose writer is gone are removed: the cache is shared by concurrent
  processes, perhaps by several machines.
- Sealed entries: a 4 KiB header (the entry's fields as JSON, and the SHA-256 of those fields
  and the payload), then the payload. Reading one back checks every field the reader
  expects, the size and the SHA-256; an entry zeroed by a power cut, cut short, overwritten
  or replaced by a folder is found out and rebuilt. Checking costs one read and SHA-256 pass
  over the payload at each reuse. Measured on the 2-core AMD EPYC development machine (SHA-NI,
  about 2 GB/s): 0.05 s for a 100 MB entry and 0.5-0.7 s for 1 GB in the page cache, 0.09 s
  and 1.8 s read cold from disk; encoding that 1 GB took about 15 s. CPUs without SHA
  instructions hash about 4x slower.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

from charrnn.display import printable
from charrnn.errors import CharRNNError, CorpusError, OptionError
from charrnn.store.files import TEMPORARY_TAG, create_new, fsync_folder, leftover_writer, open_to_read, temporary_name

CACHE_VARIABLE = "CHARRNN_CACHE"
SPOOLED = "spooled"  # the folder of texts read once from a pipe: <root>/spooled/<sha256>
HEADER_BYTES = 4096  # a sealed entry's header; a page, so that the payload is aligned for any dtype
READ_BYTES = 1 << 22  # hashing reads 4 MiB at a time: memory stays flat
_MAGIC = b"charrnn cache entry\n"


class Terminated(CharRNNError):
    """SIGTERM or SIGHUP arrived while a cache entry was being written; nothing was left behind."""

    def __init__(self, number: int, doing: str):
        super().__init__(
            f"stopped by {signal.Signals(number).name} while {doing}; nothing half-written was left in the cache"
        )
        self.exit_code = 128 + number  # the shell's convention: 143 for SIGTERM


def cache_root() -> Path:
    """The cache folder, as the module docstring says."""
    if CACHE_VARIABLE in os.environ:
        value = os.environ[CACHE_VARIABLE]
        if not value.strip():  # Path("") is the current folder: never fill that with cache files
            raise OptionError(CACHE_VARIABLE, "is empty; set it to a folder, or unset it to use ~/.cache/charrnn")
        return Path(value)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec: a relative (or empty) value is to be ignored
        return Path(xdg) / "charrnn"
    home = os.path.expanduser("~")  # "~" itself when $HOME is unset and there is no passwd entry
    if not os.path.isabs(home):
        raise CorpusError(
            f"no folder for the corpus cache: $HOME is not set (or not absolute); set {CACHE_VARIABLE} to one"
        )
    return Path(home) / ".cache" / "charrnn"


@contextmanager
def _signals_raise(doing: str) -> Iterator[None]:
    """While active, SIGTERM and SIGHUP raise `Terminated` instead of ending the process on the
    spot, so that a writer removes its temporary file. Only signals left at their default
    action are taken (a `nohup`'s ignored SIGHUP stays ignored), and only in the main thread,
    the one Python lets set handlers."""
    numbers = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous: dict[int, Any] = {}

    def handle(number: int, frame: object) -> None:
        raise Terminated(number, doing)

    try:
        if threading.current_thread() is threading.main_thread():
            for number in numbers:
                if signal.getsignal(number) is signal.SIG_DFL:
                    previous[number] = signal.signal(number, handle)
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextmanager
def _writing(path: Path, doing: str) -> Iterator[tuple[Path, BinaryIO]]:
    """A temporary file beside `path` to write, removed however the block ends (unless the
    block renamed it into place). An OSError (read-only, full disk, a file where a folder
    should be) becomes one line naming the folder."""
    temporary = temporary_name(path)
    with _signals_raise(doing):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with create_new(temporary) as file:
                yield temporary, file
        except OSError as error:
            raise CorpusError(
                f"cannot write to the corpus cache {printable(path.parent)}: {error.strerror or error}; "
                f"set {CACHE_VARIABLE} to a folder you can write to, with room for the encoded corpus"
            ) from None
        finally:
            with suppress(OSError):
                temporary.unlink(missing_ok=True)


def _durable(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())


def _put(temporary: Path, path: Path) -> None:
    """Rename the written `temporary` to `path` and make the rename durable. An empty folder
    where the entry should be (damage) is removed; anything else in its way is refused."""
    if path.is_dir() and not path.is_symlink():
        try:
            path.rmdir()
        except OSError:
            raise CorpusError(f"the corpus cache entry {printable(path)} is a folder, not a file; remove it") from None
    os.replace(temporary, path)
    fsync_folder(path.parent)


def _write_entry(path: Path, write: Callable[[BinaryIO], None], doing: str) -> None:
    """Write the entry `path` whole or not at all through `write(file)`, as files.write_atomic
    does, and as the cache needs besides: SIGTERM mid-write leaves no temporary file, an empty
    folder in the entry's place is cleared, and an OSError is one line naming the cache."""
    with _writing(path, doing) as (temporary, file):
        write(file)
        _durable(file)
        _put(temporary, path)


def remove_leftovers(root: Path) -> None:
    """Remove the temporary files of killed writers (kill -9, a power cut) from the cache:
    only charrnn's own (by their tag), only this machine's, only once their writer is gone."""
    with suppress(OSError):  # a cache that cannot be listed or changed is still read
        host = socket.gethostname()
        for path in [*root.glob(f".*{TEMPORARY_TAG}*"), *root.glob(f"*/.*{TEMPORARY_TAG}*")]:
            writer = leftover_writer(path.name)
            if writer and writer[1] == host and _writer_gone(writer[0]):
                with suppress(OSError):
                    path.unlink()


def _writer_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process may be writing it right now
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # another user's process, or no pid at all: leave it
        return False
    return False


class _Hashing:
    """A file that hashes and counts what is written to it."""

    def __init__(self, file: BinaryIO, hasher: Any):
        self.file, self.hasher, self.written = file, hasher, 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.written += len(data)
        return self.file.write(data)


def _canonical(fields: dict) -> bytes:
    return json.dumps(fields, sort_keys=True).encode("ascii")


def write_sealed(
    path: Path, fields: dict, payload_bytes: int, write_payload: Callable[[Any], None], doing: str
) -> None:
    """Write a sealed entry: `fields`, then exactly `payload_bytes` bytes from `write_payload(file)`."""
    fields = {**fields, "payload_bytes": payload_bytes}

    def write(file: BinaryIO) -> None:
        file.write(bytes(HEADER_BYTES))  # the header, once the digest is known
        payload = _Hashing(file, hashlib.sha256(_canonical(fields)))
        write_payload(payload)
        if payload.written != payload_bytes:
            raise CorpusError(
                f"the text changed while {doing} ({payload.written:,} bytes instead of {payload_bytes:,}); run again"
            )
        header = _MAGIC + _canonical({**fields, "sha256": payload.hasher.hexdigest()}) + b"\n"
        file.seek(0)
        file.write(header.ljust(HEADER_BYTES, b" "))

    _write_entry(path, write, doing)


def open_sealed(
    path: Path, expected: dict, advance: Callable[[int], None] = lambda n: None
) -> tuple[BinaryIO, dict] | None:
    """The sealed entry at `path`, open, and its fields, if it is whole and its fields hold
    `expected`; None if it is missing or damaged (to be rebuilt). `advance` sees each block hashed."""
    try:
        file = open_to_read(path)
    except OSError:  # missing, a folder or a pipe (damage: rebuilt), unreadable
        return None
    try:
        fields = _verified_fields(file, expected, advance)
    except OSError:
        fields = None
    if fields is None:
        file.close()
        return None
    return file, fields


def _verified_fields(file: BinaryIO, expected: dict, advance: Callable[[int], None]) -> dict | None:
    size = os.fstat(file.fileno()).st_size
    header = file.read(HEADER_BYTES)
    if len(header) < HEADER_BYTES or not header.startswith(_MAGIC):
        return None
    try:
        fields = json.loads(header[len(_MAGIC) :].decode("ascii"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(fields, dict):
        return None
    digest = fields.pop("sha256", None)
    if (
        any(fields.get(key) != value for key, value in expected.items())
        or fields.get("payload_bytes") != size - HEADER_BYTES
    ):
        return None
    hasher = hashlib.sha256(_canonical(fields))
    block = memoryview(bytearray(READ_BYTES))
    while read := file.readinto(block):
        hasher.update(block[:read])
        advance(read)
    return fields if hasher.hexdigest() == digest else None


def spool(chunks: Iterable[bytes], doing: str) -> Path:
    """Store a text that can be read only once (standard input, a pipe) in the cache, under
    the SHA-256 of its bytes, and return its path. A copy already there is kept (so that its
    encoding in the cache is reused), once its bytes are checked."""
    folder = cache_root() / SPOOLED
    remove_leftovers(folder.parent)
    with _writing(folder / "text", doing) as (temporary, file):
        hasher = hashlib.sha256()
        for chunk in chunks:
            hasher.update(chunk)
            file.write(chunk)
        _durable(file)
        path = folder / hasher.hexdigest()
        if _digest_of(path) != hasher.hexdigest():
            _put(temporary, path)
    return path


def spooled_copy(digest: str) -> Path | None:
    """The copy `spool` keeps of the text with this SHA-256, if the cache still holds it."""
    path = cache_root() / SPOOLED / digest
    return path if _digest_of(path) == digest else None


def _digest_of(path: Path) -> str | None:
    hasher = hashlib.sha256()
    try:
        with open_to_read(path) as file:
            while chunk := file.read(READ_BYTES):
                hasher.update(chunk)
    except OSError:
        return None
    return hasher.hexdigest()

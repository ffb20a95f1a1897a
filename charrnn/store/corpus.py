"""Where training text comes from, read in chunks so that no corpus has to fit in memory.

A corpus is one or more text files: a file, several files, a folder (every file under it,
hidden ones left out, linked folders followed) or a glob pattern. Files are read in sorted path
order and joined with a newline after each file that does not end with one, so no file's last
line runs into the next file's first. With no files at all, the built-in corpus is used:
Python's own standard-library sources, like Karpathy's Linux-source corpus, present wherever
charrnn runs (charrnn.store.stdlib_corpus chooses which).

A text that can be read only once (`-`, standard input; a named pipe; `<(...)` in a shell) is
first copied into the cache (charrnn.store.cache), and that copy is the file read. Devices, sockets,
unreadable folders and broken links are refused in one line, never skipped or waited on. Binary
files found inside a folder or by a pattern (`__pycache__/*.pyc`, images) are left out, and the
corpus's description says how many; a binary file named on its own is refused. charrnn's own
files are left out and counted the same way, so that a run's logs never become its text: an out
folder inside a corpus folder or matched by a pattern (one holding run.json, .charrnn.lock or
checkpoints) and the corpus cache are left out whole; in an out folder named itself, or whose
files a pattern matches, the files charrnn writes there (metrics.jsonl, samples.txt, ...).
"""

from __future__ import annotations

import codecs
import glob
import os
import re
import stat
import sys
import sysconfig
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from charrnn.display import printable
from charrnn.errors import CorpusError
from charrnn.settings.spelling import spelled
from charrnn.store.cache import spool, spooled_copy
from charrnn.store.corpus_files import (
    LeftOut,
    folder_files,
    is_utf8_encoding,
    matches,
    open_regular,
    regular_file,
    status_of,
)
from charrnn.store.files import kind, open_to_read
from charrnn.store.stdlib_corpus import MAX_BYTES, stdlib_sources

CHUNK_BYTES = 1 << 22  # 4 MiB read at a time: memory stays flat however large the corpus
BUILTIN_NAME = "built-in"
SEPARATOR = "\n"
STDIN = "-"  # the corpus argument that means standard input
STDIN_DESCRIPTION = "standard input"
# What a checkpoint records for the n-th text given in memory (charrnn.train(texts=[...])): no
# file of the user's holds it, so a resume reads the copy in the cache, found by its SHA-256.
IN_MEMORY = "<text {number}, sha256 {digest}>"
_IN_MEMORY = re.compile(r"<text \d+, sha256 ([0-9a-f]{64})>")


@dataclass(frozen=True)
class Corpus:
    """The files of a training text, in reading order, and how to decode them."""

    files: tuple[Path, ...]
    description: str
    encoding: str = "utf-8"
    errors: str = "strict"
    builtin: bool = False
    # What each file was named as, where that is not the file itself: `-` or a pipe, whose text
    # was copied into the cache. A checkpoint records these, so a resume reads them again.
    names: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files)

    def paths(self) -> list[str] | None:
        """What a checkpoint records to find this corpus again on resume (None: the built-in one)."""
        return None if self.builtin else list(self.names) if self.names else [str(p) for p in self.files]

    def chunks(self, on_read: Callable[[bytes], None] = lambda raw: None) -> Iterator[str]:
        """The decoded text, chunk by chunk, files joined as the module docstring says.
        `on_read` sees every block of raw bytes as it is read (for hashing, for progress)."""
        for index, path in enumerate(self.files):
            ends_with_newline = True
            shown = _shown(self.names[index] if self.names else path)
            for text in _decoded_chunks(path, shown, self.encoding, self.errors, on_read):
                if text:
                    ends_with_newline = text.endswith(SEPARATOR)
                    yield text
            if not ends_with_newline:
                yield SEPARATOR


def resolve_corpus(arguments: Sequence[str], encoding: str = "utf-8", errors: str = "strict") -> Corpus:
    """The corpus named by command-line arguments (files, folders, glob patterns, `-`), or the built-in one."""
    if not arguments:
        return builtin_corpus()
    arguments = list(arguments)
    if any(_IN_MEMORY.fullmatch(argument) for argument in arguments):  # a resume of a run on texts in memory
        return _kept_texts(arguments)
    if STDIN in arguments and len(arguments) > 1:
        raise CorpusError("- (standard input) must be the only corpus argument; pipe every text into it instead")
    named: dict[str, Path] = {}  # the name a checkpoint records -> the file read
    left_out = LeftOut(binary=is_utf8_encoding(encoding))
    for argument in arguments:
        named.update(_files_of(argument, encoding, left_out))
    names = sorted(named)
    files = tuple(named[name] for name in names)
    if arguments == [STDIN]:
        description = STDIN_DESCRIPTION
    elif len(arguments) == 1 and len(files) == 1:
        description = printable(arguments[0])
    else:
        description = f"{len(files):,} files ({printable(', '.join(arguments))})"
    description += left_out.note()
    return Corpus(files=files, description=description, encoding=encoding, errors=errors, names=tuple(names))


def _files_of(argument: str, encoding: str, left_out: LeftOut) -> dict[str, Path]:
    """The files `argument` names, each under the name a checkpoint records."""
    if argument == STDIN:
        return {STDIN: _spooled(_stdin_source(), STDIN_DESCRIPTION, encoding)}
    status = status_of(argument)
    if status is None:
        if glob.has_magic(argument):
            return matches(argument, left_out)
        raise CorpusError(f"corpus not found: {printable(argument)}")
    if stat.S_ISDIR(status.st_mode):
        return folder_files(Path(argument), left_out)
    if stat.S_ISREG(status.st_mode):
        return regular_file(Path(argument))
    if stat.S_ISFIFO(status.st_mode):  # a named pipe, or a shell's <(...)
        _refuse_pipes_under_torchrun(printable(argument))
        return {os.path.abspath(argument): _spooled(_pipe_source(argument), printable(argument), encoding, pipe=True)}
    raise CorpusError(f"{printable(argument)} is {kind(status.st_mode)}, not a text file")


def _refuse_pipes_under_torchrun(name: str) -> None:
    if os.environ.get("WORLD_SIZE", "1").strip() not in ("", "1"):
        raise CorpusError(
            f"{name} can be read only once, not by each of several processes (torchrun); save the text to a file"
        )


def _stdin_source() -> Iterator[bytes]:
    """Standard input's bytes, checked first: a terminal would wait for typing, not a text."""
    stream = sys.stdin
    try:
        is_terminal = stream is not None and stream.isatty()
    except ValueError:  # closed
        stream = None
    if stream is None:
        raise CorpusError(
            "the corpus is standard input (-), but there is none: pipe the text in (cat *.txt | charrnn train -)"
        )
    if is_terminal:
        raise CorpusError(
            "the corpus is standard input (-), which is a terminal here: pipe the text in (cat *.txt | charrnn train -), "
            "or name its files; a run trained on standard input resumes the same way (cat *.txt | charrnn train --resume)"
        )
    _refuse_pipes_under_torchrun("standard input")
    source = getattr(stream, "buffer", stream)
    return _chunks_of(lambda: source.read(CHUNK_BYTES), "standard input")


def _pipe_source(path: str) -> Iterator[bytes]:
    """A named pipe's bytes. Opening a FIFO waits for a writer, perhaps forever: it is opened
    without waiting (files.open_to_read); with no writer at all, the first read ends at once."""
    try:
        file = open_to_read(path, pipes=True)
    except OSError as error:
        raise CorpusError(f"cannot read corpus {printable(path)}: {error.strerror}") from None
    return _chunks_of(lambda: file.read(CHUNK_BYTES), printable(path), file.close)


def _chunks_of(read: Callable[[], bytes], name: str, close: Callable[[], None] = lambda: None) -> Iterator[bytes]:
    try:
        while chunk := read():
            yield chunk
    except OSError as error:
        raise CorpusError(f"cannot read {name}: {error.strerror or error}") from None
    finally:
        close()


def _spooled(chunks: Iterator[bytes], name: str, encoding: str, pipe: bool = False) -> Path:
    """Copy a text that can be read once into the cache; refuse at once what cannot be text."""
    is_utf8 = codecs.lookup(encoding).name == "utf-8"
    size = 0

    def checked() -> Iterator[bytes]:
        nonlocal size
        for chunk in chunks:
            nul = chunk.find(b"\0") if is_utf8 else -1
            if nul >= 0:  # fail fast on `cat /dev/zero |`, before filling the disk
                raise CorpusError(f"{name} looks like a binary file (NUL byte at offset {size + nul:,}), not text")
            size += len(chunk)
            yield chunk

    path = spool(checked(), f"reading {name}")
    if pipe and not size:
        raise CorpusError(
            f"{name} gave no text: nothing was writing to it (start the writer first: cat *.txt > {name} &)"
        )
    return path


def texts_corpus(texts: Sequence[str]) -> Corpus:
    """The corpus of strings given in memory, each a document as a file is (joined by a
    newline where one lacks it): each copied into the cache as UTF-8, as standard input is,
    so that it is read, hashed and encoded as any file."""
    files = []
    for number, text in enumerate(texts, 1):
        pieces = (text[i : i + CHUNK_BYTES].encode("utf-8", "surrogatepass") for i in range(0, len(text), CHUNK_BYTES))
        files.append(_spooled(pieces, f"text {number}", "utf-8"))
    names = tuple(IN_MEMORY.format(number=number, digest=path.name) for number, path in enumerate(files, 1))
    return Corpus(files=tuple(files), description=_in_memory(len(texts)), names=names)


def _kept_texts(names: Sequence[str]) -> Corpus:
    """The texts a run was given in memory, as the cache kept them (texts_corpus)."""
    files = []
    for name in names:
        found = _IN_MEMORY.fullmatch(name)
        copy = spooled_copy(found.group(1)) if found else None
        if copy is None:
            raise CorpusError(
                f"this run was trained on texts given in memory, and the cache no longer holds {printable(name)}: "
                f"give them again with {spelled('texts')}"
            )
        files.append(copy)
    return Corpus(files=tuple(files), description=_in_memory(len(files)), names=tuple(names))


def _in_memory(count: int) -> str:
    return f"{count:,} text{'s' if count > 1 else ''} given in memory"


def _shown(name: str | Path) -> str:
    """A corpus file as messages name it."""
    return STDIN_DESCRIPTION if name == STDIN else printable(name)


def _decoded_chunks(
    path: Path, shown: str, encoding: str, errors: str, on_read: Callable[[bytes], None]
) -> Iterator[str]:
    """One file's text in chunks; refuses binary files and says where bad bytes are (naming the file `shown`)."""
    is_utf8 = codecs.lookup(encoding).name == "utf-8"
    decoder = codecs.getincrementaldecoder("utf-8-sig" if is_utf8 else encoding)(errors)
    offset = newlines = 0  # bytes read and newlines passed, to place an error in the file
    try:
        with open_regular(path, shown) as file:
            while chunk := file.read(CHUNK_BYTES):
                nul = chunk.find(b"\0")
                if nul >= 0 and is_utf8:  # UTF-16 and UTF-32 texts hold NUL bytes; UTF-8 text never does
                    raise CorpusError(
                        f"{shown} looks like a binary file (NUL byte at offset {offset + nul:,}), not text"
                    )
                pending = decoder.getstate()[0]
                try:
                    yield decoder.decode(chunk)
                except UnicodeDecodeError as error:
                    raise _decode_error(
                        shown, encoding, is_utf8, pending + chunk, offset - len(pending), newlines, error
                    ) from None
                offset += len(chunk)
                newlines += chunk.count(b"\n")
                on_read(chunk)
            yield decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:  # the file ends inside a character
        raise CorpusError(
            f"{shown} ends in the middle of a character ({error.reason}); give its {spelled('encoding')}"
        ) from None
    except UnicodeError as error:  # a codec that refuses text its own way (utf-16 without a BOM, idna)
        raise CorpusError(
            f"{shown} cannot be decoded as {encoding}: {printable(error)}; give its {spelled('encoding')}"
        ) from None
    except IsADirectoryError:
        raise CorpusError(f"corpus is a folder, not a text file: {shown}") from None
    except OSError as error:
        raise CorpusError(f"cannot read corpus {shown}: {error.strerror}") from None


def _decode_error(shown, encoding, is_utf8, data, start, newlines, error) -> CorpusError:
    line = newlines + data.count(b"\n", 0, error.start) + 1
    return CorpusError(
        f"{shown} is not valid {'UTF-8' if is_utf8 else encoding}: byte {data[error.start]:#04x} at offset "
        f"{start + error.start:,} (line {line:,}); give its encoding with {spelled('encoding')} (e.g. latin-1, gb18030), "
        f"or {spelled('errors', 'replace')} to substitute U+FFFD"
    )


def builtin_corpus(max_bytes: int = MAX_BYTES) -> Corpus:
    """Python standard-library sources: a fair, deterministic sample of up to `max_bytes` (see stdlib_corpus)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = stdlib_sources(stdlib, max_bytes)
    if not files:
        raise CorpusError(
            f"no Python sources found under {printable(stdlib)} for the built-in corpus; give a corpus file"
        )
    version = ".".join(map(str, sys.version_info[:2]))
    description = f"{BUILTIN_NAME}: {len(files)} Python {version} standard-library sources from {stdlib}"
    return Corpus(files=tuple(files), description=description, builtin=True)

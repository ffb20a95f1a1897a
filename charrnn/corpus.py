"""Where training text comes from, read in chunks so that no corpus has to fit in memory.

A corpus is one or more text files: a file, several files, a folder (every file under it,
hidden ones left out) or a glob pattern. Files are read in sorted path order and joined with
a newline after each file that does not end with one, so no file's last line runs into the
next file's first. With no files at all, the built-in corpus is used: Python's own
standard-library sources, like Karpathy's Linux-source corpus, present wherever charrnn runs.
"""

from __future__ import annotations

import codecs
import glob
import os
import sys
import sysconfig
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from charrnn.errors import CorpusError

CHUNK_BYTES = 1 << 22  # 4 MiB read at a time: memory stays flat however large the corpus
BUILTIN_NAME = "built-in"
BUILTIN_MAX_BYTES = 3_000_000
_BUILTIN_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
SEPARATOR = "\n"


@dataclass(frozen=True)
class Corpus:
    """The files of a training text, in reading order, and how to decode them."""

    files: tuple[Path, ...]
    description: str
    encoding: str = "utf-8"
    errors: str = "strict"
    builtin: bool = False

    @property
    def total_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files)

    def record(self) -> dict:
        """What a checkpoint records to find this corpus again on resume."""
        return {"paths": None if self.builtin else [str(p) for p in self.files], "description": self.description}

    def chunks(self, on_read: Callable[[bytes], None] = lambda raw: None) -> Iterator[str]:
        """The decoded text, chunk by chunk, files joined as the module docstring says.
        `on_read` sees every block of raw bytes as it is read (for hashing, for progress)."""
        for path in self.files:
            ends_with_newline = True
            for text in _decoded_chunks(path, self.encoding, self.errors, on_read):
                if text:
                    ends_with_newline = text.endswith(SEPARATOR)
                    yield text
            if not ends_with_newline:
                yield SEPARATOR


def resolve_corpus(arguments: Sequence[str], encoding: str = "utf-8", errors: str = "strict") -> Corpus:
    """The corpus named by command-line arguments (files, folders, glob patterns), or the built-in one."""
    if not arguments:
        return builtin_corpus()
    files: list[Path] = []
    for argument in arguments:
        files.extend(_files_of(argument))
    files = sorted(set(files), key=lambda p: str(p))
    description = str(arguments[0]) if len(arguments) == 1 and len(files) == 1 else f"{len(files):,} files ({', '.join(arguments)})"
    return Corpus(files=tuple(files), description=description, encoding=encoding, errors=errors)


def _files_of(argument: str) -> list[Path]:
    path = Path(argument)
    if path.is_dir():
        files = [p.resolve() for p in sorted(path.rglob("*")) if p.is_file() and not _hidden(p.relative_to(path))]
        if not files:
            raise CorpusError(f"corpus folder {path} holds no files")
        return files
    if path.exists():
        return [path.resolve()]
    if glob.has_magic(argument):
        matches = [Path(p).resolve() for p in glob.glob(argument, recursive=True) if Path(p).is_file()]
        if not matches:
            raise CorpusError(f"corpus pattern {argument} matches no files")
        return matches
    raise CorpusError(f"corpus not found: {path}")


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _decoded_chunks(path: Path, encoding: str, errors: str, on_read: Callable[[bytes], None]) -> Iterator[str]:
    """One file's text in chunks; refuses binary files and says where bad bytes are."""
    is_utf8 = codecs.lookup(encoding).name == "utf-8"
    decoder = codecs.getincrementaldecoder("utf-8-sig" if is_utf8 else encoding)(errors)
    offset = newlines = 0  # bytes read and newlines passed, to place an error in the file
    try:
        with open(path, "rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                nul = chunk.find(b"\0")
                if nul >= 0 and is_utf8:  # UTF-16 and UTF-32 texts hold NUL bytes; UTF-8 text never does
                    raise CorpusError(f"{path} looks like a binary file (NUL byte at offset {offset + nul:,}), not text")
                pending = decoder.getstate()[0]
                try:
                    yield decoder.decode(chunk)
                except UnicodeDecodeError as error:
                    raise _decode_error(path, encoding, is_utf8, pending + chunk, offset - len(pending), newlines, error) from None
                offset += len(chunk)
                newlines += chunk.count(b"\n")
                on_read(chunk)
            yield decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:  # the file ends inside a character
        raise CorpusError(f"{path} ends in the middle of a character ({error.reason}); give its --encoding") from None
    except IsADirectoryError:
        raise CorpusError(f"corpus is a folder, not a text file: {path}") from None
    except OSError as error:
        raise CorpusError(f"cannot read corpus {path}: {error.strerror}") from None


def _decode_error(path, encoding, is_utf8, data, start, newlines, error) -> CorpusError:
    line = newlines + data.count(b"\n", 0, error.start) + 1
    return CorpusError(
        f"{path} is not valid {'UTF-8' if is_utf8 else encoding}: byte {data[error.start]:#04x} at offset "
        f"{start + error.start:,} (line {line:,}); give its encoding with --encoding (e.g. latin-1, gb18030), "
        "or --errors replace to substitute U+FFFD"
    )


def builtin_corpus(max_bytes: int = BUILTIN_MAX_BYTES) -> Corpus:
    """Python standard-library sources: whole UTF-8 files in sorted path order, up to `max_bytes`."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files, total = [], 0
    for path in _stdlib_sources(stdlib):
        size = path.stat().st_size
        if total + size > max_bytes:
            break
        if _is_utf8(path):
            files.append(path)
            total += size
    if not files:
        raise CorpusError(f"no Python sources found under {stdlib} for the built-in corpus; give a corpus file")
    version = ".".join(map(str, sys.version_info[:2]))
    description = f"{BUILTIN_NAME}: {len(files)} Python {version} standard-library sources from {stdlib}"
    return Corpus(files=tuple(files), description=description, builtin=True)


def _is_utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8")
        return True
    except (OSError, UnicodeDecodeError):
        return False


def _stdlib_sources(stdlib: Path) -> list[Path]:
    """Every `.py` file under `stdlib` outside tests and installed packages, sorted by path."""
    paths = []
    for folder, subfolders, files in os.walk(stdlib):
        # Pruning in place keeps os.walk out of site-packages, which can be huge.
        subfolders[:] = [name for name in subfolders if name not in _BUILTIN_SKIP_DIRS]
        paths.extend(Path(folder, name) for name in files if name.endswith(".py"))
    return sorted(paths, key=lambda path: path.relative_to(stdlib).as_posix())

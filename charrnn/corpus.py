"""Where training text comes from: a UTF-8 file, or the built-in corpus."""

from __future__ import annotations

import codecs
import hashlib
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from charrnn.errors import CorpusError

# The built-in corpus: Python's own standard-library sources, like Karpathy's Linux-source
# corpus, present wherever charrnn runs and needing no download.
BUILTIN_NAME = "built-in"
BUILTIN_MAX_CHARS = 3_000_000
_BUILTIN_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}


@dataclass(frozen=True)
class Corpus:
    """A training text and where it came from."""

    text: str
    path: str | None  # absolute path of the file, or None for the built-in corpus
    description: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8", "surrogatepass")).hexdigest()

    def fingerprint(self) -> dict:
        """What a checkpoint records to recognise this corpus on resume."""
        return {"path": self.path, "description": self.description, "chars": len(self.text), "sha256": self.sha256}


def read_corpus(path: str | Path, encoding: str = "utf-8", errors: str = "strict") -> Corpus:
    """Read a text file (UTF-8 unless told otherwise), refusing what cannot be a training text."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"corpus not found: {path}")
    if path.is_dir():
        raise CorpusError(f"corpus is a folder, not a text file: {path}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CorpusError(f"cannot read corpus {path}: {error.strerror}") from None
    text = decode_text(data, str(path), encoding, errors)
    return Corpus(text=text, path=str(path.resolve()), description=str(path))


def decode_text(data: bytes, name: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Decode a text file's bytes (a UTF-8 byte-order mark is dropped), with one-line errors."""
    is_utf8 = codecs.lookup(encoding).name == "utf-8"
    nul = data.find(b"\0")
    if nul >= 0 and is_utf8:  # UTF-16 and UTF-32 texts hold NUL bytes; UTF-8 text never does
        raise CorpusError(f"{name} looks like a binary file (NUL byte at offset {nul:,}), not text")
    try:
        text = data.decode("utf-8-sig" if is_utf8 else encoding, errors)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise CorpusError(
            f"{name} is not valid {'UTF-8' if is_utf8 else encoding}: byte {data[error.start]:#04x} at offset {error.start:,} (line {line}); "
            "give its encoding with --encoding (e.g. latin-1, gb18030), or --errors replace to substitute U+FFFD"
        ) from None
    if not text.strip():
        raise CorpusError(f"{name} is empty" if not text else f"{name} holds only whitespace")
    return text


def builtin_corpus(max_chars: int = BUILTIN_MAX_CHARS) -> Corpus:
    """Python standard-library sources, whole files in sorted path order, up to `max_chars`."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    pieces: list[str] = []
    total = 0
    for path in _stdlib_sources(stdlib):
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if total + len(source) > max_chars:
            break
        pieces.append(source if source.endswith("\n") else source + "\n")
        total += len(pieces[-1])
    if not pieces:
        raise CorpusError(f"no Python sources found under {stdlib} for the built-in corpus; give a corpus file")
    version = ".".join(map(str, sys.version_info[:2]))
    description = f"{BUILTIN_NAME}: {len(pieces)} Python {version} standard-library sources from {stdlib}"
    return Corpus(text="".join(pieces), path=None, description=description)


def _stdlib_sources(stdlib: Path) -> list[Path]:
    """Every `.py` file under `stdlib` outside tests and installed packages, sorted by path."""
    paths = []
    for folder, subfolders, files in os.walk(stdlib):
        # Pruning in place keeps os.walk out of site-packages, which can be huge.
        subfolders[:] = [name for name in subfolders if name not in _BUILTIN_SKIP_DIRS]
        paths.extend(Path(folder, name) for name in files if name.endswith(".py"))
    return sorted(paths, key=lambda path: path.relative_to(stdlib).as_posix())

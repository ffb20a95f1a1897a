"""Which files a corpus argument names: a file, a folder (walked, leaving out hidden files, out
folders, caches and binary files, and counting what it left out), or a glob pattern."""

from __future__ import annotations

import codecs
import glob
import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from charrnn.display import printable
from charrnn.errors import CharRNNError, CorpusError
from charrnn.store.cache import cache_root
from charrnn.store.files import NotAFile, kind, open_to_read
from charrnn.store.runfiles import is_run_file_name, marks_out_folder

BINARY_PROBE_BYTES = 8192  # as git and grep decide: a NUL byte in a file's first 8 KiB makes it binary


def open_regular(path: Path, shown: str):
    """`path` opened for reading, if it is (still) a regular file: a pipe put in its place
    since the corpus was resolved must not make the read wait forever."""
    try:
        return open_to_read(path)
    except NotAFile as error:
        mode = error.mode or 0
        raise CorpusError(
            f"corpus is a folder, not a text file: {shown}"
            if stat.S_ISDIR(mode)
            else f"{shown} is {kind(mode)}, not a text file"
        ) from None


class LeftOut:
    """What folders and patterns reach that is left out of the corpus, and counted for its
    description: binary files (only for UTF-8 corpora: UTF-16 and UTF-32 text holds NUL bytes);
    charrnn's out folders below a folder or matched by a pattern (their files are a run's, not
    text: a run's own logs would become its corpus) and the corpus cache; and in an out folder
    named itself, or whose files a pattern matches, the files charrnn writes there."""

    def __init__(self, binary: bool):
        self.binary_enabled = binary
        # Sets: a file or folder that a folder and a pattern both reach counts once.
        self.binary: set[Path] = set()
        self.folders: dict[Path, Path] = {}  # resolved -> as met (for the description)
        self.run_files: set[Path] = set()
        self._cache: Path | None | bool = False  # the cache folder, found when first needed
        self._charrnns: dict[Path, tuple[bool, bool]] = {}  # folder -> (an out folder, in the cache)

    def counts(self) -> tuple[int, int, int]:
        return len(self.binary), len(self.folders), len(self.run_files)

    def skips(self, path: Path) -> bool:
        """Whether `path`, a file in a folder or matched by a pattern, is left out."""
        out_folder, in_cache = self._charrnn_folder(path.parent)
        if in_cache or (out_folder and is_run_file_name(path.name)):
            self.run_files.add(path.resolve())
            return True
        if self.binary_enabled and _starts_binary(path):
            self.binary.add(path.resolve())
            return True
        return False

    def skips_folder(self, folder: Path, names: list[str], top: bool) -> bool:
        """Whether the folder `folder` (holding files `names`) is left out whole: an out folder
        below the folder named, or the corpus cache."""
        self._charrnns.setdefault(folder, (marks_out_folder(names), self._in_cache(folder)))
        out_folder, in_cache = self._charrnns[folder]
        if in_cache or (out_folder and not top):
            self.folders.setdefault(folder.resolve(), folder)
            return True
        return False

    def _charrnn_folder(self, folder: Path) -> tuple[bool, bool]:
        """Whether `folder` is an out folder of charrnn, and whether it lies in the corpus cache."""
        if folder not in self._charrnns:
            self._charrnns[folder] = (marks_out_folder(_names_in(folder)), self._in_cache(folder))
        return self._charrnns[folder]

    def _in_cache(self, folder: Path) -> bool:
        if self._cache is False:
            self._cache = _cache_folder()
        if not isinstance(self._cache, Path):
            return False
        resolved = folder.resolve()
        return resolved == self._cache or self._cache in resolved.parents

    def note(self) -> str:
        """What the corpus's description adds: `; 12 binary files skipped; 1 charrnn folder left out (runs/a)`."""
        return "".join(f"; {part}" for part in self._parts((0, 0, 0), verbs=True))

    def only_since(self, before: tuple[int, int, int]) -> str:
        """What a refusal of an empty folder or pattern adds: ` but 12 binary files`."""
        parts = self._parts(before, verbs=False)
        return f" but {', '.join(parts)}" if parts else ""

    def _parts(self, before: tuple[int, int, int], verbs: bool) -> list[str]:
        binary, folders, run_files = (now - then for now, then in zip(self.counts(), before))
        first = printable(min(self.folders.values())) if self.folders else ""
        parts = [
            (binary, f"{_counted(binary, 'binary file')}{' skipped' if verbs else ''}"),
            (folders, f"{_counted(folders, 'charrnn folder')}{' left out' if verbs else ''} ({first})"),
            (run_files, f"{_counted(run_files, 'file')} charrnn wrote{' left out' if verbs else ''}"),
        ]
        return [text for count, text in parts if count > 0]


def _counted(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'s' if count > 1 else ''}"


def _names_in(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _cache_folder() -> Path | None:
    """The corpus cache folder, if there is one (it is never text to train on)."""
    try:
        root = cache_root()
    except CharRNNError:  # no cache can be named: there is none to leave out
        return None
    return root.resolve() if root.is_dir() else None


def is_utf8_encoding(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def _starts_binary(path: Path) -> bool:
    """Whether a NUL byte lies in the first BINARY_PROBE_BYTES of `path` (a binary file: UTF-8
    text never holds one). A file it cannot read is kept: reading the corpus says what is wrong."""
    try:
        with open_regular(path, printable(path)) as file:
            return b"\0" in file.read(BINARY_PROBE_BYTES)
    except (OSError, CorpusError):
        return False


def status_of(path: str | Path) -> os.stat_result | None:
    """os.stat of `path` (through links), or None if there is nothing there."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL in the name
        return None
    except OSError as error:
        raise CorpusError(f"cannot read corpus {printable(path)}: {error.strerror}") from None


def regular_file(path: Path) -> dict[str, Path]:
    resolved = path.resolve()
    return {str(resolved): resolved}


def _refuse_folder(error: OSError) -> None:
    raise CorpusError(
        f"cannot read folder {printable(error.filename)} of the corpus: {error.strerror}; "
        "give access to it, or name the files to read"
    )


def folder_files(folder: Path, left_out: LeftOut) -> dict[str, Path]:
    """Every regular text file under `folder`, hidden ones left out, linked folders followed
    (each folder once). Nothing is skipped without a word: binary files and charrnn's own
    folders and files are counted (for the corpus's description); an unreadable folder, a
    broken link or a pipe or device in the folder is refused, naming it."""
    before = left_out.counts()
    found = _files_under(folder, left_out)
    if not found:
        raise CorpusError(f"corpus folder {printable(folder)} holds no files{left_out.only_since(before)}")
    return found


def _files_under(folder: Path, left_out: LeftOut, named: bool = True) -> dict[str, Path]:
    """The files under `folder`; an out folder below it is left out, and so is `folder` itself
    unless it was `named` (a pattern's matched folders are as if below the pattern's)."""
    found: dict[str, Path] = {}
    for parent, subfolders, names in _walk(folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        if left_out.skips_folder(Path(parent), names, top=named and Path(parent) == folder):
            subfolders[:] = []
            continue
        for name in names:
            if not name.startswith("."):
                found.update(_file_in_folder(Path(parent, name), left_out))
    return found


def _walk(top: Path, depth: float = math.inf) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk, following links to folders but entering each folder once (a link may point
    back up), to at most `depth` levels below `top`, refusing folders it cannot read."""
    seen: set[tuple[int, int]] = set()
    for parent, subfolders, names in os.walk(top, onerror=_refuse_folder, followlinks=True):
        status = status_of(parent)
        identity = (status.st_dev, status.st_ino) if status else None
        if identity in seen or len(Path(parent).parts) - len(top.parts) >= depth:
            subfolders[:] = []
            if identity in seen:
                continue
        seen.add(identity)
        yield parent, subfolders, names


def _file_in_folder(path: Path, left_out: LeftOut) -> dict[str, Path]:
    status = status_of(path)
    if status is None:
        raise CorpusError(
            f"{printable(path)} in the corpus folder is a broken link; remove it, or name the files to read"
        )
    if not stat.S_ISREG(status.st_mode):
        raise CorpusError(
            f"{printable(path)} in the corpus folder is {kind(status.st_mode)}, not a text file; "
            "move it out, or name the files to read"
        )
    return {} if left_out.skips(path) else regular_file(path)


def matches(pattern: str, left_out: LeftOut) -> dict[str, Path]:
    """The files a glob pattern matches (a matched folder gives its files, as on a shell's
    command line; `src/**/*` also matches `src/__pycache__`, whose files are binary, so a
    matched folder may add none). glob passes over folders it cannot read without a word, so
    every folder it would list is checked first."""
    _check_folders_readable(pattern)
    found: dict[str, Path] = {}
    before = left_out.counts()
    for match in glob.glob(pattern, recursive=True):
        status = status_of(match)
        if status is not None and stat.S_ISDIR(status.st_mode):
            found.update(_files_under(Path(match), left_out, named=False))
        elif status is not None:
            found.update(_file_in_folder(Path(match), left_out))
    if not found:
        raise CorpusError(f"corpus pattern {printable(pattern)} matches no files{left_out.only_since(before)}")
    return found


def _check_folders_readable(pattern: str) -> None:
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = Path(*parts[:fixed]) if fixed else Path(".")
    status = status_of(base)
    if status is None or not stat.S_ISDIR(status.st_mode):
        return  # glob finds nothing there, and says so
    depth = math.inf if "**" in parts[fixed:] else len(parts) - fixed - 1
    for _, subfolders, _ in _walk(base, depth):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]

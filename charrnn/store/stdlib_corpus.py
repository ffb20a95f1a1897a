"""Which standard-library sources make the built-in corpus: a fair sample of Python as people write it.

Three rules, each for what a model would learn from it:
- Leave out what teaches nothing about writing Python: generated files (codec tables, keyword
  lists), data tables (a file that is mostly literal rows) and text drawn with characters (long
  runs of spaces or of rule characters, as in ASCII diagrams), and files above a size cap, so that
  no single module dominates.
- Take files in an order fixed by a hash of their path: a deterministic shuffle across the whole
  library rather than its alphabetically first packages.
- So the last tenth of the text, the validation set, is a sample of the same distribution as the
  training text (every module is equally likely to land in either).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from charrnn.store.files import open_to_read

MAX_BYTES = 3_000_000  # ~5 passes over it in the default run: enough to learn, quick to encode
MAX_FILE_BYTES = 120_000  # the largest modules (_pydecimal, tkinter) would each be ~5 % of the text
SKIP_FOLDERS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__", "encodings"}
LONGEST_SPACE_RUN = 40  # alignment deeper than this is drawing, not code
_GENERATED = re.compile(rb"auto-?generated|automatically generated|this file is generated|do not edit", re.IGNORECASE)
_TABLE_ROW = re.compile(rb"^\s*(?:['\"(\[{]|-?\d|0x).*,\s*(?:#.*)?$")  # `"name": value,` `(1, 2),` `0x41,`
_DRAWN = re.compile(rb"[-=_*#|+~]{20,}|[^\w\s]{3,}\s+[^\w\s]{3,}\s+[^\w\s]{3,}")


def stdlib_sources(stdlib: Path, max_bytes: int = MAX_BYTES) -> list[Path]:
    """The built-in corpus's files under `stdlib`, in reading order, up to `max_bytes` in all."""
    chosen, total = [], 0
    for path in sorted(_python_files(stdlib), key=lambda path: _shuffle_key(path, stdlib)):
        if total + _size(path) > max_bytes:  # checked first: reading and judging every file costs a second
            continue
        data = _read(path)
        if data is None or not teaches_python(data):
            continue
        chosen.append(path)
        total += len(data)
    return chosen


def teaches_python(data: bytes) -> bool:
    """Whether a source file is Python as people write it (see the module's docstring)."""
    all_lines = data.splitlines()
    if len(data) > MAX_FILE_BYTES or _GENERATED.search(b"\n".join(all_lines[:15])):
        return False
    lines = [line for line in all_lines if line.strip()]
    if not lines:
        return False
    table_rows = sum(1 for line in lines if _TABLE_ROW.match(line))
    drawn = sum(1 for line in lines if _DRAWN.search(line))
    longest_spaces = max((len(run) for run in re.findall(rb" +", data)), default=0)
    return table_rows <= 0.2 * len(lines) and drawn <= 0.05 * len(lines) and longest_spaces <= LONGEST_SPACE_RUN


def _python_files(stdlib: Path) -> list[Path]:
    paths = []
    for folder, subfolders, files in os.walk(stdlib):
        # Pruning in place keeps os.walk out of site-packages, which can be huge.
        subfolders[:] = [name for name in subfolders if name not in SKIP_FOLDERS]
        paths.extend(Path(folder, name) for name in files if name.endswith(".py"))
    return paths


def _shuffle_key(path: Path, stdlib: Path) -> bytes:
    return hashlib.sha256(path.relative_to(stdlib).as_posix().encode()).digest()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # _read says it cannot be read


def _read(path: Path) -> bytes | None:
    """The file's bytes when it is UTF-8 text (None otherwise)."""
    try:
        with open_to_read(path) as file:  # a pipe or a device among the sources is passed over
            data = file.read()
        data.decode("utf-8")
        return data
    except (OSError, UnicodeDecodeError):
        return None

"""The run's figures as data: `metrics.jsonl` in the out folder, one JSON object per line.

Every training-loss report writes a line of kind "train" (step, epoch, train bpc, learning
rate, chars/s, gradient norm, CPU threads, elapsed seconds) and every validation a line of kind
"validation" (step, epoch, validation bpc, whether it is the best so far). A resumed run
appends, after first dropping the lines of steps its checkpoint does not hold (they are about
to be trained again), so no step is ever counted twice.

The figures are a convenience, never worth a run: a damaged file (bytes that are not UTF-8,
lines that are not records) loses its damaged lines, and one that cannot be read or written
(a folder in its place, no permission, a full disk) costs one warning, and training goes on.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, BinaryIO

from charrnn.display import printable
from charrnn.errors import ConfigError
from charrnn.files import temporary_name

NATS_PER_BIT = math.log(2)


def nats_to_bits(nats: float) -> float:
    """Bits per character from nats per character (cross-entropy / ln 2)."""
    return nats / NATS_PER_BIT


NAME = "metrics.jsonl"
MAX_LINE_BYTES = 1 << 16  # a record is a few hundred bytes; longer lines are damage, read past in pieces
MAX_STEP = 2**63 - 1  # a step as torch and numpy hold it; larger ones are damage


class RunFile:
    """A file of a run's out folder that is a convenience, never worth the run (metrics.jsonl,
    samples.txt): the first failure to use it costs one warning, and the run goes on without it."""

    name = ""  # the file's name in the out folder
    without = ""  # what the run goes on without, for the warning

    def __init__(self, folder: Path, warn: Callable[[str], None] = lambda text: None):
        self.path = Path(folder) / self.name
        self.warn = warn  # how a warning reaches the user (the training reporter's message)
        self.given_up = False  # after a failure: training goes on without the file

    def _usable(self) -> bool:
        """False, after a warning, if something other than a file (a folder, a FIFO that would
        block) is where the file should be."""
        if not self.given_up and os.path.lexists(self.path) and not self.path.is_file():
            self._give_up("it is not a regular file")
        return not self.given_up

    def _give_up(self, reason: str) -> None:
        self.given_up = True
        self.warn(f"warning: cannot write {printable(self.path)} ({reason}); training goes on without {self.without}")


class MetricsLog(RunFile):
    name = NAME
    without = "recording its figures there"

    def append(self, record: dict[str, Any]) -> None:
        if self.given_up or not self._usable():
            return
        try:
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(json.dumps(record) + "\n")
        except OSError as error:
            self._give_up(error.strerror or str(error))

    def forget_after(self, step: int) -> None:
        """Keep only the whole, valid lines of steps up to `step`: a crash may have cut the last
        one short, and damage (a power cut's zeros, stray bytes) is dropped, with a warning."""
        if not self._usable():
            return
        temporary = temporary_name(self.path)
        try:
            with open(self.path, "rb") as source:
                kept, dropped, damaged = _filter_into(source, temporary, step)
            if dropped or damaged:
                os.replace(temporary, self.path)
        except FileNotFoundError:
            return
        except OSError as error:
            self._give_up(error.strerror or str(error))
            return
        finally:
            with suppress(OSError):
                temporary.unlink(missing_ok=True)
        if damaged:
            self.warn(
                f"warning: {damaged:,} damaged lines of {printable(self.path)} were dropped; {kept:,} records are kept"
            )


def _filter_into(source: BinaryIO, temporary: Path, step: int) -> tuple[int, int, int]:
    """Copy the records of steps up to `step` from `source` into `temporary`; return how many
    were kept, how many dropped (later steps, a last line cut short) and how many lines were damaged."""
    kept = dropped = damaged = 0
    with open(temporary, "wb") as target:
        for line in _lines(source):
            record = _record(line)
            if record is not None and record["step"] <= step:
                target.write(line)
                kept += 1
            elif record is not None or (line and not line.endswith(b"\n")):
                dropped += 1
            else:
                damaged += 1
    return kept, dropped, damaged


def _lines(source: BinaryIO) -> Iterator[bytes]:
    """The lines of `source` with their newlines; a line longer than MAX_LINE_BYTES comes back
    as b"" (damage) after being read past a piece at a time, so memory stays bounded."""
    while line := source.readline(MAX_LINE_BYTES):
        if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (piece := source.readline(MAX_LINE_BYTES)) and not piece.endswith(b"\n"):
                pass
            yield b""
        else:
            yield line


def _record(line: bytes) -> dict[str, Any] | None:
    """The record on a whole line: a JSON object with an integer step; None for anything else."""
    if not line.endswith(b"\n"):
        return None
    try:
        record = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested past Python's limit
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return record if isinstance(step, int) and not isinstance(step, bool) and 0 <= step <= MAX_STEP else None


class MetricsRecords:
    """The records of a run's metrics.jsonl, read one line at a time (a log of any length is read
    in bounded memory); `skipped` counts the lines passed over as damaged so far. A run without
    the file has no records; anything but a regular file in its place is refused."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / NAME
        self.skipped = 0
        if os.path.lexists(self.path) and not self.path.is_file():  # a folder; a FIFO or a device would block
            raise ConfigError(f"{printable(self.path)} is not a regular file")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not os.path.lexists(self.path):
            return
        try:
            with open(self.path, "rb") as file:
                for line in _lines(file):
                    record = _record(line)
                    if record is None:
                        self.skipped += 1
                    else:
                        yield record
        except OSError as error:
            raise ConfigError(f"cannot read {printable(self.path)}: {error.strerror or error}") from None


def read_metrics(folder: Path) -> tuple[list[dict[str, Any]], int]:
    """The records of a run's metrics.jsonl (none if it has no such file), and how many lines
    were skipped as damaged."""
    records = MetricsRecords(folder)
    return list(records), records.skipped


def finite_number(value: Any) -> bool:
    """A figure that can be drawn: an int or float, not NaN or infinite (JSON allows both)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

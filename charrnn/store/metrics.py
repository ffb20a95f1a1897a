"""The run's figures as data: `metrics.jsonl` in the out folder, one JSON object per line.

Its first line names the run that started the file (kind "run": its id, and the step the
file began at), so that charrnn can tell its own file from a user's. Every training-loss
report writes a line of kind "train" (step, epoch, train bpc, learning rate, chars/s,
gradient norm, CPU threads, elapsed seconds) and every validation a line of kind
"validation" (step, epoch, validation bpc, whether it is the best so far). A resumed run
appends, after first dropping the lines of steps its checkpoint does not hold (they are about
to be trained again), so no step is ever counted twice.

The figures are a convenience, never worth a run: a damaged file (bytes that are not UTF-8,
lines that are not records) loses its damaged lines, and one that cannot be read or written
once training runs (no permission, a full disk, a link put in its place) costs one warning,
and training goes on. What is there before the run starts must be the run's own (RunFile.take).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import IO, Any, BinaryIO

from charrnn.display import printable
from charrnn.errors import ConfigError
from charrnn.store.files import NotAFile, create_new, not_a_file, open_to_read, own_opener, temporary_name
from charrnn.store.runfiles import METRICS, not_ours

NATS_PER_BIT = math.log(2)


def nats_to_bits(nats: float) -> float:
    """Bits per character from nats per character (cross-entropy / ln 2)."""
    return nats / NATS_PER_BIT


NAME = METRICS
MAX_LINE_BYTES = 1 << 16  # a record is a few hundred bytes; longer lines are damage, read past in pieces
MAX_STEP = 2**63 - 1  # a step as torch and numpy hold it; larger ones are damage


class RunFile:
    """A file of a run's out folder that is a convenience, never worth the run (metrics.jsonl,
    samples.txt): the first failure to use it costs one warning, and the run goes on without it.
    A file the run starts begins with a line naming the run (`header`), by which charrnn knows
    its own. It is written in place only where it is a regular file of one name (never through
    a link), and held open from the first write, so that a file put in its place later is never
    written (close() lets it go)."""

    name = ""  # the file's name in the out folder
    without = ""  # what the run goes on without, for the warning

    def __init__(self, folder: Path, warn: Callable[[str], None] = lambda text: None, run: str | None = None):
        self.path = Path(folder) / self.name
        self.warn = warn  # how a warning reaches the user (the training reporter's message)
        self.run = run  # the id of the run writing it, for the first line of a file it starts
        self.step = 0  # the step a file started now begins at (see begin_at)
        self.given_up = False  # after a failure: training goes on without the file
        self._file: IO[str] | None = None  # the file this run writes, held open from its first line (close)

    def header(self) -> str:
        """The line a file this run starts begins with, naming the run."""
        raise NotImplementedError

    def run_named(self, first_line: bytes) -> str | None:
        """The run a file's first line names (None: it names none; a file of an older charrnn)."""
        raise NotImplementedError

    def begin_at(self, step: int) -> None:
        self.step = step

    def take(self, holds_run: bool) -> None:
        """Before a run starts: refuse (one line, naming it) a file here that is not charrnn's to
        write: a link, a folder or pipe in its place, a file with a second name, or, in a folder
        that holds no run, one whose first line names no run (a user's). In a folder that holds
        a run, the file is that run's (older versions wrote no first line). A file naming a
        run in a folder that holds none is what a run that ended before its first checkpoint
        left: removed, for the new run to start afresh."""
        if not os.path.lexists(self.path):
            return
        odd = not_a_file(self.path)
        problem = odd.what if odd is not None else self._problem(holds_run)
        if problem is not None:
            raise not_ours(self.path, problem)
        if not holds_run:
            self.path.unlink()

    def _problem(self, holds_run: bool) -> str | None:
        """Why the regular file here is not charrnn's to write (see take), else None."""
        try:
            with open(self.path, "rb", opener=own_opener) as file:
                named = self.run_named(file.readline(MAX_LINE_BYTES))
        except NotAFile as error:
            return error.what
        except OSError as error:
            return f"cannot be read ({error.strerror or error})"
        return None if holds_run or named is not None else "was not written by charrnn (it names no run)"

    def _write(self, text: str) -> None:
        """Append `text` to the file this run holds open; a file that is not there yet is
        started, with the header first. Another file put in its place since (a link, a file of
        the same name, a second name) is never written: the first such write gives up."""
        if self.given_up:
            return
        try:
            file = self._file if self._file is not None and self._still_held(self._file) else self._open()
            file.write(text)
            file.flush()  # the file is read while the run trains (charrnn plot)
        except OSError as error:
            self.close()
            self._give_up(error.strerror or str(error))

    def _open(self) -> IO[str]:
        self.close()
        # newline="": the text as it is (a \r stays a \r); backslashreplace: no character can fail
        options = {"encoding": "utf-8", "errors": "backslashreplace", "newline": "", "opener": own_opener}
        try:
            self._file = open(self.path, "x", **options)  # noqa: SIM115 - held open for the run (close)
            if self.run is not None:
                self._file.write(self.header())
        except FileExistsError:
            self._file = open(self.path, "a", **options)  # noqa: SIM115 - held open for the run (close)
        return self._file

    def _still_held(self, file: IO[str]) -> bool:
        """Whether the file's name still leads to `file`, held open (False: it was removed, and
        is started again); raises NotAFile if something else is in its place, or a second name."""
        try:
            named = os.lstat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(file.fileno())
        if (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino):  # held open: its number is not reused
            raise NotAFile(self.path, "was replaced by another file while the run trained")
        if held.st_nlink != 1:
            raise NotAFile(self.path, "was given another name (a hard link) while the run trained")
        return True

    def close(self) -> None:
        if self._file is not None:
            with suppress(OSError):
                self._file.close()
            self._file = None

    def _give_up(self, reason: str) -> None:
        self.given_up = True
        self.warn(f"warning: cannot write {printable(self.path)} ({reason}); training goes on without {self.without}")


class MetricsLog(RunFile):
    name = NAME
    without = "recording its figures there"

    def header(self) -> str:
        return json.dumps({"kind": HEADER_KIND, "step": self.step, "run": self.run}) + "\n"

    def run_named(self, first_line: bytes) -> str | None:
        record = _record(first_line)
        named = record.get("run") if record is not None and record.get("kind") == HEADER_KIND else None
        return named if isinstance(named, str) else None

    def append(self, record: dict[str, Any]) -> None:
        self._write(json.dumps(record) + "\n")

    def forget_after(self, step: int) -> None:
        """Keep only the whole, valid lines of steps up to `step` (and the header): a crash may
        have cut the last one short, and damage (a power cut's zeros, stray bytes) is dropped,
        with a warning."""
        if self.given_up:
            return
        temporary = temporary_name(self.path)
        try:
            self.close()
            with open(self.path, "rb", opener=own_opener) as source:
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


HEADER_KIND = "run"  # the kind of metrics.jsonl's first line, which names the run


def _filter_into(source: BinaryIO, temporary: Path, step: int) -> tuple[int, int, int]:
    """Copy the records of steps up to `step` from `source` into `temporary`; return how many
    were kept, how many dropped (later steps, a last line cut short) and how many lines were damaged."""
    kept = dropped = damaged = 0
    with create_new(temporary) as target:
        for line in _lines(source):
            record = _record(line)
            if record is not None and record.get("kind") == HEADER_KIND:
                target.write(line)  # the line naming the run stays, whatever step the file began at
            elif record is not None and record["step"] <= step:
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
    """The records of figures of a run's metrics.jsonl, read one line at a time (a log of any length is read
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
            with open_to_read(self.path) as file:  # and not waited on, should it have become a FIFO since
                for line in _lines(file):
                    record = _record(line)
                    if record is None:
                        self.skipped += 1
                    elif record.get("kind") != HEADER_KIND:  # the line naming the run holds no figure
                        yield record
        except NotAFile:
            raise ConfigError(f"{printable(self.path)} is not a regular file") from None
        except OSError as error:
            raise ConfigError(f"cannot read {printable(self.path)}: {error.strerror or error}") from None


def finite_number(value: Any) -> bool:
    """A figure that can be drawn: an int or float, not NaN or infinite (JSON allows both)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

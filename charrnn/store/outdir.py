"""A run's out folder: step-numbered checkpoints, `latest.pt` and `best.pt`, owned by one run.

    checkpoints/
      step-00011500.pt   the newest --keep saves, named by step (the newest is found by
      step-00012000.pt   number, never by file time)
      latest.pt          the newest save: a hard link to the newest step file
      best.pt            the state with the lowest validation loss so far (never replaced by a worse one)
      run.json           the identity of the run the folder holds (also stored in every checkpoint)
      .charrnn.lock      locked by the one process that trains here; says who it is

A folder holds one run. A training process first takes the folder's lock (an OS lock:
released by the OS when the process dies, so a `kill -9` never leaves it stale), and only
then looks at what the folder holds and writes anything. Before any work it refuses, naming
it, a file of charrnn's names that charrnn cannot show is its own: a link, a folder or a pipe
in its place, a lock file that holds no holder's note (or has a second name: the note would
be written into it), a run.json that names no run, a "checkpoint" that is none.

A save writes its step file atomically, then points latest.pt at it, and only then removes
step files beyond the newest --keep, so nothing is removed before its successor is safely
on disk. Loading from a folder passes over damaged files, saying so, and falls back to the
next good checkpoint.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charrnn.display import printable
from charrnn.errors import CheckpointError, ConfigError
from charrnn.settings.spelling import spelled
from charrnn.store.checkpoint import Checkpoint, RunIdentity, read_checkpoint, write_checkpoint
from charrnn.store.checkpoint_file import is_checkpoint_file
from charrnn.store.files import (
    NotAFile,
    fsync_folder,
    leftover_writer,
    not_a_file,
    open_to_read,
    own_opener,
    temporary_name,
    write_atomic,
)
from charrnn.store.runfiles import BEST, LATEST, LOCK_FILE, RUN_FILE, STEP_FILE, is_checkpoint_name, not_ours
from charrnn.store.training_state import sound_best_loss

if TYPE_CHECKING:
    from charrnn.store.metrics import RunFile

try:
    import fcntl
except ImportError:  # Windows: no flock; a folder is then not protected against a second process
    fcntl = None

_MAX_SMALL_FILE = 64 * 1024  # run.json and the lock file are a few hundred bytes


def step_file_name(step: int) -> str:
    return f"step-{step:08d}.pt"


@dataclass(frozen=True)
class FoundCheckpoint:
    """A checkpoint that loaded, and a note on each damaged one passed over to reach it."""

    path: Path
    checkpoint: Checkpoint
    passed_over: tuple[str, ...] = ()


class OutDir:
    """The checkpoints of one run, in one folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.run: RunIdentity | None = None  # the identity of the run written here (see claim)
        self._identity_stored = False  # whether run.json is known to hold self.run
        self._lock: int | None = None  # the descriptor holding the folder's lock
        self._created = False  # whether acquire() made the folder
        self._best_loss: float | None = None  # the validation loss best.pt holds

    def acquire(self, logs: Sequence[RunFile] = ()) -> None:
        """Take the folder for this process: create it, lock it (refusing if another process
        holds it, naming that process), remove temporary files charrnn left in it, and refuse
        a file of charrnn's names that is not charrnn's own (the lock, run.json, checkpoints,
        and `logs`: see `_refuse_foreign_files`), before any work is done."""
        try:
            self._created = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
            descriptor = own_opener(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT)
        except NotAFile as error:  # a link to a user's file would have its bytes replaced by the note
            raise not_ours(self.path / LOCK_FILE, error.what) from None
        except OSError as error:
            raise CheckpointError(
                f"cannot write to the out folder {printable(self.path)}: {error.strerror or error}"
            ) from None
        if fcntl is not None:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _holder(descriptor)
                os.close(descriptor)
                raise ConfigError(
                    f"{printable(self.path)} is in use by another charrnn training process ({holder}); "
                    f"wait for it to end, or give another {spelled('out')}"
                ) from None
        self._lock = descriptor
        try:
            if not _holds_a_note_or_nothing(descriptor):
                raise not_ours(self.path / LOCK_FILE, "is not a lock file of charrnn")
            _write_holder(descriptor)
            self._remove_leftovers()
            self._refuse_foreign_files(logs)
        except BaseException:
            self.release()
            raise

    def _remove_leftovers(self) -> None:
        """The lock is ours: no charrnn process is writing here, and its temporary files are leftovers."""
        for leftover in self.path.iterdir():
            if leftover_writer(leftover.name) and not stat.S_ISDIR(leftover.lstat().st_mode):
                leftover.unlink(missing_ok=True)

    def _refuse_foreign_files(self, logs: Sequence[RunFile] = ()) -> None:
        """Refuse, naming it, a run.json or checkpoint here that is not charrnn's (a link, a
        folder, a user's file), and each of `logs` that is not this folder's run's to write
        (RunFile.take): charrnn replaces or appends to only its own files."""
        run = self.path / RUN_FILE
        odd = not_a_file(run)
        if odd is not None:
            raise not_ours(run, odd.what)
        if run.exists() and self.identity() is None:
            raise not_ours(run, "is not the run.json of a charrnn run")
        for name in self.checkpoint_names():
            path = self.path / name
            odd = not_a_file(path)
            if odd is not None:
                raise not_ours(path, odd.what)
            if not is_checkpoint_file(path):
                raise not_ours(path, "is not a charrnn checkpoint (nor one damaged beyond recognition)")
        for log in logs:
            log.take(self.holds_run())

    def release(self) -> None:
        """Let the folder go; one this process created and wrote nothing into is removed."""
        if self._lock is None:
            return
        if self._created and [p.name for p in self.path.iterdir()] == [LOCK_FILE]:
            (self.path / LOCK_FILE).unlink(missing_ok=True)
            self.path.rmdir()
        os.close(self._lock)  # closing the descriptor releases the lock
        self._lock = None

    def identity(self) -> str | None:
        """The id of the run this folder holds, from run.json (None: no run.json, or unreadable)."""
        try:
            with open_to_read(self.path / RUN_FILE) as file:  # a FIFO in its place is not waited on
                stored = json.loads(file.read(_MAX_SMALL_FILE))
        except (OSError, ValueError, RecursionError):
            return None
        run = RunIdentity.from_stored(stored)
        return run.id if run is not None and isinstance(run.id, str) else None

    def holds_run(self) -> bool:
        return bool(self.checkpoint_names()) or (self.path / RUN_FILE).exists()

    def claim(self, run: RunIdentity) -> None:
        """Write checkpoints of `run` here from now on; remember the validation loss of the
        best.pt already here, which no save may worsen."""
        self.run = run
        best = self.path / BEST
        if best.exists():
            try:
                self._best_loss = sound_best_loss(read_checkpoint(best))  # None: a loss no run has
            except CheckpointError:
                self._best_loss = None  # a damaged best.pt is no standard to keep

    def checkpoint_names(self) -> list[str]:
        """Names of the checkpoints here (empty if the folder holds no run)."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if is_checkpoint_name(p.name))

    def save(self, checkpoint: Checkpoint, keep: int) -> Path:
        """Save the run's progress: a new step file, latest.pt pointing at it, old step files pruned."""
        self._write_identity()
        step_path = self.path / step_file_name(checkpoint.step)
        write_checkpoint(checkpoint, step_path)
        self._point_latest_at(step_path, checkpoint)
        for _, old in self.step_files()[:-keep]:
            old.unlink(missing_ok=True)
        return step_path

    def save_best(self, checkpoint: Checkpoint) -> bool:
        """Write `checkpoint` as best.pt unless best.pt already holds a lower validation loss (as
        it can after a resume from before a later best): best.pt never gets worse. Whether written."""
        loss = checkpoint.best_val_loss
        if self._best_loss is not None and not loss <= self._best_loss:
            return False
        self._write_identity()
        write_checkpoint(checkpoint, self.path / BEST)
        self._best_loss = loss
        return True

    def _write_identity(self) -> None:
        """run.json, before the first checkpoint: so a folder never holds checkpoints of no run.
        Read (and written if need be) once per run, not at every save."""
        if self.run is None or self._identity_stored:
            return
        if self.identity() != self.run.id:
            stored = json.dumps(self.run.to_stored(), indent=1).encode() + b"\n"
            try:
                write_atomic(self.path / RUN_FILE, lambda file: file.write(stored))
            except OSError as error:
                raise CheckpointError(
                    f"cannot write {printable(self.path / RUN_FILE)}: {error.strerror or error}"
                ) from None
        self._identity_stored = True

    def _point_latest_at(self, step_path: Path, checkpoint: Checkpoint) -> None:
        latest = self.path / LATEST
        temporary = temporary_name(latest)
        try:
            temporary.unlink(missing_ok=True)
            os.link(step_path, temporary)
            os.replace(temporary, latest)  # atomic: latest.pt is always one whole checkpoint
        except OSError:
            temporary.unlink(missing_ok=True)
            write_checkpoint(checkpoint, latest)  # a file system without hard links gets a second copy
            return
        except BaseException:  # a second Ctrl-C: leave no stray link behind
            temporary.unlink(missing_ok=True)
            raise
        fsync_folder(self.path)

    def step_files(self) -> list[tuple[int, Path]]:
        """(step, path) of each step-numbered checkpoint, oldest first."""
        found = [(int(m[1]), p) for p in self.path.glob("step-*.pt") if (m := STEP_FILE.fullmatch(p.name))]
        return sorted(found)

    def newest(self, arrays: str = "torch") -> FoundCheckpoint:
        """The checkpoint with the highest step that loads: where to resume."""
        passed_over: list[str] = []
        found = _first_good([p for _, p in reversed(self.step_files())], passed_over, arrays)
        for name in (LATEST, BEST):
            path = self.path / name
            if not path.exists() or (found is not None and _same_file(path, found.path)):
                continue
            other = _first_good([path], passed_over, arrays)
            if other is not None and (found is None or other.checkpoint.step > found.checkpoint.step):
                found = other
        return _require(found, self.path, passed_over)

    def best(self, arrays: str = "torch") -> FoundCheckpoint:
        """best.pt, or failing that the newest good checkpoint: what to sample from."""
        passed_over: list[str] = []
        candidates = [self.path / BEST, self.path / LATEST, *(p for _, p in reversed(self.step_files()))]
        found = _first_good([p for p in candidates if p.exists()], passed_over, arrays)
        return _require(found, self.path, passed_over)


def runs_near(top: Path, depth: int = 2, most_folders: int = 2_000) -> list[Path]:
    """Out folders holding checkpoints at `top` and at most `depth` levels below it (hidden
    folders left out; at most `most_folders` looked at, so a huge tree costs little), newest first."""
    runs = []
    for count, (parent, subfolders, names) in enumerate(os.walk(top)):
        if count >= most_folders:
            break
        below = len(Path(parent).relative_to(top).parts)
        subfolders[:] = [] if below >= depth else sorted(name for name in subfolders if not name.startswith("."))
        if any(is_checkpoint_name(name) for name in names):
            runs.append(Path(parent))
    return sorted(runs, key=_modified, reverse=True)


def _modified(folder: Path) -> float:
    try:
        return folder.stat().st_mtime
    except OSError:
        return 0.0


def load_from(location: str | Path, prefer: str, arrays: str = "torch") -> FoundCheckpoint:
    """A checkpoint file as it is, or from an out folder its `prefer`red one ("best" or "newest");
    its tensors as torch tensors, or numpy arrays (`arrays="numpy"`, see read_checkpoint)."""
    location = Path(location)
    if location.is_dir():
        out = OutDir(location)
        return out.best(arrays) if prefer == "best" else out.newest(arrays)
    if not location.exists():
        raise CheckpointError(f"checkpoint not found: {location}")
    return FoundCheckpoint(location, read_checkpoint(location, arrays))


def _first_good(paths: list[Path], passed_over: list[str], arrays: str = "torch") -> FoundCheckpoint | None:
    for path in paths:
        try:
            return FoundCheckpoint(path, read_checkpoint(path, arrays))
        except CheckpointError as error:
            passed_over.append(f"passed over {path.name}: {error}")
    return None


def _require(found: FoundCheckpoint | None, folder: Path, passed_over: list[str]) -> FoundCheckpoint:
    if found is None:
        if passed_over:
            raise CheckpointError(f"no usable checkpoint in {folder}: {'; '.join(passed_over)}")
        raise CheckpointError(f"no checkpoint in {folder}; train first")
    return FoundCheckpoint(found.path, found.checkpoint, tuple(passed_over))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _write_holder(descriptor: int) -> None:
    """Say in the lock file who holds it, for a second process to name in its refusal."""
    since = time.strftime("%Y-%m-%d %H:%M:%S")
    holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}).encode()
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, holder, 0)
    except OSError:
        pass  # the lock holds without the note


def _note(data: bytes) -> dict[str, Any] | None:
    """The holder's note a lock file's bytes hold, else None."""
    try:
        note = json.loads(data)
    except (ValueError, RecursionError):
        return None
    is_note = isinstance(note, dict) and {"pid", "host", "since"} <= set(note) and isinstance(note["pid"], int)
    return note if is_note else None


def _holds_a_note_or_nothing(descriptor: int) -> bool:
    """Whether a lock file is charrnn's to overwrite: empty, or holding a holder's note."""
    try:
        data = os.pread(descriptor, _MAX_SMALL_FILE + 1, 0)
    except OSError:
        return False
    return not data or (len(data) <= _MAX_SMALL_FILE and _note(data) is not None)


def _holder(descriptor: int) -> str:
    """Who holds a lock, from its file: "pid 123 on host, since 2026-11-24 10:00:00"."""
    for _ in range(20):  # the holder writes its note just after taking the lock
        try:
            note = _note(os.pread(descriptor, _MAX_SMALL_FILE, 0))
        except OSError:
            note = None
        if note is not None:
            return f"pid {note['pid']} on {printable(note['host'])}, since {printable(note['since'])}"
        time.sleep(0.05)
    return "a process that has not said who it is"

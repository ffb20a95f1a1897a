"""A run's out folder: step-numbered checkpoints, `latest.pt` and `best.pt`.

    checkpoints/
      step-00011500.pt   the newest --keep saves, named by step (the newest is found by
      step-00012000.pt   number, never by file time)
      latest.pt          the newest save: a hard link to the newest step file
      best.pt            the state with the lowest validation loss so far

A save writes its step file atomically, then points latest.pt at it, and only then removes
step files beyond the newest --keep, so nothing is removed before its successor is safely
on disk. Loading from a folder passes over damaged files, saying so, and falls back to the
next good checkpoint.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charrnn.checkpoint import fsync_folder, load_checkpoint, save_checkpoint, temporary_name
from charrnn.errors import CheckpointError

LATEST = "latest.pt"
BEST = "best.pt"
_STEP_FILE = re.compile(r"step-(\d+)\.pt")
_TEMPORARY = re.compile(r"\..+\.tmp-(\d+)")


def step_file_name(step: int) -> str:
    return f"step-{step:08d}.pt"


@dataclass(frozen=True)
class Found:
    """A checkpoint that loaded, and a note on each damaged one passed over to reach it."""

    path: Path
    state: dict[str, Any]
    passed_over: tuple[str, ...] = ()


class OutDir:
    """The checkpoints of one run, in one folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def prepare(self) -> None:
        """Create the folder, prove it is writable, and remove temporary files of dead writers."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = temporary_name(self.path / "write-test")
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise CheckpointError(f"cannot write to the out folder {self.path}: {error.strerror or error}") from None
        for leftover in self.path.iterdir():
            match = _TEMPORARY.fullmatch(leftover.name)
            if match and _writer_gone(int(match[1])):
                leftover.unlink(missing_ok=True)

    def checkpoint_names(self) -> list[str]:
        """Names of the checkpoints here (empty if the folder holds no run)."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.name in (LATEST, BEST) or _STEP_FILE.fullmatch(p.name))

    def save(self, state: dict[str, Any], keep: int) -> Path:
        """Save the run's progress: a new step file, latest.pt pointing at it, old step files pruned."""
        step_path = self.path / step_file_name(state["step"])
        save_checkpoint(state, step_path)
        self._point_latest_at(step_path, state)
        for _, old in self.step_files()[:-keep]:
            old.unlink(missing_ok=True)
        return step_path

    def save_best(self, state: dict[str, Any]) -> None:
        save_checkpoint(state, self.path / BEST)

    def _point_latest_at(self, step_path: Path, state: dict[str, Any]) -> None:
        latest = self.path / LATEST
        temporary = temporary_name(latest)
        try:
            temporary.unlink(missing_ok=True)
            os.link(step_path, temporary)
            os.replace(temporary, latest)  # atomic: latest.pt is always one whole checkpoint
        except OSError:
            temporary.unlink(missing_ok=True)
            save_checkpoint(state, latest)  # a file system without hard links gets a second copy
            return
        except BaseException:  # a second Ctrl-C: leave no stray link behind
            temporary.unlink(missing_ok=True)
            raise
        fsync_folder(self.path)

    def step_files(self) -> list[tuple[int, Path]]:
        """(step, path) of each step-numbered checkpoint, oldest first."""
        found = [(int(m[1]), p) for p in self.path.glob("step-*.pt") if (m := _STEP_FILE.fullmatch(p.name))]
        return sorted(found)

    def newest(self) -> Found:
        """The checkpoint with the highest step that loads: where to resume."""
        passed_over: list[str] = []
        found = _first_good([p for _, p in reversed(self.step_files())], passed_over)
        for name in (LATEST, BEST):
            path = self.path / name
            if not path.exists() or (found is not None and _same_file(path, found.path)):
                continue
            other = _first_good([path], passed_over)
            if other is not None and (found is None or other.state["step"] > found.state["step"]):
                found = other
        return _require(found, self.path, passed_over)

    def best(self) -> Found:
        """best.pt, or failing that the newest good checkpoint: what to sample from."""
        passed_over: list[str] = []
        candidates = [self.path / BEST, self.path / LATEST, *(p for _, p in reversed(self.step_files()))]
        found = _first_good([p for p in candidates if p.exists()], passed_over)
        return _require(found, self.path, passed_over)


def load_from(location: str | Path, prefer: str) -> Found:
    """A checkpoint file as it is, or from an out folder its `prefer`red one ("best" or "newest")."""
    location = Path(location)
    if location.is_dir():
        out = OutDir(location)
        return out.best() if prefer == "best" else out.newest()
    if not location.exists():
        raise CheckpointError(f"checkpoint not found: {location}")
    return Found(location, load_checkpoint(location))


def _first_good(paths: list[Path], passed_over: list[str]) -> Found | None:
    for path in paths:
        try:
            return Found(path, load_checkpoint(path))
        except CheckpointError as error:
            passed_over.append(f"passed over {path.name}: {error}")
    return None


def _require(found: Found | None, folder: Path, passed_over: list[str]) -> Found:
    if found is None:
        if passed_over:
            raise CheckpointError(f"no usable checkpoint in {folder}: {'; '.join(passed_over)}")
        raise CheckpointError(f"no checkpoint in {folder}; train first")
    return Found(found.path, found.state, tuple(passed_over))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _writer_gone(pid: int) -> bool:
    """Whether the process that was writing a temporary file has ended (or is this one)."""
    if pid == os.getpid():
        return True  # this process writes nothing while it prepares the folder
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False

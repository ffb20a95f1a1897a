"""Helpers shared by several test modules."""

from __future__ import annotations

from pathlib import Path

from charrnn.checkpoint import load_checkpoint, training_state_differences
from charrnn.progress import Reporter
from charrnn.train import TrainRequest, TrainResult, run_training


def train(corpus: Path | None, out: Path, options: dict, resume: str | None = None, reporter: Reporter | None = None) -> TrainResult:
    request = TrainRequest(corpus=() if corpus is None else (str(corpus),), out_dir=out, device="cpu", resume=resume, options=options)
    return run_training(request, reporter)


class Crash(Exception):
    """Stands for the process dying."""


class CrashAtStep(Reporter):
    """Kills training (by raising) right after update `step`, before anything is saved."""

    def __init__(self, step: int):
        self.step = step

    def advance(self, step: int, elapsed: float) -> None:
        if step == self.step:
            raise Crash


def assert_same_training_state(path_a: Path, path_b: Path) -> None:
    """Two checkpoints hold bit-identical weights, optimizer state, hidden state and RNG."""
    a, b = load_checkpoint(path_a), load_checkpoint(path_b)
    assert training_state_differences(a, b) == []
    assert a["best_val_loss"] == b["best_val_loss"]

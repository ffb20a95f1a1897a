"""How a training run ended: its figures, in nats and bits, its summary and the advice read from
its curves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from charrnn.errors import ConfigError
from charrnn.run.diagnosis import Command, Diagnosis, RunFacts, curves, diagnose, next_command
from charrnn.settings.budget import Budget, format_duration
from charrnn.settings.config import ModelConfig, TrainConfig
from charrnn.settings.spelling import PYTHON, for_python, read_by, spelled
from charrnn.store.metrics import MetricsRecords, nats_to_bits


@dataclass(frozen=True)
class TrainResult:
    """How a run ended."""

    step: int
    budget: Budget
    elapsed: float  # seconds of training, earlier sessions included
    best_val_loss: float | None
    last_val_loss: float | None
    already_complete: bool
    out_dir: Path
    model_config: ModelConfig
    train_config: TrainConfig
    stopped_early: bool = False  # --patience ended it
    unigram_bits: float | None = None  # what the characters' frequencies alone score on the training text
    diagnosis: Diagnosis | None = None  # what the run needs, read from its curves; set by api.train
    command: Command | None = None  # what the run was started with, to write the next one from; set by api.train

    @property
    def best_val_bpc(self) -> float | None:
        """The best validation loss in bits per character (`best_val_loss` is in nats)."""
        return None if self.best_val_loss is None else nats_to_bits(self.best_val_loss)

    @property
    def last_val_bpc(self) -> float | None:
        """The last validation loss in bits per character (`last_val_loss` is in nats)."""
        return None if self.last_val_loss is None else nats_to_bits(self.last_val_loss)

    def advice(self, python: bool | None = None) -> list[str]:
        """The diagnosis and the command to run next: shell words, or a charrnn.train call with
        `python` (None: as the reader of messages types it, options.read_by)."""
        if self.diagnosis is None:
            return []
        run, command = self.diagnosis.next_run, self.command
        if run is None or command is None:
            return self.diagnosis.lines()
        return self.diagnosis.lines(next_command(run, command, python, taken=lambda path: Path(path).exists()))

    def summary(self) -> list[str]:
        """What `charrnn train` says at its end, and `charrnn.train` with progress: where the run
        ended, its best validation (bits and nats), the advice, and how to sample. Options are
        named for the reader (options.read_by): `--max-steps` on the command line, `max_steps` in Python."""
        done = f"step {self.step:,} after {format_duration(self.elapsed)} of training"
        if self.already_complete:
            further = f"{spelled('resume', True)} with a larger {spelled('max_steps')} or {spelled('max_time')}"
            return [
                f"The run in {self.out_dir} is complete ({done}; its length: {self.budget.describe()}); "
                f"to train further, add {further}."
            ]
        best = ""
        if self.best_val_loss is not None:
            best = f"; best validation {self.best_val_bpc:.4f} bpc ({self.best_val_loss:.4f} nats)"
        sample = (
            f"charrnn.load({str(self.out_dir)!r}).generate()"
            if for_python()
            else (f"charrnn sample --checkpoint {self.out_dir}")
        )
        return [
            f"Finished at {done}{best}. Checkpoints are in {self.out_dir}/.",
            *self.advice(),
            f"Sample with: {sample}",
        ]

    def __repr__(self) -> str:
        with read_by(PYTHON):
            return "\n".join(self.summary())


def diagnosis_of(result: TrainResult) -> Diagnosis | None:
    """What the finished run needs, from the curves in its metrics.jsonl (None if it cannot be read)."""
    try:
        run_curves = curves(MetricsRecords(result.out_dir))
    except ConfigError:  # the figures are a convenience: a run never fails for want of them
        return None
    facts = RunFacts(
        steps=result.step,
        max_steps=result.budget.max_steps,
        max_time=result.budget.max_time,
        elapsed=result.elapsed,
        hidden_size=result.model_config.hidden_size,
        dropout=result.model_config.dropout,
        lr=result.train_config.lr,
        vocab_size=result.model_config.vocab_size,
        unigram_bits=result.unigram_bits,
        stopped_early=result.stopped_early,
    )
    return diagnose(run_curves, facts)

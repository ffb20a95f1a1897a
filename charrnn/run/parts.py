"""The parts the training loop (loop.py) calls besides its step: the saves and best.pt; the log
line, metrics, previews and samples.txt; the clock all processes agree on."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from charrnn.core.model import CharRNN
from charrnn.errors import TrainingDiverged
from charrnn.run.distributed import Group
from charrnn.run.preview import PreviewLog, preview_text
from charrnn.run.progress import Reporter
from charrnn.settings.config import TrainConfig
from charrnn.settings.spelling import spelled
from charrnn.store.checkpoint import Checkpoint, RunRecord
from charrnn.store.metrics import MetricsLog, nats_to_bits
from charrnn.store.outdir import OutDir


@dataclass(frozen=True)
class Saver:
    """Where the checkpoints go (rank 0 writes them), what each records besides the training
    state, and what a save lets go of."""

    out: OutDir
    record: RunRecord
    release_pages: Callable[[], None]  # the corpus read since the last save leaves resident memory
    is_main: bool

    def save(self, checkpoint: Checkpoint, keep: int | None) -> None:
        if self.is_main:
            self.out.save(checkpoint, keep)
        self.release_pages()

    def save_best(self, checkpoint: Checkpoint) -> bool:
        """Whether `checkpoint` is now best.pt: it keeps a better model saved before a resume from an earlier step."""
        return self.out.save_best(checkpoint) if self.is_main else True


class RunLogs:
    """The log: the training loss summed on the device since the last log line (read back only
    when logging or saving, so steps do not wait on the device), the line itself, and the files
    rank 0 writes beside the checkpoints, metrics.jsonl and samples.txt. A damaged one never
    stops a run; each names the run in its first line."""

    def __init__(
        self,
        out: OutDir,
        reporter: Reporter,
        record: RunRecord,
        group: Group,
        device: torch.device,
        windows: int,  # per epoch
        elapsed: Callable[[], float],
    ):
        run_id = record.run.id if record.run is not None else None  # None: a Trainer made by hand (scripts/bench.py)
        self.metrics = MetricsLog(out.path, warn=reporter.message, run=run_id)
        self.previews = PreviewLog(out.path, warn=reporter.message, run=run_id)
        self.reporter, self.vocab, self.group = reporter, record.vocab, group
        self.windows, self.elapsed = windows, elapsed
        self.losses = torch.zeros((), device=device)
        self.grad_norm: torch.Tensor | None = None  # of the last step, before clipping
        self.logged_step, self.logged_time = 0, 0.0

    def begin(self, step: int, now: float) -> None:
        self.logged_step, self.logged_time = step, now
        if self.group.is_main:
            for log in (self.metrics, self.previews):
                log.begin_at(step)  # where a file started now begins (a fork's: the step it forks)
                log.forget_after(step)  # steps past the checkpoint are about to be redone

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor | None) -> None:
        self.losses += loss
        self.grad_norm = grad_norm

    def loss_sum(self) -> torch.Tensor:
        """The training loss summed since the last log line, the mean of every rank's."""
        return self.group.sum(self.losses) / self.group.world_size

    def line(self, step: int, loss_sum: float, chars_per_window: int, lr: float, threads: int | None) -> None:
        """Report and record the training since the last line (`loss_sum`: its summed loss, read back)."""
        count, now = step - self.logged_step, time.perf_counter()
        chars_per_sec = count * chars_per_window / max(now - self.logged_time, 1e-9)
        self.reporter.log(step, self.elapsed(), loss_sum / count, lr, chars_per_sec)
        grad_norm = None if self.grad_norm is None else float(self.grad_norm)
        figures = dict(lr=lr, chars_per_sec=round(chars_per_sec, 1), grad_norm=grad_norm)
        self.record("train", step, train_bpc=nats_to_bits(loss_sum / count), **figures, threads=threads)
        self.losses.zero_()
        self.logged_step, self.logged_time = step, now

    def record(self, kind: str, step: int, **figures: Any) -> None:
        if self.group.is_main:
            epoch = round(step / self.windows, 4)
            self.metrics.append(
                {"kind": kind, "step": step, "epoch": epoch, **figures, "elapsed": round(self.elapsed(), 2)}
            )

    def preview(self, step: int, model: CharRNN, config: TrainConfig, val_loss: float | None) -> None:
        """A sample of the model as it is, shown under the evaluation and kept in samples.txt;
        the seed is the run's, the same at every evaluation, so previews differ only by the model."""
        if not config.preview_chars or not self.group.is_main:
            return
        text = preview_text(model, self.vocab, config.preview_chars, config.seed)
        if text is not None:
            self.reporter.previewed(step, text)
            self.previews.append(step, text, None if val_loss is None else nats_to_bits(val_loss))

    def close(self) -> None:
        self.metrics.close()
        self.previews.close()


def diverged(value: float, step: int, saved_step: int | None, lr: float) -> TrainingDiverged:
    kept = f"the last good state is step {saved_step:,}" if saved_step is not None else "nothing was saved"
    lower = float(f"{lr / 4:g}")  # a rate a person would type
    return TrainingDiverged(
        f"training diverged: the loss became {value} by step {step:,}; {kept}. "
        f"Resume with a lower learning rate (e.g. {spelled('resume', True)} {spelled('lr', lower)}) "
        f"or a smaller {spelled('clip')}"
    )


class Clock:
    """This process's seconds of training: none until `start`. `agreed`: the run's elapsed time
    (earlier sessions included) as all ranks agreed on it after the last step."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.agreed = 0.0

    def start(self) -> float:
        self.started = time.perf_counter()
        return self.started

    def running(self) -> float:
        return time.perf_counter() - self.started if self.started is not None else 0.0

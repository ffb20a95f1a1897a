"""How a training run reports itself: silently, or with a tqdm progress bar on stderr."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

from charrnn.evaluate import nats_to_bits


class Reporter:
    """Receives training events; this base class ignores them all (quiet runs, tests)."""

    def start(self, step: int, total_steps: int) -> None:
        """Training begins (or resumes) at `step` of `total_steps`."""

    def advance(self, step: int) -> None:
        """One update finished; cheap, called every step."""

    def log(self, step: int, train_loss: float, lr: float, chars_per_sec: float) -> None:
        """Averages since the last log (loss in nats per character)."""

    def evaluated(self, step: int, val_loss: float, is_best: bool) -> None:
        """A validation pass finished (loss in nats per character)."""

    def message(self, text: str) -> None:
        """A line for the user."""

    def close(self) -> None:
        """Training stopped."""


class MessagesOnly(Reporter):
    """Prints messages, evaluations included, to a stream; no progress bar."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.train_loss: float | None = None

    def log(self, step: int, train_loss: float, lr: float, chars_per_sec: float) -> None:
        self.train_loss = train_loss

    def evaluated(self, step: int, val_loss: float, is_best: bool) -> None:
        self.message(_evaluation_line(step, self.train_loss, val_loss, is_best))

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class LogLines(MessagesOnly):
    """For logs (stderr is not a terminal): a line every --log-every steps instead of a bar."""

    def start(self, step: int, total_steps: int) -> None:
        self.total_steps = total_steps
        self.started_at, self.started_step = time.perf_counter(), step

    def log(self, step: int, train_loss: float, lr: float, chars_per_sec: float) -> None:
        super().log(step, train_loss, lr, chars_per_sec)
        elapsed = time.perf_counter() - self.started_at
        remaining = elapsed / max(step - self.started_step, 1) * (self.total_steps - step)
        self.message(
            f"step {step:,}/{self.total_steps:,}: train {nats_to_bits(train_loss):.4f} bpc, lr {lr:.3g}, "
            f"{chars_per_sec:,.0f} chars/s, elapsed {_duration(elapsed)}, remaining {_duration(remaining)}"
        )


def console_reporter(quiet: bool, stream: TextIO | None = None) -> Reporter:
    """What a user sees: a progress bar on a terminal, log lines otherwise, little with quiet."""
    stream = stream if stream is not None else sys.stderr
    if quiet:
        return MessagesOnly(stream)
    return ProgressBar(stream) if stream.isatty() else LogLines(stream)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class ProgressBar(MessagesOnly):
    """A tqdm bar: step, train and validation bits per character, chars/s and ETA."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream)
        self.bar: tqdm | None = None
        self.fields: dict[str, str] = {}

    def start(self, step: int, total_steps: int) -> None:
        self.bar = tqdm(
            total=total_steps, initial=step, file=self.stream, unit="step", dynamic_ncols=True,
            desc="training", bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
        )

    def advance(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def log(self, step: int, train_loss: float, lr: float, chars_per_sec: float) -> None:
        super().log(step, train_loss, lr, chars_per_sec)
        self.fields["loss"] = f"{nats_to_bits(train_loss):.3f} bpc"
        self.fields["chars/s"] = f"{chars_per_sec:,.0f}"
        self._show()

    def evaluated(self, step: int, val_loss: float, is_best: bool) -> None:
        self.fields["val"] = f"{nats_to_bits(val_loss):.3f} bpc"
        self._show()
        super().evaluated(step, val_loss, is_best)

    def message(self, text: str) -> None:
        if self.bar is None:
            super().message(text)
        else:
            self.bar.write(text, file=self.stream)

    def _show(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(", ".join(f"{k} {v}" for k, v in self.fields.items()), refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _evaluation_line(step: int, train_loss: float | None, val_loss: float, is_best: bool) -> str:
    train = f"train {nats_to_bits(train_loss):.4f} bpc ({train_loss:.4f} nats) | " if train_loss is not None else ""
    best = "  (best so far)" if is_best else ""
    return f"step {step:,}: {train}validation {nats_to_bits(val_loss):.4f} bpc ({val_loss:.4f} nats){best}"

"""How a training run reports itself: silently, as log lines, or with a tqdm bar on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

from charrnn.budget import Budget, format_duration
from charrnn.metrics import nats_to_bits

# Passes over corpora smaller than this are quick and not reported in log lines.
LONG_PASS_BYTES = 64 << 20


class Reporter:
    """Receives training events; this base class ignores them all (quiet runs, tests)."""

    def start(self, step: int, budget: Budget, elapsed: float) -> None:
        """Training begins (or resumes) at `step`, `elapsed` seconds into the run."""

    def advance(self, step: int, elapsed: float) -> None:
        """One update finished; cheap, called every step."""

    def log(self, step: int, elapsed: float, train_loss: float, lr: float, chars_per_sec: float) -> None:
        """Averages since the last log (loss in nats per character)."""

    def evaluated(self, step: int, val_loss: float, is_best: bool) -> None:
        """A validation pass finished (loss in nats per character)."""

    def message(self, text: str) -> None:
        """A line for the user."""

    def progress(self, description: str, total: int) -> Callable[[int | None], None]:
        """A long pass over `total` bytes begins: call the result with each block's size, then None."""
        return lambda size: None

    def close(self) -> None:
        """Training stopped."""


class MessagesOnly(Reporter):
    """Prints messages, evaluations included, to a stream; no progress display."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.train_loss: float | None = None

    def log(self, step: int, elapsed: float, train_loss: float, lr: float, chars_per_sec: float) -> None:
        self.train_loss = train_loss

    def evaluated(self, step: int, val_loss: float, is_best: bool) -> None:
        self.message(_evaluation_line(step, self.train_loss, val_loss, is_best))

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def progress(self, description: str, total: int) -> Callable[[int | None], None]:
        if total < LONG_PASS_BYTES:
            return lambda size: None  # small corpora take a moment: nothing to report
        self.message(f"{description}: {total / 2**20:,.0f} MiB")
        started = time.perf_counter()

        def advance(size: int | None) -> None:
            if size is None:
                seconds = time.perf_counter() - started
                self.message(f"done in {format_duration(seconds)} ({total / 2**20 / max(seconds, 1e-9):,.0f} MiB/s)")

        return advance


class LogLines(MessagesOnly):
    """For logs (stderr is not a terminal): a line every --log-every steps instead of a bar."""

    def start(self, step: int, budget: Budget, elapsed: float) -> None:
        self.budget = budget
        self.start_progress, self.start_elapsed = budget.progress(step, elapsed), elapsed

    def log(self, step: int, elapsed: float, train_loss: float, lr: float, chars_per_sec: float) -> None:
        super().log(step, elapsed, train_loss, lr, chars_per_sec)
        progress = self.budget.progress(step, elapsed)
        rate = (progress - self.start_progress) / max(elapsed - self.start_elapsed, 1e-9)  # progress per second
        remaining = (1.0 - progress) / rate if rate > 0 else 0.0
        total = f"/{self.budget.max_steps:,}" if self.budget.max_steps is not None else ""
        self.message(
            f"step {step:,}{total}: train {nats_to_bits(train_loss):.4f} bpc, lr {lr:.3g}, {chars_per_sec:,.0f} chars/s, "
            f"elapsed {format_duration(elapsed)}, remaining {format_duration(remaining)}"
        )


class ProgressBar(MessagesOnly):
    """A tqdm bar of the run's progress (by steps, or by time with --max-time): step, train and
    validation bits per character, chars/s, elapsed time and ETA."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream)
        self.bar: tqdm | None = None
        self.fields: dict[str, str] = {}

    def start(self, step: int, budget: Budget, elapsed: float) -> None:
        self.budget = budget
        self.total = f"/{budget.max_steps:,}" if budget.max_steps is not None else ""
        self.bar = tqdm(
            total=1.0,
            initial=budget.progress(step, elapsed),
            file=self.stream,
            dynamic_ncols=True,
            desc="training",
            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]",
        )

    def advance(self, step: int, elapsed: float) -> None:
        if self.bar is not None:
            self.fields["step"] = f"{step:,}{self.total}"
            self.bar.update(self.budget.progress(step, elapsed) - self.bar.n)  # tqdm redraws at most 10 times a second
            self._show(refresh=False)

    def log(self, step: int, elapsed: float, train_loss: float, lr: float, chars_per_sec: float) -> None:
        super().log(step, elapsed, train_loss, lr, chars_per_sec)
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

    def progress(self, description: str, total: int) -> Callable[[int | None], None]:
        # delay: the bar appears only if the pass takes more than a second
        bar = tqdm(
            total=total,
            desc=description,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=self.stream,
            dynamic_ncols=True,
            delay=1.0,
            leave=False,
        )

        def advance(size: int | None) -> None:
            if size is None:
                bar.close()
            else:
                bar.update(size)

        return advance

    def _show(self, refresh: bool = True) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(", ".join(f"{k} {v}" for k, v in self.fields.items()), refresh=refresh)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def console_reporter(quiet: bool, stream: TextIO | None = None) -> Reporter:
    """What a user sees: a progress bar on a terminal, log lines otherwise, little with quiet."""
    stream = stream if stream is not None else sys.stderr
    if quiet:
        return MessagesOnly(stream)
    return ProgressBar(stream) if stream.isatty() else LogLines(stream)


def _evaluation_line(step: int, train_loss: float | None, val_loss: float, is_best: bool) -> str:
    train = f"train {nats_to_bits(train_loss):.4f} bpc ({train_loss:.4f} nats) | " if train_loss is not None else ""
    best = "  (best so far)" if is_best else ""
    return f"step {step:,}: {train}validation {nats_to_bits(val_loss):.4f} bpc ({val_loss:.4f} nats){best}"

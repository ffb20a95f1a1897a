"""How a training run reports itself: silently, as log lines, or with a tqdm bar on stderr (in
a Jupyter notebook, tqdm's widget where ipywidgets is installed, else the same text bar)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm

from charrnn.display import printable
from charrnn.settings.budget import Budget, format_duration
from charrnn.store.metrics import nats_to_bits

# Passes over corpora smaller than this are quick and not reported in log lines.
LONG_PASS_BYTES = 64 << 20
BYTES = "bytes"  # the unit of a pass over a corpus; other passes count characters
# In log lines, a pass counted in other units than bytes (scoring a text, reading it for viz)
# says how far it is once the log has been silent this long, and again after as long.
LINE_EVERY = 10.0
# The weight of each new step in the smoothed seconds per step: the last ~200 steps count most.
# On a busy machine single steps stall for seconds (another program's burst); at 0.02 each stall
# moved the time left by a fifth (12, then 57, then 21 minutes), at 0.005 by a twentieth, and a
# lasting change of speed (another program starting) still shows within a few hundred steps.
SMOOTHING = 0.005
# A text bar in a notebook: its output area has no terminal width to follow.
NOTEBOOK_COLUMNS = 100


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

    def previewed(self, step: int, text: str) -> None:
        """A sample of the model as it is at this step's evaluation (see charrnn.run.preview)."""

    def paused(self, seconds: float) -> None:
        """Work besides training steps (evaluation, preview, save) took `seconds` since the
        last `advance`: time the run takes, but not the speed of its steps."""

    def message(self, text: str) -> None:
        """A line for the user."""

    def progress(self, description: str, total: int, unit: str = BYTES) -> Callable[[int | None], None]:
        """A long pass over `total` bytes (or `unit`s) begins: call the result with each block's
        size, then None."""
        return lambda size: None

    def close(self) -> None:
        """Training stopped."""


class MessagesOnly(Reporter):
    """Prints messages, evaluations included, to a stream; no progress display and no previews
    (--quiet: they are in samples.txt)."""

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.train_loss: float | None = None
        self.evaluated_step: int | None = None
        self.clock = clock  # for the lines of long passes
        self.spoke_at = clock()  # when the last line was printed

    def log(self, step: int, elapsed: float, train_loss: float, lr: float, chars_per_sec: float) -> None:
        self.train_loss = train_loss

    def evaluated(self, step: int, val_loss: float, is_best: bool) -> None:
        self.evaluated_step = step
        self.message(_evaluation_line(step, self.train_loss, val_loss, is_best))

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
        self.spoke_at = self.clock()

    def progress(self, description: str, total: int, unit: str = BYTES) -> Callable[[int | None], None]:
        if unit != BYTES:
            return self._counted(description, total, unit)
        if total < LONG_PASS_BYTES:
            return lambda size: None  # small corpora take a moment: nothing to report
        self.message(f"{description}: {total / 2**20:,.0f} MiB")
        started = time.perf_counter()

        def advance(size: int | None) -> None:
            if size is None:
                seconds = time.perf_counter() - started
                self.message(f"done in {format_duration(seconds)} ({total / 2**20 / max(seconds, 1e-9):,.0f} MiB/s)")

        return advance

    def _counted(self, description: str, total: int, unit: str) -> Callable[[int | None], None]:
        """A line on how far the pass is whenever the log has been silent for LINE_EVERY
        seconds, and how long it took if it said anything: a short pass prints nothing."""
        started, done, spoke = self.clock(), 0, False

        def advance(size: int | None) -> None:
            nonlocal done, spoke
            now = self.clock()
            if size is None:
                if spoke:
                    self.message(f"{description}: done in {format_duration(now - started)}")
                return
            done += size
            if now - self.spoke_at >= LINE_EVERY:
                share = f" ({done / total:.0%})" if total else ""
                self.message(f"{description}: {done:,} of {total:,} {unit}{share}, {format_duration(now - started)}")
                spoke = True

        return advance


class TimeLeft:
    """How long a run has left, steadily: the smoothed seconds per training step times the steps
    left (with --max-time, at most the time left).

    Only steps set the speed: evaluations, previews and saves are pauses, reported apart, and
    the session's first step, which pays one-time costs, is left out. The pauses are counted
    as their share of each step so far, so the estimate includes them: it moves once, at the
    first evaluation, by their true share, and not again. No clock is read here: the trainer's
    elapsed seconds come in through `advance`, its pauses through `pause`.
    """

    def __init__(self, budget: Budget, step: int, elapsed: float):
        self.budget = budget
        self.step, self.elapsed = step, elapsed
        self.steps = 0  # of this session
        self.pausing = 0.0  # seconds of pauses since the last step
        self.paused_total = 0.0
        self.pause_per_step = 0.0  # the pauses' share of each step of this session so far
        self._mean, self._weight = 0.0, 0.0  # a moving average with its bias from starting at 0

    def pause(self, seconds: float) -> None:
        self.pausing += seconds
        self.paused_total += seconds
        self.pause_per_step = self.paused_total / max(self.steps, 1)

    def advance(self, step: int, elapsed: float) -> None:
        steps = step - self.step
        if steps > 0 and self.steps > 0:
            seconds = max(elapsed - self.elapsed - self.pausing, 0.0)
            decay = (1 - SMOOTHING) ** steps
            self._mean = decay * self._mean + (1 - decay) * seconds / steps
            self._weight = decay * self._weight + (1 - decay)
        self.steps += max(steps, 0)
        self.step, self.elapsed, self.pausing = step, elapsed, 0.0

    @property
    def step_seconds(self) -> float | None:
        """Seconds per training step, smoothed; None before the first step that counts."""
        return self._mean / self._weight if self._weight else None  # dividing by the weight removes the bias

    def seconds(self) -> float | None:
        """Seconds the run has left; None while unknown (no step timed yet)."""
        left = []
        if self.budget.max_time is not None:
            left.append(max(self.budget.max_time - self.elapsed, 0.0))
        if self.budget.max_steps is not None and self.step_seconds is not None:
            left.append(max(self.budget.max_steps - self.step, 0) * (self.step_seconds + self.pause_per_step))
        return min(left) if left else None

    def describe(self) -> str:
        seconds = self.seconds()
        return "?" if seconds is None else format_duration(seconds)


class Watched(MessagesOnly):
    """What a run shows unless quiet: the time it has left, and each preview under its evaluation."""

    def start(self, step: int, budget: Budget, elapsed: float) -> None:
        self.budget = budget
        self.time_left = TimeLeft(budget, step, elapsed)

    def advance(self, step: int, elapsed: float) -> None:
        self.time_left.advance(step, elapsed)

    def paused(self, seconds: float) -> None:
        self.time_left.pause(seconds)

    def previewed(self, step: int, text: str) -> None:
        heading = "" if self.evaluated_step == step else f"step {step:,}: sample\n"  # no validation line above it
        self.message(heading + _preview_lines(text))


class LogLines(Watched):
    """For logs (stderr is not a terminal): a line every --log-every steps instead of a bar."""

    def log(self, step: int, elapsed: float, train_loss: float, lr: float, chars_per_sec: float) -> None:
        super().log(step, elapsed, train_loss, lr, chars_per_sec)
        total = f"/{self.budget.max_steps:,}" if self.budget.max_steps is not None else ""
        self.message(
            f"step {step:,}{total}: train {nats_to_bits(train_loss):.4f} bpc, lr {lr:.3g}, {chars_per_sec:,.0f} chars/s, "
            f"elapsed {format_duration(elapsed)}, remaining {self.time_left.describe()}"
        )


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's shell with a kernel), whose output a
    notebook shows: no terminal, yet a bar redraws in place there."""
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has done it
    shell = getattr(ipython, "get_ipython", lambda: None)()
    return getattr(shell, "kernel", None) is not None


def bar_class() -> type[tqdm]:
    """tqdm's widget bar in a notebook where ipywidgets imports (tqdm.auto's choice, without
    its warning when ipywidgets is missing); else the text bar, which a notebook shows as well."""
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401 - the widget bar needs it
            from tqdm.notebook import tqdm as widget_bar
        except ImportError:
            return tqdm
        return widget_bar
    return tqdm


def _bar(base: type[tqdm], **arguments: Any) -> tqdm:
    """A bar of class `base`, as wide as the terminal, or NOTEBOOK_COLUMNS for text in a notebook."""
    width = {"ncols": NOTEBOOK_COLUMNS} if base is tqdm and in_notebook() else {"dynamic_ncols": True}
    return base(**arguments, **width)


class _RunFields:
    """Mixed into a tqdm bar: it shows the run's elapsed time (earlier sessions included) and
    TimeLeft's estimate, not tqdm's own, which counts evaluations and saves as slow steps."""

    run_elapsed, time_left = "0:00", "?"

    @property
    def format_dict(self) -> dict:
        return {**super().format_dict, "run_elapsed": self.run_elapsed, "time_left": self.time_left}  # type: ignore[misc]


def _run_bar_class(base: type[tqdm]) -> type[tqdm]:
    return type(f"Run{base.__name__}", (_RunFields, base), {})


class ProgressBar(Watched):
    """A tqdm bar of the run's progress (by steps, or by time with --max-time): step, train and
    validation bits per character, chars/s, elapsed time and the time left."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream)
        self.bar: Any = None  # a tqdm bar with _RunFields
        self.fields: dict[str, str] = {}

    def start(self, step: int, budget: Budget, elapsed: float) -> None:
        super().start(step, budget, elapsed)
        self.total = f"/{budget.max_steps:,}" if budget.max_steps is not None else ""
        self.bar = _bar(
            _run_bar_class(bar_class()),
            total=1.0,
            initial=budget.progress(step, elapsed),
            file=self.stream,
            desc="training",
            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{run_elapsed}<{time_left}{postfix}]",
        )
        self.bar.run_elapsed = format_duration(elapsed)

    def advance(self, step: int, elapsed: float) -> None:
        super().advance(step, elapsed)
        if self.bar is not None:
            self.fields["step"] = f"{step:,}{self.total}"
            self.bar.run_elapsed, self.bar.time_left = format_duration(elapsed), self.time_left.describe()
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

    def progress(self, description: str, total: int, unit: str = BYTES) -> Callable[[int | None], None]:
        # delay: the bar appears only if the pass takes more than a second
        scale = {"unit": "B", "unit_divisor": 1024} if unit == BYTES else {"unit": f" {unit}"}
        bar = _bar(
            bar_class(),
            total=total,
            desc=description,
            file=self.stream,
            unit_scale=True,
            delay=1.0,
            leave=False,
            **scale,
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
    """What a user sees: a progress bar on a terminal or in a notebook, log lines otherwise
    (a log file), little with quiet."""
    stream = stream if stream is not None else sys.stderr
    if quiet:
        return MessagesOnly(stream)
    return ProgressBar(stream) if stream.isatty() or in_notebook() else LogLines(stream)


def _evaluation_line(step: int, train_loss: float | None, val_loss: float, is_best: bool) -> str:
    train = f"train {nats_to_bits(train_loss):.4f} bpc ({train_loss:.4f} nats) | " if train_loss is not None else ""
    best = "  (best so far)" if is_best else ""
    return f"step {step:,}: {train}validation {nats_to_bits(val_loss):.4f} bpc ({val_loss:.4f} nats){best}"


def _preview_lines(text: str, indent: str = "  | ") -> str:
    """A preview as lines for the terminal: each indented, so it stands apart from log lines,
    and made printable (a corpus may hold escape sequences that would move the cursor)."""
    return "\n".join(indent + printable(line, limit=len(line)) for line in text.split("\n"))

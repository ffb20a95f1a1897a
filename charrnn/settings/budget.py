"""How long a run lasts (steps, epochs or wall-clock time, or until validation stops
improving) and how far along it is."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([hms]?)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `90`, `90s`, `5m`, `1h30m` or `1.5h`; ValueError if malformed."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError(f"{text!r} is not a duration (try 90s, 5m, 1h30m)")
    if sum(unit == "" for _, unit in parts) > (1 if len(parts) == 1 else 0):
        raise ValueError(f"{text!r} mixes bare numbers with units (try 1h30m)")
    return sum(float(number) * _SECONDS[unit] for number, unit in parts)


def duration_option(seconds: float) -> str:
    """A duration as --max-time takes it, the way a person writes it: `3m`, `1h30m`, `45s`,
    `2.5s` (parse_duration reads it back to the same seconds)."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{value}{unit}" for value, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if value]
    return "".join(parts) or "0s"


def format_duration(seconds: float) -> str:
    """`1:02:03` or `2:03`: hours only when needed."""
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


@dataclass(frozen=True)
class Budget:
    """A run ends at `max_steps` updates or after `max_time` seconds of training, whichever
    comes first (either may be None, not both)."""

    max_steps: int | None
    max_time: float | None

    @classmethod
    def of(cls, max_steps: int | None, epochs: float | None, max_time: float | None, windows_per_epoch: int) -> Budget:
        if epochs is not None:
            by_epochs = max(1, math.ceil(epochs * windows_per_epoch))
            max_steps = by_epochs if max_steps is None else min(max_steps, by_epochs)
        return cls(max_steps, max_time)

    def progress(self, step: int, elapsed: float) -> float:
        """How much of the run is done, from 0 to 1: the further along of steps and time."""
        fractions = [0.0]
        if self.max_steps is not None:
            fractions.append(step / self.max_steps)
        if self.max_time is not None:
            fractions.append(elapsed / self.max_time)
        return min(1.0, max(fractions))

    def spent(self, step: int, elapsed: float) -> bool:
        return (self.max_steps is not None and step >= self.max_steps) or (
            self.max_time is not None and elapsed >= self.max_time
        )

    def describe(self) -> str:
        """`12,000 steps`, `5:00`, or `12,000 steps or 5:00`."""
        parts = [f"{self.max_steps:,} steps"] if self.max_steps is not None else []
        parts += [format_duration(self.max_time)] if self.max_time is not None else []
        return " or ".join(parts)


@dataclass
class Validation:
    """A run's validation losses so far (nats): the best, the last, and how many evaluations
    since the best, which --patience bounds."""

    patience: int | None
    best: float | None = None
    last: float | None = None
    since_best: int = 0

    def record(self, loss: float) -> bool:
        """Note a new validation loss; whether it is the best so far."""
        self.last = loss
        is_best = self.best is None or loss < self.best
        self.since_best = 0 if is_best else self.since_best + 1
        if is_best:
            self.best = loss
        return is_best

    @property
    def out_of_patience(self) -> bool:
        return self.patience is not None and self.since_best >= self.patience

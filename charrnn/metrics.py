"""The run's figures as data: `metrics.jsonl` in the out folder, one JSON object per line.

Every training-loss report writes a line of kind "train" (step, epoch, train bpc, learning
rate, chars/s, elapsed seconds, gradient norm) and every validation a line of kind
"validation" (step, epoch, validation bpc, whether it is the best so far). A resumed run
appends, after first dropping the lines of steps its checkpoint does not hold (they are about
to be trained again), so no step is ever counted twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

NAME = "metrics.jsonl"


class MetricsLog:
    def __init__(self, folder: Path):
        self.path = Path(folder) / NAME

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")

    def forget_after(self, step: int) -> None:
        """Keep only whole lines of steps up to `step` (a crash may have cut the last one short)."""
        if not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if line.endswith("\n") and (at := _step_of(line)) is not None and at <= step]
        if len(kept) == len(lines):
            return
        temporary = self.path.with_name(f".{NAME}.tmp-{os.getpid()}")
        temporary.write_text("".join(kept), encoding="utf-8")
        os.replace(temporary, self.path)


def read_metrics(folder: Path) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl (empty if it has none)."""
    path = Path(folder) / NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if _step_of(line) is not None]


def _step_of(line: str) -> int | None:
    try:
        step = json.loads(line).get("step")
    except (ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None

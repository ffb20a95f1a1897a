"""The names charrnn gives the files of an out folder, and how to tell an out folder.

    .charrnn.lock    held by the one process that trains there (outdir.py)
    run.json         the identity of the run the folder holds (outdir.py)
    latest.pt, best.pt, step-NNNNNNNN.pt   checkpoints (outdir.py)
    metrics.jsonl    the run's figures (metrics.py)
    samples.txt      the previews of its evaluations (preview.py)
    bpc.png          `charrnn plot`'s default output; viz.html: `charrnn viz`'s
    .NAME.charrnn-tmp-PID@HOST   a file being written (files.py)

charrnn writes into an out folder only files it can show are its own: a file of one of these
names that is not (a user's file, a link, a pipe) is refused in one line, naming it, before
any work. Corpus folders leave out charrnn's out folders: a run's own files never become text
to train on or score.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from charrnn.display import printable
from charrnn.errors import ConfigError
from charrnn.settings.spelling import spelled
from charrnn.store.files import leftover_writer

LOCK_FILE = ".charrnn.lock"
RUN_FILE = "run.json"
LATEST = "latest.pt"
BEST = "best.pt"
STEP_FILE = re.compile(r"step-(\d+)\.pt")
METRICS = "metrics.jsonl"
SAMPLES = "samples.txt"
PLOT_PNG = "bpc.png"
VIZ_PAGE = "viz.html"


def is_checkpoint_name(name: str) -> bool:
    return name in (LATEST, BEST) or STEP_FILE.fullmatch(name) is not None


def is_run_file_name(name: str) -> bool:
    """Whether charrnn writes files of this name into an out folder."""
    return (
        name in (LOCK_FILE, RUN_FILE, METRICS, SAMPLES, PLOT_PNG, VIZ_PAGE)
        or is_checkpoint_name(name)
        or leftover_writer(name) is not None
    )


def marks_out_folder(names: Iterable[str]) -> bool:
    """Whether a folder holding files of these names is an out folder of charrnn: one that a
    training process has held (its lock) or that holds a run (run.json, checkpoints)."""
    return any(name in (LOCK_FILE, RUN_FILE) or is_checkpoint_name(name) for name in names)


def not_ours(path: Path, problem: str) -> ConfigError:
    """The refusal of a file of one of charrnn's names that charrnn cannot show is its own."""
    return ConfigError(
        f"{printable(path)} {problem}, so charrnn will not write to it; "
        f"move it out of {printable(path.parent)}, or give another {spelled('out')}"
    )

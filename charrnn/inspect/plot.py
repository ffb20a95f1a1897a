"""`charrnn plot`: training and validation bits per character against step, runs overlaid.

Each run's metrics.jsonl is read a line at a time into curves of bounded size (diagnosis.curves),
however long the log. The PNG names charrnn in a text chunk, by which a later plot knows it
may replace it (output.py).
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from charrnn.display import printable
from charrnn.errors import ConfigError
from charrnn.run.diagnosis import Curves, curves
from charrnn.store.metrics import NAME, MetricsRecords, finite_number
from charrnn.store.output import OutputFile
from charrnn.version import __version__

SIZE_INCHES, DPI = (9, 5.5), 100  # a 900 x 550 PNG
FIGURES = {"train": "train_bpc", "validation": "val_bpc"}  # the figure each kind of record draws
SOFTWARE = f"charrnn {__version__}"  # the PNG's Software text chunk
PNG_MARK = b"tEXtSoftware\x00charrnn "  # ... as it lies in the file, just after the image header


def plot_runs(folders: Sequence[Path], output: Path, force: bool = False) -> list[str]:
    """Draw each run's train bpc (a line) and validation bpc (dots) against step into `output`
    (refused before any reading where it may not be written: see output.py; `force` replaces a
    file charrnn did not write). Returns warnings for the user: lines of a metrics.jsonl skipped
    as damaged."""
    absent = [printable(folder) for folder in folders if not os.path.lexists(Path(folder) / NAME)]
    if absent:
        raise _nothing_to_draw(absent)
    plt = _pyplot()
    target = OutputFile(Path(output), PNG_MARK, force)
    target.check()
    runs, warnings, empty = [], [], []
    for folder in folders:
        run_curves, skipped = _curves(folder)
        if not (run_curves.training or run_curves.validation):
            empty.append(printable(folder) + (f" (its {NAME} has only {skipped:,} damaged lines)" if skipped else ""))
        elif skipped:
            warnings.append(f"warning: skipped {skipped:,} damaged lines of {printable(Path(folder) / NAME)}")
        runs.append((folder, run_curves))
    if empty:
        raise _nothing_to_draw(empty)
    target.write(_png(plt, runs))
    return warnings


def _nothing_to_draw(folders: list[str]) -> ConfigError:
    return ConfigError(f"no {NAME} in {', '.join(folders)}: is it an out folder of charrnn train?")


def _curves(folder: Path) -> tuple[Curves, int]:
    """A run's curves, and how many lines could not be drawn (damaged, or a figure that is no
    finite number)."""
    records = MetricsRecords(folder)
    undrawable = [0]
    run_curves = curves(_drawable(records, undrawable))
    return run_curves, records.skipped + undrawable[0]


def _drawable(records: Iterable[dict[str, Any]], undrawable: list[int]) -> Iterator[dict[str, Any]]:
    """The records whose figure can be drawn; `undrawable[0]` counts the others of a drawn kind."""
    for record in records:
        kind = record.get("kind")
        if kind not in FIGURES:
            continue  # a kind of record this version does not draw
        if finite_number(record.get(FIGURES[kind])):
            yield record
        else:
            undrawable[0] += 1


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("charrnn plot needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def _png(plt: Any, runs: list[tuple[Path, Curves]]) -> bytes:
    with warnings.catch_warnings():  # numpy's overflow warnings on absurd (damaged) figures: drawn all the same
        warnings.simplefilter("ignore")
        figure, axes = plt.subplots(figsize=SIZE_INCHES, dpi=DPI)
        try:
            _draw(axes, runs)
            figure.tight_layout()
            png = io.BytesIO()
            figure.savefig(png, format="png", metadata={"Software": SOFTWARE})  # PNG whatever the name ends in
        finally:
            plt.close(figure)
    return png.getvalue()


def _draw(axes: Any, runs: list[tuple[Path, Curves]]) -> None:
    for folder, run_curves in runs:
        name = _label(folder.resolve().name)
        color = None
        if run_curves.training:
            (line,) = axes.plot(*zip(*run_curves.training), linewidth=1.2, alpha=0.8, label=f"{name}: train")
            color = line.get_color()
        if run_curves.validation:
            axes.plot(
                *zip(*run_curves.validation),
                marker="o",
                markersize=4,
                linestyle="--",
                color=color,
                label=f"{name}: validation",
            )
    axes.set_xlabel("step")
    axes.set_ylabel("bits per character")
    axes.set_title("charrnn: loss against training step")
    axes.grid(alpha=0.3)
    axes.legend()


def _label(name: Any) -> str:
    """A folder name as a legend label: printable, and with `$` escaped (matplotlib reads text
    between two of them as mathematics, and fails on what it cannot parse)."""
    return printable(name, limit=60).replace("$", r"\$")

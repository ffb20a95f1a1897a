"""`charrnn plot`: training and validation bits per character against step, runs overlaid."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from charrnn.display import printable
from charrnn.errors import ConfigError
from charrnn.metrics import NAME, finite_number, read_metrics

SIZE_INCHES, DPI = (9, 5.5), 100  # a 900 x 550 PNG
FIGURES = {"train": "train_bpc", "validation": "val_bpc"}  # the figure each kind of record draws


def plot_runs(folders: Sequence[Path], output: Path) -> list[str]:
    """Draw each run's train bpc (a line) and validation bpc (dots) against step into `output`.
    Returns warnings for the user: lines of a metrics.jsonl skipped as damaged."""
    runs, warnings, missing = [], [], []
    for folder in folders:
        points, skipped = _points(folder)
        if not any(points.values()):
            missing.append(printable(folder) + (f" (its {NAME} has only {skipped:,} damaged lines)" if skipped else ""))
        elif skipped:
            warnings.append(f"warning: skipped {skipped:,} damaged lines of {printable(Path(folder) / NAME)}")
        runs.append((folder, points))
    if missing:
        raise ConfigError(f"no {NAME} in {', '.join(missing)}: is it an out folder of charrnn train?")
    _draw(runs, output)
    return warnings


def _points(folder: Path) -> tuple[dict[str, list[tuple[int, float]]], int]:
    """(step, bpc) pairs of each kind of record, and how many lines could not be drawn."""
    records, skipped = read_metrics(folder)
    points: dict[str, list[tuple[int, float]]] = {kind: [] for kind in FIGURES}
    for record in records:
        kind = record.get("kind")
        if kind not in FIGURES:
            continue  # a kind of record this version does not draw
        value = record.get(FIGURES[kind])
        if finite_number(value):
            points[kind].append((record["step"], value))
        else:
            skipped += 1
    return points, skipped


def _draw(runs: list[tuple[Path, dict[str, list[tuple[int, float]]]]], output: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("charrnn plot needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():  # numpy's overflow warnings on absurd (damaged) figures: drawn all the same
        warnings.simplefilter("ignore")
        _draw_with(plt, runs, output)


def _draw_with(plt: Any, runs: list[tuple[Path, dict[str, list[tuple[int, float]]]]], output: Path) -> None:
    figure, axes = plt.subplots(figsize=SIZE_INCHES, dpi=DPI)
    for folder, points in runs:
        name = _label(folder.resolve().name)
        color = None
        if points["train"]:
            (line,) = axes.plot(*zip(*points["train"]), linewidth=1.2, alpha=0.8, label=f"{name}: train")
            color = line.get_color()
        if points["validation"]:
            axes.plot(
                *zip(*points["validation"]),
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
    figure.tight_layout()
    try:
        figure.savefig(output, format="png")  # PNG whatever the name ends in
    except OSError as error:
        raise ConfigError(f"cannot write {printable(output)}: {error.strerror or error}") from None
    finally:
        plt.close(figure)


def _label(name: Any) -> str:
    """A folder name as a legend label: printable, and with `$` escaped (matplotlib reads text
    between two of them as mathematics, and fails on what it cannot parse)."""
    return printable(name, limit=60).replace("$", r"\$")

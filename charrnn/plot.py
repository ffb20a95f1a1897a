"""`charrnn plot`: training and validation bits per character against step, runs overlaid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from charrnn.errors import ConfigError
from charrnn.metrics import NAME, read_metrics

SIZE_INCHES, DPI = (9, 5.5), 100  # a 900 x 550 PNG


def plot_runs(folders: Sequence[Path], output: Path) -> None:
    """Draw each run's train bpc (a line) and validation bpc (dots) against step into `output`."""
    runs = [(folder, read_metrics(folder)) for folder in folders]
    missing = [str(folder) for folder, records in runs if not records]
    if missing:
        raise ConfigError(f"no {NAME} in {', '.join(missing)}: is it an out folder of charrnn train?")
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("charrnn plot needs matplotlib: pip install 'charrnn[plot]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=SIZE_INCHES, dpi=DPI)
    for folder, records in runs:
        name = folder.resolve().name
        train = [(r["step"], r["train_bpc"]) for r in records if r.get("kind") == "train"]
        validation = [(r["step"], r["val_bpc"]) for r in records if r.get("kind") == "validation"]
        color = None
        if train:
            (line,) = axes.plot(*zip(*train), linewidth=1.2, alpha=0.8, label=f"{name}: train")
            color = line.get_color()
        if validation:
            axes.plot(*zip(*validation), marker="o", markersize=4, linestyle="--", color=color, label=f"{name}: validation")
    axes.set_xlabel("step")
    axes.set_ylabel("bits per character")
    axes.set_title("charrnn: loss against training step")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(output)
    plt.close(figure)

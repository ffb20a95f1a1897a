"""Where a training run stands (RunState): its step, the hidden state it carries from window to
window, its validation bookkeeping and the seconds it has trained; what its checkpoints hold
besides the weights, the optimizer's moments and the configs. The loop: charrnn.run.loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from charrnn.core.model import Hidden
from charrnn.errors import CheckpointError
from charrnn.run.distributed import Group
from charrnn.run.runtime import rng_state, set_rng_state
from charrnn.settings.budget import Validation
from charrnn.settings.config import TrainConfig
from charrnn.store.checkpoint import Checkpoint


@dataclass
class RunState:
    """Where a run stands, as its checkpoints hold it besides the weights, optimizer moments and
    configs: each checkpoint is built from it (`saved`) and a resumed run restored into it
    (`resumed`). The data position is a function of the step; the random generators are torch's
    own, read at each save and set again on resume."""

    step: int
    hidden: Hidden  # carried from window to window, each (layers, B, H): this process's streams
    validation: Validation  # the best validation loss, the last, evaluations since the best (--patience)
    elapsed_before: float = 0.0  # seconds trained by earlier processes of this run
    saved_step: int | None = None  # the step of this run's newest save (not itself saved)

    def saved(self, group: Group, windows: int, elapsed: Callable[[], float]) -> dict[str, Any]:
        """The checkpoint's fields of the training state. With several processes, the hidden
        state of all streams is gathered (so the run can resume on any number of processes)
        and so are the random generator states of all ranks."""
        return dict(
            step=self.step,
            data_position=(self.step // windows, self.step % windows),
            hidden=tuple(group.gather_rows(h, dim=1).cpu() for h in self.hidden),  # (layers, B, H)
            rng=rng_state(),
            best_val_loss=self.validation.best,
            evals_since_best=self.validation.since_best,
            last_val_loss=self.validation.last,
            elapsed=elapsed(),
            world_size=group.world_size if group.active else None,
            rng_ranks=group.gather_objects(rng_state()) if group.active else None,
        )

    @classmethod
    def resumed(cls, checkpoint: Checkpoint, path: Path, fresh: Hidden, group: Group, config: TrainConfig) -> RunState:
        """The state `checkpoint` saved (this rank's streams of it; `fresh`: a hidden state of the
        shape expected), with the random generators set as the checkpoint says."""
        step = checkpoint.step
        hidden = _checked_hidden(_my_rows(checkpoint.hidden, group), fresh, path)
        saved = checkpoint.best_val_loss, checkpoint.last_val_loss, checkpoint.evals_since_best
        state = cls(step, hidden, Validation(config.patience, *saved), checkpoint.elapsed, saved_step=step)
        # Each rank's generator as saved when the number of processes is the same; with
        # another number, dropout draws cannot continue as they were and are seeded anew.
        ranks = checkpoint.rng_ranks
        if ranks is not None and len(ranks) == group.world_size:
            set_rng_state(ranks[group.rank])
        elif group.active:
            torch.manual_seed(config.seed + 1_000_003 * step + group.rank)
        else:
            set_rng_state(checkpoint.rng)
        return state


def _my_rows(hidden: tuple[torch.Tensor, ...], group: Group) -> tuple[torch.Tensor, ...]:
    """This rank's streams of a saved hidden state, which holds all of them."""
    if group.active and all(h.dim() == 3 for h in hidden):
        return tuple(h[:, group.rows(h.shape[1])] for h in hidden)
    return hidden


def _checked_hidden(saved: Any, expected: Hidden, path: Path) -> Hidden:
    if (
        not isinstance(saved, (tuple, list))
        or len(saved) != len(expected)
        or any(not isinstance(h, torch.Tensor) or h.shape != e.shape for h, e in zip(saved, expected))
    ):
        raise CheckpointError(f"{path} has a hidden state that does not fit this model and batch size")
    return tuple(h.to(device=e.device, dtype=e.dtype) for h, e in zip(saved, expected))

"""A model loaded to sample from: the checkpoint's weights as a NumpyCharRNN (no torch), or as a
torch CharRNN where one is asked for (scoring, the memory curve)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charrnn.core.numpy_model import NumpyCharRNN
from charrnn.core.vocab import Vocab
from charrnn.display import printable
from charrnn.errors import CheckpointError, OptionError
from charrnn.store.checkpoint import ADAPTED_TO, Checkpoint, RunIdentity
from charrnn.store.metrics import nats_to_bits
from charrnn.store.outdir import FoundCheckpoint, load_from

if TYPE_CHECKING:
    import torch

    from charrnn.core.model import CharRNN


@dataclass(frozen=True)
class LoadedModel:
    model: NumpyCharRNN | CharRNN  # a torch CharRNN where one was asked for (scoring)
    vocab: Vocab
    path: Path
    step: int
    passed_over: tuple[str, ...] = ()  # damaged checkpoints skipped to reach this one
    checkpoint: Checkpoint | None = None  # everything the file holds (None for a model built in memory)
    weights: dict[str, Any] | None = None  # where they differ from the checkpoint's: a model adapted to a text
    adapted_to: str | None = None  # that text, and how it was read

    def summary(self) -> list[str]:
        """Cell, layers x hidden size, parameters, vocabulary, step, held-out loss, path: a Model's repr."""
        checkpoint = self.checkpoint
        parts = []
        if checkpoint is not None:
            config = checkpoint.model_config
            parts += [
                f"{config.cell.upper()} {config.layers}x{config.hidden_size}",
                f"{checkpoint.num_parameters:,} parameters",
            ]
        parts += [f"{len(self.vocab):,} characters", f"step {self.step:,}"]
        loss = checkpoint.last_val_loss if checkpoint is not None else None
        if loss is not None:
            parts.append(f"validation {nats_to_bits(loss):.3f} bpc ({loss:.3f} nats)")
        if self.adapted_to is not None:
            parts.append(f"adapted to {self.adapted_to}")
        return [*parts, str(self.path)]


def load_for_sampling(location: str | Path) -> LoadedModel:
    """The model in a checkpoint file, or in an out folder's best.pt (else its newest good one),
    as a NumpyCharRNN: read without torch (but a format-1 file, which only torch reads)."""
    found = load_from(location, prefer="best", arrays="numpy")
    checkpoint = found.checkpoint
    model = NumpyCharRNN(checkpoint.model_config, checkpoint.weights)  # the shapes were checked on reading
    return LoadedModel(model, checkpoint.vocab, found.path, checkpoint.step, found.passed_over, checkpoint)


def torch_model(found: FoundCheckpoint, device: torch.device, weights: Mapping[str, Any] | None = None) -> CharRNN:
    """The torch CharRNN of a loaded checkpoint (its tensors torch's or numpy's), on `device`;
    with `weights`, those instead of the checkpoint's (a model adapted to a text)."""
    from charrnn.core.model import CharRNN

    model = CharRNN(found.checkpoint.model_config)
    try:
        model.load_state_dict(_as_torch(weights if weights is not None else found.checkpoint.weights))
    except (RuntimeError, KeyError, TypeError) as error:
        raise CheckpointError(f"{found.path} does not fit its own model config: {str(error).splitlines()[0]}") from None
    return model.to(device).eval()


def adapted(loaded: LoadedModel, weights: Mapping[str, Any], adapted_to: str) -> LoadedModel:
    """`loaded` with other weights of the same shapes: a model adapted to the text `adapted_to` describes."""
    config = loaded.model.config
    return replace(loaded, model=NumpyCharRNN(config, weights), weights=dict(weights), adapted_to=adapted_to)


def check_new_file(path: Path, option: str) -> None:
    """Refuse a place for a new checkpoint (given as `option`) that is taken or is in no folder, before any work."""
    if os.path.lexists(path):
        raise OptionError(option, f"{printable(path)} already exists: give a new file name (nothing is written over)")
    if not path.parent.is_dir():
        raise OptionError(option, f"{printable(path)}: {printable(path.parent)} is not a folder")


def save_model(loaded: LoadedModel, path: Path, option: str) -> Path:
    """Write `loaded` as a new checkpoint at `path`: its checkpoint with its own weights, under a run
    identity of its own that records the checkpoint it came from (RunIdentity.forked_from)."""
    from charrnn.store.checkpoint import read_checkpoint
    from charrnn.store.checkpoint_file import save_checkpoint

    check_new_file(path, option)
    source = read_checkpoint(loaded.path, "torch")  # the training state in torch's tensors, as writing takes it
    weights = loaded.weights if loaded.weights is not None else source.weights
    run = RunIdentity.new(forked_from=source, path=loaded.path)
    if loaded.adapted_to is not None:
        run = replace(run, forked_from={**run.forked_from, ADAPTED_TO: loaded.adapted_to})
    made = replace(source, weights=_as_torch(weights), record=replace(source.record, run=run))
    save_checkpoint(made.to_stored(), path)
    return path


def export_model(location: str | Path, path: Path, half: bool, option: str) -> FoundCheckpoint:
    """Write the model of the checkpoint at `location` (an out folder: its best.pt) as a model
    file at `path`, never over a file: its weights (in float16 with `half`), vocabulary and
    configs, in the checkpoint format, without the training state (a third of the size)."""
    import torch

    check_new_file(path, option)
    found = load_from(location, prefer="best")
    dtype = torch.float16 if half else torch.float32
    weights = {name: weight.to(dtype) for name, weight in found.checkpoint.weights.items()}
    made = found.checkpoint.model_file(weights)
    if made.record.run is not None:  # where it came from, as a fork records it
        source = RunIdentity.new(forked_from=found.checkpoint, path=found.path)
        made = replace(made, record=replace(made.record, run=replace(made.record.run, forked_from=source.forked_from)))
    from charrnn.store.checkpoint_file import save_checkpoint

    save_checkpoint(made.to_stored(), path)
    return found


def _as_torch(weights: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    return {name: torch.as_tensor(value) for name, value in weights.items()}

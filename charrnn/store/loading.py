"""A model loaded to sample from: the checkpoint's weights as a NumpyCharRNN (no torch), or as a
torch CharRNN where one is asked for (scoring, the memory curve)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from charrnn.core.numpy_model import NumpyCharRNN
from charrnn.core.vocab import Vocab
from charrnn.errors import CheckpointError
from charrnn.store.checkpoint import Checkpoint
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


def load_for_sampling(location: str | Path) -> LoadedModel:
    """The model in a checkpoint file, or in an out folder's best.pt (else its newest good one),
    as a NumpyCharRNN: read without torch (but a format-1 file, which only torch reads)."""
    found = load_from(location, prefer="best", arrays="numpy")
    checkpoint = found.checkpoint
    model = NumpyCharRNN(checkpoint.model_config, checkpoint.weights)  # the shapes were checked on reading
    return LoadedModel(model, checkpoint.vocab, found.path, checkpoint.step, found.passed_over, checkpoint)


def torch_model(found: FoundCheckpoint, device: torch.device) -> CharRNN:
    """The torch CharRNN of a loaded checkpoint (its tensors torch's or numpy's), on `device`."""
    import torch

    from charrnn.core.model import CharRNN

    model = CharRNN(found.checkpoint.model_config)
    try:
        model.load_state_dict({name: torch.as_tensor(value) for name, value in found.checkpoint.weights.items()})
    except (RuntimeError, KeyError, TypeError) as error:
        raise CheckpointError(f"{found.path} does not fit its own model config: {str(error).splitlines()[0]}") from None
    return model.to(device).eval()

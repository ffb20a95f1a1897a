"""Checkpoint files: atomic writes, integrity checks, and loading that never runs code.

A checkpoint file is a short text header followed by a `torch.save` payload:

    charrnn checkpoint\\n
    format 1 sha256 <64 hex digits> bytes <payload length>\\n
    <payload: torch.save of a dict of plain data and tensors>

The header makes a charrnn checkpoint recognisable, gives its format version before
anything is parsed, and lets a truncated or corrupted file be detected by its hash.
The payload is read with `torch.load(weights_only=True)`, which refuses any pickled
object other than tensors and plain containers, so a checkpoint cannot run code.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
from pathlib import Path
from typing import Any

import torch

from charrnn.budget import format_duration
from charrnn.config import ModelConfig, TrainConfig, from_dict, to_dict
from charrnn.errors import CheckpointError, ConfigError
from charrnn.vocab import Vocab

FORMAT_VERSION = 1
MAGIC = b"charrnn checkpoint\n"
_HEADER = re.compile(rb"format (\d+) sha256 ([0-9a-f]{64}) bytes (\d+)\n")
_MAX_HEADER = 200

# Keys every checkpoint holds (see train.py's `checkpoint_state` for the meaning of each).
REQUIRED_KEYS = ("model_config", "train_config", "vocab", "model", "optimizer", "step", "hidden", "rng")


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write `state` to `path` atomically: a reader sees the old file or the new, never half."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    header = b"format %d sha256 %s bytes %d\n" % (FORMAT_VERSION, hashlib.sha256(payload).hexdigest().encode(), len(payload))
    temporary = temporary_name(path)
    try:
        with open(temporary, "wb") as file:
            file.write(MAGIC + header)
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise CheckpointError(f"cannot write checkpoint {path}: {error.strerror or error}; earlier checkpoints are intact") from None
        raise
    fsync_folder(path.parent)


# Temporary files carry a tag no other program would choose, so that charrnn only ever
# removes leftovers it can prove it wrote (never a user's `.notes.md.tmp-123`).
TEMPORARY_TAG = ".charrnn-tmp-"


def temporary_name(path: Path) -> Path:
    """Where a file is written before it is renamed to `path`: hidden, tagged as charrnn's,
    with the writer's pid."""
    return path.with_name(f".{path.name}{TEMPORARY_TAG}{os.getpid()}")


def fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def is_checkpoint_file(path: str | Path) -> bool:
    """Whether `path` starts like a charrnn checkpoint (it may still be damaged)."""
    try:
        with open(path, "rb") as file:
            return file.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and verify a checkpoint; raise CheckpointError with the reason if it is unusable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint is a folder with no checkpoint in it: {path}") from None
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error.strerror}") from None
    payload = _verified_payload(data, path)
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types; all mean "not plain data"
        raise CheckpointError(
            f"refusing to load {path}: it holds objects other than plain data and tensors, "
            f"which could run code ({type(error).__name__})"
        ) from None
    _check_structure(state, path)
    return state


def _verified_payload(data: bytes, path: Path) -> bytes:
    if not data.startswith(MAGIC):
        raise CheckpointError(f"{path} is not a charrnn checkpoint")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + _MAX_HEADER)
    match = _HEADER.fullmatch(data[len(MAGIC) : end + 1]) if end >= 0 else None
    if match is None:
        raise CheckpointError(f"{path} has a damaged checkpoint header")
    version, digest, size = int(match[1]), match[2].decode(), int(match[3])
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses checkpoint format {version}, newer than this charrnn reads ({FORMAT_VERSION}); upgrade charrnn"
        )
    payload = data[end + 1 :]
    if len(payload) != size:
        raise CheckpointError(f"{path} is truncated or damaged: {len(payload):,} of {size:,} payload bytes")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"{path} is corrupted: its contents do not match their checksum")
    return payload


def _check_structure(state: Any, path: Path) -> None:
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a charrnn checkpoint (no state dictionary)")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path} is missing {', '.join(missing)}")
    step = state["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{path} has an invalid step count: {step!r}")


def model_parts(state: dict[str, Any], path: str | Path) -> tuple[ModelConfig, TrainConfig, Vocab]:
    """The validated configs and vocabulary stored in a loaded checkpoint."""
    try:
        model_config = from_dict(ModelConfig, state["model_config"], "the model config")
        train_config = from_dict(TrainConfig, state["train_config"], "the training config")
    except ConfigError as error:
        raise CheckpointError(f"{path}: {error}") from None
    chars = state["vocab"]
    if not isinstance(chars, list):
        raise CheckpointError(f"{path}: the vocabulary is not a list of characters")
    try:
        vocab = Vocab(chars)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from None
    if len(vocab) != model_config.vocab_size:
        raise CheckpointError(f"{path}: vocabulary of {len(vocab)} does not match vocab_size {model_config.vocab_size}")
    return model_config, train_config, vocab




def training_state_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs, bit for bit, between the training states of two loaded checkpoints
    (step, weights, optimizer moments, carried hidden state, random generator state)."""
    differences = [] if a["step"] == b["step"] else [f"step {a['step']} != {b['step']}"]
    pairs = [("model", a["model"], b["model"]), ("rng", a["rng"]["torch"], b["rng"]["torch"])]
    pairs += [(f"hidden[{i}]", x, y) for i, (x, y) in enumerate(zip(a["hidden"], b["hidden"]))]
    pairs += [(f"optimizer[{key}]", value, b["optimizer"]["state"].get(key, {})) for key, value in a["optimizer"]["state"].items()]
    for name, x, y in pairs:
        if isinstance(x, torch.Tensor):
            x, y = {"": x}, {"": y}
        for key in x:
            if not (isinstance(y.get(key), torch.Tensor) and torch.equal(x[key], y[key])):
                differences.append(f"{name}{'.' + str(key) if key else ''}")
    return differences


def describe_checkpoint(state: dict[str, Any], path: str | Path) -> list[str]:
    """What `charrnn info` prints about a loaded checkpoint, one line per fact."""
    model_config, train_config, vocab = model_parts(state, path)
    parameters = sum(t.numel() for t in state["model"].values() if isinstance(t, torch.Tensor))
    input_kind = "one-hot" if model_config.input_mode == "one-hot" else f"embedding {model_config.embed_dim}"
    corpus = state.get("corpus") if isinstance(state.get("corpus"), dict) else {}
    best = state.get("best_val_loss")
    lines = [
        f"checkpoint: {path} (format {FORMAT_VERSION}, charrnn {state.get('charrnn_version', '?')})",
        f"model: {model_config.cell.upper()} {model_config.layers}x{model_config.hidden_size}, {input_kind} input, "
        f"dropout {model_config.dropout}, {parameters:,} parameters",
        f"vocabulary: {len(vocab):,} entries{' (one is unknown)' if vocab.unknown_id is not None else ''}: {vocab.describe()}",
        f"trained: step {state['step']:,} in {format_duration(float(state.get('elapsed_seconds') or 0))}; "
        f"batch {train_config.batch_size} x seq {train_config.seq_len}, lr {train_config.lr:g}",
        "best validation: " + (f"{best / math.log(2):.4f} bpc ({best:.4f} nats)" if isinstance(best, float) else "none yet"),
        f"corpus: {corpus.get('description', '?')} ({corpus.get('chars', 0):,} characters)",
    ]
    defaults = to_dict(TrainConfig())
    changed = [f"--{name.replace('_', '-')} {value}" for name, value in to_dict(train_config).items() if value != defaults.get(name)]
    lines.append(f"training options (beyond the defaults): {', '.join(changed) or 'none'}")
    init = state.get("init_from")
    if isinstance(init, dict):
        lines.append(f"fine-tuned from: {init.get('path')} (step {init.get('step')})")
    return lines

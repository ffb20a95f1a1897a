"""The checkpoint as the rest of charrnn sees it: a `Checkpoint` (typed fields, validated),
read from and written to checkpoint files (their bytes: charrnn.store.checkpoint_file).

The keys of the stored form appear in this module only. Each older format has a migration
(`MIGRATIONS`) to the next, so a stored field may be renamed without breaking older
checkpoints. `Checkpoint.from_stored` checks the model config (ModelConfig has its own
ceilings), the number of weights and each one's shape against the tensors present, before
anything builds the model (which allocates what the config says, whatever the file holds).
The training state (optimizer, step counts, carried hidden state, validation losses, random
generators), which only a resumed run uses, is checked where a run continues a checkpoint:
`check_training_state`, against the model config and against what each value means.

A checkpoint's tensors are torch tensors, or numpy arrays when read with `arrays="numpy"`
(sampling, which never imports torch): the checks here take either.
"""

from __future__ import annotations

import math
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from charrnn.core.vocab import Vocab, folded_variants
from charrnn.display import printable
from charrnn.errors import CheckpointError, ConfigError
from charrnn.settings.budget import format_duration
from charrnn.settings.config import (
    ModelConfig,
    TrainConfig,
    from_dict,
    options_beyond_defaults,
    to_dict,
)
from charrnn.store.checkpoint_file import (
    FORMAT_VERSION,
    checkpoint_format,
    read_stored,
    save_checkpoint,
)
from charrnn.store.stored_form import WEIGHT_DTYPES, check_structure, migrated, migrated_formats

if TYPE_CHECKING:
    import torch


def load_checkpoint(path: str | Path, arrays: str = "torch") -> dict[str, Any]:
    """The stored form of a checkpoint, read, verified and migrated to this format; raise
    CheckpointError with the reason if it is unusable. charrnn reads checkpoints with
    `read_checkpoint`; this, with `save_checkpoint`, is for tools and tests that inspect or
    craft the stored form. `arrays="numpy"`: its tensors as numpy arrays, read without torch
    (a format-1 file, a pickle, still needs torch)."""
    path = Path(path)
    version, state, payload_size = read_stored(path, arrays)
    if version != FORMAT_VERSION and version not in migrated_formats():
        raise CheckpointError(f"{printable(path)} has a damaged checkpoint header (format {version})")
    state = migrated(state, version)
    check_structure(state, path, payload_size)
    return state


# The typed checkpoint: what the rest of charrnn reads and writes, never the keys above.


RngState = dict[str, Any]  # runtime.rng_state(): {"torch": tensor, "cuda": [tensor, ...]}


ADAPTED_TO = "adapted_to"  # in forked_from, for a model adapted to a text (loading.save_model): that text


@dataclass(frozen=True)
class RunIdentity:
    """Which run a checkpoint belongs to (also kept in its folder's run.json)."""

    id: str | None  # None: a run from before run identities
    forked_from: dict[str, Any] | None = None  # {"id", "step", "path"} of the checkpoint it continued elsewhere

    @classmethod
    def new(cls, forked_from: Checkpoint | None = None, path: Path | None = None) -> RunIdentity:
        """A fresh identity: a random id, and the checkpoint (at `path`) it forks, if any."""
        fork = None
        if forked_from is not None:
            parent = forked_from.record.run.id if forked_from.record.run else None
            fork = {"id": parent, "step": forked_from.step, "path": str(path)}
        return cls(uuid.uuid4().hex, fork)

    def to_stored(self) -> dict[str, Any]:
        return {"id": self.id, "forked_from": self.forked_from}

    @classmethod
    def from_stored(cls, stored: Any) -> RunIdentity | None:
        if not isinstance(stored, dict):
            return None
        forked_from = stored.get("forked_from")
        return cls(stored.get("id"), forked_from if isinstance(forked_from, dict) else None)


@dataclass(frozen=True)
class CorpusRecord:
    """What a checkpoint says about its corpus: where to find it on resume, and its fingerprint."""

    paths: list[str] | None  # None: the built-in corpus
    description: str | None = None
    chars: int | None = None
    sha256: str | None = None
    path: str | None = None  # the one path older checkpoints recorded instead of `paths`
    # How often each vocabulary entry (by id) occurs in it; None in checkpoints from before they were kept.
    entry_counts: list[int] | None = None

    def locations(self) -> list[str]:
        """Where the corpus was read from (empty: the built-in corpus)."""
        return list(self.paths or ([self.path] if self.path is not None else []))


@dataclass(frozen=True)
class InitFrom:
    """The checkpoint a fine-tuned run started from."""

    path: str | None  # None only in a hand-made file
    step: int | None


@dataclass(frozen=True)
class RunRecord:
    """What every checkpoint of a run records besides its training state."""

    run: RunIdentity | None
    vocab: Vocab
    corpus: CorpusRecord | None = None
    init_from: InitFrom | None = None


@dataclass(frozen=True)
class Checkpoint:
    """Everything needed to continue a run exactly, or to use its model."""

    model_config: ModelConfig
    train_config: TrainConfig
    record: RunRecord  # run identity, vocabulary, corpus, fine-tuning origin
    weights: dict[str, torch.Tensor]  # the model's state_dict
    optimizer: dict[str, Any]  # the optimizer's state_dict
    step: int
    hidden: tuple[torch.Tensor, ...]  # the carried state, each (layers, batch, hidden), streams of every process
    rng: RngState  # of the process that wrote it
    rng_ranks: list[RngState] | None = None  # of every process, when several trained
    world_size: int | None = None  # how many processes trained, when several did
    best_val_loss: float | None = None  # nats
    last_val_loss: float | None = None
    evals_since_best: int = 0  # for --patience
    elapsed: float = 0.0  # seconds of training, every session of the run
    data_position: tuple[int, int] | None = (
        None  # (epoch, window) reached: for people, training derives it from the step
    )
    charrnn_version: str | None = None
    weights_only: bool = False  # a model file (`charrnn export`): no optimizer, state or generators

    @property
    def vocab(self) -> Vocab:
        return self.record.vocab

    @property
    def num_parameters(self) -> int:
        return sum(math.prod(t.shape) for t in self.weights.values())

    def to_stored(self) -> dict[str, Any]:
        """The stored form: plain data and tensors, as `save_checkpoint` takes (`from_stored` reads it back)."""
        record = self.record
        optional = {
            "run": record.run.to_stored() if record.run else None,
            "corpus": _stored_corpus(record.corpus) if record.corpus else None,
            "init_from": _stored_init_from(record.init_from) if record.init_from else None,
        }
        stored = {
            "charrnn_version": self.charrnn_version,
            "model_config": to_dict(self.model_config),
            "train_config": to_dict(self.train_config),
            "run": optional["run"],
            "vocab": list(record.vocab.entries),
            "corpus": optional["corpus"],
            "init_from": optional["init_from"],
            "model": self.weights,
            "optimizer": self.optimizer,
            "step": self.step,
            "data_position": (
                {"epoch": self.data_position[0], "window": self.data_position[1]} if self.data_position else None
            ),
            "hidden": tuple(self.hidden),
            "rng": self.rng,
            "best_val_loss": self.best_val_loss,
            "evals_since_best": self.evals_since_best,
            "val_loss": self.last_val_loss,
            "elapsed_seconds": self.elapsed,
            "world_size": self.world_size,
            "rng_ranks": self.rng_ranks,
            "vocab_aliases": dict(record.vocab.aliases),  # last, where format 5's migration adds it
        }
        if self.weights_only:
            stored = {key: value for key, value in stored.items() if key not in _TRAINING_STATE}
            stored["weights_only"] = True
        return {key: value for key, value in stored.items() if value is not None or key in _KEPT_WHEN_NONE}

    def model_file(self, weights: dict[str, Any]) -> Checkpoint:
        """This checkpoint as a model file holds it: `weights`, the vocabulary, the configs and
        what the run records, without the training state only a resumed run reads."""
        return replace(self, weights=weights, optimizer={}, hidden=(), rng={}, rng_ranks=None, weights_only=True)

    @classmethod
    def from_stored(cls, state: dict[str, Any], path: str | Path) -> Checkpoint:
        """The checkpoint a loaded state (as `load_checkpoint` returns it) holds. Its weights must
        be exactly those of its model config, and finite, and its hidden state must fit:
        building the model then allocates no more than the file holds, and nothing computes with NaN."""
        shown = printable(path)
        try:
            model_config = from_dict(ModelConfig, state["model_config"], "the model config")
            train_config = from_dict(TrainConfig, state["train_config"], "the training config")
        except (ConfigError, ValueError) as error:  # ValueError: an encoding name no codec lookup takes
            raise CheckpointError(f"{shown}: {printable(error)}") from None
        chars = state["vocab"]
        if len(chars) != model_config.vocab_size:
            raise CheckpointError(
                f"{shown}: vocabulary of {len(chars):,} does not match vocab_size {model_config.vocab_size:,}"
            )
        try:
            vocab = Vocab(chars, state.get("vocab_aliases"))
        except ValueError as error:
            raise CheckpointError(f"{shown}: {error}") from None
        _check_weights(state["model"], model_config, shown)
        weights_only = state.get("weights_only") is True
        if not weights_only:
            _check_hidden(state["hidden"], model_config, train_config, shown)
        corpus, init, position = state.get("corpus"), state.get("init_from"), state.get("data_position")
        record = RunRecord(
            run=RunIdentity.from_stored(state.get("run")),
            vocab=vocab,
            corpus=CorpusRecord(**{name: corpus.get(name) for name in _CORPUS_FIELDS}) if corpus is not None else None,
            init_from=InitFrom(init.get("path"), init.get("step")) if init is not None else None,
        )
        return cls(
            model_config=model_config,
            train_config=train_config,
            record=record,
            weights=state["model"],
            optimizer=state.get("optimizer", {}),
            step=state["step"],
            hidden=tuple(state.get("hidden", ())),
            rng=state.get("rng", {}),
            rng_ranks=state.get("rng_ranks"),
            world_size=state.get("world_size"),
            best_val_loss=_float_or_none(state.get("best_val_loss")),
            last_val_loss=_float_or_none(state.get("val_loss")),
            evals_since_best=state.get("evals_since_best") or 0,
            elapsed=float(state.get("elapsed_seconds") or 0.0),
            data_position=(position.get("epoch", 0), position.get("window", 0)) if position is not None else None,
            charrnn_version=state.get("charrnn_version"),
            weights_only=weights_only,
        )


# A charrnn that does not know a field reads the others: `entry_counts` is read by newer ones only.
_CORPUS_FIELDS = ("paths", "description", "chars", "sha256", "path", "entry_counts")
# What only a resumed run reads: a model file leaves it out.
_TRAINING_STATE = ("optimizer", "hidden", "rng", "rng_ranks", "world_size", "data_position", "evals_since_best")
# Entries written even when None (the others are left out when they are).
_KEPT_WHEN_NONE = ("best_val_loss", "val_loss")


def _stored_corpus(corpus: CorpusRecord) -> dict[str, Any]:
    stored = {"paths": corpus.paths, "description": corpus.description, "chars": corpus.chars, "sha256": corpus.sha256}
    optional = {"path": corpus.path, "entry_counts": corpus.entry_counts}
    return {**stored, **{name: value for name, value in optional.items() if value is not None}}


def _stored_init_from(init: InitFrom) -> dict[str, Any]:
    return {name: value for name, value in (("path", init.path), ("step", init.step)) if value is not None}


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def read_checkpoint(path: str | Path, arrays: str = "torch") -> Checkpoint:
    """The checkpoint at `path`, read, verified, migrated and validated; CheckpointError if
    unusable. `arrays="numpy"`: its tensors as numpy arrays, read without torch where it can."""
    return Checkpoint.from_stored(load_checkpoint(path, arrays), path)


def write_checkpoint(checkpoint: Checkpoint, path: str | Path) -> None:
    """Write `checkpoint` to `path` atomically."""
    save_checkpoint(checkpoint.to_stored(), path)


def parameter_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every weight of `CharRNN(config)` (its state_dict), computed
    without building it: PyTorch's recurrent layers stack their gates' weights."""
    gates = config.gate_width
    shapes = {"embedding.weight": (config.vocab_size, config.embed_dim)} if config.input_mode == "embedding" else {}
    for layer in range(config.layers):
        width = config.input_size if layer == 0 else config.hidden_size
        shapes[f"rnn.weight_ih_l{layer}"] = (gates, width)
        shapes[f"rnn.weight_hh_l{layer}"] = (gates, config.hidden_size)
        shapes[f"rnn.bias_ih_l{layer}"] = (gates,)
        shapes[f"rnn.bias_hh_l{layer}"] = (gates,)
    return {**shapes, "head.weight": (config.vocab_size, config.hidden_size), "head.bias": (config.vocab_size,)}


def hidden_shapes(model: ModelConfig, train: TrainConfig) -> list[tuple[int, int, int]]:
    """The shapes of a run's carried hidden state: (h, c) for an LSTM, (h,) otherwise, each
    (layers, batch, hidden_size), with the streams of every process."""
    return [(model.layers, train.batch_size, model.hidden_size)] * model.cell_type.state_tensors


def _check_weights(weights: dict[str, torch.Tensor], config: ModelConfig, shown: str) -> None:
    # The count first: listing the expected shapes of a million layers would take a while.
    if len(weights) != 4 * config.layers + 2 + (config.input_mode == "embedding"):
        raise CheckpointError(f"{shown}: it holds {len(weights):,} weight tensors, not those of its model config")
    expected = parameter_shapes(config)
    if set(weights) != set(expected):
        strangers = printable(", ".join(sorted(set(weights) - set(expected))[:3]), 200)
        raise CheckpointError(f"{shown}: its weights are not those of its model config (it holds {strangers})")
    for name, shape in expected.items():
        weight = weights[name]
        if tuple(weight.shape) != shape:
            raise CheckpointError(
                f"{shown}: weight {name} has shape {printable(tuple(weight.shape), 100)} where its model config needs {shape}"
            )
        if str(weight.dtype).removeprefix("torch.") not in WEIGHT_DTYPES:
            raise CheckpointError(f"{shown}: weight {name} holds {weight.dtype}, not floating-point numbers")
        if not _all_finite(weight):
            raise CheckpointError(
                f"{shown} has non-finite weights (NaN or infinity) in {name}; the model cannot be used"
            )


def _all_finite(weight: Any) -> bool:
    if isinstance(weight, np.ndarray):
        return bool(np.isfinite(weight).all())
    return bool(sys.modules["torch"].isfinite(weight).all())


def _check_hidden(hidden: Any, model: ModelConfig, train: TrainConfig, shown: str) -> None:
    """Training allocates its hidden state by the batch size: the file must hold one that size."""
    if [tuple(h.shape) for h in hidden] != hidden_shapes(model, train):
        raise CheckpointError(f"{shown} has a hidden state that does not fit its model config and batch size")


def describe_checkpoint(checkpoint: Checkpoint, path: str | Path) -> list[str]:
    """What `charrnn info` prints about a loaded checkpoint, one line per fact. Every string
    from the file goes through `printable`, so no terminal escape sequence gets through."""
    model_config, train_config, vocab = checkpoint.model_config, checkpoint.train_config, checkpoint.vocab
    parameters = checkpoint.num_parameters
    input_kind = "one-hot" if model_config.input_mode == "one-hot" else f"embedding {model_config.embed_dim}"
    corpus = checkpoint.record.corpus or CorpusRecord(paths=None, description="?")
    best, version = checkpoint.best_val_loss, checkpoint_format(path)
    migrated = ", read by migration" if version in migrated_formats() else ""
    chars = corpus.chars
    lines = [
        (
            f"checkpoint: {printable(path)} (format {version or '?'}{migrated}, "
            f"charrnn {printable(checkpoint.charrnn_version or '?', 40)})"
        ),
        (
            f"model: {model_config.cell.upper()} {model_config.layers}x{model_config.hidden_size}, {input_kind} input, "
            f"dropout {model_config.dropout}, {parameters:,} parameters"
        ),
        _vocab_line(vocab, corpus.entry_counts),
        (
            f"trained: step {checkpoint.step:,} in {format_duration(checkpoint.elapsed)}; "
            f"batch {train_config.batch_size} x seq {train_config.seq_len}, lr {train_config.lr:g}"
        ),
        "best validation: "
        + (f"{_figure(best / math.log(2))} bpc ({_figure(best)} nats)" if best is not None else "none yet"),
        f"corpus: {printable('?' if corpus.description is None else corpus.description)} ({'?' if chars is None else f'{chars:,}'} characters)",
    ]
    if checkpoint.weights_only:
        dtype = str(next(iter(checkpoint.weights.values())).dtype).removeprefix("torch.")
        lines.insert(
            1,
            f"model file: weights ({dtype}), vocabulary and configs only; it samples and scores, and cannot be resumed",
        )
    changed = [printable(option, 100) for option in options_beyond_defaults(train_config)]
    lines.append(f"training options (beyond the defaults): {', '.join(changed) or 'none'}")
    fork = checkpoint.record.run.forked_from if checkpoint.record.run else None
    if fork and fork.get(ADAPTED_TO):
        lines.append(
            f"adapted to: {printable(str(fork[ADAPTED_TO]), 300)}, from {printable(str(fork.get('path')))} "
            "(dynamic evaluation; its training state is that checkpoint's)"
        )
    init = checkpoint.record.init_from
    if init is not None:
        lines.append(f"fine-tuned from: {printable(init.path or '?')} (step {'?' if init.step is None else init.step})")
    return lines


def _vocab_line(vocab: Vocab, counts: list[int] | None) -> str:
    """The vocabulary's size and first entries: the most frequent first where the checkpoint
    counted them, else (older checkpoints) by code point, saying so."""
    head = f"vocabulary: {len(vocab):,} entries{_vocab_notes(vocab)}"
    if counts is None or len(counts) != len(vocab):
        return f"{head}, by code point (the checkpoint holds no counts): {printable(vocab.describe())}"
    ranked = sorted(range(len(vocab)), key=lambda id: (-counts[id], id))
    return f"{head}, most frequent first: {printable(vocab.describe(order=ranked))}"


def _vocab_notes(vocab: Vocab) -> str:
    """` (one is unknown; 173 variants folded into them)`, or what of it applies."""
    notes = ["one is unknown"] if vocab.unknown_id is not None else []
    if vocab.aliases:
        notes.append(folded_variants(len(vocab.aliases)))
    return f" ({'; '.join(notes)})" if notes else ""


def _figure(value: float) -> str:
    """A loss with four decimals, or in exponent form when a crafted file makes it huge."""
    return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.4g}"

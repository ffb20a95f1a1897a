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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from charrnn.core.vocab import Vocab, folded_variants
from charrnn.display import printable
from charrnn.errors import CheckpointError, ConfigError
from charrnn.settings.budget import format_duration
from charrnn.settings.config import (
    MAX_COUNT,
    MAX_LR,
    ModelConfig,
    TrainConfig,
    from_dict,
    options_beyond_defaults,
    to_dict,
)
from charrnn.settings.options import spelled
from charrnn.store.checkpoint_file import (
    FORMAT_VERSION,
    INT_RANGE,
    MAX_DEPTH,
    checkpoint_format,
    read_stored,
    save_checkpoint,
)

if TYPE_CHECKING:
    import torch

# Keys every checkpoint holds (see `Checkpoint` for the meaning of each).
REQUIRED_KEYS = ("model_config", "train_config", "vocab", "model", "optimizer", "step", "hidden", "rng")

_WEIGHT_DTYPES = ("float32", "float64", "float16", "bfloat16")  # torch's or numpy's, without "torch."


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
    _check_structure(state, path, payload_size)
    return state


# Migrations: the stored form of each older format, as the next one stores it. A change to the
# stored form (a renamed config field, a new entry, another layout) bumps FORMAT_VERSION and adds
# the migration from the format before; every older file then passes through each in turn.


def renamed_fields(renames: dict[str, dict[str, str]]) -> Callable[[Any], Any]:
    """A migration renaming entries of the state's dicts: {"train_config": {"old": "new"}}."""

    def migrate(state: Any) -> Any:
        if not isinstance(state, dict):
            return state  # not a state at all: _check_structure says so
        state = dict(state)
        for section, names in renames.items():
            if isinstance(state.get(section), dict):
                state[section] = {names.get(key, key): value for key, value in state[section].items()}
        return state

    return migrate


def added_fields(defaults: dict[str, dict[str, Any]]) -> Callable[[Any], Any]:
    """A migration adding entries, with the values older runs had in effect: {"train_config": {"new": 0}}."""

    def migrate(state: Any) -> Any:
        if not isinstance(state, dict):
            return state
        state = dict(state)
        for section, entries in defaults.items():
            if isinstance(state.get(section), dict):
                state[section] = {**state[section], **{k: v for k, v in entries.items() if k not in state[section]}}
        return state

    return migrate


def added_entries(**entries: Any) -> Callable[[Any], Any]:
    """A migration adding top-level entries of the state, with the values older runs had: vocab_aliases={}."""

    def migrate(state: Any) -> Any:
        if not isinstance(state, dict):
            return state
        return {**state, **{key: value for key, value in entries.items() if key not in state}}

    return migrate


def chained(*migrations: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One migration doing each of `migrations` in turn."""

    def migrate(state: Any) -> Any:
        for migration in migrations:
            state = migration(state)
        return state

    return migrate


# MIGRATIONS[v] turns the state of format v into that of format v + 1. Format 2 changed only
# the encoding of the file (safetensors instead of a pickle): its state is format 1's. Format 3
# added the training option --preview-chars (older runs had no previews). Format 5 added
# --fold-variants and the vocabulary's aliases (older runs folded nothing).
MIGRATIONS: dict[int, Callable[[Any], Any]] = {
    1: renamed_fields({}),
    2: added_fields({"train_config": {"preview_chars": 0}}),
    3: added_fields(
        {"model_config": {"weight_drop": 0.0, "input_dropout": 0.0, "embed_dropout": 0.0, "recurrent_init": "uniform"}}
    ),
    4: chained(added_fields({"train_config": {"fold_variants": False}}), added_entries(vocab_aliases={})),
}


def migrated_formats() -> tuple[int, ...]:
    """The older formats still read: those with a chain of migrations up to this one."""
    return tuple(v for v in range(1, FORMAT_VERSION) if all(step in MIGRATIONS for step in range(v, FORMAT_VERSION)))


def migrated(state: Any, version: int) -> Any:
    """`state`, stored in format `version`, as this format stores it."""
    for step in range(version, FORMAT_VERSION):
        state = MIGRATIONS[step](state)
    return state


# What a loaded state must hold: checked once, where every loader passes.


def _check_structure(state: Any, path: Path, payload_size: int) -> None:
    if not isinstance(state, dict):
        raise CheckpointError(f"{printable(path)} is not a charrnn checkpoint (no state dictionary)")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{printable(path)} is missing {', '.join(missing)}")
    _check_values(state, path, payload_size)
    for key, check in _FIELD_CHECKS.items():
        if key in state and not check(state[key]):
            raise CheckpointError(f"{printable(path)} has a malformed {key!r} entry")


def _check_values(state: dict[str, Any], path: Path, payload_size: int) -> None:
    """Every tensor is a plain dense CPU one, together they hold no more bytes than the file
    (a format-1 tensor can be a view claiming more than its storage), and every integer fits
    in 64 bits. A format-1 pickle can share objects, or nest one in itself: each is seen once."""
    seen: set[int] = set()
    pending: list[tuple[Any, int]] = [(state, 0)]
    tensor_bytes = 0
    while pending:
        value, depth = pending.pop()
        if _is_tensor(value) or isinstance(value, (dict, list, tuple)):
            if id(value) in seen:
                continue
            seen.add(id(value))
        if isinstance(value, np.ndarray):  # always plain and dense
            tensor_bytes += value.nbytes
        elif _is_tensor(value):
            torch = sys.modules["torch"]
            if value.layout != torch.strided or value.is_quantized or value.device.type != "cpu":
                raise CheckpointError(f"{printable(path)} holds a tensor of a kind charrnn never writes")
            tensor_bytes += value.numel() * value.element_size()
        elif isinstance(value, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                raise CheckpointError(f"{printable(path)} is damaged: its state nests more than {MAX_DEPTH} deep")
            pending.extend(
                (item, depth + 1) for item in ([*value, *value.values()] if isinstance(value, dict) else value)
            )
        elif isinstance(value, int) and value not in INT_RANGE:
            raise CheckpointError(f"{printable(path)} is damaged: it holds an integer beyond 64 bits")
    if tensor_bytes > payload_size:
        raise CheckpointError(
            f"{printable(path)} is damaged: its tensors claim {tensor_bytes:,} bytes, more than the file holds"
        )


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_tensor(value: Any) -> bool:
    """A torch tensor or a numpy array (a torch tensor exists only once torch is imported)."""
    torch = sys.modules.get("torch")
    return isinstance(value, np.ndarray) or (torch is not None and isinstance(value, torch.Tensor))


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_real(value: Any) -> bool:
    """A number, finite or not."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _anything(value: Any) -> bool:
    return True


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _list_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, (list, tuple)) and all(map(check, value))


def _mapping(keys: Callable[[Any], bool], values: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, dict) and all(keys(k) and values(v) for k, v in value.items())


def _record(required: tuple[str, ...] = (), **fields: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """A dict holding `required`, whose entries named in `fields` pass their checks where present."""
    return lambda value: (
        isinstance(value, dict)
        and all(name in value for name in required)
        and all(name not in value or check(value[name]) for name, check in fields.items())
    )


_RNG = _record(("torch",), torch=_is_tensor, cuda=_list_of(_is_tensor))
# What each entry of a state must be where present (see `Checkpoint.to_stored`). The configs
# are checked field by field in `Checkpoint.from_stored`; entries not listed here are ignored.
_FIELD_CHECKS: dict[str, Callable[[Any], bool]] = {
    "charrnn_version": _is_str,
    "model_config": _mapping(_is_str, _is_scalar),
    "train_config": _mapping(_is_str, _is_scalar),
    "vocab": _list_of(_is_str),
    "vocab_aliases": _mapping(_is_str, _is_count),
    "model": _mapping(_is_str, _is_tensor),
    "optimizer": _record(
        ("state", "param_groups"),
        state=_mapping(_is_count, _mapping(_is_str, _anything)),
        param_groups=_list_of(_record(("params",), params=_list_of(_is_count))),
    ),
    "step": _is_count,
    "data_position": _mapping(_is_str, _is_count),
    "hidden": _list_of(_is_tensor),
    "rng": _RNG,
    "rng_ranks": _list_of(_RNG),
    "world_size": lambda value: _is_count(value) and value >= 1,
    # Validation losses are training state: a number here, checked for its meaning by check_training_state.
    "best_val_loss": _optional(_is_real),
    "val_loss": _optional(_is_real),
    "evals_since_best": _optional(_is_count),
    "elapsed_seconds": _optional(lambda value: _is_number(value) and 0 <= value < 2**63),
    "corpus": _record(
        paths=_optional(_list_of(_is_str)),
        path=_is_str,
        description=_is_str,
        chars=_is_count,
        sha256=_is_str,
        entry_counts=_list_of(_is_count),
    ),
    "init_from": _record(path=_is_str, step=_is_count),
    "run": _record(id=_optional(_is_str)),
}


# The typed checkpoint: what the rest of charrnn reads and writes, never the keys above.


RngState = dict[str, Any]  # runtime.rng_state(): {"torch": tensor, "cuda": [tensor, ...]}


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
        return {key: value for key, value in stored.items() if value is not None or key in _KEPT_WHEN_NONE}

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
            optimizer=state["optimizer"],
            step=state["step"],
            hidden=tuple(state["hidden"]),
            rng=state["rng"],
            rng_ranks=state.get("rng_ranks"),
            world_size=state.get("world_size"),
            best_val_loss=_float_or_none(state.get("best_val_loss")),
            last_val_loss=_float_or_none(state.get("val_loss")),
            evals_since_best=state.get("evals_since_best") or 0,
            elapsed=float(state.get("elapsed_seconds") or 0.0),
            data_position=(position.get("epoch", 0), position.get("window", 0)) if position is not None else None,
            charrnn_version=state.get("charrnn_version"),
        )


# A charrnn that does not know a field reads the others: `entry_counts` is read by newer ones only.
_CORPUS_FIELDS = ("paths", "description", "chars", "sha256", "path", "entry_counts")
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
    return [(model.layers, train.batch_size, model.hidden_size)] * (2 if model.cell == "lstm" else 1)


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
        if str(weight.dtype).removeprefix("torch.") not in _WEIGHT_DTYPES:
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


# The training state: what only a run that continues a checkpoint uses (its optimizer, step,
# carried hidden state, validation losses, counters and random generators). Sampling,
# evaluation, info and --init-from read the weights, vocabulary and configs alone, so a
# checkpoint is refused for its training state only where a run is to continue it.

_MAX_LOSS = 3.4028234663852886e38  # the largest float32: no loss computed in float32 is larger
_MAX_TANH = 1.01  # a carried h is a tanh output (an LSTM's, a GRU's blend of them): rounding aside, |h| <= 1
_ADAM_STATE = ("step", "exp_avg", "exp_avg_sq")  # what AdamW keeps per parameter
_SQUARES = ("exp_avg_sq", "max_exp_avg_sq")  # running means of squared gradients: never negative
# AdamW's settings charrnn never changes, and the values it has (absent: torch's default applies).
_FIXED_SETTINGS: dict[str, tuple[Any, ...]] = {
    "amsgrad": (False,),
    "maximize": (False,),
    "capturable": (False,),
    "differentiable": (False,),
    "fused": (None, False),
    "foreach": (None, False, True),
    "decoupled_weight_decay": (True,),
}


def check_training_state(checkpoint: Checkpoint, path: str | Path) -> None:
    """Refuse, with a CheckpointError naming the first field that is wrong, a checkpoint whose
    training state a run cannot continue: every tensor of it checked against the model config
    (shapes, parameter groups) and every value against its meaning (moments finite, mean
    squares never negative, losses finite and never negative, counts within the run)."""
    problem = next(_training_state_problems(checkpoint), None)
    if problem is not None:
        raise CheckpointError(
            f"{printable(path)} cannot be resumed: {problem}; its weights can still be sampled from, "
            f"evaluated or fine-tuned with {spelled('init_from')}"
        )


def sound_best_loss(checkpoint: Checkpoint) -> float | None:
    """The checkpoint's best validation loss, or None where its validation losses are not ones
    a run can have (a best.pt holding such a loss is no standard for a better model)."""
    return None if next(_loss_problems(checkpoint), None) is not None else checkpoint.best_val_loss


def optimizer_parameters(config: ModelConfig) -> list[list[tuple[str, tuple[int, ...]]]]:
    """The (name, shape) of the parameters in each group of `optim.build_optimizer`, in its
    order: the weight matrices (decayed), then the vectors (biases)."""
    shapes = parameter_shapes(config).items()
    return [[(n, s) for n, s in shapes if len(s) >= 2], [(n, s) for n, s in shapes if len(s) < 2]]


def _training_state_problems(checkpoint: Checkpoint) -> Iterator[str]:
    """What is wrong with the training state, first found first (the generator stops there)."""
    yield from _count_problems(checkpoint)
    yield from _loss_problems(checkpoint)
    yield from _hidden_problems(checkpoint)
    yield from _optimizer_problems(checkpoint)
    yield from _rng_problems(checkpoint)


def _count_problems(c: Checkpoint) -> Iterator[str]:
    if not _is_count(c.step) or c.step > MAX_COUNT:
        yield f"its step {_shown_value(c.step)} is not a count of updates (0 to {MAX_COUNT:,})"
    elif not _is_count(c.evals_since_best) or c.evals_since_best > c.step:
        # an evaluation follows an update, at most one per step
        yield f"evals_since_best {_shown_value(c.evals_since_best)} is not a count of evaluations within {c.step:,} steps"
    elif c.best_val_loss is None and c.evals_since_best:
        yield f"evals_since_best is {c.evals_since_best:,}, but it holds no best validation loss"
    elif not (_is_number(c.elapsed) and 0 <= c.elapsed < 2**63):
        yield f"elapsed_seconds {_shown_value(c.elapsed)} is not a duration"
    elif c.data_position is not None and not _is_position(c.step, *c.data_position):
        yield f"data_position {_shown_value(c.data_position)} is no (epoch, window) of step {c.step:,}"
    elif (c.world_size is None) != (c.rng_ranks is None):
        yield "it records processes (world_size) without their random generators (rng_ranks), or these without those"
    elif c.world_size is not None and not (_is_count(c.world_size) and 1 <= c.world_size <= c.train_config.batch_size):
        yield f"world_size {_shown_value(c.world_size)} is not a number of processes sharing {c.train_config.batch_size} streams"
    elif c.rng_ranks is not None and len(c.rng_ranks) != c.world_size:
        yield f"it holds {len(c.rng_ranks):,} random generator states (rng_ranks) for {c.world_size} processes"


def _is_position(step: int, epoch: Any, window: Any) -> bool:
    """Whether (epoch, window) is (step // windows, step % windows) for some number of windows."""
    if not (_is_count(epoch) and _is_count(window)) or epoch * window > step or window > step:
        return False
    if epoch == 0:
        return window == step  # an epoch longer than the run so far
    windows, left = divmod(step - window, epoch)
    return left == 0 and window < windows


def _loss_problems(c: Checkpoint) -> Iterator[str]:
    for name, loss in (("best_val_loss", c.best_val_loss), ("val_loss", c.last_val_loss)):
        if loss is None:
            continue
        if not _is_number(loss):
            yield f"{name} {_shown_value(loss)} is not a finite number of nats"
        elif loss < 0:
            yield f"{name} is {_shown_value(loss)}, but a loss (nats per character) is never negative"
        elif loss > _MAX_LOSS:
            yield f"{name} is {_shown_value(loss)}, more than any loss computed in float32"
    if c.best_val_loss is None and c.last_val_loss is not None:
        yield "it holds a last validation loss (val_loss) but no best one (best_val_loss)"
    elif c.best_val_loss is not None and c.last_val_loss is not None and c.best_val_loss > c.last_val_loss:
        yield (
            f"best_val_loss {_shown_value(c.best_val_loss)} is above the last validation loss "
            f"{_shown_value(c.last_val_loss)}, where the best is the lowest so far"
        )


def _hidden_problems(c: Checkpoint) -> Iterator[str]:
    expected = hidden_shapes(c.model_config, c.train_config)
    if len(c.hidden) != len(expected) or not all(_is_tensor(h) for h in c.hidden):
        yield f"its hidden state holds {len(c.hidden)} entries where a {c.model_config.cell.upper()} carries {len(expected)}"
        return
    for index, (h, shape) in enumerate(zip(c.hidden, expected)):
        where = f"hidden[{index}]"
        problem = _tensor_problem(h, shape, "its model config and batch size need")
        if problem is not None:
            yield f"{where} {problem}"
        elif index == 0 and not _all_within(h, _MAX_TANH):
            yield f"{where} holds values beyond [-1, 1], which no recurrent cell's output reaches"


def _optimizer_problems(c: Checkpoint) -> Iterator[str]:
    groups, expected = c.optimizer["param_groups"], optimizer_parameters(c.model_config)
    if len(groups) != len(expected):
        yield f"its optimizer has {len(groups)} parameter groups where charrnn's has {len(expected)}"
        return
    parameters: list[tuple[str, tuple[int, ...]]] = []
    for index, (group, wanted) in enumerate(zip(groups, expected)):
        ids = list(range(len(parameters), len(parameters) + len(wanted)))
        if list(group["params"]) != ids:
            yield (
                f"optimizer parameter group {index} lists parameters {_shown_value(group['params'])} "
                f"where the model's are {ids}"
            )
            return
        parameters += wanted
        yield from _setting_problems(group, index)
    for key, state in c.optimizer["state"].items():
        if key >= len(parameters):
            yield f"its optimizer holds state for parameter {key:,}, which the model lacks ({len(parameters)} parameters)"
            continue
        yield from _moment_problems(state, *parameters[key], c.step)


def _setting_problems(group: dict[str, Any], index: int) -> Iterator[str]:
    where = f"optimizer parameter group {index}"
    for name, low, high, low_open in (
        ("lr", 0, MAX_LR, False),
        ("eps", 0, 1, True),
        ("weight_decay", 0, MAX_LR, False),
    ):
        value = group.get(name)
        if not _is_number(value) or value < low or value > high or (low_open and value == low):
            yield f"{where} has {name} {_shown_value(value)}, not a finite number from {low} ({'excluded' if low_open else 'included'}) to {high:g}"
    betas = group.get("betas")
    if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(_is_number(b) and 0 <= b < 1 for b in betas)):
        yield f"{where} has betas {_shown_value(betas)}, not a pair of numbers from 0 to 1 (excluded)"
    for name, allowed in _FIXED_SETTINGS.items():
        if name in group and not any(group[name] is value for value in allowed):
            yield f"{where} has {name} {_shown_value(group[name])}, where charrnn's AdamW has {allowed[0]}"


def _moment_problems(state: dict[str, Any], name: str, shape: tuple[int, ...], steps: int) -> Iterator[str]:
    """What is wrong with AdamW's state of parameter `name` (empty: it has taken no step yet)."""
    if not state:
        return
    where = f"the optimizer state of {name}"
    missing = [key for key in _ADAM_STATE if key not in state]
    strangers = sorted(set(state) - {*_ADAM_STATE, *_SQUARES})
    if missing or strangers:
        yield f"{where} {'lacks ' + ', '.join(missing) if missing else 'holds ' + printable(strangers[0], 40)}, as AdamW's never does"
        return
    taken = _one_number(state["step"])
    if taken is None or not taken.is_integer() or not 1 <= taken <= steps:
        yield f"{where} has step {_shown_value(state['step'])}, not a count of its updates from 1 to the run's {steps:,}"
    for key in ("exp_avg", *(square for square in _SQUARES if square in state)):
        moment = state[key]
        if not _is_tensor(moment):
            yield f"{where} has a {key} that is no tensor"
        elif (problem := _tensor_problem(moment, shape, "the parameter has")) is not None:
            yield f"optimizer moment {key} of {name} {problem}"
        elif key in _SQUARES and not _all_within(moment, math.inf, low=0.0):
            yield f"optimizer moment {key} of {name} holds negative values, but it is a mean of squares"


def _rng_problems(c: Checkpoint) -> Iterator[str]:
    import torch

    states = [("rng", c.rng), *((f"rng_ranks[{i}]", rng) for i, rng in enumerate(c.rng_ranks or ()))]
    for where, rng in states:
        state = rng["torch"]
        try:
            torch.Generator().set_state(torch.as_tensor(state))  # torch's own check of size, type and content
        except (RuntimeError, TypeError, ValueError) as error:
            yield f"{where} holds a random generator state torch refuses ({_first_words(error)})"
        for index, device_state in enumerate(rng.get("cuda") or ()):
            if _dtype_name(device_state) != "uint8" or len(device_state.shape) != 1:
                yield f"{where} holds a CUDA generator state (cuda[{index}]) that is not a row of bytes"


def _tensor_problem(tensor: Any, shape: tuple[int, ...], needed: str) -> str | None:
    """What is wrong with a tensor of the training state that must have `shape` and hold
    finite floating-point numbers (in float32, as training holds them); None if nothing."""
    if tuple(tensor.shape) != shape:
        return f"has shape {printable(tuple(tensor.shape), 100)} where {needed} {shape}"
    if _dtype_name(tensor) not in _WEIGHT_DTYPES:
        return f"holds {printable(tensor.dtype, 40)}, not floating-point numbers"
    if not _finite_in_float32(tensor):
        return "holds NaN or infinite values (in float32, as training holds them)"
    return None


def _one_number(value: Any) -> float | None:
    """A plain number, or a tensor of one (not a vector) of numbers, as a float; else None."""
    if _is_number(value):
        return float(value)
    if _is_tensor(value) and tuple(value.shape) == () and _dtype_name(value) != "bool":
        number = float(value.item())
        return number if math.isfinite(number) else None
    return None


def _dtype_name(tensor: Any) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def _finite_in_float32(tensor: Any) -> bool:
    """Whether every value is finite once held as float32 (training's dtype: 1e300 is not)."""
    if isinstance(tensor, np.ndarray):
        with np.errstate(over="ignore"):
            return bool(np.isfinite(tensor.astype(np.float32)).all())
    torch = sys.modules["torch"]
    return bool(torch.isfinite(tensor.to(torch.float32)).all())


def _all_within(tensor: Any, high: float, low: float | None = None) -> bool:
    """Whether every value lies in [low, high] (low: -high unless given)."""
    low = -high if low is None else low
    if tensor.size == 0 if isinstance(tensor, np.ndarray) else tensor.numel() == 0:
        return True
    return bool(low <= float(tensor.min()) and float(tensor.max()) <= high)


def _shown_value(value: Any) -> str:
    """A value from a file, short: numbers in four significant figures, anything else cut."""
    if _is_number(value) and not isinstance(value, int):
        return f"{value:.4g}"
    if _is_tensor(value) and tuple(value.shape) == () and _dtype_name(value) != "bool":
        return _shown_value(float(value.item()))
    if _is_tensor(value):
        return f"(a tensor of shape {printable(tuple(value.shape), 40)})"
    if isinstance(value, (list, tuple, dict)) and len(value) > 4:
        return f"(a {type(value).__name__} of {len(value):,} entries)"
    return printable(repr(value), 60)


def _first_words(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return printable(lines[0] if lines else type(error).__name__, 100)


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
    changed = [printable(option, 100) for option in options_beyond_defaults(train_config)]
    lines.append(f"training options (beyond the defaults): {', '.join(changed) or 'none'}")
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

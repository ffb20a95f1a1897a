"""A checkpoint's stored form, before it is typed: the migrations that bring an older format's
state up to today's, and the checks every loaded state passes (its entries' kinds and sizes)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from charrnn.display import printable
from charrnn.errors import CheckpointError
from charrnn.store.checkpoint_file import FORMAT_VERSION, INT_RANGE, MAX_DEPTH

# Keys every checkpoint holds (see `Checkpoint` for the meaning of each).
REQUIRED_KEYS = ("model_config", "train_config", "vocab", "model", "optimizer", "step", "hidden", "rng")
# Keys a model file holds (`charrnn export`, marked "weights_only"): no training state.
MODEL_FILE_KEYS = ("model_config", "train_config", "vocab", "model", "step")

WEIGHT_DTYPES = ("float32", "float64", "float16", "bfloat16")  # torch's or numpy's, without "torch."

# Migrations: the stored form of each older format, as the next one stores it. A change to the
# stored form (a renamed config field, a new entry, another layout) bumps FORMAT_VERSION and adds
# the migration from the format before; every older file then passes through each in turn.


def renamed_fields(renames: dict[str, dict[str, str]]) -> Callable[[Any], Any]:
    """A migration renaming entries of the state's dicts: {"train_config": {"old": "new"}}."""

    def migrate(state: Any) -> Any:
        if not isinstance(state, dict):
            return state  # not a state at all: check_structure says so
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


def check_structure(state: Any, path: Path, payload_size: int) -> None:
    if not isinstance(state, dict):
        raise CheckpointError(f"{printable(path)} is not a charrnn checkpoint (no state dictionary)")
    required = MODEL_FILE_KEYS if state.get("weights_only") is True else REQUIRED_KEYS
    missing = [key for key in required if key not in state]
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
        if is_tensor(value) or isinstance(value, (dict, list, tuple)):
            if id(value) in seen:
                continue
            seen.add(id(value))
        if isinstance(value, np.ndarray):  # always plain and dense
            tensor_bytes += value.nbytes
        elif is_tensor(value):
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


def is_tensor(value: Any) -> bool:
    """A torch tensor or a numpy array (a torch tensor exists only once torch is imported)."""
    torch = sys.modules.get("torch")
    return isinstance(value, np.ndarray) or (torch is not None and isinstance(value, torch.Tensor))


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_number(value: Any) -> bool:
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


_RNG = _record(("torch",), torch=is_tensor, cuda=_list_of(is_tensor))
# What each entry of a state must be where present (see `Checkpoint.to_stored`). The configs
# are checked field by field in `Checkpoint.from_stored`; entries not listed here are ignored.
_FIELD_CHECKS: dict[str, Callable[[Any], bool]] = {
    "charrnn_version": _is_str,
    "weights_only": lambda value: isinstance(value, bool),
    "model_config": _mapping(_is_str, _is_scalar),
    "train_config": _mapping(_is_str, _is_scalar),
    "vocab": _list_of(_is_str),
    "vocab_aliases": _mapping(_is_str, is_count),
    "model": _mapping(_is_str, is_tensor),
    "optimizer": _record(
        ("state", "param_groups"),
        state=_mapping(is_count, _mapping(_is_str, _anything)),
        param_groups=_list_of(_record(("params",), params=_list_of(is_count))),
    ),
    "step": is_count,
    "data_position": _mapping(_is_str, is_count),
    "hidden": _list_of(is_tensor),
    "rng": _RNG,
    "rng_ranks": _list_of(_RNG),
    "world_size": lambda value: is_count(value) and value >= 1,
    # Validation losses are training state: a number here, checked for its meaning by check_training_state.
    "best_val_loss": _optional(_is_real),
    "val_loss": _optional(_is_real),
    "evals_since_best": _optional(is_count),
    "elapsed_seconds": _optional(lambda value: is_number(value) and 0 <= value < 2**63),
    "corpus": _record(
        paths=_optional(_list_of(_is_str)),
        path=_is_str,
        description=_is_str,
        chars=is_count,
        sha256=_is_str,
        entry_counts=_list_of(is_count),
    ),
    "init_from": _record(path=_is_str, step=is_count),
    "run": _record(id=_optional(_is_str)),
}

"""Checkpoint files: atomic writes, integrity checks, and bounded loading that never runs code.

A checkpoint file is a short text header followed by a safetensors payload:

    charrnn checkpoint\\n
    format 2 sha256 <64 hex digits> bytes <payload length>\\n
    <payload: safetensors>

The header makes a charrnn checkpoint recognisable, gives its format version before
anything is parsed, and lets a truncated or corrupted file be detected by its size and hash.
The payload is safetensors, the standard tensor file that cannot carry code: every tensor of
the state (weights, optimizer moments, hidden state, generator states) is a safetensors
tensor named by its place in the state (`optimizer/state/0/exp_avg`), and the rest of the
state is JSON in the safetensors metadata, with `{"$tensor": name}` where each tensor goes.
`{"$tuple": [...]}` and `{"$items": [[key, value], ...]}` keep tuples, and dicts whose keys
are not plain strings (the optimizer's parameter ids), as they were.

Format 1 (a `torch.save` pickle) is still read, to migrate older runs: its zip archive must
hold only uncompressed entries (no zip bomb) and is read with `torch.load(weights_only=True)`,
which refuses any object other than tensors and plain containers. Resuming writes format 2.

Loading is bounded: only regular files are opened (a device or a pipe could feed bytes
forever or block), a file's size must be what its header declares before it is read, the
JSON is bounded, and its tensors can hold no more bytes than the file. `Checkpoint.from_stored` then
checks the model config (ModelConfig has its own ceilings), the number of weights and each
one's shape against the tensors present, before anything builds the model (which allocates
what the config says, whatever the file holds).

The rest of charrnn sees a checkpoint as a `Checkpoint` (typed fields, validated): the keys of
the stored form appear in this module only. Each older format has a migration (`MIGRATIONS`)
to the next, so a stored field may be renamed without breaking older checkpoints.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import stat
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import safetensors.torch
import torch
from safetensors import SafetensorError

from charrnn.budget import format_duration
from charrnn.config import ModelConfig, TrainConfig, from_dict, to_dict
from charrnn.display import printable
from charrnn.errors import CheckpointError, ConfigError
from charrnn.files import write_atomic
from charrnn.vocab import Vocab

FORMAT_VERSION = 2
MAGIC = b"charrnn checkpoint\n"
_HEADER = re.compile(rb"format (\d+) sha256 ([0-9a-f]{64}) bytes (\d+)\n")
_MAX_HEADER = 200
_STATE_KEY = "charrnn"  # the safetensors metadata entry holding the state's JSON
# The JSON part of a checkpoint: configs, vocabulary, corpus paths (a folder of ~500,000
# files), optimizer settings. Parsing JSON takes several times its size in memory: bounded.
_MAX_JSON_BYTES = 64 << 20
_MAX_DEPTH = 32  # nesting of the state (a real one nests 5 deep)
_INT_RANGE = range(-(2**63), 2**63)  # every integer in a state fits in 64 bits

# Keys every checkpoint holds (see `Checkpoint` for the meaning of each).
REQUIRED_KEYS = ("model_config", "train_config", "vocab", "model", "optimizer", "step", "hidden", "rng")

_WEIGHT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write `state` to `path` atomically: a reader sees the old file or the new, never half."""
    path = Path(path)
    payload = _encoded(state)
    header = b"format %d sha256 %s bytes %d\n" % (
        FORMAT_VERSION,
        hashlib.sha256(payload).hexdigest().encode(),
        len(payload),
    )
    try:
        write_atomic(path, lambda file: file.write(MAGIC + header + payload))
    except OSError as error:
        raise CheckpointError(
            f"cannot write checkpoint {printable(path)}: {error.strerror or error}; earlier checkpoints are intact"
        ) from None


# The payload: a state (dicts, lists and tuples of plain values and tensors) as safetensors.


def _encoded(state: dict[str, Any]) -> bytes:
    """`state` as a safetensors payload: its tensors, and the rest as JSON in the metadata."""
    store = _TensorStore()
    skeleton = _to_json(state, "", store)
    return safetensors.torch.save(store.tensors, metadata={_STATE_KEY: json.dumps(skeleton, ensure_ascii=True)})


class _TensorStore:
    """The tensors of a state being encoded, each under a unique path-like name."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self._storages: set[int] = set()

    def add(self, name: str, tensor: torch.Tensor) -> str:
        tensor = tensor.detach().to("cpu").contiguous()
        if tensor.untyped_storage().data_ptr() in self._storages:
            tensor = tensor.clone()  # safetensors refuses shared memory (a CUDA LSTM's weights are views of one buffer)
        if tensor.untyped_storage().data_ptr():
            self._storages.add(tensor.untyped_storage().data_ptr())
        name = name.lstrip("/") or "tensor"
        key, copies = name, 1
        while key in self.tensors:  # a dict key holding "/" could repeat a name
            copies += 1
            key = f"{name}#{copies}"
        self.tensors[key] = tensor
        return key


def _to_json(value: Any, name: str, store: _TensorStore) -> Any:
    """`value` as JSON, with `{"$tensor": name}` for each tensor, which goes into `store`."""
    if isinstance(value, torch.Tensor):
        return {"$tensor": store.add(name, value)}
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("$") for key in value):
            return {key: _to_json(item, f"{name}/{key}", store) for key, item in value.items()}
        return {"$items": [[_json_key(key), _to_json(item, f"{name}/{key}", store)] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        items = [_to_json(item, f"{name}/{index}", store) for index, item in enumerate(value)]
        return {"$tuple": items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, (bool, int, float, str)):
        return value  # floats as their shortest exact repr: they come back bit for bit
    raise TypeError(f"a checkpoint cannot hold a {type(value).__name__} (at {name or 'the top'})")


def _json_key(key: Any) -> Any:
    if key is None or isinstance(key, (bool, int, float, str)):
        return key
    raise TypeError(f"a checkpoint cannot hold a dict keyed by {type(key).__name__}")


def _decoded(payload: bytes, path: Path) -> Any:
    """The state in a format-2 payload; each stored tensor must be used exactly once."""
    try:
        text = _state_json(payload)
        tensors = safetensors.torch.load(payload)  # checks every tensor's bytes lie in the payload
        unused = set(tensors)
        state = _from_json(json.loads(text), tensors, unused, 0)
    except (SafetensorError, ValueError, RecursionError) as error:  # ValueError: JSON, or a check below
        raise CheckpointError(f"{printable(path)} is damaged: {_first_line(error)}") from None
    if unused:
        raise CheckpointError(f"{printable(path)} is damaged: it holds tensors no part of its state uses")
    return state


def _state_json(payload: bytes) -> str:
    """The state's JSON, from the safetensors header: 8 bytes of length, then JSON."""
    size = int.from_bytes(payload[:8], "little")
    if len(payload) < 8 or size > min(len(payload) - 8, _MAX_JSON_BYTES):
        raise ValueError("its safetensors header is missing, cut short or too large")
    header = json.loads(payload[8 : 8 + size])
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    text = metadata.get(_STATE_KEY) if isinstance(metadata, dict) else None
    if not isinstance(text, str):
        raise ValueError("it holds tensors but no charrnn state")
    return text


def _from_json(value: Any, tensors: dict[str, torch.Tensor], unused: set[str], depth: int) -> Any:
    """What `_to_json` encoded as `value`."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"its state nests more than {_MAX_DEPTH} deep")
    if isinstance(value, list):
        return [_from_json(item, tensors, unused, depth + 1) for item in value]
    if not isinstance(value, dict):
        return value
    tags = [key for key in value if key.startswith("$")]
    if tags and len(value) == 1:
        return _tagged(tags[0], value[tags[0]], tensors, unused, depth)
    if tags:
        raise ValueError("its state has a malformed tag")
    return {key: _from_json(item, tensors, unused, depth + 1) for key, item in value.items()}


def _tagged(tag: str, content: Any, tensors: dict[str, torch.Tensor], unused: set[str], depth: int) -> Any:
    if tag == "$tensor" and isinstance(content, str) and content in unused:
        unused.remove(content)  # a tensor used twice could make one stored tensor stand for many
        return tensors[content]
    if tag == "$tuple" and isinstance(content, list):
        return tuple(_from_json(content, tensors, unused, depth + 1))
    if tag == "$items" and isinstance(content, list) and all(_is_json_pair(pair) for pair in content):
        return {key: _from_json(item, tensors, unused, depth + 1) for key, item in content}
    raise ValueError(f"its state has a malformed {printable(tag, 40)} entry")


def _is_json_pair(pair: Any) -> bool:
    return isinstance(pair, list) and len(pair) == 2 and not isinstance(pair[0], (list, dict))


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return printable(lines[0] if lines else type(error).__name__, 200)


# Reading: only regular files, only as many bytes as the header declares and the file holds.


def is_checkpoint_file(path: str | Path) -> bool:
    """Whether `path` is a file that starts like a charrnn checkpoint (it may still be damaged)."""
    try:
        with _open_regular(Path(path)) as file:
            return file.read(len(MAGIC)) == MAGIC
    except (CheckpointError, OSError):
        return False


def checkpoint_format(path: str | Path) -> int | None:
    """The format version the checkpoint at `path` declares (None if it declares none)."""
    try:
        with _open_regular(Path(path)) as file:
            return _parsed_header(file.read(len(MAGIC) + _MAX_HEADER), Path(path))[0]
    except (CheckpointError, OSError):
        return None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The stored form of a checkpoint, read, verified and migrated to this format; raise
    CheckpointError with the reason if it is unusable. charrnn reads checkpoints with
    `read_checkpoint`; this, with `save_checkpoint`, is for tools and tests that inspect or
    craft the stored form."""
    path = Path(path)
    version, payload = _read_verified(path)
    state = _unpickled(payload, path) if version == 1 else _decoded(payload, path)
    state = migrated(state, version)
    _check_structure(state, path, len(payload))
    return state


def _open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file: a device (`/dev/zero`) or a pipe
    could feed bytes forever, and opening a FIFO blocks (hence the stat first, and O_NONBLOCK
    in case it was swapped for one since)."""
    try:
        _require_regular(os.stat(path).st_mode, path)
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {printable(path)}") from None
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {printable(path)}: {error.strerror or error}") from None
    file = os.fdopen(descriptor, "rb")
    try:
        _require_regular(os.fstat(descriptor).st_mode, path)
    except BaseException:
        file.close()
        raise
    return file


def _require_regular(mode: int, path: Path) -> None:
    if stat.S_ISDIR(mode):
        raise CheckpointError(f"checkpoint is a folder with no checkpoint in it: {printable(path)}")
    if not stat.S_ISREG(mode):
        raise CheckpointError(
            f"{printable(path)} is not a regular file (a device, pipe or socket), so not a checkpoint"
        )


def _read_verified(path: Path) -> tuple[int, bytes]:
    """The format version and payload of a checkpoint, read once its size is found to be the
    one its header declares, and checked against its hash."""
    with _open_regular(path) as file:
        try:
            version, digest, size, start = _parsed_header(file.read(len(MAGIC) + _MAX_HEADER), path)
            held = os.fstat(file.fileno()).st_size - start
            file.seek(start)
            payload = file.read(size) if held == size else b""
        except OSError as error:
            raise CheckpointError(f"cannot read checkpoint {printable(path)}: {error.strerror or error}") from None
    if len(payload) != size:
        held = len(payload) or held
        raise CheckpointError(f"{printable(path)} is truncated or damaged: {held:,} of {size:,} payload bytes")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"{printable(path)} is corrupted: its contents do not match their checksum")
    return version, payload


def _parsed_header(head: bytes, path: Path) -> tuple[int, str, int, int]:
    """(format version, sha256, payload size, payload offset) from a file's first bytes."""
    if not head.startswith(MAGIC):
        raise CheckpointError(f"{printable(path)} is not a charrnn checkpoint")
    end = head.find(b"\n", len(MAGIC))
    match = _HEADER.fullmatch(head[len(MAGIC) : end + 1]) if end >= 0 else None
    if match is None:
        raise CheckpointError(f"{printable(path)} has a damaged checkpoint header")
    version = int(match[1])
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{printable(path)} uses checkpoint format {version}, newer than this charrnn reads ({FORMAT_VERSION}); "
            "upgrade charrnn"
        )
    if version != FORMAT_VERSION and version not in migrated_formats():
        raise CheckpointError(f"{printable(path)} has a damaged checkpoint header (format {version})")
    return version, match[2].decode(), int(match[3]), end + 1


def _unpickled(payload: bytes, path: Path) -> Any:
    """The state in a format-1 payload (a `torch.save` zip archive). torch reads the archive
    repacked from what Python's zipfile found in it, after checking that every entry is stored
    uncompressed (a compressed one may inflate a thousandfold), so both read the same bytes."""
    try:
        archive = _repacked(payload)
    except Exception as error:  # zipfile raises many types on a crafted archive; all mean "damaged"
        raise CheckpointError(f"{printable(path)} is damaged: {_first_line(error)}") from None
    try:
        return torch.load(io.BytesIO(archive), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types; all mean "not plain data"
        raise CheckpointError(
            f"refusing to load {printable(path)}: it holds objects other than plain data and tensors, "
            f"which could run code ({type(error).__name__})"
        ) from None


def _repacked(payload: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(payload)) as source:
        entries = source.infolist()
        if len({entry.filename for entry in entries}) != len(entries) or any(
            entry.compress_type != zipfile.ZIP_STORED or entry.file_size != entry.compress_size for entry in entries
        ):
            raise ValueError("its archive has compressed or repeated entries, which charrnn never wrote")
        if sum(entry.file_size for entry in entries) > len(payload):
            raise ValueError("its archive claims more bytes than it holds")
        packed = io.BytesIO()
        with zipfile.ZipFile(packed, "w") as target:
            for entry in entries:
                target.writestr(entry.filename, source.read(entry))
    return packed.getvalue()


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


# MIGRATIONS[v] turns the state of format v into that of format v + 1. Format 2 changed only
# the encoding of the file (safetensors instead of a pickle): its state is format 1's.
MIGRATIONS: dict[int, Callable[[Any], Any]] = {1: renamed_fields({})}


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
        if isinstance(value, (torch.Tensor, dict, list, tuple)):
            if id(value) in seen:
                continue
            seen.add(id(value))
        if isinstance(value, torch.Tensor):
            if value.layout != torch.strided or value.is_quantized or value.device.type != "cpu":
                raise CheckpointError(f"{printable(path)} holds a tensor of a kind charrnn never writes")
            tensor_bytes += value.numel() * value.element_size()
        elif isinstance(value, (dict, list, tuple)):
            if depth >= _MAX_DEPTH:
                raise CheckpointError(f"{printable(path)} is damaged: its state nests more than {_MAX_DEPTH} deep")
            pending.extend(
                (item, depth + 1) for item in ([*value, *value.values()] if isinstance(value, dict) else value)
            )
        elif isinstance(value, int) and value not in _INT_RANGE:
            raise CheckpointError(f"{printable(path)} is damaged: it holds an integer beyond 64 bits")
    if tensor_bytes > payload_size:
        raise CheckpointError(
            f"{printable(path)} is damaged: its tensors claim {tensor_bytes:,} bytes, more than the file holds"
        )


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
    "best_val_loss": _optional(_is_number),
    "val_loss": _optional(_is_number),
    "evals_since_best": _optional(_is_count),
    "elapsed_seconds": _optional(lambda value: _is_number(value) and 0 <= value < 2**63),
    "corpus": _record(
        paths=_optional(_list_of(_is_str)), path=_is_str, description=_is_str, chars=_is_count, sha256=_is_str
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
        return sum(t.numel() for t in self.weights.values())

    def to_stored(self) -> dict[str, Any]:
        """The stored form (see `STORED_KEYS`): plain data and tensors, as `save_checkpoint` takes."""
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
            vocab = Vocab(chars)
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


_CORPUS_FIELDS = ("paths", "description", "chars", "sha256", "path")
# Entries written even when None (the others are left out when they are).
_KEPT_WHEN_NONE = ("best_val_loss", "val_loss")


def _stored_corpus(corpus: CorpusRecord) -> dict[str, Any]:
    stored = {"paths": corpus.paths, "description": corpus.description, "chars": corpus.chars, "sha256": corpus.sha256}
    return {**stored, "path": corpus.path} if corpus.path is not None else stored


def _stored_init_from(init: InitFrom) -> dict[str, Any]:
    return {name: value for name, value in (("path", init.path), ("step", init.step)) if value is not None}


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """The checkpoint at `path`, read, verified, migrated and validated; CheckpointError if unusable."""
    return Checkpoint.from_stored(load_checkpoint(path), path)


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
        if weight.dtype not in _WEIGHT_DTYPES:
            raise CheckpointError(f"{shown}: weight {name} holds {weight.dtype}, not floating-point numbers")
        if not bool(torch.isfinite(weight).all()):
            raise CheckpointError(
                f"{shown} has non-finite weights (NaN or infinity) in {name}; the model cannot be used"
            )


def _check_hidden(hidden: Any, model: ModelConfig, train: TrainConfig, shown: str) -> None:
    """Training allocates its hidden state by the batch size: the file must hold one that size."""
    if [tuple(h.shape) for h in hidden] != hidden_shapes(model, train):
        raise CheckpointError(f"{shown} has a hidden state that does not fit its model config and batch size")


def training_state_differences(a: Checkpoint, b: Checkpoint) -> list[str]:
    """What differs, bit for bit, between the training states of two checkpoints (step,
    weights, optimizer moments, carried hidden state, random generator state)."""
    differences = [] if a.step == b.step else [f"step {a.step} != {b.step}"]
    pairs = [("model", a.weights, b.weights), ("rng", a.rng["torch"], b.rng["torch"])]
    pairs += [(f"hidden[{i}]", x, y) for i, (x, y) in enumerate(zip(a.hidden, b.hidden))]
    pairs += [
        (f"optimizer[{key}]", value, b.optimizer["state"].get(key, {})) for key, value in a.optimizer["state"].items()
    ]
    for name, x, y in pairs:
        if isinstance(x, torch.Tensor):
            x, y = {"": x}, {"": y}
        for key in x:
            if not (isinstance(y.get(key), torch.Tensor) and torch.equal(x[key], y[key])):
                differences.append(f"{name}{'.' + str(key) if key else ''}")
    return differences


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
        (
            f"vocabulary: {len(vocab):,} entries{' (one is unknown)' if vocab.unknown_id is not None else ''}: "
            f"{printable(vocab.describe())}"
        ),
        (
            f"trained: step {checkpoint.step:,} in {format_duration(checkpoint.elapsed)}; "
            f"batch {train_config.batch_size} x seq {train_config.seq_len}, lr {train_config.lr:g}"
        ),
        "best validation: "
        + (f"{_figure(best / math.log(2))} bpc ({_figure(best)} nats)" if best is not None else "none yet"),
        f"corpus: {printable('?' if corpus.description is None else corpus.description)} ({'?' if chars is None else f'{chars:,}'} characters)",
    ]
    defaults = to_dict(TrainConfig())
    changed = [
        f"--{name.replace('_', '-')} {printable(value, 80)}"
        for name, value in to_dict(train_config).items()
        if value != defaults.get(name)
    ]
    lines.append(f"training options (beyond the defaults): {', '.join(changed) or 'none'}")
    init = checkpoint.record.init_from
    if init is not None:
        lines.append(f"fine-tuned from: {printable(init.path or '?')} (step {'?' if init.step is None else init.step})")
    return lines


def _figure(value: float) -> str:
    """A loss with four decimals, or in exponent form when a crafted file makes it huge."""
    return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.4g}"

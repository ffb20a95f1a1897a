"""The checkpoint file: its bytes on disk, written atomically, read bounded and without ever
running code (the typed checkpoint they hold is charrnn.store.checkpoint's).

A checkpoint file is a short text header followed by a safetensors payload:

    charrnn checkpoint\\n
    format 5 sha256 <64 hex digits> bytes <payload length>\\n
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
which refuses any object other than tensors and plain containers. Resuming writes the current
format (`FORMAT_VERSION`).

A payload can be read as numpy arrays instead of torch tensors (`arrays="numpy"`): sampling
reads checkpoints that way and never imports torch, which costs more than all the rest of a
sample. torch is imported only to write, to read as tensors, for format 1 (a pickle only torch
reads), and for a dtype numpy lacks (bfloat16).

Reading is bounded: only regular files are opened (a device or a pipe could feed bytes
forever or block), a file's size must be what its header declares before it is read, the
JSON is bounded, and its tensors can hold no more bytes than the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from safetensors import SafetensorError

from charrnn.display import printable
from charrnn.errors import CheckpointError
from charrnn.store.files import NotAFile, open_to_read, write_atomic

if TYPE_CHECKING:
    import torch

FORMAT_VERSION = 5
MAGIC = b"charrnn checkpoint\n"
_HEADER = re.compile(rb"format (\d+) sha256 ([0-9a-f]{64}) bytes (\d+)\n")
_MAX_HEADER = 200
_STATE_KEY = "charrnn"  # the safetensors metadata entry holding the state's JSON
# The JSON part of a checkpoint: configs, vocabulary, corpus paths (a folder of ~500,000
# files), optimizer settings. Parsing JSON takes several times its size in memory: bounded.
_MAX_JSON_BYTES = 64 << 20
MAX_DEPTH = 32  # nesting of the state (a real one nests 5 deep)
INT_RANGE = range(-(2**63), 2**63)  # every integer in a state fits in 64 bits


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
        write_atomic(path, lambda file: file.writelines((MAGIC, header, payload)))  # no joined copy of the payload
    except OSError as error:
        raise CheckpointError(
            f"cannot write checkpoint {printable(path)}: {error.strerror or error}; earlier checkpoints are intact"
        ) from None


# The payload: a state (dicts, lists and tuples of plain values and tensors) as safetensors.


def _encoded(state: dict[str, Any]) -> bytes:
    """`state` as a safetensors payload: its tensors, and the rest as JSON in the metadata."""
    import safetensors.torch

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
    import torch

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


def _decoded(payload: bytes, path: Path, arrays: str = "torch") -> Any:
    """The state in a format-2 payload, its tensors as torch tensors or (`arrays="numpy"`)
    numpy arrays; each stored tensor must be used exactly once."""
    try:
        text = _state_json(payload)
        tensors = _tensors(payload, arrays)  # checks every tensor's bytes lie in the payload
        unused = set(tensors)
        state = _from_json(json.loads(text), tensors, unused, 0)
    except (SafetensorError, ValueError, RecursionError) as error:  # ValueError: JSON, or a check below
        raise CheckpointError(f"{printable(path)} is damaged: {_first_line(error)}") from None
    if unused:
        raise CheckpointError(f"{printable(path)} is damaged: it holds tensors no part of its state uses")
    return state


def _tensors(payload: bytes, arrays: str) -> dict[str, Any]:
    if arrays == "numpy":
        import safetensors.numpy

        try:
            return safetensors.numpy.load(payload)
        except KeyError:  # a dtype numpy has no type for (bfloat16): torch reads it
            pass
    import safetensors.torch

    return safetensors.torch.load(payload)


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


def _from_json(value: Any, tensors: dict[str, Any], unused: set[str], depth: int) -> Any:
    """What `_to_json` encoded as `value`."""
    if depth > MAX_DEPTH:
        raise ValueError(f"its state nests more than {MAX_DEPTH} deep")
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


def _tagged(tag: str, content: Any, tensors: dict[str, Any], unused: set[str], depth: int) -> Any:
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


def _open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file: a device (`/dev/zero`) or a pipe
    could feed bytes forever, and opening a FIFO blocks (files.open_to_read)."""
    try:
        return open_to_read(path)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {printable(path)}") from None
    except NotAFile as error:
        if error.mode is not None and stat.S_ISDIR(error.mode):
            raise CheckpointError(f"checkpoint is a folder with no checkpoint in it: {printable(path)}") from None
        raise CheckpointError(
            f"{printable(path)} is not a regular file (a device, pipe or socket), so not a checkpoint"
        ) from None
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {printable(path)}: {error.strerror or error}") from None


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
    if version < 1:
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
    import torch

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


def read_stored(path: str | Path, arrays: str = "torch") -> tuple[int, Any, int]:
    """The format version a checkpoint file declares, the state it stores (in that format's
    form: not yet migrated or checked) and the payload's size in bytes. `arrays="numpy"`: its
    tensors as numpy arrays, without importing torch (but format 1 and bfloat16: torch tensors)."""
    path = Path(path)
    version, payload = _read_verified(path)
    state = _unpickled(payload, path) if version == 1 else _decoded(payload, path, arrays)
    return version, state, len(payload)

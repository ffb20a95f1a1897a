"""Loading what a stranger sends: files that are no files, sizes the tensors do not justify,
NaN weights, escape sequences, odd field types, and fuzzed checkpoints. Each is refused in
one line or loads correctly; nothing hangs, allocates beyond the file, or prints raw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import safetensors.torch
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_checkpoint import FORMAT_1, payload_of, tiny_state, write_with_header

from charrnn.cli.commands import main
from charrnn.errors import CheckpointError, ConfigError
from charrnn.store.checkpoint import (
    Checkpoint,
    describe_checkpoint,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from helpers import load_model

CPU = torch.device("cpu")


def _saved(path: Path, state: dict) -> Path:
    save_checkpoint(state, path)
    return path


def _with(path: Path, **changes) -> Path:
    """A checkpoint of `tiny_state()` with entries replaced; `model_config`/`train_config`
    changes are merged into the configs."""
    state = tiny_state()
    for key in ("model_config", "train_config"):
        if isinstance(changes.get(key), dict):
            changes[key] = {**state[key], **changes[key]}
    return _saved(path, {**state, **changes})


def _refused(args: list, excerpt: str) -> None:
    result = CliRunner().invoke(main, [str(a) for a in args])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: ") and excerpt in lines[0], result.stderr
    assert "Traceback" not in result.output and "unexpected" not in result.output


# Files that are not regular files are refused before anything is read.


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
@pytest.mark.parametrize("command", [["sample", "-c"], ["info"], ["train", "--resume"]])
def test_a_device_is_refused_without_reading_it(command):
    _refused([*command, "/dev/zero"], "/dev/zero is not a regular file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.pt")
    outcome: list = []

    def load() -> None:
        try:
            load_checkpoint(tmp_path / "pipe.pt")
        except CheckpointError as error:
            outcome.append(str(error))

    reader = threading.Thread(target=load, daemon=True)  # open() of a FIFO with no writer blocks
    reader.start()
    reader.join(timeout=60)
    assert outcome and "is not a regular file" in outcome[0]
    _refused(["info", tmp_path / "pipe.pt"], "is not a regular file")


def test_a_size_claim_beyond_the_file_is_refused_without_reading(tmp_path):
    header = b"charrnn checkpoint\nformat 2 sha256 " + b"0" * 64 + b" bytes 1000000000000000\n"
    (tmp_path / "claim.pt").write_bytes(header + b"x" * 100)
    with pytest.raises(CheckpointError, match="truncated or damaged: 100 of 1,000,000,000,000,000 payload bytes"):
        load_checkpoint(tmp_path / "claim.pt")


# Sizes are checked against the tensors present, before any model is built.


@pytest.mark.parametrize(
    ("changes", "excerpt"),
    [
        (
            {"model_config": {"hidden_size": 12_000}},
            "weight rnn.weight_ih_l0 has shape (16, 2) where its model config needs (48000, 2)",
        ),
        ({"model_config": {"embed_dim": 16_384}}, "where its model config needs (3, 16384)"),
        ({"model_config": {"layers": 10**6}}, "layers"),  # beyond ModelConfig's own ceiling
        ({"model_config": {"layers": 64}}, "it holds 7 weight tensors, not those of its model config"),
        ({"model_config": {"vocab_size": 10**6}}, "vocabulary of 3 does not match vocab_size 1,000,000"),
        ({"model_config": {"vocab_size": 1_000}}, "vocabulary of 3 does not match vocab_size 1,000"),
        ({"model_config": {"cell": "gru"}}, "where its model config needs (12, 2)"),
        (
            {"train_config": {"batch_size": 10**9}},
            "has a hidden state that does not fit its model config and batch size",
        ),
        ({"model_config": {"hidden_size": 2**70}}, "integer beyond 64 bits"),
    ],
)
def test_a_size_the_tensors_do_not_justify_is_refused_by_every_loader(tmp_path, changes, excerpt):
    path = _with(tmp_path / "claim.pt", **changes)
    with pytest.raises(CheckpointError, match=excerpt.replace("(", r"\(").replace(")", r"\)")):
        load_model(path, CPU)
    (tmp_path / "corpus.txt").write_text("a世a世" * 50, encoding="utf-8")
    for command in (
        ["sample", "-c", path],
        ["info", path],
        ["eval", tmp_path / "corpus.txt", "-c", path],
        ["train", tmp_path / "corpus.txt", "--resume", path],
        ["train", tmp_path / "corpus.txt", "--init-from", path, "--out", tmp_path / "tuned"],
    ):
        _refused(command, excerpt)


def test_a_weight_of_the_wrong_kind_is_refused(tmp_path):
    state = tiny_state()
    state["model"]["head.bias"] = torch.ones(3, dtype=torch.int64)
    with pytest.raises(CheckpointError, match="weight head.bias holds torch.int64, not floating-point numbers"):
        load_model(_saved(tmp_path / "ints.pt", state), CPU)
    state["model"]["extra"] = state["model"].pop("head.bias")
    with pytest.raises(CheckpointError, match="its weights are not those of its model config"):
        load_model(_saved(tmp_path / "renamed.pt", state), CPU)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_in_one_line(tmp_path, value):
    state = tiny_state()
    state["model"]["rnn.weight_hh_l0"][1, 2] = value
    path = _saved(tmp_path / "nan.pt", state)
    with pytest.raises(CheckpointError, match="non-finite weights .NaN or infinity. in rnn.weight_hh_l0"):
        load_model(path, CPU)
    _refused(["sample", "-c", path], "non-finite weights")


# A format-2 file whose JSON and tensors disagree.


def _parts(path: Path) -> tuple[dict, dict]:
    """The JSON skeleton and the tensors of a format-2 checkpoint."""
    payload = payload_of(path)
    header = json.loads(payload[8 : 8 + int.from_bytes(payload[:8], "little")])
    return json.loads(header["__metadata__"]["charrnn"]), safetensors.torch.load(payload)


def _crafted(path: Path, skeleton, tensors: dict, keep_unused: bool = False, text: str | None = None) -> Path:
    """A checkpoint with this skeleton (or JSON text) and tensors (only those it uses, unless
    `keep_unused`)."""
    text = json.dumps(skeleton) if text is None else text
    if not keep_unused:
        tensors = {name: t for name, t in tensors.items() if json.dumps({"$tensor": name}) in text}
    return write_with_header(path, safetensors.torch.save(tensors, metadata={"charrnn": text}))


def test_one_stored_tensor_cannot_stand_for_many(tmp_path):
    skeleton, tensors = _parts(_saved(tmp_path / "c.pt", tiny_state()))
    skeleton["model"]["rnn.bias_hh_l0"] = skeleton["model"]["rnn.bias_ih_l0"]
    with pytest.raises(CheckpointError, match=r"is damaged: its state has a malformed \$tensor entry"):
        load_checkpoint(_crafted(tmp_path / "twice.pt", skeleton, tensors, keep_unused=True))
    del skeleton["model"]["rnn.bias_hh_l0"]
    with pytest.raises(CheckpointError, match="holds tensors no part of its state uses"):
        load_checkpoint(_crafted(tmp_path / "unused.pt", skeleton, tensors, keep_unused=True))


def test_a_state_nested_without_end_is_refused(tmp_path):
    skeleton, tensors = _parts(_saved(tmp_path / "c.pt", tiny_state()))
    for depth in (40, 100_000):  # past charrnn's bound, and past Python's recursion limit
        text = json.dumps({**skeleton, "extra": "DEEP"}).replace('"DEEP"', "[" * depth + "]" * depth)
        with pytest.raises(CheckpointError, match="is damaged"):
            load_checkpoint(_crafted(tmp_path / "deep.pt", None, tensors, text=text))


# Strings from a checkpoint are shown, never obeyed; odd field types are refused in one line.

ESCAPES = "\x1b]0;owned\x07\x1b[2J\u202e\r"


def test_info_prints_no_escape_sequence_from_a_checkpoint(tmp_path):
    state = tiny_state()
    state["vocab"] = ["a", "\x1b", ""]
    state["charrnn_version"] = "0.1" + ESCAPES
    state["corpus"] = {"paths": ["/x" + ESCAPES], "description": "text" + ESCAPES, "chars": 4}
    state["init_from"] = {"path": "/base" + ESCAPES + "/best.pt", "step": 3}
    path = _saved(tmp_path / ("name" + "\x1b[31m.pt"), state)
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert not any(char in result.output for char in "\x1b\x07\u202e\r")
    assert "text\\x1b]0;owned\\x07" in result.stdout and "name\\x1b[31m.pt" in result.stdout


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("corpus", []),
        ("corpus", {"description": 42}),
        ("corpus", {"chars": "many"}),
        ("corpus", {"chars": 10**30}),
        ("corpus", {"paths": "c.txt"}),
        ("corpus", {"description": "x" * 100_000, "chars": 2**62}),
        ("best_val_loss", "low"),
        ("best_val_loss", 1e300),
        ("best_val_loss", float("nan")),
        ("best_val_loss", 2),
        ("elapsed_seconds", 1e300),
        ("elapsed_seconds", -1.0),
        ("elapsed_seconds", "1h"),
        ("step", 2**63),
        ("step", -1),
        ("step", 1.5),
        ("step", "7"),
        ("evals_since_best", [1]),
        ("charrnn_version", 3),
        ("charrnn_version", None),
        ("init_from", "base.pt"),
        ("init_from", {"path": ["a"]}),
        ("init_from", {}),
        ("run", "abc"),
        ("vocab", "a世"),
        ("vocab", ["a", "bc", ""]),
        ("vocab", ["a", 1, ""]),
        ("model", []),
        ("optimizer", {"state": [], "param_groups": []}),
        ("optimizer", {}),
        ("hidden", {}),
        ("hidden", [1.0]),
        ("rng", {"torch": "seed"}),
        ("rng_ranks", {}),
        ("world_size", 0),
        ("model_config", {"hidden_size": "4"}),
        ("model_config", {"dropout": 2}),
        ("model_config", {"cell": ESCAPES}),
        ("model_config", {"vocab_size": None}),
        ("model_config", []),
        ("model_config", {"extra": 1}),
        ("train_config", {"lr": "fast"}),
        ("train_config", {"encoding": "a\x00b"}),
        ("train_config", {"encoding": "\ud800"}),
        ("train_config", {"seq_len": 2**62}),
        ("train_config", {"max_steps": None}),
        ("train_config", {"keep": [1]}),
        ("data_position", None),
        ("missing", ("corpus", "best_val_loss", "val_loss", "elapsed_seconds", "charrnn_version")),
        ("missing", ("hidden",)),
    ],
)
def test_info_on_odd_fields_prints_sensibly_or_refuses_in_one_line(tmp_path, key, value):
    state = tiny_state()
    if key == "missing":
        for name in value:
            del state[name]
    elif key.endswith("_config") and isinstance(value, dict):
        state[key] = {**state[key], **value}
    else:
        state[key] = value
    result = CliRunner().invoke(main, ["info", str(_saved(tmp_path / "odd.pt", state))])
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    if result.exit_code == 0:
        assert result.stdout.count("\n") >= 7 and max(map(len, result.stdout.splitlines())) < 1000
    else:
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: ") and len(lines[0]) < 1000


# Fuzzing: mutated bytes (checksum recomputed, so the parsers themselves are exercised) and
# mutated fields. Each either loads correctly or is refused with a CheckpointError/ConfigError.


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    _saved(folder / "base.pt", tiny_state())
    return folder


def _loads_or_refuses(path: Path) -> None:
    """load_model and describe_checkpoint either refuse in a CheckpointError (or ConfigError)
    or succeed with a model no larger than the file's tensors (weights are 2 bytes or more)."""
    try:
        loaded = load_model(path, CPU)
    except (CheckpointError, ConfigError):
        pass
    else:
        assert 2 * sum(p.numel() for p in loaded.model.parameters()) <= path.stat().st_size
    try:
        lines = describe_checkpoint(read_checkpoint(path), path)
    except (CheckpointError, ConfigError):
        return
    assert all("\x1b" not in line and len(line) < 2000 for line in lines)


_BYTE_EDITS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "cut", "extend", "overwrite"]),
        st.integers(0, 2**16),
        st.binary(min_size=1, max_size=16),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=_BYTE_EDITS, near_header=st.booleans())
def test_fuzzed_payload_bytes_load_or_are_refused(fuzz_dir, edits, near_header):
    payload = bytearray(payload_of(fuzz_dir / "base.pt"))
    header_end = 8 + int.from_bytes(payload[:8], "little")
    for kind, where, data in edits:
        where %= min(header_end, len(payload)) if near_header and len(payload) else len(payload) or 1
        if kind == "flip" and where < len(payload):
            payload[where] ^= data[0]
        elif kind == "cut":
            del payload[where:]
        elif kind == "extend":
            payload[where:where] = data
        else:
            payload[where : where + len(data)] = data
    _loads_or_refuses(write_with_header(fuzz_dir / "bytes.pt", bytes(payload)))


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.floats()
    | st.text(max_size=12)
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, -1, 1, 12_000, 10**6, 2**31, 2**63 - 1, 2**63, 10**30]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=6), inner, max_size=3)
        | st.builds(lambda name: {"$tensor": name}, st.text(max_size=30))
    ),
    max_leaves=6,
)


def _places(value, path=()):
    """Every place in a JSON skeleton, as a path of keys and indices."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _places(item, (*path, key))


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_fields_load_or_are_refused(fuzz_dir, data):
    skeleton, tensors = _parts(fuzz_dir / "base.pt")
    for _ in range(data.draw(st.integers(1, 3))):
        place = data.draw(st.sampled_from([p for p in _places(skeleton) if p and p[-1] != "$tensor"]))
        parent = skeleton
        for key in place[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and data.draw(st.booleans()):
            del parent[place[-1]]
        else:
            parent[place[-1]] = data.draw(_JSON)
    _loads_or_refuses(_crafted(fuzz_dir / "fields.pt", skeleton, tensors))


_DTYPES = st.sampled_from(
    [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.uint8, torch.bool]
)


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_tensors_load_or_are_refused(fuzz_dir, data):
    skeleton, tensors = _parts(fuzz_dir / "base.pt")
    tensors = dict(tensors)
    for name in data.draw(st.lists(st.sampled_from(sorted(tensors)), min_size=1, max_size=3)):
        shape = data.draw(st.lists(st.integers(0, 20), max_size=3))
        value = data.draw(st.sampled_from([0.0, 1.0, -1e30, float("nan"), 65504.0]))
        tensors[name] = torch.full(shape, value).to(data.draw(_DTYPES))
    _loads_or_refuses(_crafted(fuzz_dir / "tensors.pt", skeleton, tensors))


@pytest.mark.slow  # fuzzing
def test_the_fuzz_loop_allocates_nothing_beyond_a_bound(tmp_path):
    """In a fresh process, hundreds of crafted checkpoints (huge claims among them) raise the
    peak memory by no more than a few megabytes over loading one good checkpoint."""
    if not sys.platform.startswith("linux"):
        pytest.skip("ru_maxrss is in kilobytes on Linux only")
    claims = {
        "hidden": {"model_config": {"hidden_size": 12_000}},
        "wide": {"model_config": {"embed_dim": 16_384}},
        "layers": {"model_config": {"layers": 64}},
        "vocab": {"model_config": {"vocab_size": 1_114_113}},
        "batch": {"train_config": {"batch_size": 10**9}},
    }
    for name, changes in claims.items():
        _with(tmp_path / f"{name}.pt", **changes)
    _saved(tmp_path / "good.pt", tiny_state())
    script = f"""
import random, resource, sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_checkpoint import payload_of, write_with_header
from test_checkpoint_safety import _loads_or_refuses
folder = Path({str(tmp_path)!r})
_loads_or_refuses(folder / "good.pt")
_loads_or_refuses(Path({str(FORMAT_1)!r}))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path in sorted(folder.glob("*.pt")):
    _loads_or_refuses(path)
rng, payload = random.Random(0), payload_of(folder / "good.pt")
for _ in range(300):
    mutated = bytearray(payload)
    for _ in range(rng.randint(1, 4)):
        mutated[rng.randrange(len(mutated))] = rng.randrange(256)
    _loads_or_refuses(write_with_header(folder / "mutated.pt", bytes(mutated)))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    growth_kb = int(result.stdout.split()[-1])
    assert growth_kb < 64 * 1024, f"peak memory grew by {growth_kb:,} KB"


def test_a_checkpoint_that_loads_is_the_model_it_claims(tmp_path):
    """The other side of the bound: none of the checks refuses a good checkpoint."""
    state = tiny_state()
    loaded = load_model(_saved(tmp_path / "good.pt", state), CPU)
    assert loaded.step == 7 and Checkpoint.from_stored(state, "good.pt").model_config.hidden_size == 4
    assert all(torch.equal(value, state["model"][name]) for name, value in loaded.model.state_dict().items())

"""The checkpoint file format: exact round trips, atomic writes, damage detected, no pickle,
the typed checkpoint, and the migration of older formats (each tested on a stored file)."""

import dataclasses
import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import safetensors.torch
import torch
from click.testing import CliRunner

from charrnn.cli.commands import main
from charrnn.core.model import CharRNN
from charrnn.errors import CheckpointError
from charrnn.settings.cells import CELLS
from charrnn.settings.config import ModelConfig, TrainConfig, to_dict
from charrnn.store import checkpoint, stored_form
from charrnn.store.checkpoint import Checkpoint, hidden_shapes, load_checkpoint, parameter_shapes, read_checkpoint
from charrnn.store.checkpoint_file import FORMAT_VERSION, MAGIC, checkpoint_format, read_stored, save_checkpoint
from charrnn.store.stored_form import renamed_fields
from helpers import training_state_differences

DATA = Path(__file__).parent / "data"
FORMAT_1 = DATA / "format1-lstm.pt"  # written by charrnn before format 2; see tests/data/README.md
FORMAT_2 = DATA / "format2-lstm.pt"  # written by charrnn in format 2, the same run
FORMAT_4 = DATA / "format4-lstm.pt"  # written by charrnn in format 4 (before --fold-variants), the same run


def tiny_state(cell: str = "lstm", **model_options) -> dict:
    """A checkpoint state as training writes it, for a 3-character model after one AdamW step."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=3, cell=cell, layers=1, hidden_size=4, embed_dim=2, **model_options)
    model = CharRNN(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    logits, hidden = model(torch.tensor([[0, 1, 2, 1]]), model.init_hidden(1))
    logits.sum().backward()
    optimizer.step()
    return {
        "charrnn_version": "0.1.0",
        "model_config": to_dict(config),
        "train_config": to_dict(TrainConfig(batch_size=1)),
        "vocab": ["a", "世", ""],
        "corpus": {"paths": ["c.txt"], "description": "c.txt", "chars": 4, "sha256": "0" * 64},
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": 7,
        "data_position": {"epoch": 0, "window": 7},
        "hidden": tuple(h.detach() for h in hidden),
        "rng": {"torch": torch.get_rng_state()},
        "best_val_loss": 0.1 + 0.2,
        "evals_since_best": 0,
        "val_loss": None,
        "elapsed_seconds": 1e-310,
    }


def write_with_header(path: Path, payload: bytes, version: int = FORMAT_VERSION) -> Path:
    """A checkpoint file around `payload`, with a valid header and checksum."""
    digest = hashlib.sha256(payload).hexdigest().encode()
    path.write_bytes(MAGIC + b"format %d sha256 %s bytes %d\n" % (version, digest, len(payload)) + payload)
    return path


def payload_of(path: Path) -> bytes:
    data = path.read_bytes()
    return data[data.index(b"\n", len(MAGIC)) + 1 :]


def assert_same(a, b, where="state"):
    """Equal values of the same types, tensors bit for bit (dtype and shape included)."""
    assert type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict)), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{index}]")
    elif isinstance(a, float):
        assert a.hex() == b.hex(), where  # bit for bit, -0.0 and subnormals included
    else:
        assert a == b, where


def test_round_trip_keeps_every_value_bit_for_bit(tmp_path):
    state = tiny_state()
    state["extras"] = {
        "floats": [0.1, -0.0, 5e-324, 1.7976931348623157e308, float("inf")],
        "big": 2**63 - 1,
        "flags": (True, False, None),
        "$dollar": {"a/b": 1},
        "a": {"b": torch.ones(2)},
        "a/b": torch.zeros(2),
        3: "int key",
        "": "",
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(2.5, dtype=torch.float64),
        "text": "naïve \x1b 世界 🙂",
    }
    save_checkpoint(state, tmp_path / "c.pt")
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert_same(state, loaded)
    assert isinstance(loaded["optimizer"]["state"], dict) and list(loaded["optimizer"]["state"]) == [
        0,
        1,
        2,
        3,
        4,
        5,
        6,
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


def test_the_payload_is_safetensors_with_the_rest_as_json(tmp_path):
    save_checkpoint(tiny_state(), tmp_path / "c.pt")
    payload = payload_of(tmp_path / "c.pt")
    tensors = safetensors.torch.load(payload)  # a plain safetensors file: no pickle anywhere
    assert {"model/rnn.weight_ih_l0", "optimizer/state/0/exp_avg", "hidden/1", "rng/torch"} <= set(tensors)
    header = json.loads(payload[8 : 8 + int.from_bytes(payload[:8], "little")])
    skeleton = json.loads(header["__metadata__"]["charrnn"])
    assert skeleton["step"] == 7 and skeleton["model"]["head.bias"] == {"$tensor": "model/head.bias"}
    assert checkpoint_format(tmp_path / "c.pt") == FORMAT_VERSION


def test_views_of_one_buffer_are_saved_apart(tmp_path):
    """On a GPU an LSTM's weights are views of one flat buffer, which safetensors refuses as is."""
    buffer = torch.arange(12.0)
    state = {**tiny_state(), "views": {"first": buffer[:6].view(2, 3), "second": buffer[6:], "empty": buffer[:0]}}
    save_checkpoint(state, tmp_path / "c.pt")
    assert_same(state["views"], load_checkpoint(tmp_path / "c.pt")["views"])


def test_saving_replaces_the_old_file_whole(tmp_path):
    save_checkpoint(tiny_state(), tmp_path / "c.pt")
    save_checkpoint({**tiny_state(), "step": 8}, tmp_path / "c.pt")
    assert load_checkpoint(tmp_path / "c.pt")["step"] == 8


def test_truncated_extended_and_corrupted_files_are_detected(tmp_path):
    save_checkpoint(tiny_state(), tmp_path / "c.pt")
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "short.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "short.pt")
    (tmp_path / "long.pt").write_bytes(data + b"\0" * 100)
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        load_checkpoint(tmp_path / "long.pt")
    flipped = bytearray(data)
    flipped[-100] ^= 0x01
    (tmp_path / "flip.pt").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(tmp_path / "flip.pt")


def test_other_files_are_not_taken_for_checkpoints(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a charrnn checkpoint"):
        load_checkpoint(tmp_path / "notes.txt")
    torch.save(tiny_state(), tmp_path / "plain.pt")  # a bare torch.save file
    with pytest.raises(CheckpointError, match="not a charrnn checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    safetensors.torch.save_file({"w": torch.ones(2)}, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="not a charrnn checkpoint"):
        load_checkpoint(tmp_path / "model.safetensors")


def test_a_newer_format_is_refused_with_advice(tmp_path):
    payload = payload_of(_saved(tmp_path))
    write_with_header(tmp_path / "new.pt", payload, version=FORMAT_VERSION + 1)
    with pytest.raises(
        CheckpointError,
        match=rf"format {FORMAT_VERSION + 1}, newer than this charrnn reads \({FORMAT_VERSION}\); upgrade",
    ):
        load_checkpoint(tmp_path / "new.pt")


def _saved(tmp_path: Path) -> Path:
    save_checkpoint(tiny_state(), tmp_path / "saved.pt")
    return tmp_path / "saved.pt"


# Format 1: a torch.save pickle, read through torch.load(weights_only=True) to migrate it.


def _format_1(path: Path, state, protocol: int = 2) -> Path:
    buffer = io.BytesIO()
    torch.save(state, buffer, pickle_protocol=protocol)
    return write_with_header(path, buffer.getvalue(), version=1)


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_a_format_1_checkpoint_whose_pickle_would_run_code_is_refused_and_runs_nothing(tmp_path, protocol):
    marker = tmp_path / "payload-ran"
    _format_1(
        tmp_path / "evil.pt", {**tiny_state(), "model": _Payload(marker)}, protocol
    )  # a valid header and checksum
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_the_stored_format_1_checkpoint_migrates_value_for_value():
    migrated = load_checkpoint(FORMAT_1)
    raw = torch.load(io.BytesIO(payload_of(FORMAT_1)), map_location="cpu", weights_only=True)
    # Every value as stored, plus what later formats added, with the value older runs had.
    assert migrated["train_config"].pop("preview_chars") == 0
    added = {"weight_drop": 0.0, "input_dropout": 0.0, "embed_dropout": 0.0, "recurrent_init": "uniform"}
    assert {name: migrated["model_config"].pop(name) for name in added} == added
    assert migrated["train_config"].pop("fold_variants") is False and migrated.pop("vocab_aliases") == {}
    assert_same(raw, migrated)
    assert checkpoint_format(FORMAT_1) == 1 and migrated["step"] == 2


def test_a_migrated_checkpoint_saved_as_format_2_keeps_the_whole_training_state(tmp_path):
    migrated = load_checkpoint(FORMAT_1)
    save_checkpoint(migrated, tmp_path / "c.pt")
    again = load_checkpoint(tmp_path / "c.pt")
    assert training_state_differences(read_checkpoint(FORMAT_1), read_checkpoint(tmp_path / "c.pt")) == []
    assert_same(migrated, again)


def test_the_format_1_checkpoint_samples_and_describes_itself():
    runner = CliRunner()
    sampled = runner.invoke(main, ["sample", "-c", str(FORMAT_1), "--length", "40", "--seed", "1"])
    assert sampled.exit_code == 0, sampled.output
    assert len(sampled.stdout) >= 40 and set(sampled.stdout) <= set("\n abcdefghijklmnopqrstuvwxyz")
    described = runner.invoke(main, ["info", str(FORMAT_1)])
    assert described.exit_code == 0, described.output
    assert "(format 1, read by migration" in described.stdout and "LSTM 1x8" in described.stdout


def test_a_format_1_run_resumes_and_writes_format_2(tmp_path):
    copy = tmp_path / "old" / "latest.pt"
    copy.parent.mkdir()
    copy.write_bytes(FORMAT_1.read_bytes())
    result = CliRunner().invoke(
        main, ["train", str(DATA / "format1-corpus.txt"), "--resume", str(copy), "--max-steps", "4", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    resumed = load_checkpoint(copy)  # the run continued in its own folder
    assert resumed["step"] == 4 and checkpoint_format(copy) == FORMAT_VERSION
    assert (tmp_path / "old" / "step-00000004.pt").exists()
    old = load_checkpoint(FORMAT_1)
    assert resumed["vocab"] == old["vocab"] and resumed["model_config"] == old["model_config"]


def test_a_compressed_format_1_archive_is_refused_before_it_can_inflate(tmp_path):
    buffer = io.BytesIO()
    torch.save(tiny_state(), buffer)
    source, packed = zipfile.ZipFile(io.BytesIO(buffer.getvalue())), io.BytesIO()
    with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
    assert torch.load(io.BytesIO(packed.getvalue()), weights_only=True)["step"] == 7  # torch itself would inflate it
    write_with_header(tmp_path / "zipped.pt", packed.getvalue(), version=1)
    with pytest.raises(CheckpointError, match="compressed"):
        load_checkpoint(tmp_path / "zipped.pt")


def test_a_format_1_tensor_claiming_more_than_its_storage_is_refused(tmp_path):
    """torch.save keeps views as views: one stored float can claim a shape of 100 million."""
    state = tiny_state()
    state["model"]["head.bias"] = torch.zeros(1).expand(100_000_000)
    _format_1(tmp_path / "claim.pt", state)
    with pytest.raises(CheckpointError, match="its tensors claim 400,0"):
        load_checkpoint(tmp_path / "claim.pt")


# The model a checkpoint describes is checked without building it: the shapes must be the model's.


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("input_mode", ["embedding", "one-hot"])
@pytest.mark.parametrize("layers", [1, 3])
def test_parameter_and_hidden_shapes_are_those_of_the_model(cell, input_mode, layers):
    config = ModelConfig(vocab_size=5, cell=cell, layers=layers, hidden_size=6, input_mode=input_mode, embed_dim=7)
    model = CharRNN(config)
    assert parameter_shapes(config) == {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert hidden_shapes(config, TrainConfig(batch_size=3)) == [tuple(h.shape) for h in model.init_hidden(3)]


def test_the_typed_checkpoint_of_a_real_state():
    state = tiny_state(cell="gru")
    typed = Checkpoint.from_stored(state, "c.pt")
    assert (
        typed.model_config.cell == "gru" and typed.train_config.batch_size == 1 and typed.vocab.chars[:2] == ["a", "世"]
    )
    assert typed.step == 7 and typed.best_val_loss == 0.1 + 0.2 and typed.record.corpus.locations() == ["c.txt"]


@pytest.mark.parametrize("stored", [FORMAT_1, FORMAT_2])
def test_the_typed_checkpoint_stores_what_it_read(stored, tmp_path):
    """Reading a file into a Checkpoint and writing it back loses nothing charrnn reads."""
    typed = read_checkpoint(stored)
    save_checkpoint(typed.to_stored(), tmp_path / "again.pt")
    again = read_checkpoint(tmp_path / "again.pt")
    assert training_state_differences(typed, again) == []
    assert again == dataclasses.replace(
        typed, weights=again.weights, optimizer=again.optimizer, hidden=again.hidden, rng=again.rng
    )
    assert_same(load_checkpoint(stored), load_checkpoint(tmp_path / "again.pt"))


# Format 2: the stored file of this format (tests/data/README.md) reads as written.


def test_the_stored_format_2_checkpoint_reads_value_for_value():
    typed = read_checkpoint(FORMAT_2)
    assert checkpoint_format(FORMAT_2) == 2 and typed.step == 2 and typed.charrnn_version is not None
    assert typed.model_config.cell == "lstm" and typed.model_config.hidden_size == 8 and typed.train_config.seed == 7
    assert typed.vocab == read_checkpoint(FORMAT_1).vocab and typed.vocab.unknown_id is not None
    assert typed.record.run is not None and len(typed.record.run.id) == 32
    assert [Path(p).name for p in typed.record.corpus.locations()] == [
        "corpus.txt"
    ] and typed.record.corpus.chars == 541
    assert typed.best_val_loss == typed.last_val_loss and typed.evals_since_best == 0 and typed.elapsed > 0


def test_a_format_2_run_resumes(tmp_path):
    copy = tmp_path / "old" / "latest.pt"
    copy.parent.mkdir()
    copy.write_bytes(FORMAT_2.read_bytes())
    result = CliRunner().invoke(
        main, ["train", str(DATA / "format1-corpus.txt"), "--resume", str(copy), "--max-steps", "4", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    resumed, old = read_checkpoint(copy), read_checkpoint(FORMAT_2)
    assert resumed.step == 4 and resumed.vocab == old.vocab and resumed.model_config == old.model_config
    assert resumed.record.run == old.record.run  # the same run, continued


# Format 4: before --fold-variants and the vocabulary's aliases.


def test_the_stored_format_4_checkpoint_migrates_to_a_vocabulary_without_aliases():
    version, raw, _ = read_stored(FORMAT_4, "torch")
    assert version == 4 and "vocab_aliases" not in raw and "fold_variants" not in raw["train_config"]
    migrated = load_checkpoint(FORMAT_4)
    assert migrated["train_config"].pop("fold_variants") is False and migrated.pop("vocab_aliases") == {}
    assert_same(raw, migrated)
    typed = read_checkpoint(FORMAT_4)
    assert typed.vocab.aliases == {} and typed.train_config.fold_variants is False and typed.step == 2


def test_a_format_4_run_resumes_and_writes_the_current_format(tmp_path):
    copy = tmp_path / "old" / "latest.pt"
    copy.parent.mkdir()
    copy.write_bytes(FORMAT_4.read_bytes())
    result = CliRunner().invoke(
        main, ["train", str(DATA / "format1-corpus.txt"), "--resume", str(copy), "--max-steps", "4", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert checkpoint_format(copy) == FORMAT_VERSION and load_checkpoint(copy)["vocab_aliases"] == {}
    assert read_checkpoint(copy).vocab == read_checkpoint(FORMAT_4).vocab


# Renaming a stored field: the migration from the format before maps the old name. Shown on a
# file of this format whose training config names `lr` as a fictitious older format would
# have, read by a fictitious next format that renamed it.


def _with_renamed_lr(tmp_path: Path) -> Path:
    state = load_checkpoint(FORMAT_2)
    state["train_config"] = {
        ("learning_rate" if key == "lr" else key): value for key, value in state["train_config"].items()
    }
    save_checkpoint(state, tmp_path / "renamed.pt")
    return tmp_path / "renamed.pt"


def test_an_older_field_name_is_refused_without_a_migration(tmp_path):
    with pytest.raises(CheckpointError, match="unknown fields: learning_rate"):
        read_checkpoint(_with_renamed_lr(tmp_path))


def test_a_migration_maps_an_older_field_name(tmp_path, monkeypatch):
    path = _with_renamed_lr(tmp_path)
    monkeypatch.setattr(checkpoint, "FORMAT_VERSION", FORMAT_VERSION + 1)
    monkeypatch.setattr(stored_form, "FORMAT_VERSION", FORMAT_VERSION + 1)
    monkeypatch.setitem(
        stored_form.MIGRATIONS, FORMAT_VERSION, renamed_fields({"train_config": {"learning_rate": "lr"}})
    )
    assert stored_form.migrated_formats() == tuple(range(1, FORMAT_VERSION + 1))
    migrated = read_checkpoint(path)
    assert migrated.train_config.lr == read_checkpoint(FORMAT_2).train_config.lr
    assert read_checkpoint(FORMAT_1).step == 2  # format 1 passes through both migrations


def test_every_older_format_has_a_migration_and_a_stored_file():
    assert stored_form.migrated_formats() == tuple(range(1, FORMAT_VERSION))
    for version in range(1, FORMAT_VERSION + 1):
        assert checkpoint_format(DATA / f"format{version}-lstm.pt") == version

import hashlib
import io
import pickle

import pytest
import torch

from charrnn.checkpoint import FORMAT_VERSION, MAGIC, load_checkpoint, save_checkpoint
from charrnn.errors import CheckpointError


def _state():
    return {
        "model_config": {"vocab_size": 3}, "train_config": {}, "vocab": ["a", "b", "世"],
        "model": {"w": torch.arange(6.0).view(2, 3)}, "optimizer": {}, "step": 7,
        "hidden": (torch.ones(1, 2, 3),), "rng": {"torch": torch.get_rng_state()},
    }


def _write_with_header(path, payload: bytes, version=FORMAT_VERSION):
    digest = hashlib.sha256(payload).hexdigest().encode()
    path.write_bytes(MAGIC + b"format %d sha256 %s bytes %d\n" % (version, digest, len(payload)) + payload)


def test_round_trip_keeps_every_value(tmp_path):
    save_checkpoint(_state(), tmp_path / "c.pt")
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["step"] == 7 and loaded["vocab"] == ["a", "b", "世"]
    assert torch.equal(loaded["model"]["w"], _state()["model"]["w"])
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


def test_saving_replaces_the_old_file_whole(tmp_path):
    save_checkpoint(_state(), tmp_path / "c.pt")
    save_checkpoint({**_state(), "step": 8}, tmp_path / "c.pt")
    assert load_checkpoint(tmp_path / "c.pt")["step"] == 8


def test_truncated_and_corrupted_files_are_detected(tmp_path):
    save_checkpoint(_state(), tmp_path / "c.pt")
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "short.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "short.pt")
    flipped = bytearray(data)
    flipped[-100] ^= 0x01
    (tmp_path / "flip.pt").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(tmp_path / "flip.pt")


def test_other_files_are_not_taken_for_checkpoints(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a charrnn checkpoint"):
        load_checkpoint(tmp_path / "notes.txt")
    torch.save(_state(), tmp_path / "plain.pt")  # a bare torch.save file
    with pytest.raises(CheckpointError, match="not a charrnn checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


def test_a_newer_format_is_refused_with_advice(tmp_path):
    buffer = io.BytesIO()
    torch.save(_state(), buffer)
    _write_with_header(tmp_path / "new.pt", buffer.getvalue(), version=FORMAT_VERSION + 1)
    with pytest.raises(CheckpointError, match="upgrade charrnn"):
        load_checkpoint(tmp_path / "new.pt")


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_whose_pickle_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "payload-ran"
    buffer = io.BytesIO()
    torch.save({**_state(), "model": _Payload(marker)}, buffer, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    _write_with_header(tmp_path / "evil.pt", buffer.getvalue())  # a valid header and checksum
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()

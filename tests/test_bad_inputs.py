"""Every row of docs/bad-inputs.md: the exit code and message it documents, one line, no traceback."""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner
from test_checkpoint import _Payload

from charrnn.cli.commands import main
from charrnn.core import nearest
from charrnn.store import output
from charrnn.store.checkpoint import load_checkpoint, save_checkpoint
from charrnn.store.checkpoint_file import MAGIC
from charrnn.store.outdir import RUN_FILE, OutDir
from helpers import PANGRAM, copy_run, fast_args, fingerprint, trained_pangram_run

DOC = Path(__file__).parent.parent / "docs" / "bad-inputs.md"
FAST = fast_args()


def _documented() -> dict[str, tuple[int, str]]:
    """id -> (exit code, message excerpt), from the table in docs/bad-inputs.md."""
    rows = re.findall(
        r"^\| `([a-z0-9-]+)` \|.*\| (\d) \| `(.+)` \|$", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE
    )
    return {row_id: (int(code), excerpt) for row_id, code, excerpt in rows}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """An out folder with a small finished run on the pangram (its corpus beside it)."""
    return trained_pangram_run(tmp_path_factory.mktemp("trained"))


def _write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def _crafted(path: Path, payload: bytes, version: int = 1) -> Path:
    digest = hashlib.sha256(payload).hexdigest().encode()
    return _write(path, MAGIC + b"format %d sha256 %s bytes %d\n" % (version, digest, len(payload)) + payload)


def _torch_bytes(state) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _binary_folder(path: Path) -> Path:
    """A folder holding only two binary files, as __pycache__ does."""
    _folder(path)
    for name in ("a.pyc", "b.pyc"):
        _write(path / name, b"\xa7\r\r\n\0\0\0\0" * 8)
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _holding(folder: Path, make) -> Path:
    """`folder` with one good text and one odd entry, made by `make(path)`."""
    folder.mkdir()
    _write(folder / "good.txt", PANGRAM * 60)
    make(folder / "odd")
    return folder


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _with_config(trained: Path, tmp: Path, **changes) -> Path:
    state = load_checkpoint(trained / "run" / "latest.pt")
    state["model_config"] = {**state["model_config"], **changes}
    save_checkpoint(state, tmp / "odd.pt")
    return tmp / "odd.pt"


def _with_state(trained: Path, tmp: Path, change) -> Path:
    """The trained run's checkpoint with `change(state)` applied, saved as odd.pt."""
    state = load_checkpoint(trained / "run" / "latest.pt")
    change(state)
    save_checkpoint(state, tmp / "odd.pt")
    return tmp / "odd.pt"


def _as_model_file(state) -> None:
    """`state` as `charrnn export` stores it: marked, without the training state."""
    for key in ("optimizer", "hidden", "rng", "rng_ranks", "world_size", "data_position", "evals_since_best"):
        state.pop(key, None)
    state["weights_only"] = True


def _moments(state) -> dict:
    """AdamW's state of the first parameter (embedding.weight)."""
    return state["optimizer"]["state"][0]


def _resume_state(trained: Path, tmp: Path, change) -> list:
    """`charrnn train --resume` of the trained run's checkpoint with `change(state)` applied."""
    return ["train", trained / "corpus.txt", "--resume", _with_state(trained, tmp, change)]


def _overflowing(trained: Path, tmp: Path) -> Path:
    """The trained model with finite weights so large that its predictions overflow."""
    return _with_state(trained, tmp, lambda state: state["model"]["head.weight"].mul_(1e38))


def _damaged(trained: Path, tmp: Path, cut: bool) -> Path:
    data = bytearray((trained / "run" / "latest.pt").read_bytes())
    if cut:
        return _write(tmp / "half.pt", bytes(data[: len(data) // 2]))
    data[-10] ^= 0xFF
    return _write(tmp / "flipped.pt", bytes(data))


def _held(folder: Path) -> Path:
    """An out folder whose lock another owner holds (this process, through another descriptor)."""
    OutDir(folder).acquire()
    return folder


def _out_with(tmp: Path, name: str, make) -> Path:
    """An out folder holding only `name`, made by `make(path)` (a user's file, a link, a pipe)."""
    folder = _folder(tmp / "o")
    make(folder / name)
    return folder


def _users_text(path: Path) -> None:
    _write(path, "my notes\n")


def _users_log(path: Path) -> None:
    _write(path, '{"step": 1, "loss": 2.5}\n')  # another tool's metrics.jsonl


def _users_json(path: Path) -> None:
    _write(path, '{"experiment": "baseline"}\n')


def _link_to_users(path: Path) -> None:
    path.symlink_to(_write(path.parent.parent / "thesis.txt", "chapter one\n"))


def _linked(path: Path) -> Path:
    _link_to_users(path)
    return path


def _hard_link(path: Path) -> None:
    os.link(_write(path.parent.parent / "thesis.txt", "chapter one\n"), path)


def _other_run(trained: Path, tmp: Path) -> Path:
    """A copy of the trained run under another run id: a different run."""
    copy = copy_run(trained, tmp)
    (copy / RUN_FILE).write_text(json.dumps({"id": "0ther0000run", "forked_from": None}))
    return copy


def _metrics_run(tmp: Path, make) -> Path:
    """An out folder whose metrics.jsonl is made by `make(path)`."""
    run = _folder(tmp / "run")
    make(run / "metrics.jsonl")
    return run


def _without_opencc(monkeypatch) -> None:
    """As where OpenCC is not installed: its import fails, and no converter loaded before is kept."""
    monkeypatch.setitem(sys.modules, "opencc", None)
    monkeypatch.setattr(nearest, "variant_converters", functools.cache(nearest.variant_converters.__wrapped__))


def _read_only(path: Path):
    """files.create_new as a read-only folder answers it (tests run as root, which a mode does not stop)."""
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))


class _Alone(list):
    """Arguments to run in a process of their own, with a timeout: a FIFO that a regression
    would wait on for ever must fail the case, not hang the suite."""


def _in_own_process(arguments: list[str], env: dict[str, str] | None) -> SimpleNamespace:
    done = subprocess.run(
        [sys.executable, "-m", "charrnn", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    return SimpleNamespace(exit_code=done.returncode, stderr=done.stderr, output=done.stdout + done.stderr)


def _train(corpus, *args):
    return ["train", corpus, *FAST, *args]


# id -> the arguments of the bad command (or they and environment variables, and a change to make with
# monkeypatch first), given (tmp folder, trained run folder)
CASES = {
    "corpus-missing": lambda t, r: _train(t / "nosuch.txt", "--out", t / "o"),
    "corpus-empty-folder": lambda t, r: _train(_folder(t / "empty"), "--out", t / "o"),
    "corpus-folder-only-binary": lambda t, r: _train(_binary_folder(t / "__pycache__"), "--out", t / "o"),
    "corpus-pattern-unmatched": lambda t, r: _train(t / "texts" / "*.txt", "--out", t / "o"),
    "corpus-empty": lambda t, r: _train(_write(t / "empty.txt", ""), "--out", t / "o"),
    "corpus-whitespace": lambda t, r: _train(_write(t / "blank.txt", " \n\t\n"), "--out", t / "o"),
    "corpus-too-short": lambda t, r: _train(_write(t / "tiny.txt", "abc\n" * 10), "--out", t / "o"),
    "corpus-not-utf8": lambda t, r: _train(
        _write(t / "latin1.txt", "café au lait\n".encode("latin-1") * 50), "--out", t / "o"
    ),
    "corpus-binary": lambda t, r: _train(_write(t / "ls", b"\x7fELF\x00\x01\x02" * 50), "--out", t / "o"),
    "corpus-stdin-empty": lambda t, r: _train("-", "--out", t / "o"),
    "corpus-stdin-with-files": lambda t, r: _train("-", r / "corpus.txt", "--out", t / "o"),
    "corpus-pipe-no-writer": lambda t, r: _train(_fifo(t / "pipe"), "--out", t / "o"),
    "corpus-device": lambda t, r: _train("/dev/null", "--out", t / "o"),
    "corpus-folder-broken-link": lambda t, r: _train(
        _holding(t / "texts", lambda p: p.symlink_to(t / "gone")), "--out", t / "o"
    ),
    "corpus-folder-pipe": lambda t, r: _train(_holding(t / "texts", os.mkfifo), "--out", t / "o"),
    "corpus-folder-only-runs": lambda t, r: ["eval", r / "run", "-c", r / "run"],
    "corpus-own-run-file": lambda t, r: _train(copy_run(r, t) / "samples.txt", "--out", t / "run"),
    "cache-env-empty": lambda t, r: (_train(r / "corpus.txt", "--out", t / "o"), {"CHARRNN_CACHE": ""}),
    "cache-unwritable": lambda t, r: (
        _train(r / "corpus.txt", "--out", t / "o"),
        {"CHARRNN_CACHE": str(_write(t / "file", "") / "cache")},
    ),
    "encoding-unknown": lambda t, r: _train(r / "corpus.txt", "--encoding", "klingon", "--out", t / "o"),
    "one-hot-vocab-too-big": lambda t, r: _train(
        _write(t / "chinese.txt", "".join(chr(0x4E00 + i) for i in range(5000)) * 2 + "\n"),
        "--input",
        "one-hot",
        "--out",
        t / "o",
    ),
    "embed-dropout-one-hot": lambda t, r: _train(
        r / "corpus.txt", "--input", "one-hot", "--embed-dropout", "0.1", "--out", t / "o"
    ),
    "seq-len-zero": lambda t, r: ["train", "--seq-len", "0"],
    "batch-size-zero": lambda t, r: ["train", "--batch-size", "0"],
    "hidden-size-negative": lambda t, r: ["train", "--hidden-size", "-5"],
    "layers-zero": lambda t, r: ["train", "--layers", "0"],
    "lr-zero": lambda t, r: ["train", "--lr", "0"],
    "lr-nan": lambda t, r: ["train", "--lr", "nan"],
    "lr-infinite": lambda t, r: ["train", "--lr", "inf"],
    "dropout-one": lambda t, r: ["train", "--dropout", "1"],
    "dropout-negative": lambda t, r: ["train", "--dropout", "-0.1"],
    "val-fraction-one": lambda t, r: ["train", "--val-fraction", "1"],
    "min-count-zero": lambda t, r: ["train", "--min-count", "0"],
    "min-count-leaves-nothing": lambda t, r: _train(r / "corpus.txt", "--min-count", "100000", "--out", t / "o"),
    "keep-zero": lambda t, r: ["train", "--keep", "0"],
    "steps-and-epochs": lambda t, r: ["train", "--max-steps", "9", "--epochs", "1"],
    "cell-unknown": lambda t, r: ["train", "--cell", "transformer"],
    "device-cuda-missing": lambda t, r: _train(r / "corpus.txt", "--device", "cuda", "--out", t / "o"),
    "out-unwritable": lambda t, r: _train(r / "corpus.txt", "--out", _write(t / "file", "") / "run"),
    "out-holds-run-other-options": lambda t, r: _train(r / "corpus.txt", "--lr", "0.002", "--out", r / "run"),
    "out-holds-run-other-corpus": lambda t, r: _train(
        _write(t / "other.txt", "ZEBRAS 123\n" * 100), "--out", r / "run"
    ),
    "out-holds-unloadable-run": lambda t, r: _train(
        r / "corpus.txt", "--out", _write(_folder(t / "o") / "run.json", '{"id": "0ther0000run"}\n').parent
    ),
    "out-in-use": lambda t, r: _train(r / "corpus.txt", "--out", _held(t / "o")),
    "out-file-not-ours": lambda t, r: _train(r / "corpus.txt", "--out", _out_with(t, "metrics.jsonl", _users_log)),
    "out-file-link": lambda t, r: _train(r / "corpus.txt", "--out", _out_with(t, ".charrnn.lock", _link_to_users)),
    "out-file-hard-link": lambda t, r: _train(r / "corpus.txt", "--out", _out_with(t, "samples.txt", _hard_link)),
    "out-file-pipe": lambda t, r: _Alone(_train(r / "corpus.txt", "--out", _out_with(t, "run.json", os.mkfifo))),
    "out-run-json-not-ours": lambda t, r: _train(r / "corpus.txt", "--out", _out_with(t, "run.json", _users_json)),
    "out-lock-not-ours": lambda t, r: _train(r / "corpus.txt", "--out", _out_with(t, ".charrnn.lock", _users_text)),
    "out-checkpoint-not-ours": lambda t, r: _train(r / "corpus.txt", "--out", _out_with(t, "best.pt", _users_text)),
    "resume-into-other-run": lambda t, r: _train(r / "corpus.txt", "--resume", r / "run", "--out", _other_run(r, t)),
    "resume-older-step": lambda t, r: _train(r / "corpus.txt", "--resume", copy_run(r, t) / "step-00000010.pt"),
    "resume-no-checkpoint": lambda t, r: _train(r / "corpus.txt", "--resume", "--out", t),
    "resume-other-corpus": lambda t, r: _train(
        _write(t / "other.txt", "ZEBRAS 123\n" * 100), "--resume", "--max-steps", "40", "--out", copy_run(r, t)
    ),
    "resume-other-architecture": lambda t, r: _train(
        r / "corpus.txt", "--resume", "--hidden-size", "64", "--cell", "gru", "--out", copy_run(r, t)
    ),
    "resume-and-init-from": lambda t, r: _train(
        r / "corpus.txt", "--resume", "--init-from", r / "run", "--out", t / "o"
    ),
    "init-from-other-architecture": lambda t, r: _train(
        r / "corpus.txt", "--init-from", r / "run", "--hidden-size", "64", "--out", t / "o"
    ),
    "fold-variants-no-opencc": lambda t, r: (
        _train(r / "corpus.txt", "--fold-variants", "--out", t / "o"),
        None,
        _without_opencc,
    ),
    "resume-fold-variants": lambda t, r: _train(
        r / "corpus.txt", "--resume", "--fold-variants", "--out", copy_run(r, t)
    ),
    "resume-corpus-as-path": lambda t, r: ["train", "--resume", r / "corpus.txt", "--out", t / "o"],
    "temp-zero": lambda t, r: ["sample", "--temp", "0"],
    "top-k-zero": lambda t, r: ["sample", "--top-k", "0"],
    "top-p-zero": lambda t, r: ["sample", "--top-p", "0"],
    "top-p-above-one": lambda t, r: ["sample", "--top-p", "1.5"],
    "length-negative": lambda t, r: ["sample", "--length", "-1"],
    "prime-unknown": lambda t, r: ["sample", "-c", r / "run", "--prime", "Zoë"],
    "prime-unknown-refused": lambda t, r: ["sample", "-c", r / "run", "--prime", "Zoë", "--unknown", "refuse"],
    "unknown-not-a-policy": lambda t, r: ["sample", "--unknown", "guess"],
    "prime-file-and-prime": lambda t, r: [
        "sample",
        "-c",
        r / "run",
        "--prime",
        "a",
        "--prime-file",
        _write(t / "p.txt", "ab"),
    ],
    "prime-file-not-utf8": lambda t, r: ["sample", "-c", r / "run", "--prime-file", _write(t / "p.txt", b"caf\xe9")],
    "prime-file-pipe-no-writer": lambda t, r: _Alone(["sample", "-c", r / "run", "--prime-file", _fifo(t / "p")]),
    "sample-output-not-ours": lambda t, r: ["sample", "-c", r / "run", "-o", _write(t / "notes.txt", "mine")],
    "sample-output-interactive": lambda t, r: ["sample", "-c", r / "run", "-i", "-o", t / "s.txt"],
    "checkpoint-missing": lambda t, r: ["sample", "-c", t / "nosuch.pt"],
    "checkpoint-none-in-folder": lambda t, r: ["sample", "-c", t],
    "checkpoint-corrupt": lambda t, r: ["sample", "-c", _damaged(r, t, cut=False)],
    "checkpoint-truncated": lambda t, r: ["sample", "-c", _damaged(r, t, cut=True)],
    "checkpoint-foreign": lambda t, r: ["sample", "-c", _write(t / "model.bin", b"\x00\x01 weights")],
    "checkpoint-pickle": lambda t, r: [
        "sample",
        "-c",
        _crafted(t / "evil.pt", _torch_bytes({"model": _Payload(t / "ran")})),
    ],
    "checkpoint-newer": lambda t, r: ["sample", "-c", _crafted(t / "future.pt", _torch_bytes({}), version=6)],
    "info-checkpoint-twice": lambda t, r: ["info", r / "run", "-c", r / "run"],
    "eval-text-missing": lambda t, r: ["eval", t / "nosuch.txt", "-c", r / "run"],
    "eval-not-a-number": lambda t, r: ["eval", r / "corpus.txt", "-c", _overflowing(r, t)],
    "checkpoint-bad-config": lambda t, r: ["sample", "-c", _with_config(r, t, hidden_size=-3)],
    "checkpoint-device": lambda t, r: ["sample", "-c", "/dev/zero"],
    "checkpoint-huge-claim": lambda t, r: ["sample", "-c", _with_config(r, t, hidden_size=12_000)],
    "checkpoint-layers-claim": lambda t, r: ["train", r / "corpus.txt", "--resume", _with_config(r, t, layers=64)],
    "checkpoint-view-claim": lambda t, r: [
        "sample",
        "-c",
        _crafted(
            t / "view.pt",
            _torch_bytes({**load_checkpoint(r / "run" / "latest.pt"), "hidden": (torch.zeros(1).expand(10**8),)}),
        ),
    ],
    "checkpoint-nan": lambda t, r: [
        "sample",
        "-c",
        _with_state(r, t, lambda s: s["model"]["head.bias"].fill_(float("nan"))),
    ],
    "checkpoint-odd-field": lambda t, r: ["info", _with_state(r, t, lambda s: s.update(step="7"))],
    "checkpoint-alias-is-entry": lambda t, r: [
        "sample",
        "-c",
        _with_state(r, t, lambda s: s.update(vocab_aliases={"a": 3})),
    ],
    "checkpoint-alias-no-id": lambda t, r: [
        "sample",
        "-c",
        _with_state(r, t, lambda s: s.update(vocab_aliases={"A": 999})),
    ],
    "resume-moment-wrong-shape": lambda t, r: _resume_state(
        r, t, lambda s: _moments(s).update(exp_avg=torch.zeros(3, 3))
    ),
    "resume-moment-negative": lambda t, r: _resume_state(
        r, t, lambda s: _moments(s)["exp_avg_sq"].view(-1).__setitem__(0, -1.0)
    ),
    "resume-adam-step-vector": lambda t, r: _resume_state(r, t, lambda s: _moments(s).update(step=torch.ones(3))),
    "resume-three-betas": lambda t, r: _resume_state(
        r, t, lambda s: s["optimizer"]["param_groups"][0].update(betas=(0.9, 0.99, 0.999))
    ),
    "resume-hidden-nan": lambda t, r: _resume_state(r, t, lambda s: s["hidden"][0].fill_(float("nan"))),
    "resume-best-loss-absurd": lambda t, r: _resume_state(r, t, lambda s: s.update(best_val_loss=-1e308)),
    "resume-best-loss-nan": lambda t, r: _resume_state(r, t, lambda s: s.update(best_val_loss=float("nan"))),
    "resume-best-loss-huge": lambda t, r: _resume_state(r, t, lambda s: s.update(best_val_loss=1e300)),
    "resume-model-file": lambda t, r: _resume_state(r, t, _as_model_file),
    "model-file-unmarked": lambda t, r: [
        "sample",
        "-c",
        _with_state(r, t, lambda s: [s.pop(key) for key in ("optimizer", "hidden", "rng")]),
    ],
    "export-file-exists": lambda t, r: ["export", _write(t / "mine.model", "mine"), "-c", r / "run"],
    "export-page-exists": lambda t, r: ["export", _write(t / "mine.html", "<p>mine</p>"), "-c", r / "run"],
    "resume-rng-garbage": lambda t, r: _resume_state(
        r, t, lambda s: s["rng"].update(torch=torch.zeros(5056, dtype=torch.uint8))
    ),
    "config-unknown-key": lambda t, r: [
        "train",
        r / "corpus.txt",
        "--config",
        _write(t / "run.toml", "hiden-size = 24\n"),
        "--out",
        t / "o",
    ],
    "config-not-toml": lambda t, r: [
        "train",
        r / "corpus.txt",
        "--config",
        _write(t / "notes.txt", "hidden size: 24\n"),
        "--out",
        t / "o",
    ],
    "patience-zero": lambda t, r: ["train", "--patience", "0"],
    "stop-empty": lambda t, r: ["sample", "-c", r / "run", "--stop", ""],
    "beam-with-samples": lambda t, r: ["sample", "-c", r / "run", "--beam", "4", "-n", "3"],
    "plot-no-metrics": lambda t, r: ["plot", t, "-o", t / "x.png"],
    "threads-not-auto-or-count": lambda t, r: ["train", "--threads", "x"],
    "threads-zero": lambda t, r: ["train", "--threads", "0"],
    "config-threads-not-auto": lambda t, r: [
        "train",
        r / "corpus.txt",
        "--config",
        _write(t / "run.toml", 'threads = "many"\n'),
        "--out",
        t / "o",
    ],
    "config-float-for-int": lambda t, r: [
        "train",
        r / "corpus.txt",
        "--config",
        _write(t / "run.toml", "hidden-size = 16.9\n"),
        "--out",
        t / "o",
    ],
    "config-wrong-type": lambda t, r: [
        "train",
        r / "corpus.txt",
        "--config",
        _write(t / "run.toml", 'lr = "0.01"\n'),
        "--out",
        t / "o",
    ],
    "config-flag-not-boolean": lambda t, r: [
        "train",
        r / "corpus.txt",
        "--config",
        _write(t / "run.toml", 'quiet = "yes"\n'),
        "--out",
        t / "o",
    ],
    "config-out-of-range": lambda t, r: [
        "train",
        r / "corpus.txt",
        "--config",
        _write(t / "run.toml", "layers = 0\n"),
        "--out",
        t / "o",
    ],
    "config-not-a-file": lambda t, r: ["train", r / "corpus.txt", "--config", "/dev/zero", "--out", t / "o"],
    "config-too-large": lambda t, r: [
        "train",
        r / "corpus.txt",
        "--config",
        _write(t / "huge.toml", "#" * (2 << 20)),
        "--out",
        t / "o",
    ],
    "config-nested-too-deep": lambda t, r: [
        "train",
        r / "corpus.txt",
        "--config",
        _write(t / "deep.toml", "lr = " + "[" * 5000 + "]" * 5000 + "\n"),
        "--out",
        t / "o",
    ],
    "env-bad-value": lambda t, r: (["train", r / "corpus.txt", "--out", t / "o"], {"CHARRNN_TRAIN_HIDDEN_SIZE": "abc"}),
    "encoding-not-text": lambda t, r: _train(r / "corpus.txt", "--encoding", "rot13", "--out", t / "o"),
    "eval-encoding-not-text": lambda t, r: ["eval", r / "corpus.txt", "-c", r / "run", "--encoding", "base64"],
    "eval-windows-not-positive": lambda t, r: ["eval", r / "corpus.txt", "-c", r / "run", "--windows", "0"],
    "eval-unknown-refused": lambda t, r: [
        "eval",
        _write(t / "other.txt", "Zebra 1\n"),
        "-c",
        r / "run",
        "--unknown",
        "refuse",
    ],
    "eval-unknown-map-nothing-near": lambda t, r: [
        "eval",
        _write(t / "other.txt", "Zebra 1\n"),
        "-c",
        r / "run",
        "--unknown",
        "map",
    ],
    "eval-windows-longer-than-text": lambda t, r: [
        "eval",
        _write(t / "short.txt", "the fox\n"),
        "-c",
        r / "run",
        "--windows",
        "64",
    ],
    "adapt-lr-out-of-range": lambda t, r: ["eval", r / "corpus.txt", "-c", r / "run", "--adapt", "--adapt-lr", "2"],
    "adapt-segment-not-positive": lambda t, r: [
        "eval",
        r / "corpus.txt",
        "-c",
        r / "run",
        "--adapt",
        "--adapt-segment",
        "0",
    ],
    "adapt-text-shorter-than-a-segment": lambda t, r: [
        "eval",
        _write(t / "short.txt", "the fox\n"),
        "-c",
        r / "run",
        "--adapt",
    ],
    "adapt-diverged": lambda t, r: [
        "eval",
        r / "corpus.txt",
        "-c",
        r / "run",
        "--adapt",
        "--adapt-lr",
        "1",
        "--adapt-decay",
        "0",
        "--adapt-segment",
        "8",
    ],
    "adapt-text-empty": lambda t, r: ["sample", "-c", r / "run", "--adapt", _write(t / "empty.txt", "")],
    "adapt-save-exists": lambda t, r: [
        "sample",
        "-c",
        r / "run",
        "--adapt",
        r / "corpus.txt",
        "--save",
        _write(t / "mine.pt", "mine"),
    ],
    "adapt-save-without-text": lambda t, r: ["sample", "-c", r / "run", "--save", t / "new.pt"],
    "seed-too-large": lambda t, r: ["train", "--seed", str(2**64)],
    "max-steps-too-large": lambda t, r: ["train", "--max-steps", str(10**30)],
    "hidden-size-too-large": lambda t, r: ["train", "--hidden-size", str(10**12)],
    "layers-too-many": lambda t, r: ["train", "--layers", str(10**6)],
    "lr-too-large": lambda t, r: ["train", "--lr", "1e300"],
    "num-samples-too-many": lambda t, r: ["sample", "-n", str(10**9)],
    "beam-length-too-long": lambda t, r: ["sample", "-c", r / "run", "--beam", "4", "-l", str(10**13)],
    "model-too-large": lambda t, r: [
        "train",
        r / "corpus.txt",
        "--hidden-size",
        "16384",
        "--layers",
        "64",
        "--out",
        t / "o",
    ],
    "path-empty": lambda t, r: ["train", r / "corpus.txt", "--out", ""],
    "distributed-rank-missing": lambda t, r: (_train(r / "corpus.txt", "--out", t / "o"), {"WORLD_SIZE": "2"}),
    "distributed-rank-out-of-range": lambda t, r: (
        _train(r / "corpus.txt", "--out", t / "o"),
        {"WORLD_SIZE": "2", "RANK": "2"},
    ),
    "distributed-not-a-number": lambda t, r: (_train(r / "corpus.txt", "--out", t / "o"), {"WORLD_SIZE": "two"}),
    "plot-metrics-not-a-file": lambda t, r: ["plot", _metrics_run(t, lambda p: p.mkdir()), "-o", t / "x.png"],
    "plot-metrics-damaged": lambda t, r: [
        "plot",
        _metrics_run(t, lambda p: _write(p, b'\xff\xfe\n[1, 2]\n{"step": "x"}\n')),
        "-o",
        t / "x.png",
    ],
    "plot-output-folder-missing": lambda t, r: ["plot", r / "run", "-o", t / "no" / "bpc.png"],
    "plot-output-link": lambda t, r: ["plot", r / "run", "-o", _linked(_folder(t / "p") / "link.png")],
    "viz-no-text": lambda t, r: ["viz", "-c", r / "run"],
    "viz-text-and-files": lambda t, r: ["viz", r / "corpus.txt", "--text", "hi", "-c", r / "run"],
    "viz-text-empty": lambda t, r: ["viz", "--text", "", "-c", r / "run"],
    "viz-chars-over-limit": lambda t, r: ["viz", r / "corpus.txt", "--chars", "50000", "-c", r / "run"],
    "viz-temperatures-not-numbers": lambda t, r: ["viz", r / "corpus.txt", "--temperatures", "0.5,hot"],
    "viz-output-not-html": lambda t, r: ["viz", r / "corpus.txt", "-c", r / "run", "-o", r / "corpus.txt"],
    "viz-output-folder-missing": lambda t, r: ["viz", r / "corpus.txt", "-c", r / "run", "-o", t / "no" / "p.html"],
    "viz-output-not-ours": lambda t, r: [
        "viz",
        r / "corpus.txt",
        "-c",
        r / "run",
        "-o",
        _write(t / "notes.html", "mine"),
    ],
    "viz-output-pipe": lambda t, r: _Alone(["viz", r / "corpus.txt", "-c", r / "run", "-o", _fifo(t / "p.html")]),
    "viz-output-unwritable": lambda t, r: (
        ["viz", r / "corpus.txt", "-c", r / "run", "-o", t / "page.html"],
        None,
        lambda monkeypatch: monkeypatch.setattr(output, "create_new", _read_only),
    ),
    "viz-color-unknown": lambda t, r: ["viz", r / "corpus.txt", "-c", r / "run", "--ansi", "--color", "sometimes"],
    "viz-cell-without-ansi": lambda t, r: ["viz", r / "corpus.txt", "-c", r / "run", "--cell", "1:3"],
    "viz-cell-malformed": lambda t, r: ["viz", r / "corpus.txt", "-c", r / "run", "--ansi", "--cell", "3"],
    "viz-unknown-refused": lambda t, r: ["viz", "--text", "Zoë", "-c", r / "run", "--unknown", "refuse"],
    "viz-prime-unknown": lambda t, r: ["viz", r / "corpus.txt", "-c", r / "run", "--prime", "ë", "--unknown", "map"],
    "viz-cell-no-such-layer": lambda t, r: ["viz", r / "corpus.txt", "-c", r / "run", "--ansi", "--cell", "9:0"],
}


def test_the_table_and_the_cases_list_the_same_inputs():
    assert list(_documented()) == list(CASES)
    assert len(CASES) >= 20


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_input_gets_its_documented_line_and_exit_code(case_id, tmp_path, trained, monkeypatch):
    if case_id == "device-cuda-missing" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    exit_code, excerpt = _documented()[case_id]
    before = fingerprint(trained)
    case = CASES[case_id](tmp_path, trained)  # the arguments, or (arguments, environment[, change])
    arguments, env, change = (*case, None)[:3] if isinstance(case, tuple) else (case, None, None)
    if change is not None:
        change(monkeypatch)
    if isinstance(arguments, _Alone):
        result = _in_own_process([str(a) for a in arguments], env)
    else:
        result = CliRunner().invoke(main, [str(a) for a in arguments], env=env)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == exit_code, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert excerpt in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert fingerprint(trained) == before  # nothing the user had was touched
    assert not (tmp_path / "ran").exists()  # no code from a checkpoint ran

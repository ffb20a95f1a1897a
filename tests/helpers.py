"""What test modules share: small texts, option sets for tiny quick runs, and helpers.

Fixtures that pytest injects live in conftest.py; everything a test imports lives here.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from charrnn.core.model import CharRNN
from charrnn.core.vocab import Vocab
from charrnn.run.progress import Reporter
from charrnn.run.training import TrainRequest, TrainResult, run_training
from charrnn.settings.config import ModelConfig
from charrnn.store.checkpoint import read_checkpoint
from charrnn.store.loading import LoadedModel, torch_model
from charrnn.store.metrics import MetricsRecords
from charrnn.store.outdir import LOCK_FILE, load_from

# The fault test's bit-for-bit comparison of two training states, shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from fault_test import training_state_differences  # noqa: E402

# A sentence whose characters recur in several contexts ('o' is followed by w, x, v, g, ...),
# so predicting it well needs memory beyond the previous character.
PANGRAM = "the quick brown fox jumps over the lazy dog\n"

# Small enough to train in a second or two, large enough to learn a repeating text
# (the Python API's option names: charrnn.run.training.TrainRequest.options).
TINY_OPTIONS = {
    "hidden_size": 32,
    "layers": 2,
    "embed_dim": 16,
    "seq_len": 16,
    "batch_size": 4,
    "dropout": 0.1,
    "lr": 1e-2,
    "warmup_steps": 5,
    "max_steps": 30,
    "eval_every": 10,
    "save_every": 10,
    "log_every": 5,
}

# The command line's tiny quick run: 20 steps, an evaluation and a save every 10.
FAST_RUN: dict[str, Any] = {
    "hidden_size": 24,
    "layers": 1,
    "seq_len": 16,
    "batch_size": 4,
    "max_steps": 20,
    "eval_every": 10,
    "save_every": 10,
    "warmup_steps": 2,
}


def fast_args(base: dict[str, Any] | None = None, **changes: Any) -> list[str]:
    """Command-line options for a tiny run: `base` (FAST_RUN unless given) with `changes`;
    a value None leaves the option out, True gives a bare flag (`quiet=True` -> --quiet)."""
    options = {**(FAST_RUN if base is None else base), **changes}
    args: list[str] = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def mixed_script_text() -> str:
    """English, Chinese, emoji (outside the BMP) and a CJK extension-B character."""
    return "Hello, 世界! 春眠不觉晓，处处闻啼鸟。🙂🚀 𥫗 naïve café\n"


def train(
    corpus: Path | None, out: Path, options: dict, resume: str | None = None, reporter: Reporter | None = None
) -> TrainResult:
    request = TrainRequest(
        corpus=() if corpus is None else (str(corpus),), out_dir=out, device="cpu", resume=resume, options=options
    )
    return run_training(request, reporter)


def read_metrics(folder: Path) -> tuple[list[dict[str, Any]], int]:
    """The figures' records of a run's metrics.jsonl, and how many lines were skipped as damaged."""
    records = MetricsRecords(folder)
    return list(records), records.skipped


class Crash(Exception):
    """Stands for the process dying."""


class CrashAtStep(Reporter):
    """Kills training (by raising) right after update `step`, before anything is saved."""

    def __init__(self, step: int):
        self.step = step

    def advance(self, step: int, elapsed: float) -> None:
        if step == self.step:
            raise Crash


def assert_same_training_state(path_a: Path, path_b: Path) -> None:
    """Two checkpoints hold bit-identical weights, optimizer state, hidden state and RNG."""
    a, b = read_checkpoint(path_a), read_checkpoint(path_b)
    assert training_state_differences(a, b) == []
    assert a.best_val_loss == b.best_val_loss


def random_model(cell: str, input_mode: str, vocab_size: int, layers: int, hidden_size: int, seed: int = 0) -> CharRNN:
    """A small untrained CharRNN in eval mode, its weights doubled (as training makes them:
    some gates saturate, logits spread), for comparing what two implementations compute."""
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=vocab_size, cell=cell, layers=layers, hidden_size=hidden_size, input_mode=input_mode, embed_dim=8
    )
    model = CharRNN(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(2)
    return model.eval()


def cli_in_fresh_process(*runs: list[str]) -> tuple[str, bool]:
    """Run `charrnn` once per argument list in one new Python process (each must exit 0): its
    stdout, and whether it imported torch."""
    code = (
        "import sys\n"
        "from charrnn.cli.commands import main\n"
        f"for args in {[list(map(str, run)) for run in runs]!r}:\n"
        "    try: main(args)\n"
        "    except SystemExit as exit: assert exit.code == 0, exit.code\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr.strip().splitlines()[-1] == "True"


def trained_pangram_run(folder: Path) -> Path:
    """`folder` with a corpus (corpus.txt, the pangram) and a small finished run on it (run/)."""
    from click.testing import CliRunner

    from charrnn.cli.commands import main

    (folder / "corpus.txt").write_text(PANGRAM * 60, encoding="utf-8")
    result = CliRunner().invoke(
        main, ["train", str(folder / "corpus.txt"), *fast_args(), "--out", str(folder / "run"), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    return folder


def copy_run(trained: Path, tmp: Path) -> Path:
    """A copy of `trained`/run as `tmp`/run, for commands that would resume (and so write to) it."""
    copy = tmp / "run"
    copy.mkdir()
    for path in (trained / "run").iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    return copy


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file's hash, but the lock file's: who last held the folder is no one's data."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_FILE]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def vocab_of(text: str) -> Vocab:
    """Every distinct character of `text`, in code-point order."""
    return Vocab(sorted(set(text)))


def load_model(location: str | Path, device: torch.device) -> LoadedModel:
    """The model in a checkpoint file, or in an out folder's best.pt (else its newest good one),
    as a torch CharRNN on `device` (for scoring; sampling takes either)."""
    found = load_from(location, prefer="best")
    return LoadedModel(
        torch_model(found, device),
        found.checkpoint.vocab,
        found.path,
        found.checkpoint.step,
        found.passed_over,
        found.checkpoint,
    )

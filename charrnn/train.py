"""Training: prepare a run (fresh or resumed), then the truncated-BPTT loop.

A run's whole state lives in its checkpoints, so a run stopped after any save and resumed
with the same command ends bit-identical (on CPU) to one never stopped: the data position
is a function of the step, the learning rate a function of the step, and the weights,
optimizer moments, carried hidden state and random generator state are all saved.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from charrnn import __version__
from charrnn.checkpoint import BEST, LATEST, find_checkpoint, load_checkpoint, model_parts, save_checkpoint
from charrnn.config import ModelConfig, TrainConfig, pick, resume_configs, to_dict
from charrnn.corpus import Corpus, builtin_corpus, read_corpus
from charrnn.data import Streams, eval_streams, split_train_val
from charrnn.errors import CheckpointError, ConfigError
from charrnn.evaluate import evaluate_loss
from charrnn.model import CharRNN, Hidden, detach_hidden, num_parameters
from charrnn.optim import build_optimizer, learning_rate, set_learning_rate
from charrnn.progress import Reporter
from charrnn.runtime import rng_state, select_device, set_rng_state
from charrnn.vocab import Vocab


@dataclass(frozen=True)
class TrainRequest:
    """What the user asked for."""

    corpus: str | None  # a text file; None: the built-in corpus, or on resume the checkpoint's corpus
    out_dir: Path
    device: str = "auto"
    resume: str | None = None  # a checkpoint file or out folder to continue from
    options: Mapping[str, Any] = field(default_factory=dict)  # only the options the user gave


@dataclass(frozen=True)
class TrainResult:
    """How a run ended."""

    step: int
    total_steps: int
    best_val_loss: float | None
    last_val_loss: float | None
    already_complete: bool
    out_dir: Path


def run_training(request: TrainRequest, reporter: Reporter | None = None) -> TrainResult:
    """Start or resume a run as `request` says, and train until its total step count."""
    reporter = reporter or Reporter()
    device = select_device(request.device)
    resumed = _load_resume_point(request.resume) if request.resume is not None else None
    if resumed is None:
        _refuse_to_overwrite(request.out_dir)
    corpus = _corpus_for(request, resumed)
    vocab, model_config, train_config = _run_setup(request, resumed, corpus)
    train_ids, val_ids = split_train_val(vocab.encode(corpus.text), train_config.val_fraction)
    train_streams = Streams(train_ids, train_config.batch_size, train_config.seq_len, name="training text")
    val_streams = eval_streams(val_ids) if train_config.val_fraction > 0 else None

    torch.manual_seed(train_config.seed)
    model = CharRNN(model_config).to(device)
    trainer = Trainer(model, train_streams, val_streams, train_config, device, request.out_dir, reporter)
    trainer.checkpoint_extras = {"vocab": list(vocab.chars), "corpus": corpus.fingerprint()}
    if resumed is not None:
        trainer.restore(resumed.state, resumed.path)
    # Only now, with every input checked, does the run say anything.
    _announce(reporter, trainer, corpus, vocab, resumed)
    return trainer.fit()


def _run_setup(
    request: TrainRequest, resumed: _ResumePoint | None, corpus: Corpus
) -> tuple[Vocab, ModelConfig, TrainConfig]:
    """The vocabulary and configs: new ones from the corpus and options, or the checkpoint's."""
    if resumed is None:
        vocab = Vocab.from_text(corpus.text)
        model_config = ModelConfig(vocab_size=len(vocab), **pick(ModelConfig, request.options))
        return vocab, model_config, TrainConfig(**pick(TrainConfig, request.options))
    _check_vocab_covers(corpus, resumed.vocab)
    return (resumed.vocab, *resume_configs(resumed.model_config, resumed.train_config, request.options))


def _announce(reporter: Reporter, trainer: Trainer, corpus: Corpus, vocab: Vocab, resumed: _ResumePoint | None) -> None:
    config = trainer.model.config
    reporter.message(f"corpus: {corpus.description} ({len(corpus.text):,} characters)")
    reporter.message(
        f"model: {config.cell.upper()} {config.layers}x{config.hidden_size}, {config.input_mode} input, "
        f"{num_parameters(trainer.model):,} parameters, vocabulary {len(vocab)}, device {trainer.device.type}; "
        f"{trainer.train_streams.batch_size} streams of {trainer.train_streams.data.shape[1]:,} characters, "
        f"{trainer.train_streams.num_windows:,} windows per epoch"
    )
    if resumed is not None:
        if not _same_corpus(corpus, resumed.state):
            reporter.message("warning: this corpus differs from the one the checkpoint was trained on; training goes on, but not exactly as before")
        reporter.message(f"resuming from {resumed.path} at step {trainer.step:,} of {trainer.total_steps:,}")


@dataclass(frozen=True)
class _ResumePoint:
    path: Path
    state: dict[str, Any]
    model_config: ModelConfig
    train_config: TrainConfig
    vocab: Vocab


def _load_resume_point(location: str) -> _ResumePoint:
    path = find_checkpoint(location, prefer=(LATEST,))
    state = load_checkpoint(path)
    model_config, train_config, vocab = model_parts(state, path)
    return _ResumePoint(path, state, model_config, train_config, vocab)


def _refuse_to_overwrite(out_dir: Path) -> None:
    existing = [name for name in (LATEST, BEST) if (out_dir / name).exists()]
    if existing:
        raise ConfigError(
            f"{out_dir} already holds a run ({', '.join(existing)}); add --resume to continue it, "
            "or give another --out to start a new one"
        )


def _corpus_for(request: TrainRequest, resumed: _ResumePoint | None) -> Corpus:
    if request.corpus is not None:
        return read_corpus(request.corpus)
    recorded = resumed.state.get("corpus") if resumed is not None else None
    if isinstance(recorded, dict) and isinstance(recorded.get("path"), str):
        return read_corpus(recorded["path"])
    return builtin_corpus()


def _check_vocab_covers(corpus: Corpus, vocab: Vocab) -> None:
    unknown = vocab.unknown_chars(corpus.text)
    if unknown:
        shown = "".join(unknown[:20])
        raise CheckpointError(
            f"the corpus has {len(unknown)} characters the checkpoint's vocabulary lacks ({shown!r}), "
            "so it is not the text this run was trained on; to train on a new text, start a new run with another --out"
        )


def _same_corpus(corpus: Corpus, state: dict[str, Any]) -> bool:
    recorded = state.get("corpus")
    return not isinstance(recorded, dict) or recorded.get("sha256") == corpus.sha256


def total_steps(config: TrainConfig, windows_per_epoch: int) -> int:
    """The run's length in updates: --epochs if given, else --max-steps."""
    if config.epochs is not None:
        return max(1, math.ceil(config.epochs * windows_per_epoch))
    return config.max_steps


def train_step(
    model: CharRNN, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor,
    hidden: Hidden, clip: float,
) -> tuple[torch.Tensor, torch.Tensor | None, Hidden]:
    """One update on a (B, T) window: returns the loss (nats), the gradient norm before
    clipping (None when clipping is off) and the hidden state, detached for the next window."""
    logits, hidden = model(inputs, hidden)  # (B, T, V)
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip) if clip > 0 else None
    optimizer.step()
    return loss.detach(), grad_norm, detach_hidden(hidden)


class Trainer:
    """The loop: one window per step, evaluation and checkpoints at their intervals."""

    def __init__(
        self, model: CharRNN, train_streams: Streams, val_streams: Streams | None, config: TrainConfig,
        device: torch.device, out_dir: Path, reporter: Reporter,
    ):
        self.model = model
        self.optimizer = build_optimizer(model, config)
        self.train_streams = train_streams
        self.val_streams = val_streams
        self.config = config
        self.device = device
        self.out_dir = Path(out_dir)
        self.reporter = reporter
        self.total_steps = total_steps(config, train_streams.num_windows)
        self.step = 0
        self.hidden = model.init_hidden(train_streams.batch_size, device)
        self.best_val_loss: float | None = None
        self.last_val_loss: float | None = None
        self.elapsed_before = 0.0  # seconds trained by earlier processes of this run
        self._started = time.perf_counter()
        self.checkpoint_extras: dict[str, Any] = {}  # vocab and corpus, stored with every save

    def fit(self) -> TrainResult:
        """Train from the current step to the end, evaluating and saving on schedule."""
        if self.step >= self.total_steps:
            return self._result(already_complete=True)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._started = time.perf_counter()
        self.reporter.start(self.step, self.total_steps)
        try:
            self._loop()
        finally:
            self.reporter.close()
        return self._result(already_complete=False)

    def _loop(self) -> None:
        loss_sum = torch.zeros((), device=self.device)
        logged_step, logged_time = self.step, time.perf_counter()
        while self.step < self.total_steps:
            loss_sum += self._train_one_window()
            self.reporter.advance(self.step)
            if self.step % self.config.log_every == 0 or self.step == self.total_steps:
                now = time.perf_counter()
                steps = self.step - logged_step
                chars_per_sec = steps * self.train_streams.chars_per_window / max(now - logged_time, 1e-9)
                lr = self.optimizer.param_groups[0]["lr"]
                self.reporter.log(self.step, loss_sum.item() / steps, lr, chars_per_sec)  # host sync, once per log
                loss_sum.zero_()
                logged_step, logged_time = self.step, now
            self._evaluate_and_save()

    def _train_one_window(self) -> torch.Tensor:
        window = self.step % self.train_streams.num_windows
        if window == 0:  # a new epoch reads every stream from its start again
            self.hidden = self.model.init_hidden(self.train_streams.batch_size, self.device)
        inputs, targets = (t.to(self.device, non_blocking=True) for t in self.train_streams.window(window))
        set_learning_rate(self.optimizer, learning_rate(self.step, self.config, self.total_steps))
        loss, _, self.hidden = train_step(self.model, self.optimizer, inputs, targets, self.hidden, self.config.clip)
        self.step += 1
        return loss

    def _evaluate_and_save(self) -> None:
        at_end = self.step == self.total_steps
        if self.val_streams is not None and (self.step % self.config.eval_every == 0 or at_end):
            self.last_val_loss = evaluate_loss(self.model, self.val_streams, self.device)
            is_best = self.best_val_loss is None or self.last_val_loss < self.best_val_loss
            if is_best:
                self.best_val_loss = self.last_val_loss
                save_checkpoint(self.checkpoint_state(), self.out_dir / BEST)
            self.reporter.evaluated(self.step, self.last_val_loss, is_best)
        if self.step % self.config.save_every == 0 or at_end:
            save_checkpoint(self.checkpoint_state(), self.out_dir / LATEST)

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly, as plain data and tensors."""
        windows = self.train_streams.num_windows
        return {
            "charrnn_version": __version__,
            "model_config": to_dict(self.model.config),
            "train_config": to_dict(self.config),
            **self.checkpoint_extras,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "data_position": {"epoch": self.step // windows, "window": self.step % windows},
            "hidden": tuple(h.cpu() for h in self.hidden),
            "rng": rng_state(),
            "best_val_loss": self.best_val_loss,
            "val_loss": self.last_val_loss,
            "elapsed_seconds": self.elapsed_before + time.perf_counter() - self._started,
        }

    def restore(self, state: dict[str, Any], path: Path) -> None:
        """Continue from a checkpoint written by `checkpoint_state`."""
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{path} does not fit this model: {str(error).splitlines()[0]}") from None
        self.step = _checked_step(state["step"], path)
        self.hidden = _checked_hidden(state["hidden"], self.hidden, path)
        self.best_val_loss = state.get("best_val_loss")
        self.last_val_loss = state.get("val_loss")
        self.elapsed_before = float(state.get("elapsed_seconds") or 0.0)
        set_rng_state(state["rng"])

    def _result(self, already_complete: bool) -> TrainResult:
        return TrainResult(
            step=self.step, total_steps=self.total_steps, best_val_loss=self.best_val_loss,
            last_val_loss=self.last_val_loss, already_complete=already_complete, out_dir=self.out_dir,
        )


def _checked_step(step: Any, path: Path) -> int:
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{path} has an invalid step count: {step!r}")
    return step


def _checked_hidden(saved: Any, expected: Hidden, path: Path) -> Hidden:
    if not isinstance(saved, (tuple, list)) or len(saved) != len(expected) or any(
        not isinstance(h, torch.Tensor) or h.shape != e.shape for h, e in zip(saved, expected)
    ):
        raise CheckpointError(f"{path} has a hidden state that does not fit this model and batch size")
    return tuple(h.to(device=e.device, dtype=e.dtype) for h, e in zip(saved, expected))

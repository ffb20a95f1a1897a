"""The training loop: `train_step`, one update on one window, then the Trainer, which takes one
step after another from a RunState (where the run stands) and calls its parts at their
intervals: the log line, the evaluation (best.pt), the preview, the save.

A run's whole state lives in its checkpoints, so a run stopped after any save and resumed
with the same command ends bit-identical (on CPU) to one never stopped: the data position
is a function of the step, the learning rate a function of the step, and the weights,
optimizer moments, carried hidden state and random generator state are all saved.
How a Trainer is built from what the user asked for: charrnn.run.training.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from charrnn.core.data import Streams
from charrnn.core.model import CharRNN, Hidden, detach_hidden
from charrnn.core.threads import ThreadTuner
from charrnn.errors import CheckpointError, TrainingStopped
from charrnn.run.distributed import SINGLE, Group
from charrnn.run.evaluate import evaluate_loss
from charrnn.run.optim import build_optimizer, learning_rate, set_learning_rate
from charrnn.run.parts import Clock, RunLogs, Saver, diverged
from charrnn.run.progress import Reporter
from charrnn.run.result import TrainResult
from charrnn.run.runtime import StopSignals, signal_name
from charrnn.run.state import RunState
from charrnn.settings.budget import Budget, Validation
from charrnn.settings.config import TrainConfig
from charrnn.settings.spelling import spelled
from charrnn.store.checkpoint import Checkpoint, RunRecord
from charrnn.store.metrics import nats_to_bits
from charrnn.store.outdir import LATEST, FoundCheckpoint, OutDir
from charrnn.store.training_state import check_training_state
from charrnn.version import __version__


def train_step(
    model: CharRNN,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    hidden: Hidden,
    clip: float,
    precision: Callable[[], ContextManager] = nullcontext,
) -> tuple[torch.Tensor, torch.Tensor | None, Hidden]:
    """One update on a (B, T) window: returns the loss (nats), the gradient norm before
    clipping (None when clipping is off) and the hidden state, detached for the next window.
    `model` may be the compiled module; its parameters are the optimizer's."""
    with precision():
        logits, hidden = model(inputs, hidden)  # (B, T, V)
    loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip) if clip > 0 else None
    optimizer.step()
    return loss.detach(), grad_norm, detach_hidden(hidden)


class Trainer:
    """The loop: one window per step, evaluation and checkpoints at their intervals.

    Built by `training.build_trainer` (or by hand, as scripts/bench.py does, with the defaults):
    every part comes in through the constructor, and `resume` continues a checkpoint's run exactly.
    """

    def __init__(
        self,
        model: CharRNN,
        train_streams: Streams,
        val_streams: Streams | None,
        config: TrainConfig,
        device: torch.device,
        out: OutDir,
        reporter: Reporter,
        group: Group = SINGLE,
        *,
        record: RunRecord,  # what every checkpoint records besides the training state
        optimizer: torch.optim.Optimizer | None = None,  # by default, the one the config says
        forward_model: torch.nn.Module | None = None,  # what a step calls: the model, or its DDP/compiled twin
        precision: Callable[[], ContextManager] = nullcontext,  # see runtime.autocast
        release_pages: Callable[[], None] = lambda: None,  # see Encoded.release_pages
        resume: FoundCheckpoint | None = None,  # the checkpoint whose run this continues
        threads: ThreadTuner | None = None,  # --threads auto: fed each step's time, keeps the faster count
    ):
        self.model, self.config, self.group, self.reporter = model, config, group, reporter
        self.optimizer = build_optimizer(model, config) if optimizer is None else optimizer
        forward = model if forward_model is None else forward_model
        self.steps = Stepper(model, forward, self.optimizer, train_streams, device, precision, threads)
        self.validation_loss = _validation_loss(model, val_streams, device, precision, group)
        self.saver = Saver(out, record, release_pages, group.is_main)
        self.budget = Budget.of(config.max_steps, config.epochs, config.max_time, train_streams.num_windows)
        self.logs = RunLogs(out, reporter, record, group, device, train_streams.num_windows, self.elapsed)
        self.clock = Clock()
        self.state = RunState(0, model.init_hidden(train_streams.batch_size, device), Validation(config.patience))
        if resume is not None:
            _load_weights(model, self.optimizer, resume.checkpoint, resume.path)
            self.state = RunState.resumed(resume.checkpoint, resume.path, self.state.hidden, group, config)

    @property
    def step(self) -> int:
        return self.state.step

    def fit(self) -> TrainResult:
        """Train from the current step to the end, evaluating and saving on schedule.

        A first SIGINT/SIGTERM stops after the current step, saves, and raises TrainingStopped.
        """
        if self.budget.spent(self.step, self.elapsed()) or self.state.validation.out_of_patience:
            return _result(self, already_complete=True)
        self.logs.begin(self.step, self.clock.start())
        self.clock.agreed = self.elapsed()
        self.reporter.start(self.step, self.budget, self.elapsed())
        try:
            with StopSignals() as signals:
                self._loop(signals)
        finally:
            self.reporter.close()
            self.logs.close()
            self.steps.restore_threads()
        return _result(self, already_complete=False)

    def _loop(self, signals: StopSignals) -> None:
        at_end = False
        while not at_end:
            lr = learning_rate(self.step, self.clock.agreed, self.budget, self.config)
            self.logs.add(*self.steps.take(self.state, lr, self.config.clip))
            # One small all-reduce per step, and none with one process: if any rank was asked to
            # stop, all stop at this step; all take the slowest rank's clock for --max-time.
            stop_signal, self.clock.agreed = self.group.max(signals.received or 0, self.elapsed())
            self.reporter.advance(self.step, self.clock.agreed)
            at_end = self.budget.spent(self.step, self.clock.agreed)
            if self.step % self.config.log_every == 0 or at_end:
                self._log()
            # Evaluating, previewing and saving pause training: the reporter keeps them out of the step rate.
            pause_began = time.perf_counter()
            evaluating, saving = (
                self.step % every == 0 or at_end for every in (self.config.eval_every, self.config.save_every)
            )
            if evaluating:
                val_loss = self._evaluate() if self.validation_loss is not None else None
                self.logs.preview(self.step, self.model, self.config, val_loss)
                if self.state.validation.out_of_patience and not at_end:
                    at_end = True
                    self.reporter.message(_stopping_early(self.step, self.state.validation, self.config.patience))
            if saving:
                self._save()
            if evaluating or saving:
                self.reporter.paused(time.perf_counter() - pause_began)
            if stop_signal:
                self._stop(int(stop_signal))

    def _log(self) -> None:
        loss_sum = self.logs.loss_sum().item()  # the one host sync per log
        self._check_finite(loss_sum)
        steps = self.steps
        lr = steps.optimizer.param_groups[0]["lr"]
        self.logs.line(self.step, loss_sum, steps.streams.chars_per_window, lr, steps.thread_count())

    def _evaluate(self) -> float:
        """The validation loss (nats); best.pt is saved when it is the best so far."""
        val_loss = self.validation_loss()
        self._check_finite(val_loss)
        is_best = self.state.validation.record(val_loss)
        if is_best:
            self._check_finite()
            is_best = self.saver.save_best(self.checkpoint())  # every rank takes part: it gathers their hidden states
        self.reporter.evaluated(self.step, val_loss, is_best)
        self.logs.record("validation", self.step, val_bpc=nats_to_bits(val_loss), best=is_best)
        return val_loss

    def _save(self) -> None:
        self._check_finite()
        self.saver.save(self.checkpoint(), self.config.keep)
        self.state.saved_step = self.step

    def _stop(self, signal_number: int) -> None:
        if self.state.saved_step != self.step:
            self._save()
        self.group.barrier()  # every rank stops at this step; none leaves while rank 0 writes
        exit_code = 128 + signal_number  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM
        raise TrainingStopped(signal_name(signal_number), self.step, str(self.saver.out.path / LATEST), exit_code)

    def _check_finite(self, loss: float | None = None) -> None:
        """Stop before a NaN or infinite loss can reach a checkpoint (None: the training loss since the last log)."""
        value = float(self.logs.loss_sum()) if loss is None else loss
        if not math.isfinite(value):
            raise diverged(value, self.step, self.state.saved_step, self.config.lr)

    def elapsed(self) -> float:
        """Seconds of training in this run, earlier sessions included."""
        return self.state.elapsed_before + self.clock.running()

    def checkpoint(self) -> Checkpoint:
        """Everything needed to continue this run exactly."""
        return Checkpoint(
            charrnn_version=__version__,
            model_config=self.model.config,
            train_config=self.config,
            record=self.saver.record,
            weights=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            **self.state.saved(self.group, self.steps.streams.num_windows, self.elapsed),
        )


def _validation_loss(
    model: CharRNN, streams: Streams | None, device: torch.device, precision: Callable[[], ContextManager], group: Group
) -> Callable[[], float] | None:
    """The validation loss (nats) of the model as it is, over every rank's streams; None: no validation text."""
    return None if streams is None else functools.partial(evaluate_loss, model, streams, device, precision, group.sum)


def _load_weights(model: CharRNN, optimizer: torch.optim.Optimizer, checkpoint: Checkpoint, path: Path) -> None:
    """The weights and optimizer moments of a checkpoint written by `Trainer.checkpoint`."""
    check_training_state(checkpoint, path)  # prepare_run checked it too, before any work
    try:
        model.load_state_dict(checkpoint.weights)
        optimizer.load_state_dict(checkpoint.optimizer)
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path} does not fit this model: {str(error).splitlines()[0]}") from None


def _stopping_early(step: int, validation: Validation, patience: int | None) -> str:
    return (
        f"stopping early at step {step:,}: validation has not improved for "
        f"{validation.since_best} evaluations ({spelled('patience', patience)}); best.pt holds "
        f"the best, {nats_to_bits(validation.best):.4f} bpc"
    )


def _result(trainer: Trainer, already_complete: bool) -> TrainResult:
    state = trainer.state
    return TrainResult(
        step=state.step,
        budget=trainer.budget,
        elapsed=trainer.elapsed(),
        best_val_loss=state.validation.best,
        last_val_loss=state.validation.last,
        already_complete=already_complete,
        out_dir=trainer.saver.out.path,
        model_config=trainer.model.config,
        train_config=trainer.config,
        stopped_early=state.validation.out_of_patience,
        unigram_bits=trainer.steps.streams.unigram_bits(),
    )


class Stepper:
    """What a training step runs on: this process's training streams on `device`, the model
    (`forward`: what the step calls, perhaps its DDP/compiled twin), the optimizer, the precision;
    with --threads auto, the tuner, fed each step's time, which keeps the faster thread count."""

    def __init__(
        self,
        model: CharRNN,
        forward: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        streams: Streams,
        device: torch.device,
        precision: Callable[[], ContextManager],
        threads: ThreadTuner | None,
    ):
        self.model, self.forward, self.optimizer, self.precision = model, forward, optimizer, precision
        self.streams, self.device, self.threads = streams, device, threads

    def take(self, state: RunState, lr: float, clip: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One step on the next window, moving `state` on; its loss and gradient norm."""
        began = time.perf_counter() if self.threads is not None else 0.0
        window = state.step % self.streams.num_windows
        if window == 0:  # a new epoch reads every stream from its start again
            state.hidden = self.model.init_hidden(self.streams.batch_size, self.device)
        inputs, targets = (t.to(self.device, non_blocking=True) for t in self.streams.window(window))
        set_learning_rate(self.optimizer, lr)
        loss, grad_norm, state.hidden = train_step(
            self.forward, self.optimizer, inputs, targets, state.hidden, clip, self.precision
        )
        state.step += 1
        if self.threads is not None:
            self.threads.observe(time.perf_counter() - began)
        return loss, grad_norm

    def thread_count(self) -> int:
        return torch.get_num_threads() if self.threads is None else self.threads.chosen

    def restore_threads(self) -> None:
        if self.threads is not None:
            self.threads.restore()

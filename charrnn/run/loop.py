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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from charrnn.core.data import Streams
from charrnn.core.model import CharRNN, Hidden, detach_hidden
from charrnn.core.threads import ThreadTuner
from charrnn.errors import CheckpointError, TrainingDiverged, TrainingStopped
from charrnn.run.distributed import SINGLE, Group
from charrnn.run.evaluate import evaluate_loss
from charrnn.run.optim import build_optimizer, learning_rate, set_learning_rate
from charrnn.run.preview import PreviewLog, preview_text
from charrnn.run.progress import Reporter
from charrnn.run.runtime import StopSignals, signal_name
from charrnn.run.state import RunState
from charrnn.settings.budget import Budget, Validation
from charrnn.settings.config import TrainConfig
from charrnn.settings.spelling import spelled
from charrnn.store.checkpoint import Checkpoint, RunRecord
from charrnn.store.metrics import MetricsLog, nats_to_bits
from charrnn.store.outdir import LATEST, FoundCheckpoint, OutDir
from charrnn.store.training_state import check_training_state
from charrnn.version import __version__

if TYPE_CHECKING:
    from charrnn.run.training import TrainResult


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
        self.logs.line(self.step, loss_sum, self.steps)

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
            raise _diverged(value, self.step, self.state.saved_step, self.config.lr)

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
    from charrnn.run.training import TrainResult  # which imports this module

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


@dataclass(frozen=True)
class Saver:
    """Where the checkpoints go (rank 0 writes them), what each records besides the training
    state, and what a save lets go of."""

    out: OutDir
    record: RunRecord
    release_pages: Callable[[], None]  # the corpus read since the last save leaves resident memory
    is_main: bool

    def save(self, checkpoint: Checkpoint, keep: int | None) -> None:
        if self.is_main:
            self.out.save(checkpoint, keep)
        self.release_pages()

    def save_best(self, checkpoint: Checkpoint) -> bool:
        """Whether `checkpoint` is now best.pt: it keeps a better model saved before a resume from an earlier step."""
        return self.out.save_best(checkpoint) if self.is_main else True


class RunLogs:
    """The log: the training loss summed on the device since the last log line (read back only
    when logging or saving, so steps do not wait on the device), the line itself, and the files
    rank 0 writes beside the checkpoints, metrics.jsonl and samples.txt. A damaged one never
    stops a run; each names the run in its first line."""

    def __init__(
        self,
        out: OutDir,
        reporter: Reporter,
        record: RunRecord,
        group: Group,
        device: torch.device,
        windows: int,  # per epoch
        elapsed: Callable[[], float],
    ):
        run_id = record.run.id if record.run is not None else None  # None: a Trainer made by hand (scripts/bench.py)
        self.metrics = MetricsLog(out.path, warn=reporter.message, run=run_id)
        self.previews = PreviewLog(out.path, warn=reporter.message, run=run_id)
        self.reporter, self.vocab, self.group = reporter, record.vocab, group
        self.windows, self.elapsed = windows, elapsed
        self.losses = torch.zeros((), device=device)
        self.grad_norm: torch.Tensor | None = None  # of the last step, before clipping
        self.logged_step, self.logged_time = 0, 0.0

    def begin(self, step: int, now: float) -> None:
        self.logged_step, self.logged_time = step, now
        if self.group.is_main:
            for log in (self.metrics, self.previews):
                log.begin_at(step)  # where a file started now begins (a fork's: the step it forks)
                log.forget_after(step)  # steps past the checkpoint are about to be redone

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor | None) -> None:
        self.losses += loss
        self.grad_norm = grad_norm

    def loss_sum(self) -> torch.Tensor:
        """The training loss summed since the last log line, the mean of every rank's."""
        return self.group.sum(self.losses) / self.group.world_size

    def line(self, step: int, loss_sum: float, steps: Stepper) -> None:
        """Report and record the training since the last line (`loss_sum`: its summed loss, read back)."""
        count, now = step - self.logged_step, time.perf_counter()
        chars_per_sec = count * steps.streams.chars_per_window / max(now - self.logged_time, 1e-9)
        lr = steps.optimizer.param_groups[0]["lr"]
        self.reporter.log(step, self.elapsed(), loss_sum / count, lr, chars_per_sec)
        grad_norm = None if self.grad_norm is None else float(self.grad_norm)
        figures = dict(lr=lr, chars_per_sec=round(chars_per_sec, 1), grad_norm=grad_norm)
        self.record("train", step, train_bpc=nats_to_bits(loss_sum / count), **figures, threads=steps.thread_count())
        self.losses.zero_()
        self.logged_step, self.logged_time = step, now

    def record(self, kind: str, step: int, **figures: Any) -> None:
        if self.group.is_main:
            epoch = round(step / self.windows, 4)
            self.metrics.append(
                {"kind": kind, "step": step, "epoch": epoch, **figures, "elapsed": round(self.elapsed(), 2)}
            )

    def preview(self, step: int, model: CharRNN, config: TrainConfig, val_loss: float | None) -> None:
        """A sample of the model as it is, shown under the evaluation and kept in samples.txt;
        the seed is the run's, the same at every evaluation, so previews differ only by the model."""
        if not config.preview_chars or not self.group.is_main:
            return
        text = preview_text(model, self.vocab, config.preview_chars, config.seed)
        if text is not None:
            self.reporter.previewed(step, text)
            self.previews.append(step, text, None if val_loss is None else nats_to_bits(val_loss))

    def close(self) -> None:
        self.metrics.close()
        self.previews.close()


def _diverged(value: float, step: int, saved_step: int | None, lr: float) -> TrainingDiverged:
    kept = f"the last good state is step {saved_step:,}" if saved_step is not None else "nothing was saved"
    lower = float(f"{lr / 4:g}")  # a rate a person would type
    return TrainingDiverged(
        f"training diverged: the loss became {value} by step {step:,}; {kept}. "
        f"Resume with a lower learning rate (e.g. {spelled('resume', True)} {spelled('lr', lower)}) "
        f"or a smaller {spelled('clip')}"
    )


class Clock:
    """This process's seconds of training: none until `start`. `agreed`: the run's elapsed time
    (earlier sessions included) as all ranks agreed on it after the last step."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.agreed = 0.0

    def start(self) -> float:
        self.started = time.perf_counter()
        return self.started

    def running(self) -> float:
        return time.perf_counter() - self.started if self.started is not None else 0.0

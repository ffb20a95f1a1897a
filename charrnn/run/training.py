"""Training: build a run (fresh, resumed or fine-tuned), then the truncated-BPTT loop.

Read top to bottom: `run_training` builds a Trainer (`build_trainer`: everything checked and
built, passed in through its constructor), then fits it; `Trainer._loop` runs one `train_step`
per window and consults its Budget (when to end) and Validation (the best loss, --patience).

A run's whole state lives in its checkpoints, so a run stopped after any save and resumed
with the same command ends bit-identical (on CPU) to one never stopped: the data position
is a function of the step, the learning rate a function of the step, and the weights,
optimizer moments, carried hidden state and random generator state are all saved.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from charrnn.core.data import Streams, eval_streams, split_train_val
from charrnn.core.model import CharRNN, Hidden, detach_hidden, load_grown, num_parameters
from charrnn.core.threads import ThreadTuner, candidate_counts
from charrnn.errors import (
    CheckpointError,
    ConfigError,
    TrainingDiverged,
    TrainingStopped,
)
from charrnn.run.diagnosis import Command, Diagnosis, next_command
from charrnn.run.distributed import SINGLE, Group, join, leave
from charrnn.run.evaluate import evaluate_loss
from charrnn.run.optim import build_optimizer, learning_rate, set_learning_rate
from charrnn.run.prepare import StartingPoint, prepare_run
from charrnn.run.preview import PreviewLog, preview_text
from charrnn.run.progress import Reporter
from charrnn.run.runtime import (
    StopSignals,
    autocast,
    rng_state,
    select_device,
    set_rng_state,
    signal_name,
)
from charrnn.run.sizing import check_memory, describe_memory, training_memory
from charrnn.settings.budget import Budget, Validation, format_duration
from charrnn.settings.config import ModelConfig, TrainConfig
from charrnn.settings.option import AUTO
from charrnn.settings.spelling import PYTHON, for_python, read_by, spelled
from charrnn.store.checkpoint import Checkpoint, RunRecord
from charrnn.store.metrics import MetricsLog, nats_to_bits
from charrnn.store.outdir import LATEST, FoundCheckpoint, OutDir
from charrnn.store.training_state import check_training_state
from charrnn.version import __version__


@dataclass(frozen=True)
class TrainRequest:
    """What the user asked for."""

    corpus: Sequence[str]  # files, folders or globs; none: the built-in corpus, or on resume the checkpoint's
    out_dir: Path | None  # None: checkpoints/, or on resume the checkpoint's own folder
    device: str = "auto"
    dtype: str = "float32"  # or "bfloat16": autocast for the forward passes
    compile: bool = False  # torch.compile the model (helps on GPUs)
    resume: str | None = None  # a checkpoint file or out folder to continue from
    init_from: str | None = None  # a checkpoint whose weights a new run starts from
    threads: int | str | None = None  # AUTO: the loop keeps the faster CPU thread count; else as set already
    options: Mapping[str, Any] = field(default_factory=dict)  # only the options the user gave
    texts: Sequence[str] | None = None  # strings given in memory as the corpus, each a document


@dataclass(frozen=True)
class TrainResult:
    """How a run ended."""

    step: int
    budget: Budget
    elapsed: float  # seconds of training, earlier sessions included
    best_val_loss: float | None
    last_val_loss: float | None
    already_complete: bool
    out_dir: Path
    model_config: ModelConfig
    train_config: TrainConfig
    stopped_early: bool = False  # --patience ended it
    unigram_bits: float | None = None  # what the characters' frequencies alone score on the training text
    diagnosis: Diagnosis | None = None  # what the run needs, read from its curves; set by api.train
    command: Command | None = None  # what the run was started with, to write the next one from; set by api.train

    @property
    def best_val_bpc(self) -> float | None:
        """The best validation loss in bits per character (`best_val_loss` is in nats)."""
        return None if self.best_val_loss is None else nats_to_bits(self.best_val_loss)

    @property
    def last_val_bpc(self) -> float | None:
        """The last validation loss in bits per character (`last_val_loss` is in nats)."""
        return None if self.last_val_loss is None else nats_to_bits(self.last_val_loss)

    def advice(self, python: bool | None = None) -> list[str]:
        """The diagnosis and the command to run next: shell words, or a charrnn.train call with
        `python` (None: as the reader of messages types it, options.read_by)."""
        if self.diagnosis is None:
            return []
        run, command = self.diagnosis.next_run, self.command
        if run is None or command is None:
            return self.diagnosis.lines()
        return self.diagnosis.lines(next_command(run, command, python, taken=lambda path: Path(path).exists()))

    def summary(self) -> list[str]:
        """What `charrnn train` says at its end, and `charrnn.train` with progress: where the run
        ended, its best validation (bits and nats), the advice, and how to sample. Options are
        named for the reader (options.read_by): `--max-steps` on the command line, `max_steps` in Python."""
        done = f"step {self.step:,} after {format_duration(self.elapsed)} of training"
        if self.already_complete:
            further = f"{spelled('resume', True)} with a larger {spelled('max_steps')} or {spelled('max_time')}"
            return [
                f"The run in {self.out_dir} is complete ({done}; its length: {self.budget.describe()}); "
                f"to train further, add {further}."
            ]
        best = ""
        if self.best_val_loss is not None:
            best = f"; best validation {self.best_val_bpc:.4f} bpc ({self.best_val_loss:.4f} nats)"
        sample = (
            f"charrnn.load({str(self.out_dir)!r}).generate()"
            if for_python()
            else (f"charrnn sample --checkpoint {self.out_dir}")
        )
        return [
            f"Finished at {done}{best}. Checkpoints are in {self.out_dir}/.",
            *self.advice(),
            f"Sample with: {sample}",
        ]

    def __repr__(self) -> str:
        with read_by(PYTHON):
            return "\n".join(self.summary())


def run_training(request: TrainRequest, reporter: Reporter | None = None) -> TrainResult:
    """Start, resume or fine-tune a run as `request` says, and train until its budget is spent.

    Under torchrun, every process runs this: each trains on its share of the streams, and
    rank 0 alone reports and writes checkpoints.
    """
    group, device = join(select_device(request.device))
    try:
        reporter = (reporter or Reporter()) if group.is_main else Reporter()
        trainer = build_trainer(request, reporter, device, group)
        try:
            result = trainer.fit()
            group.barrier()  # no process leaves while another still writes or reduces
        finally:
            trainer.out.release()
        return result
    finally:
        leave()


# Building: what the user asked for, checked against the corpus, the out folder and any
# checkpoint, turned into a Trainer with everything it needs.


def build_trainer(request: TrainRequest, reporter: Reporter, device: torch.device, group: Group = SINGLE) -> Trainer:
    """A Trainer ready to fit: configs, data, model, optimizer, out folder (acquired; the
    caller releases it as `trainer.out`), distributed wrapper, precision, and the state of
    the checkpoint it resumes. Only once all of it is built does the run say anything."""
    if not group.is_main:
        group.barrier()  # rank 0 encodes the corpus into the cache first; the others reuse it
    start = prepare_run(
        request.corpus,
        request.out_dir,
        request.options,
        request.resume,
        request.init_from,
        reporter.progress,
        owner=group.is_main,
        texts=request.texts,
    )
    if group.is_main:
        group.barrier()
    try:
        memory = training_memory(start.model_config, start.train_config, start.encoded.ids.nbytes)
        free = check_memory(memory, device.type)  # before anything is allocated
        trainer = _made_trainer(request, start, reporter, device, group)
        _announce(reporter, trainer, start, describe_memory(memory, free))
    except BaseException:
        start.out.release()
        raise
    return trainer


def _made_trainer(
    request: TrainRequest, start: StartingPoint, reporter: Reporter, device: torch.device, group: Group
) -> Trainer:
    config = start.train_config
    if config.batch_size % group.world_size:
        raise ConfigError(
            f"{spelled('batch_size', config.batch_size)} does not split evenly over {group.world_size} processes; "
            f"give a multiple of {group.world_size} (it is the batch of all processes together)"
        )
    train_streams, val_streams = _streams(start, group, device)
    torch.manual_seed(config.seed)
    model = CharRNN(start.model_config).to(device)
    if start.init is not None:
        load_grown(model, start.init.checkpoint.weights)
    if group.active:
        torch.manual_seed(config.seed + group.rank)  # each rank its own dropout masks
    precision = autocast(device, request.dtype)
    return Trainer(
        model,
        train_streams,
        val_streams,
        config,
        device,
        start.out,
        reporter,
        group,
        record=start.run_record(),
        optimizer=build_optimizer(model, config),
        forward_model=_forward_model(model, device, group, request.compile),
        precision=precision,
        release_pages=start.encoded.release_pages,
        resume=start.resume,
        threads=_thread_tuner(request.threads, device, group, lambda: _step_gradients(model, train_streams, precision)),
    )


def _thread_tuner(
    threads: int | str | None, device: torch.device, group: Group, step_gradients: Callable[[], list[torch.Tensor]]
) -> ThreadTuner | None:
    """For --threads auto on one CPU process, a tuner of the thread count; else None: a GPU's
    steps hardly depend on CPU threads, torchrun's processes share the cores (one thread each),
    and one thread leaves nothing to choose. Nor where a step's numbers depend on the count
    (`step_gradients` differs between counts): switching would make the run depend on timing."""
    if threads != AUTO or device.type != "cpu" or group.active or torch.get_num_threads() == 1:
        return None
    most = torch.get_num_threads()
    if not _same_on_every_count(step_gradients, candidate_counts(most)):
        return None
    return ThreadTuner(torch.set_num_threads, most)


def _same_on_every_count(compute: Callable[[], list[torch.Tensor]], counts: Sequence[int]) -> bool:
    """Whether `compute` gives bit-identical tensors on each thread count (it runs once on each);
    the process is left on the count it had."""
    before = torch.get_num_threads()
    try:
        results = []
        for count in counts:
            torch.set_num_threads(count)
            results.append(compute())
    finally:
        torch.set_num_threads(before)
    return all(all(torch.equal(a, b) for a, b in zip(first, other)) for first, other in zip(results, results[1:]))


def _step_gradients(model: CharRNN, streams: Streams, precision: Callable[[], ContextManager]) -> list[torch.Tensor]:
    """The loss and gradients of a training step on the first window, leaving no trace (the
    random generator, which dropout draws from, is put back; the gradients are cleared)."""
    rng = torch.get_rng_state()
    inputs, targets = streams.window(0)
    with precision():
        logits, _ = model(inputs, model.init_hidden(streams.batch_size, torch.device("cpu")))
    loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
    loss.backward()
    results = [loss.detach(), *(p.grad.clone() for p in model.parameters() if p.grad is not None)]
    model.zero_grad(set_to_none=True)
    torch.set_rng_state(rng)
    return results


def _streams(start: StartingPoint, group: Group, device: torch.device) -> tuple[Streams, Streams | None]:
    """This process's share of the training streams, and of the validation text's."""
    config = start.train_config
    train_ids, val_ids = split_train_val(start.encoded.ids, config.val_fraction)
    train_streams = Streams(train_ids, config.batch_size, config.seq_len, name="training text")
    train_streams.keep_rows(group.rows(config.batch_size))
    if device.type == "cuda" and train_streams.data.nbytes < 2**31:
        train_streams.to(device)
    val_streams = eval_streams(val_ids[: config.eval_chars]) if config.val_fraction > 0 else None
    if val_streams is not None:
        val_streams.keep_rows(group.rows(val_streams.batch_size))
    return train_streams, val_streams


def _forward_model(model: CharRNN, device: torch.device, group: Group, compile: bool) -> torch.nn.Module:
    """What the training step calls: the model, wrapped for several processes, compiled if asked."""
    forward: torch.nn.Module = model
    if group.active:
        forward = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    return torch.compile(forward) if compile else forward


def _announce(reporter: Reporter, trainer: Trainer, start: StartingPoint, memory: str) -> None:
    config, encoded = trainer.model.config, start.encoded
    cache = "cached encoding reused" if encoded.ids_reused else "encoded and cached"
    reporter.message(f"corpus: {start.corpus.description} ({encoded.counts.total:,} characters; {cache})")
    reporter.message(f"vocabulary: {start.coverage.describe()}")
    sizing = f" ({start.sizing})" if start.sizing else ""
    reporter.message(
        f"model: {config.cell.upper()} {config.layers}x{config.hidden_size}, dropout {config.dropout:g}, "
        f"{config.input_mode} input, {num_parameters(trainer.model):,} parameters{sizing}"
    )
    streams = trainer.train_streams
    processes = (
        f"; {trainer.group.world_size} processes, {streams.batch_size} streams each" if trainer.group.active else ""
    )
    reporter.message(
        f"training: {trainer.config.batch_size} streams of {streams.data.shape[1]:,} characters, "
        f"{streams.num_windows:,} windows per epoch{processes}; device {trainer.device.type}{_threads_note(trainer)}, "
        f"{memory}"
    )
    if start.init is not None:
        base = start.init.checkpoint
        grown = len(start.vocab) - base.model_config.vocab_size
        reporter.message(f"fine-tuning from {start.init.path} (step {base.step:,}); {grown:,} new characters")
    if start.resume is not None:
        for note in start.resume.passed_over:
            reporter.message(f"warning: {note}")
        if not start.same_corpus_as_checkpoint:
            reporter.message(
                "warning: this corpus differs from the one the checkpoint was trained on; training goes on, but not exactly as before"
            )
        done = f"step {trainer.step:,}, {format_duration(trainer.elapsed())} trained"
        if start.rerun:  # the same `charrnn train` again: it continues the run it started
            reporter.message(
                f"{start.out.path} holds this run ({done}, of {trainer.budget.describe()}); continuing it "
                f"(give another {spelled('out')} to start a new one)"
            )
        else:
            reporter.message(f"resuming from {start.resume.path} at {done}, of {trainer.budget.describe()}")


def _threads_note(trainer: Trainer) -> str:
    if trainer.device.type != "cpu":
        return ""
    count = torch.get_num_threads()
    return " (threads: auto)" if trainer.threads is not None else f" ({count} thread{'s' if count > 1 else ''})"


# The loop: one update per step; evaluation and checkpoints at their intervals.


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

    Built by `build_trainer` (or by hand, as scripts/bench.py does, with the defaults): every
    part comes in through the constructor, and `resume` continues a checkpoint's run exactly.
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
        self.model = model
        self.forward_model = model if forward_model is None else forward_model
        self.optimizer = build_optimizer(model, config) if optimizer is None else optimizer
        self.train_streams = train_streams
        self.val_streams = val_streams
        self.config = config
        self.device = device
        self.out = out
        self.reporter = reporter
        self.group = group
        self.record = record
        self.precision = precision
        self.release_pages = release_pages
        self.threads = threads
        self.budget = Budget.of(config.max_steps, config.epochs, config.max_time, train_streams.num_windows)
        self.validation = Validation(config.patience)
        self.step = 0
        self.hidden = model.init_hidden(train_streams.batch_size, device)
        self.saved_step: int | None = None  # the step of the newest save of this run
        self.elapsed_before = 0.0  # seconds trained by earlier processes of this run
        self._started: float | None = None  # when this process began training
        # Training loss summed on the device since the last log, read back only when logging or
        # saving, so steps do not wait on the device.
        self._loss_sum = torch.zeros((), device=device)
        self._logged_step, self._logged_time = 0, 0.0
        self._agreed_elapsed = 0.0  # elapsed() as all ranks agree on it after the last step
        self._grad_norm: torch.Tensor | None = None  # of the last step, before clipping
        # A damaged metrics.jsonl never stops a run; samples.txt: the same. Each names the run in its first line.
        run_id = record.run.id if record.run is not None else None  # None: a Trainer made by hand (scripts/bench.py)
        self.metrics = MetricsLog(out.path, warn=reporter.message, run=run_id)
        self.previews = PreviewLog(out.path, warn=reporter.message, run=run_id)
        if resume is not None:
            self._restore(resume.checkpoint, resume.path)

    @property
    def best_val_loss(self) -> float | None:
        return self.validation.best

    def fit(self) -> TrainResult:
        """Train from the current step to the end, evaluating and saving on schedule.

        A first SIGINT/SIGTERM stops after the current step, saves, and raises TrainingStopped.
        """
        if self.budget.spent(self.step, self.elapsed()) or self.validation.out_of_patience:
            return self._result(already_complete=True)
        self._started = time.perf_counter()
        self._logged_step, self._logged_time = self.step, self._started
        self._agreed_elapsed = self.elapsed()
        if self.group.is_main:
            for log in (self.metrics, self.previews):
                log.begin_at(self.step)  # where a file started now begins (a fork's: the step it forks)
                log.forget_after(self.step)  # steps past the checkpoint are about to be redone
        self.reporter.start(self.step, self.budget, self.elapsed())
        try:
            with StopSignals() as signals:
                self._loop(signals)
        finally:
            self.reporter.close()
            self.metrics.close()
            self.previews.close()
            if self.threads is not None:
                self.threads.restore()
        return self._result(already_complete=False)

    def _loop(self, signals: StopSignals) -> None:
        at_end = False
        while not at_end:
            self._loss_sum += self._train_tuning_threads()
            # One small all-reduce per step, and none with one process: if any rank was asked to
            # stop, all stop at this step; all take the slowest rank's clock for --max-time.
            stop_signal, elapsed = self.group.max(signals.received or 0, self.elapsed())
            self._agreed_elapsed = elapsed
            self.reporter.advance(self.step, elapsed)
            at_end = self.budget.spent(self.step, elapsed)
            if self.step % self.config.log_every == 0 or at_end:
                self._log()
            # Evaluating, previewing and saving pause training: the reporter keeps them out of the step rate.
            pause_began = time.perf_counter()
            evaluating, saving = (
                self.step % every == 0 or at_end for every in (self.config.eval_every, self.config.save_every)
            )
            if evaluating:
                self._preview(self._evaluate() if self.val_streams is not None else None)
                if self.validation.out_of_patience and not at_end:
                    at_end = True
                    self.reporter.message(
                        f"stopping early at step {self.step:,}: validation has not improved for "
                        f"{self.validation.since_best} evaluations ({spelled('patience', self.config.patience)}); best.pt holds "
                        f"the best, {nats_to_bits(self.validation.best):.4f} bpc"
                    )
            if saving:
                self._save()
            if evaluating or saving:
                self.reporter.paused(time.perf_counter() - pause_began)
            if stop_signal:
                self._stop(int(stop_signal))

    def _train_tuning_threads(self) -> torch.Tensor:
        """One step; with --threads auto, its time goes to the tuner, which keeps the faster count."""
        if self.threads is None:
            return self._train_one_window()
        began = time.perf_counter()
        loss = self._train_one_window()
        self.threads.observe(time.perf_counter() - began)
        return loss

    def _train_one_window(self) -> torch.Tensor:
        window = self.step % self.train_streams.num_windows
        if window == 0:  # a new epoch reads every stream from its start again
            self.hidden = self.model.init_hidden(self.train_streams.batch_size, self.device)
        inputs, targets = (t.to(self.device, non_blocking=True) for t in self.train_streams.window(window))
        set_learning_rate(self.optimizer, learning_rate(self.step, self._agreed_elapsed, self.budget, self.config))
        loss, self._grad_norm, self.hidden = train_step(
            self.forward_model, self.optimizer, inputs, targets, self.hidden, self.config.clip, self.precision
        )
        self.step += 1
        return loss

    def _log(self) -> None:
        steps = self.step - self._logged_step
        loss_sum = self._mean_over_ranks(self._loss_sum).item()  # the one host sync per log
        self._check_finite(loss_sum)
        now = time.perf_counter()
        chars_per_sec = steps * self.train_streams.chars_per_window / max(now - self._logged_time, 1e-9)
        lr = self.optimizer.param_groups[0]["lr"]
        self.reporter.log(self.step, self.elapsed(), loss_sum / steps, lr, chars_per_sec)
        self._record(
            "train",
            train_bpc=nats_to_bits(loss_sum / steps),
            lr=lr,
            chars_per_sec=round(chars_per_sec, 1),
            grad_norm=None if self._grad_norm is None else float(self._grad_norm),
            threads=torch.get_num_threads() if self.threads is None else self.threads.chosen,
        )
        self._loss_sum.zero_()
        self._logged_step, self._logged_time = self.step, now

    def _check_finite(self, loss: float | None = None) -> None:
        """Stop before a NaN or infinite loss can reach a checkpoint."""
        value = float(self._mean_over_ranks(self._loss_sum)) if loss is None else loss
        if math.isfinite(value):
            return
        kept = (
            f"the last good state is step {self.saved_step:,}" if self.saved_step is not None else "nothing was saved"
        )
        lower = float(f"{self.config.lr / 4:g}")  # a rate a person would type
        raise TrainingDiverged(
            f"training diverged: the loss became {value} by step {self.step:,}; {kept}. "
            f"Resume with a lower learning rate (e.g. {spelled('resume', True)} {spelled('lr', lower)}) "
            f"or a smaller {spelled('clip')}"
        )

    def _evaluate(self) -> float:
        """The validation loss (nats); best.pt is saved when it is the best so far."""
        val_loss = evaluate_loss(self.model, self.val_streams, self.device, self.precision, self.group.sum)
        self._check_finite(val_loss)
        is_best = self.validation.record(val_loss)
        if is_best:
            self._check_finite()
            checkpoint = self.checkpoint()  # every rank takes part: it gathers their hidden states
            if self.group.is_main:
                # best.pt keeps a better model saved before a resume from an earlier step
                is_best = self.out.save_best(checkpoint)
        self.reporter.evaluated(self.step, val_loss, is_best)
        self._record("validation", val_bpc=nats_to_bits(val_loss), best=is_best)
        return val_loss

    def _preview(self, val_loss: float | None) -> None:
        """A sample of the model as it is, shown under the evaluation and kept in samples.txt;
        the seed is the run's, the same at every evaluation, so previews differ only by the model."""
        if not self.config.preview_chars or not self.group.is_main:
            return
        text = preview_text(self.model, self.record.vocab, self.config.preview_chars, self.config.seed)
        if text is not None:
            self.reporter.previewed(self.step, text)
            self.previews.append(self.step, text, None if val_loss is None else nats_to_bits(val_loss))

    def _record(self, kind: str, **figures: Any) -> None:
        if self.group.is_main:
            epoch = self.step / self.train_streams.num_windows
            self.metrics.append(
                {
                    "kind": kind,
                    "step": self.step,
                    "epoch": round(epoch, 4),
                    **figures,
                    "elapsed": round(self.elapsed(), 2),
                }
            )

    def _save(self) -> None:
        self._check_finite()
        checkpoint = self.checkpoint()
        if self.group.is_main:
            self.out.save(checkpoint, self.config.keep)
        self.saved_step = self.step
        self.release_pages()  # the corpus read since the last save leaves resident memory

    def _stop(self, signal_number: int) -> None:
        if self.saved_step != self.step:
            self._save()
        self.group.barrier()  # every rank stops at this step; none leaves while rank 0 writes
        exit_code = 128 + signal_number  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM
        raise TrainingStopped(signal_name(signal_number), self.step, str(self.out.path / LATEST), exit_code)

    def _mean_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        return self.group.sum(value) / self.group.world_size

    def elapsed(self) -> float:
        """Seconds of training in this run, earlier sessions included."""
        running = time.perf_counter() - self._started if self._started is not None else 0.0
        return self.elapsed_before + running

    def checkpoint(self) -> Checkpoint:
        """Everything needed to continue this run exactly. With several processes, the hidden
        state of all streams is gathered (so the run can resume on any number of processes)
        and so are the random generator states of all ranks."""
        windows = self.train_streams.num_windows
        return Checkpoint(
            charrnn_version=__version__,
            model_config=self.model.config,
            train_config=self.config,
            record=self.record,
            weights=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            step=self.step,
            data_position=(self.step // windows, self.step % windows),
            hidden=tuple(self.group.gather_rows(h, dim=1).cpu() for h in self.hidden),  # (layers, B, H)
            rng=rng_state(),
            best_val_loss=self.validation.best,
            evals_since_best=self.validation.since_best,
            last_val_loss=self.validation.last,
            elapsed=self.elapsed(),
            world_size=self.group.world_size if self.group.active else None,
            rng_ranks=self.group.gather_objects(rng_state()) if self.group.active else None,
        )

    def _restore(self, checkpoint: Checkpoint, path: Path) -> None:
        """Continue from a checkpoint written by `checkpoint`."""
        check_training_state(checkpoint, path)  # prepare_run checked it too, before any work
        try:
            self.model.load_state_dict(checkpoint.weights)
            self.optimizer.load_state_dict(checkpoint.optimizer)
        except (RuntimeError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{path} does not fit this model: {str(error).splitlines()[0]}") from None
        self.step = self.saved_step = checkpoint.step
        self.hidden = _checked_hidden(self._my_rows(checkpoint.hidden), self.hidden, path)
        self.validation = Validation(
            self.config.patience, checkpoint.best_val_loss, checkpoint.last_val_loss, checkpoint.evals_since_best
        )
        self.elapsed_before = checkpoint.elapsed
        self._restore_rng(checkpoint)

    def _my_rows(self, hidden: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """This rank's streams of a saved hidden state, which holds all of them."""
        if self.group.active and all(h.dim() == 3 for h in hidden):
            return tuple(h[:, self.group.rows(h.shape[1])] for h in hidden)
        return hidden

    def _restore_rng(self, checkpoint: Checkpoint) -> None:
        """Each rank's generator as saved when the number of processes is the same; with
        another number, dropout draws cannot continue as they were and are seeded anew."""
        ranks = checkpoint.rng_ranks
        if ranks is not None and len(ranks) == self.group.world_size:
            set_rng_state(ranks[self.group.rank])
        elif self.group.active:
            torch.manual_seed(self.config.seed + 1_000_003 * self.step + self.group.rank)
        else:
            set_rng_state(checkpoint.rng)

    def _result(self, already_complete: bool) -> TrainResult:
        return TrainResult(
            step=self.step,
            budget=self.budget,
            elapsed=self.elapsed(),
            best_val_loss=self.validation.best,
            last_val_loss=self.validation.last,
            already_complete=already_complete,
            out_dir=self.out.path,
            model_config=self.model.config,
            train_config=self.config,
            stopped_early=self.validation.out_of_patience,
            unigram_bits=self.train_streams.unigram_bits(),
        )


def _checked_hidden(saved: Any, expected: Hidden, path: Path) -> Hidden:
    if (
        not isinstance(saved, (tuple, list))
        or len(saved) != len(expected)
        or any(not isinstance(h, torch.Tensor) or h.shape != e.shape for h, e in zip(saved, expected))
    ):
        raise CheckpointError(f"{path} has a hidden state that does not fit this model and batch size")
    return tuple(h.to(device=e.device, dtype=e.dtype) for h, e in zip(saved, expected))

"""Training: what the user asks for (TrainRequest), how the run ended (TrainResult), and
building the run (fresh, resumed or fine-tuned) that the truncated-BPTT loop fits.

Read top to bottom: `run_training` builds a Trainer (`build_trainer`: everything checked and
built, passed in through its constructor), then fits it. The loop itself, and the state a
checkpoint holds: charrnn.run.loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from charrnn.core.data import Streams, eval_streams, split_train_val
from charrnn.core.model import CharRNN, load_grown, num_parameters
from charrnn.core.threads import ThreadTuner, candidate_counts
from charrnn.errors import ConfigError
from charrnn.run.distributed import SINGLE, Group, join, leave
from charrnn.run.loop import Trainer
from charrnn.run.optim import build_optimizer
from charrnn.run.prepare import StartingPoint, prepare_run
from charrnn.run.progress import Reporter
from charrnn.run.result import TrainResult
from charrnn.run.runtime import autocast, select_device
from charrnn.run.sizing import check_memory, describe_memory, training_memory
from charrnn.settings.budget import format_duration
from charrnn.settings.option import AUTO
from charrnn.settings.spelling import spelled


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
            trainer.saver.out.release()
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
    streams = trainer.steps.streams
    processes = (
        f"; {trainer.group.world_size} processes, {streams.batch_size} streams each" if trainer.group.active else ""
    )
    reporter.message(
        f"training: {trainer.config.batch_size} streams of {streams.data.shape[1]:,} characters, "
        f"{streams.num_windows:,} windows per epoch{processes}; device {trainer.steps.device.type}{_threads_note(trainer)}, "
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
    if trainer.steps.device.type != "cpu":
        return ""
    count = torch.get_num_threads()
    return " (threads: auto)" if trainer.steps.threads is not None else f" ({count} thread{'s' if count > 1 else ''})"

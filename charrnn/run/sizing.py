"""A model sized to its text and its budget, and the memory its training will need.

The rule and the estimate are arithmetic on the corpus, the vocabulary and the configs, done
before anything is built.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from charrnn.core.data import EVAL_SEQ_LEN, EVAL_STREAMS
from charrnn.errors import ConfigError
from charrnn.settings.config import ModelConfig, TrainConfig, pick
from charrnn.settings.spelling import spelled
from charrnn.store.files import open_to_read

SIZED_FIELDS = ("hidden_size", "dropout")  # what the rule chooses when the user does not

# The rule, from the sweep in docs/benchmarks.md ("A model sized to its text"): four corpora from
# 25 thousand to 3.7 million characters, trained for 2 and 10 minutes on two CPU cores.
HIDDEN_SIZES = (128, 256, 512)
STEP_BUDGET_SIZE = 256  # for a run given in steps: a larger model would only make it longer
MIN_STEPS = 1300  # a time budget gets the largest size that trains at least this many steps in it
SMALL_TEXT, SMALL_TEXT_MOST = 100_000, 256  # a text of fewer characters gets at most this size: more mostly memorises
# Dropout by passes over the training text: a run that sees its text a few times cannot overfit
# it; one that sees it hundreds of times must be held back hard.
DROPOUT_BY_PASSES = ((4.0, 0.0), (20.0, 0.2), (150.0, 0.3), (math.inf, 0.5))

# Seconds on two cores of the machine the sweep ran on, fitted to its measured step and
# evaluation times (within about 15 %): a fixed cost, then per 10^9 multiply-adds of the
# recurrent layers and of the output layer, and per 10^9 vocabulary entries of the softmax.
STEP_COST = (0.0155, 0.0657, 0.0658, 15.24)
EVAL_COST = (0.216, 0.0224, 0.0261, 6.59)


@dataclass(frozen=True)
class SizeChoice:
    hidden_size: int
    dropout: float
    steps: int  # the steps the run is expected to train (a time budget's estimated from STEP_COST)
    passes: float  # how many times those steps read the training text


def choose_size(
    chars: int, model: ModelConfig, train: TrainConfig, max_steps: int | None, hidden_size: int | None = None
) -> SizeChoice:
    """The hidden size (unless given) and dropout for `model` (whose own are ignored) trained on
    `chars` characters for `max_steps` steps or `train.max_time` seconds, whichever ends first."""
    if hidden_size is None:
        hidden_size = STEP_BUDGET_SIZE if train.max_time is None else _size_for_time(chars, model, train)
    steps = max_steps or 0
    if train.max_time is not None:
        in_time = _steps_in(train.max_time, _resized(model, hidden_size), train, chars)
        steps = in_time if max_steps is None else min(max_steps, in_time)
    passes = steps * train.batch_size * train.seq_len / max(_training_chars(chars, train), 1)
    dropout = next(rate for limit, rate in DROPOUT_BY_PASSES if passes < limit)
    return SizeChoice(hidden_size, dropout, steps, passes)


def _training_chars(chars: int, train: TrainConfig) -> float:
    """The characters training reads: the corpus less its held-out last part."""
    return chars * (1 - train.val_fraction)


def _size_for_time(chars: int, model: ModelConfig, train: TrainConfig) -> int:
    """The largest size that trains MIN_STEPS steps in the time (the smallest where none does)."""
    assert train.max_time is not None
    sizes = [size for size in HIDDEN_SIZES if chars >= SMALL_TEXT or size <= SMALL_TEXT_MOST]
    fitting = [size for size in sizes if _steps_in(train.max_time, _resized(model, size), train, chars) >= MIN_STEPS]
    return max(fitting, default=sizes[0])


def _resized(model: ModelConfig, hidden_size: int) -> ModelConfig:
    return dataclasses.replace(model, hidden_size=hidden_size)


def _steps_in(seconds: float, model: ModelConfig, train: TrainConfig, chars: int) -> int:
    """Steps, with their evaluations, that fit in `seconds` on a machine like the sweep's."""
    step = _seconds(STEP_COST, model, train.batch_size * train.seq_len)
    evaluation = _seconds(EVAL_COST, model, min(train.eval_chars, int(chars * train.val_fraction)))
    return int(seconds / (step + evaluation / train.eval_every))


def _seconds(cost: tuple[float, float, float, float], model: ModelConfig, positions: int) -> float:
    fixed, per_recurrent, per_output, per_softmax = cost
    per_position = (
        per_recurrent * model.recurrent_parameter_count
        + per_output * model.output_parameter_count
        + per_softmax * model.vocab_size
    )
    return fixed + per_position * positions / 1e9


def sized_options(
    options: Mapping[str, Any], chars: int, vocab_size: int, train: TrainConfig
) -> tuple[dict[str, Any], str | None]:
    """`options` with the model's size and dropout chosen for the text and the run's length where
    the user gave none, and why, for the run's header (None: the user chose both)."""
    missing = [name for name in SIZED_FIELDS if name not in options]
    if not missing:
        return dict(options), None
    steps = train.max_steps
    if train.epochs is not None:
        by_epochs = math.ceil(train.epochs * _training_chars(chars, train) / (train.batch_size * train.seq_len))
        steps = by_epochs if steps is None else min(steps, by_epochs)
    model = ModelConfig(**{**pick(ModelConfig, options), "vocab_size": vocab_size})
    choice = choose_size(chars, model, train, steps, options.get("hidden_size"))
    chosen = {name: getattr(choice, name) for name in missing}
    budget = f"{choice.steps:,} steps"
    if train.max_time is not None:
        budget = f"{_minutes(train.max_time)} of training (some {choice.steps:,} steps on two cores)"
    flags = " and ".join(spelled(name) for name in missing)
    reason = (
        f"sized for {chars:,} characters of text and {budget}, about {_passes(choice.passes)} over it; "
        f"set {flags} to choose"
    )
    return {**options, **chosen}, reason


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.3g} min" if seconds >= 60 else f"{seconds:.3g} s"


def _passes(passes: float) -> str:
    if passes < 1:
        return f"{passes:.2f} of a pass"
    return f"{passes:,.0f} pass{'es' if round(passes) != 1 else ''}"


# Memory. Measured peaks (docs/benchmarks.md, "Memory a run needs") set the runtime's own share;
# the rest is counted from the shapes.
FLOAT = 4  # bytes: weights, gradients, moments and activations are float32
RUNTIME_BYTES = 350 << 20  # torch, numpy and charrnn themselves, resident before any model exists
LOOKUP_BYTES = 0x110000 * 4  # a vocabulary's code-point table (vocab.Vocab), one per vocabulary read


@dataclass(frozen=True)
class MemoryNeed:
    """Bytes a training run needs at its peak, by what they hold."""

    model: int  # weights, gradients, AdamW's two moments and the fused kernel's copy
    working: int  # the largest of a training step's activations, an evaluation's, a save's copy
    runtime: int = RUNTIME_BYTES

    @property
    def total(self) -> int:
        return self.model + self.working + self.runtime


def training_memory(model: ModelConfig, train: TrainConfig, corpus_ids_bytes: int = 0) -> MemoryNeed:
    """What training `model` as `train` says needs, at its peak.

    Persistent: five float32 copies of every parameter (weights, gradients, two moments, and the
    fused kernel's own copy of the weights). Then the largest of: a training step's (each of
    B x T positions keeps its layers' gates and outputs, and the logits, their softmax and
    gradient over the vocabulary; the optimizer's temporaries, two more copies), an
    evaluation's (EVAL_STREAMS x EVAL_SEQ_LEN positions, forward only: a layer's gates, the
    outputs, the logits and their log-softmax) and a save's (the weights and moments serialised
    once). The corpus's ids are memory-mapped and released at each save: counted whole, an
    upper bound. Measured peaks are in docs/benchmarks.md ("Memory a run needs").
    """
    parameters = model.parameter_count
    positions = train.batch_size * train.seq_len
    kept = model.cell_type.activations_per_unit  # per unit: the gates, the cell or candidate
    per_position = model.layers * model.hidden_size * (kept + 2) + model.input_size + 3 * model.vocab_size
    step = (positions * per_position + 2 * parameters) * FLOAT
    gate_width = model.gate_width
    evaluation = EVAL_STREAMS * EVAL_SEQ_LEN * (2 * model.vocab_size + gate_width + 3 * model.hidden_size) * FLOAT
    save = 3 * parameters * FLOAT
    working = max(step, evaluation, save) + corpus_ids_bytes + 2 * LOOKUP_BYTES
    return MemoryNeed(model=5 * parameters * FLOAT, working=working)


def available_memory(device_type: str = "cpu") -> int | None:
    """Bytes free for a new run on this device, or None where that cannot be told."""
    if device_type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    try:  # Linux: what can be allocated without swapping, page cache included
        with open_to_read("/proc/meminfo") as file:
            lines = file.read().decode("ascii", "replace").splitlines()
        for line in lines:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # elsewhere: the machine's memory, an upper bound
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(need: MemoryNeed, device_type: str = "cpu") -> int | None:
    """Refuse a run that would not fit in the memory free now; the bytes free (None: unknown)."""
    free = available_memory(device_type)
    if free is not None and need.total > free:
        raise ConfigError(
            f"this run needs about {format_bytes(need.total)} of memory, and {format_bytes(free)} is free: "
            f"a smaller {spelled('hidden_size')}, {spelled('layers')}, {spelled('batch_size')} or {spelled('seq_len')} "
            "needs less "
            f"(or {spelled('max_vocab')}, for a large vocabulary)"
        )
    return free


def describe_memory(need: MemoryNeed, free: int | None) -> str:
    """`memory about 385 MiB (21.7 GiB free)`, for the run's header."""
    return f"memory about {format_bytes(need.total)}" + (f" ({format_bytes(free)} free)" if free is not None else "")


def format_bytes(count: int) -> str:
    """`310 MiB`, `2.5 GiB`."""
    if count >= 1 << 30:
        return f"{count / (1 << 30):.1f} GiB"
    return f"{max(count >> 20, 1):,} MiB"

"""Whether a checkpoint's training state can be continued: its optimizer's moments, step and
counters, carried hidden state, validation losses and random generators, each checked for what
it means (a run resumed from nonsense would train on nonsense)."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from charrnn.display import printable
from charrnn.errors import CheckpointError
from charrnn.settings.config import ModelConfig
from charrnn.settings.option import MAX_COUNT, MAX_LR
from charrnn.settings.spelling import spelled
from charrnn.store.checkpoint import Checkpoint, hidden_shapes, parameter_shapes
from charrnn.store.stored_form import WEIGHT_DTYPES, is_count, is_number, is_tensor

# The training state: what only a run that continues a checkpoint uses (its optimizer, step,
# carried hidden state, validation losses, counters and random generators). Sampling,
# evaluation, info and --init-from read the weights, vocabulary and configs alone, so a
# checkpoint is refused for its training state only where a run is to continue it.

_MAX_LOSS = 3.4028234663852886e38  # the largest float32: no loss computed in float32 is larger
_MAX_TANH = 1.01  # a carried h is a tanh output (an LSTM's, a GRU's blend of them): rounding aside, |h| <= 1
_ADAM_STATE = ("step", "exp_avg", "exp_avg_sq")  # what AdamW keeps per parameter
_SQUARES = ("exp_avg_sq", "max_exp_avg_sq")  # running means of squared gradients: never negative
# AdamW's settings charrnn never changes, and the values it has (absent: torch's default applies).
_FIXED_SETTINGS: dict[str, tuple[Any, ...]] = {
    "amsgrad": (False,),
    "maximize": (False,),
    "capturable": (False,),
    "differentiable": (False,),
    "fused": (None, False),
    "foreach": (None, False, True),
    "decoupled_weight_decay": (True,),
}


def check_training_state(checkpoint: Checkpoint, path: str | Path) -> None:
    """Refuse, with a CheckpointError naming the first field that is wrong, a checkpoint whose
    training state a run cannot continue: every tensor of it checked against the model config
    (shapes, parameter groups) and every value against its meaning (moments finite, mean
    squares never negative, losses finite and never negative, counts within the run)."""
    problem = next(_training_state_problems(checkpoint), None)
    if problem is not None:
        raise CheckpointError(
            f"{printable(path)} cannot be resumed: {problem}; its weights can still be sampled from, "
            f"evaluated or fine-tuned with {spelled('init_from')}"
        )


def sound_best_loss(checkpoint: Checkpoint) -> float | None:
    """The checkpoint's best validation loss, or None where its validation losses are not ones
    a run can have (a best.pt holding such a loss is no standard for a better model)."""
    return None if next(_loss_problems(checkpoint), None) is not None else checkpoint.best_val_loss


def optimizer_parameters(config: ModelConfig) -> list[list[tuple[str, tuple[int, ...]]]]:
    """The (name, shape) of the parameters in each group of `optim.build_optimizer`, in its
    order: the weight matrices (decayed), then the vectors (biases)."""
    shapes = parameter_shapes(config).items()
    return [[(n, s) for n, s in shapes if len(s) >= 2], [(n, s) for n, s in shapes if len(s) < 2]]


def _training_state_problems(checkpoint: Checkpoint) -> Iterator[str]:
    """What is wrong with the training state, first found first (the generator stops there)."""
    if checkpoint.weights_only:
        yield "it is a model file (charrnn export), which keeps no training state: resume the checkpoint it came from"
        return
    yield from _count_problems(checkpoint)
    yield from _loss_problems(checkpoint)
    yield from _hidden_problems(checkpoint)
    yield from _optimizer_problems(checkpoint)
    yield from _rng_problems(checkpoint)


def _count_problems(c: Checkpoint) -> Iterator[str]:
    if not is_count(c.step) or c.step > MAX_COUNT:
        yield f"its step {_shown_value(c.step)} is not a count of updates (0 to {MAX_COUNT:,})"
    elif not is_count(c.evals_since_best) or c.evals_since_best > c.step:
        # an evaluation follows an update, at most one per step
        yield f"evals_since_best {_shown_value(c.evals_since_best)} is not a count of evaluations within {c.step:,} steps"
    elif c.best_val_loss is None and c.evals_since_best:
        yield f"evals_since_best is {c.evals_since_best:,}, but it holds no best validation loss"
    elif not (is_number(c.elapsed) and 0 <= c.elapsed < 2**63):
        yield f"elapsed_seconds {_shown_value(c.elapsed)} is not a duration"
    elif c.data_position is not None and not _is_position(c.step, *c.data_position):
        yield f"data_position {_shown_value(c.data_position)} is no (epoch, window) of step {c.step:,}"
    elif (c.world_size is None) != (c.rng_ranks is None):
        yield "it records processes (world_size) without their random generators (rng_ranks), or these without those"
    elif c.world_size is not None and not (is_count(c.world_size) and 1 <= c.world_size <= c.train_config.batch_size):
        yield f"world_size {_shown_value(c.world_size)} is not a number of processes sharing {c.train_config.batch_size} streams"
    elif c.rng_ranks is not None and len(c.rng_ranks) != c.world_size:
        yield f"it holds {len(c.rng_ranks):,} random generator states (rng_ranks) for {c.world_size} processes"


def _is_position(step: int, epoch: Any, window: Any) -> bool:
    """Whether (epoch, window) is (step // windows, step % windows) for some number of windows."""
    if not (is_count(epoch) and is_count(window)) or epoch * window > step or window > step:
        return False
    if epoch == 0:
        return window == step  # an epoch longer than the run so far
    windows, left = divmod(step - window, epoch)
    return left == 0 and window < windows


def _loss_problems(c: Checkpoint) -> Iterator[str]:
    for name, loss in (("best_val_loss", c.best_val_loss), ("val_loss", c.last_val_loss)):
        if loss is None:
            continue
        if not is_number(loss):
            yield f"{name} {_shown_value(loss)} is not a finite number of nats"
        elif loss < 0:
            yield f"{name} is {_shown_value(loss)}, but a loss (nats per character) is never negative"
        elif loss > _MAX_LOSS:
            yield f"{name} is {_shown_value(loss)}, more than any loss computed in float32"
    if c.best_val_loss is None and c.last_val_loss is not None:
        yield "it holds a last validation loss (val_loss) but no best one (best_val_loss)"
    elif c.best_val_loss is not None and c.last_val_loss is not None and c.best_val_loss > c.last_val_loss:
        yield (
            f"best_val_loss {_shown_value(c.best_val_loss)} is above the last validation loss "
            f"{_shown_value(c.last_val_loss)}, where the best is the lowest so far"
        )


def _hidden_problems(c: Checkpoint) -> Iterator[str]:
    expected = hidden_shapes(c.model_config, c.train_config)
    if len(c.hidden) != len(expected) or not all(is_tensor(h) for h in c.hidden):
        yield f"its hidden state holds {len(c.hidden)} entries where a {c.model_config.cell.upper()} carries {len(expected)}"
        return
    for index, (h, shape) in enumerate(zip(c.hidden, expected)):
        where = f"hidden[{index}]"
        problem = _tensor_problem(h, shape, "its model config and batch size need")
        if problem is not None:
            yield f"{where} {problem}"
        elif index == 0 and not _all_within(h, _MAX_TANH):
            yield f"{where} holds values beyond [-1, 1], which no recurrent cell's output reaches"


def _optimizer_problems(c: Checkpoint) -> Iterator[str]:
    groups, expected = c.optimizer["param_groups"], optimizer_parameters(c.model_config)
    if len(groups) != len(expected):
        yield f"its optimizer has {len(groups)} parameter groups where charrnn's has {len(expected)}"
        return
    parameters: list[tuple[str, tuple[int, ...]]] = []
    for index, (group, wanted) in enumerate(zip(groups, expected)):
        ids = list(range(len(parameters), len(parameters) + len(wanted)))
        if list(group["params"]) != ids:
            yield (
                f"optimizer parameter group {index} lists parameters {_shown_value(group['params'])} "
                f"where the model's are {ids}"
            )
            return
        parameters += wanted
        yield from _setting_problems(group, index)
    for key, state in c.optimizer["state"].items():
        if key >= len(parameters):
            yield f"its optimizer holds state for parameter {key:,}, which the model lacks ({len(parameters)} parameters)"
            continue
        yield from _moment_problems(state, *parameters[key], c.step)


def _setting_problems(group: dict[str, Any], index: int) -> Iterator[str]:
    where = f"optimizer parameter group {index}"
    for name, low, high, low_open in (
        ("lr", 0, MAX_LR, False),
        ("eps", 0, 1, True),
        ("weight_decay", 0, MAX_LR, False),
    ):
        value = group.get(name)
        if not is_number(value) or value < low or value > high or (low_open and value == low):
            yield f"{where} has {name} {_shown_value(value)}, not a finite number from {low} ({'excluded' if low_open else 'included'}) to {high:g}"
    betas = group.get("betas")
    if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(is_number(b) and 0 <= b < 1 for b in betas)):
        yield f"{where} has betas {_shown_value(betas)}, not a pair of numbers from 0 to 1 (excluded)"
    for name, allowed in _FIXED_SETTINGS.items():
        if name in group and not any(group[name] is value for value in allowed):
            yield f"{where} has {name} {_shown_value(group[name])}, where charrnn's AdamW has {allowed[0]}"


def _moment_problems(state: dict[str, Any], name: str, shape: tuple[int, ...], steps: int) -> Iterator[str]:
    """What is wrong with AdamW's state of parameter `name` (empty: it has taken no step yet)."""
    if not state:
        return
    where = f"the optimizer state of {name}"
    missing = [key for key in _ADAM_STATE if key not in state]
    strangers = sorted(set(state) - {*_ADAM_STATE, *_SQUARES})
    if missing or strangers:
        yield f"{where} {'lacks ' + ', '.join(missing) if missing else 'holds ' + printable(strangers[0], 40)}, as AdamW's never does"
        return
    taken = _one_number(state["step"])
    if taken is None or not taken.is_integer() or not 1 <= taken <= steps:
        yield f"{where} has step {_shown_value(state['step'])}, not a count of its updates from 1 to the run's {steps:,}"
    for key in ("exp_avg", *(square for square in _SQUARES if square in state)):
        moment = state[key]
        if not is_tensor(moment):
            yield f"{where} has a {key} that is no tensor"
        elif (problem := _tensor_problem(moment, shape, "the parameter has")) is not None:
            yield f"optimizer moment {key} of {name} {problem}"
        elif key in _SQUARES and not _all_within(moment, math.inf, low=0.0):
            yield f"optimizer moment {key} of {name} holds negative values, but it is a mean of squares"


def _rng_problems(c: Checkpoint) -> Iterator[str]:
    import torch

    states = [("rng", c.rng), *((f"rng_ranks[{i}]", rng) for i, rng in enumerate(c.rng_ranks or ()))]
    for where, rng in states:
        state = rng["torch"]
        try:
            torch.Generator().set_state(torch.as_tensor(state))  # torch's own check of size, type and content
        except (RuntimeError, TypeError, ValueError) as error:
            yield f"{where} holds a random generator state torch refuses ({_first_words(error)})"
        for index, device_state in enumerate(rng.get("cuda") or ()):
            if _dtype_name(device_state) != "uint8" or len(device_state.shape) != 1:
                yield f"{where} holds a CUDA generator state (cuda[{index}]) that is not a row of bytes"


def _tensor_problem(tensor: Any, shape: tuple[int, ...], needed: str) -> str | None:
    """What is wrong with a tensor of the training state that must have `shape` and hold
    finite floating-point numbers (in float32, as training holds them); None if nothing."""
    if tuple(tensor.shape) != shape:
        return f"has shape {printable(tuple(tensor.shape), 100)} where {needed} {shape}"
    if _dtype_name(tensor) not in WEIGHT_DTYPES:
        return f"holds {printable(tensor.dtype, 40)}, not floating-point numbers"
    if not _finite_in_float32(tensor):
        return "holds NaN or infinite values (in float32, as training holds them)"
    return None


def _one_number(value: Any) -> float | None:
    """A plain number, or a tensor of one (not a vector) of numbers, as a float; else None."""
    if is_number(value):
        return float(value)
    if is_tensor(value) and tuple(value.shape) == () and _dtype_name(value) != "bool":
        number = float(value.item())
        return number if math.isfinite(number) else None
    return None


def _dtype_name(tensor: Any) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def _finite_in_float32(tensor: Any) -> bool:
    """Whether every value is finite once held as float32 (training's dtype: 1e300 is not)."""
    if isinstance(tensor, np.ndarray):
        with np.errstate(over="ignore"):
            return bool(np.isfinite(tensor.astype(np.float32)).all())
    torch = sys.modules["torch"]
    return bool(torch.isfinite(tensor.to(torch.float32)).all())


def _all_within(tensor: Any, high: float, low: float | None = None) -> bool:
    """Whether every value lies in [low, high] (low: -high unless given)."""
    low = -high if low is None else low
    if tensor.size == 0 if isinstance(tensor, np.ndarray) else tensor.numel() == 0:
        return True
    return bool(low <= float(tensor.min()) and float(tensor.max()) <= high)


def _shown_value(value: Any) -> str:
    """A value from a file, short: numbers in four significant figures, anything else cut."""
    if is_number(value) and not isinstance(value, int):
        return f"{value:.4g}"
    if is_tensor(value) and tuple(value.shape) == () and _dtype_name(value) != "bool":
        return _shown_value(float(value.item()))
    if is_tensor(value):
        return f"(a tensor of shape {printable(tuple(value.shape), 40)})"
    if isinstance(value, (list, tuple, dict)) and len(value) > 4:
        return f"(a {type(value).__name__} of {len(value):,} entries)"
    return printable(repr(value), 60)


def _first_words(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return printable(lines[0] if lines else type(error).__name__, 100)

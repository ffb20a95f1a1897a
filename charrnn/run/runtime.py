"""The machine side of a run: which device, and the random number generators' state."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from typing import Any

import torch

from charrnn.core.threads import check_threads
from charrnn.errors import CheckpointError, ConfigError
from charrnn.settings.option import DEVICES, DTYPES
from charrnn.settings.spelling import spelled


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def select_device(name: str) -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then CPU; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        reason = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU was found"
        raise ConfigError(f"{spelled('device', 'cuda')} was asked for, but {reason}; use {spelled('device', 'cpu')}")
    if name == "mps" and not _mps_available():
        raise ConfigError(
            f"{spelled('device', 'mps')} was asked for, but Apple's MPS backend is not available; "
            f"use {spelled('device', 'cpu')}"
        )
    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r}: choose one of {', '.join(DEVICES)}")
    return torch.device(name)


def use_threads(count: int | str | None) -> None:
    """Run PyTorch's CPU work on `count` threads; None, or "auto" (the training loop tunes the
    count, threads.py), leaves it as it is."""
    check_threads(count)
    if isinstance(count, int):
        torch.set_num_threads(count)


def rng_state() -> dict[str, Any]:
    """Every generator a training step draws from (dropout masks), as plain tensors."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Any) -> None:
    """Restore what `rng_state` captured, so a resumed run draws the same numbers."""
    try:
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"the checkpoint's random generator state is unusable ({error})") from None


class StopSignals:
    """While active, a first SIGINT (Ctrl-C) or SIGTERM asks training to stop after the current
    step (`received` tells which); a second one interrupts at once. Checkpoint writes are atomic,
    so even that leaves every checkpoint whole."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # Python allows handlers only there
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, frame: object) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = number


def signal_name(number: int) -> str:
    return "Ctrl-C" if number == signal.SIGINT else signal.Signals(number).name


def autocast(device: torch.device, dtype: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of contexts to run forward passes in: bfloat16 autocast, or nothing for float32.

    Weights and optimizer state stay float32 either way; only the matrix products run in
    bfloat16 (faster on GPUs and on CPUs with bfloat16 units).
    """
    if dtype == "float32":
        return contextlib.nullcontext
    if dtype != "bfloat16":
        raise ConfigError(f"unknown {spelled('dtype')} {dtype!r}: choose one of {', '.join(DTYPES)}")
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)

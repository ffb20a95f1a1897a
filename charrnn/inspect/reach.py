"""How far back a model's predictions reach: the gradient of log p(character t) with respect to
the input at t - k, averaged over windows of the text, for k = 1 ... span.

A vanilla RNN's curve falls off within a few dozen characters (the vanishing gradient); an LSTM's
or a GRU's gates keep it up much longer. The "input" is the vector the first recurrent layer reads
(the one-hot vector or the embedding), so the curve is comparable across cells and input modes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.core.model import CharRNN, Hidden
from charrnn.core.threads import UNTUNED, Tuning

# Characters of the warm-up read at a time: the pieces whose times choose the thread count
# (--threads auto). A piece of the default model's 64 windows takes milliseconds, far above
# the fused layer's cost per call, and the default warm-up of 200 characters makes 20 of them.
WARM_UP_PIECE = 10


def choose_windows(length: int, span: int, windows: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """The target positions t (sorted, distinct) of a text of `length` ids, and the warm-up: how
    many characters before each window (t - span ... t - 1) are read first to set its state.

    The warm-up is `span` where the text allows, shorter where it does not leave `windows`
    targets; every target has its window and its whole warm-up inside the text. Fewer than
    `windows` targets come back only when the text has fewer positions than that (length - span).
    """
    if span < 1:
        raise ValueError(f"the memory span must be at least 1 character, got {span}")
    if windows < 1:
        raise ValueError(f"the memory curve needs at least 1 window, got {windows}")
    if length < span + 1:
        raise ValueError(
            f"the text has {length:,} characters; a memory span of {span:,} needs at least {span + 1:,} "
            "(a window of that many and the character it predicts)"
        )
    warmup = min(span, max(0, length - span - windows))
    first = span + warmup
    count = min(windows, length - first)
    targets = np.random.default_rng(seed).choice(np.arange(first, length), size=count, replace=False)
    return np.sort(targets), warmup


def memory_curve(
    model: CharRNN,
    ids: np.ndarray,
    span: int,
    windows: int = 64,
    seed: int = 0,
    tuning: Tuning = UNTUNED,
    advance: Callable[[int], None] = lambda chars: None,
) -> np.ndarray:
    """(span,) float64: the mean over `windows` target positions t of || d log p(x_t) / d input_{t-k} ||_2,
    for k = 1 ... span (index k - 1).

    `ids` are the ids the model reads; -1 (a character the vocabulary lacks, which the model skips
    without changing its state) is dropped, so k counts characters the model read. The model runs
    in eval mode (no dropout: the gradient of the function that predicts) and is left as it was.
    `tuning` times the warm-up's pieces (threads.py), and the gradient runs on the count they
    chose; `advance` is told the characters of each window read (`memory_chars` in all).
    """
    ids = np.asarray(ids, dtype=np.int64)
    ids = ids[ids >= 0]
    if ids.size and ids.max() >= model.config.vocab_size:
        raise ValueError(f"id {ids.max()} is outside the model's vocabulary of {model.config.vocab_size}")
    targets, warmup = choose_windows(len(ids), span, windows, seed)
    was_training = model.training
    model.eval()
    try:
        device_ids = torch.from_numpy(ids).to(model.head.weight.device)
        norms = _gradient_norms(model, device_ids, targets, span, warmup, tuning, advance)
    finally:
        model.train(was_training)
    return norms.mean(dim=0).flip(0).double().cpu().numpy()


def memory_chars(length: int, span: int, windows: int = 64) -> int:
    """What `memory_curve` tells `advance` in all, for a progress display: the characters of
    each window, its warm-up and the span read again backwards by the gradient."""
    _, warmup = choose_windows(length, span, windows)
    return warmup + 2 * span


def _gradient_norms(
    model: CharRNN,
    ids: torch.Tensor,
    targets: np.ndarray,
    span: int,
    warmup: int,
    tuning: Tuning,
    advance: Callable[[int], None],
) -> torch.Tensor:
    """(windows, span): || d log p(x_t) / d input || at each position of each window, oldest first."""
    starts = torch.as_tensor(targets - span, device=ids.device)
    offsets = torch.arange(-warmup, span + 1, device=ids.device)
    rows = ids[starts[:, None] + offsets]  # (B, warmup + span + 1): warm-up, window, target
    hidden = _warm_up(model, rows[:, :warmup], tuning, advance)
    with torch.enable_grad():  # even when the caller runs under no_grad
        # A leaf per window: the windows are independent streams of one batch, so one backward
        # pass of their summed log-probabilities gives each window its own gradient.
        inputs = model.inputs(rows[:, warmup:-1]).detach().requires_grad_()
        outputs, _ = model.recurrent_from(inputs, hidden)
        log_probs = F.log_softmax(model.head(outputs[:, -1]), dim=-1)
        picked = log_probs.gather(1, rows[:, -1:]).sum()
        advance(span)
        (gradient,) = torch.autograd.grad(picked, inputs)  # not .backward(): the weights' .grad stay untouched
        advance(span)
    return gradient.norm(dim=-1)


def _warm_up(model: CharRNN, warm_ids: torch.Tensor, tuning: Tuning, advance: Callable[[int], None]) -> Hidden | None:
    """The state after reading the characters before each window, from a zero start.

    Starting a window from the zero state would measure the model where it rarely is (only at the
    start of a text) and distort the far end of the curve. Warmed up, each window starts from the
    state the model has in the running text, so for k <= span the gradient is the one of the model
    reading the text from its start with the state carried, as `charrnn eval` reads it. The
    warm-up is outside the gradient's path (d/d input_{t-k} flows only forward from t - k), so it
    runs without a graph, WARM_UP_PIECE characters at a time with the state carried.
    """
    hidden = None
    with torch.no_grad():
        for begin in tuning.timed(range(0, warm_ids.shape[1], WARM_UP_PIECE)):
            piece = warm_ids[:, begin : begin + WARM_UP_PIECE]
            _, hidden = model.recurrent(piece, hidden)
            advance(piece.shape[1])
    return hidden

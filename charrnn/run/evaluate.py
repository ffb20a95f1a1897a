"""Scoring a model on a text: mean cross-entropy in nats, and in bits per character."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.core.data import EVAL_SEQ_LEN, EVAL_STREAMS, Streams, eval_streams
from charrnn.core.model import CharRNN
from charrnn.core.nearest import Unseen
from charrnn.core.threads import UNTUNED, Tuning
from charrnn.core.vocab import Vocab
from charrnn.display import printable
from charrnn.errors import CheckpointError, CorpusError
from charrnn.run.adapt import Adapter, adaptive_losses, adaptive_windowed_losses
from charrnn.settings.config import AdaptConfig
from charrnn.settings.spelling import spelled
from charrnn.store.corpus import Corpus
from charrnn.store.encoded import CorpusCache, Progress, no_progress
from charrnn.store.metrics import nats_to_bits

Advance = Callable[[int], None]  # told the characters scored by each piece, for a progress display

_LARGEST_EXP = math.log(sys.float_info.max)


@torch.inference_mode()
def evaluate_loss(
    model: CharRNN,
    streams: Streams,
    device: torch.device,
    precision: Callable[[], ContextManager] = nullcontext,
    total_over_ranks: Callable[[torch.Tensor], torch.Tensor] = lambda sums: sums,
    *,
    tuning: Tuning = UNTUNED,
    advance: Advance = lambda scored: None,
) -> float:
    """Mean cross-entropy (nats per character) over every target in `streams`.

    The hidden state is carried across windows, as in training, so each character is
    scored with all the context before it in its stream. Dropout is off while scoring.
    In distributed training each rank scores its share of the streams and
    `total_over_ranks` adds up the (loss, count) sums of all ranks. `tuning` times each
    window (for --threads auto); `advance` is told the characters each one scored.
    """
    sums = _loss_sums(model, streams, device, precision, tuning, advance)
    total, count = total_over_ranks(sums).tolist()  # the one host sync
    return total / count


@torch.inference_mode()
def windowed_loss(
    model: CharRNN,
    ids: np.ndarray,
    window: int,
    device: torch.device,
    batch: int = EVAL_STREAMS,
    *,
    tuning: Tuning = UNTUNED,
    advance: Advance = lambda scored: None,
) -> tuple[float, int]:
    """Mean cross-entropy (nats per character) over independent windows, as nanoGPT scores a text,
    and how many characters were scored.

    The text is cut into windows of `window` + 1 characters that overlap by one: `window`
    inputs, each predicting the next character, so every window's first target is predicted from
    one character and a zero state, and its last from `window` characters. Each window starts
    from a zero state. A last partial window is dropped, since nanoGPT only ever draws whole
    ones: each context length 1..`window` weighs the same.
    """
    count = (len(ids) - 1) // window
    if count < 1:
        raise ValueError(f"{len(ids):,} characters make no window of {window + 1:,}")
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    for first in range(0, count, batch):
        rows = min(batch, count - first)
        piece = torch.from_numpy(np.asarray(ids[first * window : (first + rows) * window + 1], dtype=np.int64))
        windows = piece.unfold(0, window + 1, window)  # (rows, window + 1), each row a window
        # As streams side by side (read EVAL_SEQ_LEN at a time), each from a zero state.
        streams = Streams(windows.reshape(-1), rows, min(window, EVAL_SEQ_LEN))
        sums += _loss_sums(model, streams, device, tuning=tuning, advance=advance)
    total, scored = sums.tolist()
    return total / scored, int(scored)


def _loss_sums(
    model: CharRNN,
    streams: Streams,
    device: torch.device,
    precision: Callable[[], ContextManager] = nullcontext,
    tuning: Tuning = UNTUNED,
    advance: Advance = lambda scored: None,
) -> torch.Tensor:
    """(summed cross-entropy, characters scored) over `streams`, read from a zero state with the
    state carried from window to window, dropout off."""
    was_training = model.training
    model.eval()
    hidden = model.init_hidden(streams.batch_size, device)
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # summed loss, characters
    windows = streams.every_window() if streams.batch_size else ()  # a rank may have no share
    for inputs, targets in tuning.timed(windows):
        with precision():
            logits, hidden = model(inputs.to(device), hidden)  # (B, T, V)
        targets = targets.to(device)
        sums[0] += F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum").double()
        sums[1] += targets.numel()
        advance(targets.numel())
    model.train(was_training)
    return sums


@dataclass(frozen=True)
class TextScore:
    """How well a model predicts a text."""

    chars: int  # characters of the text
    scored: int  # characters predicted and scored (each stream's first has no context)
    nats: float  # mean cross-entropy per scored character
    unseen: Unseen  # what became of the characters without an id of their own in the model's vocabulary
    mapped: int  # of the text's characters, those read as the nearest character the model knows
    as_unknown: int  # scored as the unknown character
    left_out: int  # left out of the text
    text: str = ""  # which text: the corpus's description
    streams: int = 0  # the text is scored as this many streams (or windows) side by side
    window: int = 0  # > 0: scored in independent windows of this many targets, each from a zero state (nanoGPT's way)
    adapted: AdaptConfig | None = None  # how the model learned from the text as it scored it (dynamic evaluation)

    @property
    def outside(self) -> int:
        """Characters of the text without an id of their own in the model's vocabulary."""
        return self.mapped + self.as_unknown + self.left_out

    @property
    def outside_distinct(self) -> int:
        return len(self.unseen.chars)

    @property
    def bits(self) -> float:
        return nats_to_bits(self.nats)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats) if self.nats < _LARGEST_EXP else math.inf  # e^710 overflows a float


def score_text(
    model: CharRNN,
    vocab: Vocab,
    corpus: Corpus,
    device: torch.device,
    progress: Progress = no_progress,
    window: int | None = None,
    unknown: str = "skip",
    tuning: Tuning = UNTUNED,
    adapter: Adapter | None = None,
) -> TextScore:
    """Bits per character and perplexity of `model` on a held-out text: with the state carried
    through the text, or with `window`, in independent windows of that many targets each scored
    from a zero state, as nanoGPT scores (`windowed_loss`). `tuning`: what the windows run under
    (threads.running_on); `progress` hears of the passes over the text and of the scoring.

    Characters the vocabulary lacks are counted and reported, and become what the `unknown`
    policy says (Vocab.unseen): each read as its nearest known character, else scored as unknown
    where the vocabulary has an unknown id, else left out of the text (skip) or refused.

    With `adapter`, the model learns from the text as it scores it (dynamic evaluation,
    adapt.py): carried, the text is read as one stream, in order; the caller decides whether
    the adapted weights are kept (Adapter.reset).
    """
    cache = CorpusCache(corpus)
    counted = cache.counts(progress)
    counts = counted[0].counts
    unseen = vocab.unseen(vocab.unknown_chars_counted(counts), unknown)
    if unseen.refusal:
        raise CorpusError(f"{printable(corpus.description)} {unseen.refusal}")
    reading = vocab.reading(unseen)  # the unseen characters as aliases, those left out as one more id
    ids = cache.encoded(reading, progress, counted).ids
    if unseen.left_out:
        ids = ids[ids != reading.unknown_id]
    if window:
        if len(ids) <= window:
            raise CorpusError(
                f"{printable(corpus.description)} has {len(ids):,} characters in the model's vocabulary; "
                f"a window of {window:,} needs {window + 1:,} (score it in shorter windows)"
            )
        advance = progress("scoring", (len(ids) - 1) // window * window, unit="characters")
        if adapter is None:
            nats, scored = windowed_loss(model, ids, window, device, tuning=tuning, advance=advance)
        else:
            nats, scored = _mean(adaptive_windowed_losses(adapter, ids, window, device, tuning, advance))
        sides = scored // window  # windows
    elif adapter is not None:
        check_adaptable(ids, adapter.adaptation.adapt_segment, corpus.description)
        advance = progress("scoring and adapting", len(ids) - 1, unit="characters")
        nats, scored = _mean(adaptive_losses(adapter, ids, device, tuning, advance))
        sides = 1
    else:
        streams = eval_streams(ids)
        if streams is None:
            raise CorpusError(f"{corpus.description} has too few characters in the model's vocabulary to score")
        advance = progress("scoring", streams.num_targets, unit="characters")
        nats = evaluate_loss(model, streams, device, tuning=tuning, advance=advance)
        scored, sides = streams.num_targets, streams.batch_size
    advance(None)
    if not math.isfinite(nats):  # never report "nan bits per character"
        raise CheckpointError(
            f"the model scores {printable(corpus.description)} as {nats} nats per character: "
            "its weights are damaged or out of range"
        )
    return TextScore(
        counted[0].total,
        scored,
        nats,
        unseen,
        _occurrences(counts, unseen.mapped),
        _occurrences(counts, unseen.as_unknown),
        _occurrences(counts, unseen.left_out),
        corpus.description,
        sides,
        window or 0,
        adapter.adaptation if adapter is not None else None,
    )


def _mean(losses: np.ndarray) -> tuple[float, int]:
    return float(losses.mean()), len(losses)


def check_adaptable(ids: np.ndarray, segment: int, description: str) -> None:
    """Dynamic evaluation reads the text in segments: refuse one too short to fill one."""
    if len(ids) < segment + 1:
        raise CorpusError(
            f"{printable(description)} has {len(ids):,} characters in the model's vocabulary; adapting in "
            f"segments of {segment:,} needs at least {segment + 1:,} (a shorter {spelled('adapt_segment')})"
        )


def _occurrences(counts: np.ndarray, chars: Iterable[str]) -> int:
    """How often `chars` occur in a text with these counts (indexed by code point)."""
    return int(sum(counts[ord(char)] for char in chars))

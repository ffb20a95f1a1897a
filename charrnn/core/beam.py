"""Beam search: the most likely continuation a beam of hypotheses finds, rather than a sampled one
(`charrnn sample --beam N`); beam 1 is greedy decoding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from charrnn.core.numpy_model import NumpyCharRNN, repeated
from charrnn.core.sampling import Loaded, cut_at_stop, prime_ids, read_prime, require_usable
from charrnn.core.threads import UNTUNED, Tuning

if TYPE_CHECKING:  # for annotations only: torch is imported only where a torch model is given
    from charrnn.core.model import CharRNN


def beam_search(
    model: NumpyCharRNN | CharRNN,
    start_ids: Sequence[int],
    length: int,
    beam: int,
    banned: int | None = None,
    tuning: Tuning = UNTUNED,
) -> list[int]:
    """The most likely continuation of `length` characters that a beam of `beam` hypotheses
    finds: at each step every hypothesis is extended by every character, and the `beam` with
    the highest total log-probability are kept (beam 1 is greedy decoding; among equal totals,
    the earlier hypothesis and character).

    Each step records only which hypothesis each kept one extends and by which character;
    the best sequence is traced back once at the end, so the work is linear in `length`.
    `tuning` times the steps (threads.py).
    """
    model = NumpyCharRNN.of(model)
    logits, state = read_prime(model, start_ids)
    vocab_size = logits.shape[-1]
    scores = np.zeros(1, dtype=np.float32)  # total log-probability of each hypothesis
    # picks[t, k]: hypothesis k of step t is hypothesis picks // V of step t - 1 plus character picks % V
    picks = np.empty((length, beam), dtype=np.int64)
    for position in tuning.timed(range(length)):
        require_usable(logits.max(axis=-1))  # NaN would sort last here, not first: refused at once
        log_probs = log_softmax(logits)
        if banned is not None:
            log_probs[:, banned] = -np.inf
        totals = (scores[:, None] + log_probs).ravel()  # (K * V,)
        best = _top(totals, beam)
        scores = totals[best]
        picks[position, : len(best)] = best
        if position + 1 < length:
            logits, state = model.step(best % vocab_size, repeated(state, best // vocab_size))
    return traced_back(picks, vocab_size)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _top(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` largest of `values`, largest first (ties: the lower index first)."""
    if count < len(values):
        candidates = np.argpartition(-values, count - 1)[:count]
        candidates.sort()  # ties in index order, for the stable sort below
    else:
        candidates = np.arange(len(values))
    return candidates[np.argsort(-values[candidates], kind="stable")]


def traced_back(picks: np.ndarray, vocab_size: int) -> list[int]:
    """The characters of the best final hypothesis (row 0: topk sorts), followed back through
    the hypotheses it extends (see beam_search)."""
    sequence, row = [], 0
    for step in reversed(range(len(picks))):
        row, char = divmod(int(picks[step, row]), vocab_size)
        sequence.append(char)
    return sequence[::-1]


def generate_beam(
    loaded: Loaded,
    prime: str | None,
    length: int,
    beam: int,
    stops: Sequence[str] = (),
    unknown: str = "map",
    tuning: Tuning = UNTUNED,
) -> str:
    """The prime and its most likely continuation by beam search, cut after the first of `stops`."""
    start = prime_ids(loaded.vocab, prime, np.random.default_rng(0), unknown)
    ids = beam_search(loaded.model, start, length, beam, loaded.vocab.unknown_id, tuning)
    return (prime or "") + cut_at_stop(loaded.vocab.decode(ids), stops)

"""Generating text: the prime is read once, then one step per character, state carried.

Each new character costs one single-step forward pass, however long the text grows; a
prime of any length is read in bounded memory.

Generation runs in numpy (charrnn.core.numpy_model), on weights read from the checkpoint without
torch: importing torch alone takes longer than a whole sample, and each torch call costs more
than a step's arithmetic at batch 1. A torch CharRNN given here (training's previews, tests)
has its weights copied into a NumpyCharRNN; so every sampling rule lives in this one place.
Random draws come from numpy's Generator (PCG64), seeded: the same seed gives the same text.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from charrnn.core.numpy_model import NumpyCharRNN, State, repeated
from charrnn.core.threads import UNTUNED, Tuning
from charrnn.core.vocab import Vocab
from charrnn.errors import CheckpointError, OptionError
from charrnn.settings.config import SampleConfig
from charrnn.settings.option import MAX_SEED
from charrnn.settings.spelling import spelled

if TYPE_CHECKING:  # for annotations only: torch is imported only where a torch model is given
    from charrnn.core.model import CharRNN


class Loaded(Protocol):
    """What generation needs of a loaded model (charrnn.store.loading.LoadedModel is one)."""

    model: NumpyCharRNN | CharRNN
    vocab: Vocab


def filter_logits(logits: np.ndarray, top_k: int | None, top_p: float | None) -> np.ndarray:
    """Logits (B, V) with every character outside the top-k / nucleus (top-p) set to -inf.

    Both rules are exact about ties, so that any program following them keeps the same
    characters (the web page does): top-k keeps the k largest, and among logits equal to the
    k-th, the lowest ids; top-p ranks by logit, ties by id (a stable sort), and keeps the ranks
    before the first whose predecessors' probabilities (softmax in id order) add up to top_p."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = -np.partition(-logits, top_k - 1, axis=-1)[:, top_k - 1 : top_k]  # (B, 1): the k-th largest
        ties = logits == kth
        room = top_k - (logits > kth).sum(axis=-1, keepdims=True)
        logits = np.where((logits > kth) | (ties & (np.cumsum(ties, axis=-1) <= room)), logits, -np.inf)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-logits, axis=-1, kind="stable")
        sorted_probs = np.take_along_axis(softmax(logits), order, axis=-1)
        # Drop a character once the ones ranked above it reach top_p; the first always stays.
        reached = (np.cumsum(sorted_probs, axis=-1) - sorted_probs) >= top_p
        reached[:, 0] = False
        drop = np.empty_like(reached)
        np.put_along_axis(drop, order, np.logical_or.accumulate(reached, axis=-1), axis=-1)
        logits = np.where(drop, -np.inf, logits)
    return logits


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities (B, V) of logits (B, V) whose rows each hold a finite best. The total is
    added in id order (a cumulative sum), not numpy's pairwise order: the page adds the same way."""
    exps = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exps / np.cumsum(exps, axis=-1)[:, -1:]


def pick_next(
    logits: np.ndarray,
    config: SampleConfig,
    rng: np.random.Generator,
    banned: int | None = None,
    previous: np.ndarray | None = None,
) -> np.ndarray:
    """The next character id of each of B samples (B,), from logits (B, V); never `banned`.
    `previous` (B,): the character each sample ends with, whose runs keep the model's lengths."""
    logits = np.array(logits, dtype=np.float64)  # a copy: `banned` is written into it
    if banned is not None:
        logits[:, banned] = -np.inf
    best = logits.max(axis=-1, keepdims=True)  # max, unlike argmax, lets NaN through to be caught
    require_usable(best)
    if config.greedy:
        return logits.argmax(axis=-1)
    with np.errstate(over="ignore", under="ignore"):  # extreme temperatures: see scaled
        probs = sharpened(logits, config, best)
        if previous is not None and not config.sharpen_runs and _sharpens(config):
            probs = runs_as_the_model_has_them(probs, logits, np.asarray(previous), config)
    return draw(probs, rng)


def _sharpens(config: SampleConfig) -> bool:
    """Whether the choices make the likeliest characters likelier than the model makes them."""
    return config.temperature < 1 or config.top_k is not None or config.top_p is not None


def sharpened(logits: np.ndarray, config: SampleConfig, best: np.ndarray | None = None) -> np.ndarray:
    """Probabilities (B, V) at the temperature, after top-k and top-p."""
    logits = scaled(logits, logits.max(axis=-1, keepdims=True) if best is None else best, config.temperature)
    if config.top_k is not None or config.top_p is not None:
        logits = filter_logits(logits, config.top_k, config.top_p)
    return softmax(logits)


def runs_as_the_model_has_them(
    probs: np.ndarray, logits: np.ndarray, previous: np.ndarray, config: SampleConfig
) -> np.ndarray:
    """The sharpened probabilities `probs` (B, V), except that repeating the previous character
    is never made likelier than the model itself makes it.

    Inside a run of one character (the spaces that align a continued line, blank lines, `====`)
    the model gives the repeat a high probability and spreads the rest over many characters.
    A temperature below 1, top-k and top-p all inflate the repeat, so runs grow far beyond any
    in the corpus and often never end (measured at temperature 0.8: runs of 60 to 80 spaces
    where the corpus's longest is 40; at 0.5, of 900). Here the repeat keeps the model's
    probability, so runs keep the lengths the model learned, and the other characters share the
    rest as sharpening ranks them among themselves.
    """
    rows = np.arange(len(previous))
    allowed = softmax(logits)[rows, previous]
    without_repeat = logits.copy()
    without_repeat[rows, previous] = -np.inf
    # Only where another character can follow (a vocabulary may hold just one to write).
    inflated = (probs[rows, previous] > allowed) & np.isfinite(without_repeat).any(axis=-1)
    if not inflated.any():
        return probs
    others = sharpened(np.where(inflated[:, None], without_repeat, logits), config)
    capped = others * (1.0 - allowed)[:, None]
    capped[rows, previous] = allowed
    return np.where(inflated[:, None], capped, probs)


def scaled(logits: np.ndarray, best: np.ndarray, temperature: float) -> np.ndarray:
    """Logits (B, V) for sampling at `temperature`: at 1 as they are, else the gaps to each
    row's best (B, 1) divided by it (softmax, top-k and top-p do not change with a shift).

    Dividing the gaps to the best, which are <= 0, never gives inf - inf = NaN however small or
    large the temperature: the best stays 0, the rest fall to -inf at worst (a temperature that
    small is greedy decoding).
    """
    if temperature == 1.0:
        return logits
    return (logits - best) / temperature


def require_usable(best: np.ndarray) -> None:
    """Refuse predictions whose best logits (or beam scores) are NaN or infinite: they come from
    damaged or out-of-range weights, and whatever was drawn from them would be garbage."""
    if not np.isfinite(best).all():
        raise CheckpointError("the model predicts NaN or infinite scores: its weights are damaged or out of range")


def draw(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of probs (B, V), chosen with the probabilities given: inverse-CDF
    sampling (one uniform number per row)."""
    cdf = np.cumsum(probs, axis=-1, dtype=np.float64)
    point = rng.random((len(probs), 1)) * cdf[:, -1:]
    # The first index whose cumulative sum passes the point, never a zero-probability one
    # (searchsorted right=True, row by row).
    return np.minimum((cdf <= point).sum(axis=-1), probs.shape[-1] - 1)


def prime_ids(vocab: Vocab, prime: str | None, rng: np.random.Generator, unknown: str = "map") -> list[int]:
    """Ids to start from: the prime's, its characters the model never saw read as the --unknown
    policy says; or a newline (else a random character) with no prime, or none left of it."""
    if len(vocab) == (vocab.unknown_id is not None):  # sampling never writes the unknown character
        raise CheckpointError("the model's vocabulary holds no character to generate, only the unknown one")
    if prime:
        unseen = vocab.unseen(vocab.unknown_chars(prime), unknown)
        if unseen.refusal:
            raise OptionError(spelled("prime"), unseen.refusal)
        ids = [int(i) for i in vocab.read_ids(prime, unseen) if i >= 0]
        if ids:
            return ids
    for start in ("\n", " "):
        if start in vocab:
            return [int(vocab.encode(start)[0])]
    return [int(rng.integers(len(vocab)))]


# One stream is computed in float64, as the web page computes it (charrnn export --html), so that
# the two write the same text (numpy_model.py); batches of samples in float32, which is faster.
ONE_STREAM = np.float64
PRIME_CHUNK = 4096  # prime characters per pass through the recurrent layers: bounds a long prime's memory


def read_prime(model: NumpyCharRNN, start_ids: Sequence[int], num_samples: int = 1) -> tuple[np.ndarray, State]:
    """The logits (B, V) of the character after the prime, and the state to step on from, for
    `num_samples` identical copies; refused if the model predicts NaN.

    The prime is read once for all samples, PRIME_CHUNK characters at a time, state carried,
    and only its last position goes through the output layer: memory stays bounded however
    long the prime (the logits of every position of a 120 KB prime took 3.4 GB).
    """
    state = model.zero_state(1)
    for begin in range(0, len(start_ids), PRIME_CHUNK):
        outputs, state = model.read(start_ids[begin : begin + PRIME_CHUNK], state)
    logits = model.logits(outputs)  # (1, V)
    require_usable(logits.max(axis=-1))
    copies = np.zeros(num_samples, dtype=np.intp)
    return logits[copies], repeated(state, copies)


def generate_ids(
    model: NumpyCharRNN | CharRNN,
    start_ids: Sequence[int],
    config: SampleConfig,
    rng: np.random.Generator,
    num_samples: int = 1,
    banned: int | None = None,
    tuning: Tuning = UNTUNED,
) -> Iterator[np.ndarray]:
    """The next character id of each of `num_samples` samples (B,), `config.length` times.

    The prime is read here, at once (see read_prime), so a model that predicts NaN is refused
    before anything is printed; then each character is one step of the cells, so every
    character costs the same, however long the text. `tuning` times the steps (threads.py).
    """
    model = NumpyCharRNN.of(model, ONE_STREAM if num_samples == 1 else np.float32)
    logits, state = read_prime(model, start_ids, num_samples)
    last = np.full(num_samples, start_ids[-1])
    return _sampled_ids(model, logits, state, config, rng, banned, last, tuning)


def _sampled_ids(
    model: NumpyCharRNN,
    logits: np.ndarray,
    state: State,
    config: SampleConfig,
    rng: np.random.Generator,
    banned: int | None,
    ids: np.ndarray,  # (B,) the last character read
    tuning: Tuning,
) -> Iterator[np.ndarray]:
    for position in tuning.timed(range(config.length)):
        ids = pick_next(logits, config, rng, banned, ids)
        yield ids
        if position + 1 < config.length:
            logits, state = model.step(ids, state)


def generate_text(
    loaded: Loaded,
    prime: str | None,
    config: SampleConfig,
    seed: int | None = None,
    stops: Sequence[str] = (),
    unknown: str = "map",
) -> Iterator[str]:
    """Text as it is made: the prime (if any, as given) first, then one character at a time, up
    to and including the first of `stops` to appear in the continuation (generation ends there).
    `unknown`: what the prime's characters that the model never saw become (prime_ids).

    The prime is checked and read here, before anything is generated, so a bad one (or a model
    that predicts NaN) fails at once.
    """
    rng = np.random.default_rng(seed if seed is not None else random_seed())
    start = prime_ids(loaded.vocab, prime, rng, unknown)
    chars = loaded.vocab.chars
    steps = generate_ids(loaded.model, start, config, rng, banned=loaded.vocab.unknown_id)
    continuation = (chars[int(ids[0])] for ids in steps)
    return itertools.chain([prime] if prime else [], until_stop(continuation, stops))


def until_stop(chars: Iterator[str], stops: Sequence[str]) -> Iterator[str]:
    """`chars` up to and including the first occurrence of any of `stops`."""
    longest = max(map(len, stops), default=0)
    recent = ""
    for char in chars:
        yield char
        recent = (recent + char)[-longest:] if longest else ""
        if any(recent.endswith(stop) for stop in stops):
            return


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """`text` up to and including the first occurrence of any of `stops`."""
    ends = [text.find(stop) + len(stop) for stop in stops if stop in text]
    return text[: min(ends)] if ends else text


def generate_samples(
    loaded: Loaded,
    prime: str | None,
    config: SampleConfig,
    num_samples: int,
    seed: int | None = None,
    stops: Sequence[str] = (),
    unknown: str = "map",
    tuning: Tuning = UNTUNED,
) -> list[str]:
    """`num_samples` independent texts from one batched pass, each starting with the prime and
    each cut after the first of `stops` in its continuation."""
    rng = np.random.default_rng(seed if seed is not None else random_seed())
    start = prime_ids(loaded.vocab, prime, rng, unknown)
    steps = generate_ids(loaded.model, start, config, rng, num_samples, loaded.vocab.unknown_id, tuning)
    columns = [ids.tolist() for ids in steps]
    chars = loaded.vocab.chars
    return [
        (prime or "") + cut_at_stop("".join(chars[column[row]] for column in columns), stops)
        for row in range(num_samples)
    ]


def heading(number: int, count: int, temperature: float | None = None) -> str:
    """The line above each of several samples: `--- sample 2 of 5 ---`, with the temperature
    where samples of several temperatures stand together."""
    at = f" (temperature {temperature:g})" if temperature is not None else ""
    return f"--- sample {number} of {count}{at} ---"


def random_seed() -> int:
    return int.from_bytes(os.urandom(4), "little")


def child_seed(seed: int, index: int) -> int:
    """The seed of stream `index` drawn from `seed` (numpy's SeedSequence spawn keys): as
    reproducible as `seed`, and unrelated to it and to every other index."""
    state = np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(1, np.uint64)
    return int(state[0]) & MAX_SEED


def batch_seed(seed: int | None, first: int) -> int | None:
    """The seed of the batch of samples from number `first` on: `seed` itself for the first
    batch (the samples `generate` makes), a stream of its own for each later one."""
    return seed if seed is None or first == 0 else child_seed(seed, first)

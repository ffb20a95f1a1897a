"""Generating text: the prime is read once, then one step per character, state carried.

Each new character costs one single-step forward pass, however long the text grows; a
prime of any length is read in bounded memory.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from charrnn.checkpoint import Checkpoint
from charrnn.config import SampleConfig
from charrnn.errors import CheckpointError, OptionError
from charrnn.model import CharRNN, CharStepper, LayerState
from charrnn.outdir import load_from
from charrnn.vocab import Vocab


@dataclass(frozen=True)
class LoadedModel:
    model: CharRNN
    vocab: Vocab
    path: Path
    step: int
    passed_over: tuple[str, ...] = ()  # damaged checkpoints skipped to reach this one
    checkpoint: Checkpoint | None = None  # everything the file holds (None for a model built in memory)


def load_model(location: str | Path, device: torch.device) -> LoadedModel:
    """The model in a checkpoint file, or in an out folder's best.pt (else its newest good one)."""
    found = load_from(location, prefer="best")
    checkpoint = found.checkpoint
    model = CharRNN(checkpoint.model_config)
    try:
        model.load_state_dict(checkpoint.weights)
    except (RuntimeError, KeyError, TypeError) as error:
        raise CheckpointError(f"{found.path} does not fit its own model config: {str(error).splitlines()[0]}") from None
    return LoadedModel(
        model.to(device).eval(), checkpoint.vocab, found.path, checkpoint.step, found.passed_over, checkpoint
    )


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Logits (B, V) with every character outside the top-k / nucleus (top-p) set to -inf."""
    if top_k is not None and top_k < logits.shape[-1]:
        values, indices = torch.topk(logits, top_k, dim=-1)  # exactly k, even among ties
        logits = torch.full_like(logits, float("-inf")).scatter(-1, indices, values)
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        sorted_probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a character when the ones ranked above it already reach top_p; the first always stays.
        drop_sorted = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def pick_next(
    logits: torch.Tensor,
    config: SampleConfig,
    generator: torch.Generator,
    banned: int | None = None,
    previous: torch.Tensor | None = None,
) -> torch.Tensor:
    """The next character id of each of B samples (B,), from logits (B, V); never `banned`.
    `previous` (B,): the character each sample ends with, whose runs keep the model's lengths."""
    if banned is not None:
        logits = logits.index_fill(-1, torch.tensor([banned]), float("-inf"))
    logits = logits.float()
    best, best_ids = logits.max(dim=-1, keepdim=True)  # max, unlike argmax, lets NaN through to be caught
    require_usable(best)
    if config.greedy:
        return best_ids.view(-1)
    probs = sharpened(logits, config)
    if previous is not None and (config.temperature < 1 or config.top_k is not None or config.top_p is not None):
        probs = runs_as_the_model_has_them(probs, logits, previous, config)
    return draw(probs, generator)


def sharpened(logits: torch.Tensor, config: SampleConfig) -> torch.Tensor:
    """Probabilities (B, V) at the temperature, after top-k and top-p."""
    logits = scaled(logits, logits.max(dim=-1, keepdim=True).values, config.temperature)
    if config.top_k is not None or config.top_p is not None:
        logits = filter_logits(logits, config.top_k, config.top_p)
    return torch.softmax(logits, dim=-1)


def runs_as_the_model_has_them(
    probs: torch.Tensor, logits: torch.Tensor, previous: torch.Tensor, config: SampleConfig
) -> torch.Tensor:
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
    rows = torch.arange(previous.shape[0])
    allowed = torch.softmax(logits, dim=-1)[rows, previous]
    without_repeat = logits.index_put((rows, previous), torch.tensor(float("-inf")))
    # Only where another character can follow (a vocabulary may hold just one to write).
    inflated = (probs[rows, previous] > allowed) & torch.isfinite(without_repeat).any(dim=-1)
    if not bool(inflated.any()):
        return probs
    others = sharpened(torch.where(inflated.unsqueeze(-1), without_repeat, logits), config)
    capped = others * (1.0 - allowed).unsqueeze(-1)
    capped[rows, previous] = allowed
    return torch.where(inflated.unsqueeze(-1), capped, probs)


# Temperatures that, and whose reciprocals, are ordinary float32 numbers: no 0/0 or -inf/inf.
_PLAIN_TEMPERATURES = (1e-30, 1e30)


def scaled(logits: torch.Tensor, best: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logits (B, V) for sampling at `temperature`: at 1 as they are, else the gaps to each
    row's best (B, 1) divided by it (softmax, top-k and top-p do not change with a shift).

    Dividing the gaps to the best, which are <= 0, never gives inf - inf = NaN however small or
    large the temperature: the best stays 0, the rest fall to -inf at worst (a temperature that
    small is greedy decoding).
    """
    if temperature == 1.0:
        return logits
    gaps = logits - best
    if _PLAIN_TEMPERATURES[0] <= temperature <= _PLAIN_TEMPERATURES[1]:
        return gaps / temperature
    return (gaps.double() / temperature).float()  # as float32 scalars, 1e-300 is 0 and 1e300 infinite


def require_usable(best: torch.Tensor) -> None:
    """Refuse predictions whose best logits (or beam scores) are NaN or infinite: they come from
    damaged or out-of-range weights, and whatever was drawn from them would be garbage."""
    if not all(map(math.isfinite, best.view(-1).tolist())):  # a list: fewer tensor ops per character
        raise CheckpointError("the model predicts NaN or infinite scores: its weights are damaged or out of range")


def draw(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One index per row of probs (B, V), chosen with the probabilities given: inverse-CDF
    sampling, a third of the cost of torch.multinomial per character at batch 1."""
    cdf = probs.cumsum(dim=-1)
    point = torch.rand(probs.shape[0], 1, generator=generator, dtype=cdf.dtype) * cdf[:, -1:]
    # right=True: the first index whose cumulative sum passes the point, never a zero-probability one
    return torch.searchsorted(cdf, point, right=True).clamp_(max=probs.shape[-1] - 1).view(-1)


def prime_ids(vocab: Vocab, prime: str | None, generator: torch.Generator) -> list[int]:
    """Ids to start from: the prime's, or a newline (else a random character) with no prime."""
    if len(vocab) == (vocab.unknown_id is not None):  # sampling never writes the unknown character
        raise CheckpointError("the model's vocabulary holds no character to generate, only the unknown one")
    if prime:
        unknown = vocab.unknown_chars(prime)
        if unknown and vocab.unknown_id is None:  # with an unknown id they map to it, as in training
            listed = ", ".join(repr(c) for c in unknown[:20])
            raise OptionError("--prime", f"has characters the model never saw in training: {listed}")
        return [int(i) for i in vocab.encode(prime)]
    for start in ("\n", " "):
        if start in vocab:
            return [int(vocab.encode(start)[0])]
    return [int(torch.randint(len(vocab), (1,), generator=generator))]


PRIME_CHUNK = 4096  # prime characters per pass through the recurrent layers: bounds a long prime's memory


@torch.inference_mode()
def read_prime(model: CharRNN, start_ids: Sequence[int], num_samples: int = 1) -> tuple[torch.Tensor, list[LayerState]]:
    """The logits (B, V) of the character after the prime, and the state to step on from (see
    CharStepper), for `num_samples` identical copies; refused if the model predicts NaN.

    The prime is read once for all samples, through the fused layers PRIME_CHUNK characters at
    a time, state carried, and only its last position goes through the output layer: memory
    stays bounded however long the prime (the logits of every position of a 120 KB prime took
    3.4 GB).
    """
    device = model.head.weight.device
    ids = torch.as_tensor(start_ids, dtype=torch.long, device=device).unsqueeze(0)  # (1, P)
    hidden = model.init_hidden(1, device)
    for chunk in ids.split(PRIME_CHUNK, dim=1):
        outputs, hidden = model.recurrent(chunk, hidden)  # (1, chunk, H)
    logits = model.head(outputs[:, -1])  # (1, V); dropout is off in inference
    require_usable(logits.max(dim=-1).values)
    copies = tuple(h.expand(-1, num_samples, -1).contiguous() for h in hidden)
    return logits.expand(num_samples, -1), CharStepper(model).layer_states(copies)


def generate_ids(
    model: CharRNN,
    start_ids: Sequence[int],
    config: SampleConfig,
    generator: torch.Generator,
    num_samples: int = 1,
    banned: int | None = None,
) -> Iterator[torch.Tensor]:
    """The next character id of each of `num_samples` samples (B,), `config.length` times.

    The prime is read here, at once (see read_prime), so a model that predicts NaN is refused
    before anything is printed; then each character is one step of the cells (see
    CharStepper), so every character costs the same, however long the text.
    """
    logits, states = read_prime(model, start_ids, num_samples)
    last = torch.full((num_samples,), start_ids[-1])
    return _sampled_ids(CharStepper(model), logits, states, config, generator, banned, last)


@torch.inference_mode()
def _sampled_ids(
    stepper: CharStepper,
    logits: torch.Tensor,
    states: list[LayerState],
    config: SampleConfig,
    generator: torch.Generator,
    banned: int | None,
    ids: torch.Tensor,  # (B,) the last character read
) -> Iterator[torch.Tensor]:
    device = logits.device
    for position in range(config.length):
        ids = pick_next(logits.cpu(), config, generator, banned, ids)  # drawn on the CPU, where the generator lives
        yield ids
        if position + 1 < config.length:
            logits, states = stepper.step(ids.to(device), states)


@torch.inference_mode()
def beam_search(
    model: CharRNN, start_ids: Sequence[int], length: int, beam: int, banned: int | None = None
) -> list[int]:
    """The most likely continuation of `length` characters that a beam of `beam` hypotheses
    finds: at each step every hypothesis is extended by every character, and the `beam` with
    the highest total log-probability are kept (beam 1 is greedy decoding).

    Each step records only which hypothesis each kept one extends and by which character;
    the best sequence is traced back once at the end, so the work is linear in `length`.
    """
    logits, states = read_prime(model, start_ids)
    stepper = CharStepper(model)
    vocab_size = logits.shape[-1]
    scores = torch.zeros(1, device=logits.device)  # total log-probability of each hypothesis
    # picks[t, k]: hypothesis k of step t is hypothesis picks // V of step t - 1 plus character picks % V
    picks = torch.empty(length, beam, dtype=torch.int64, device=logits.device)
    for position in range(length):
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        if banned is not None:
            log_probs[:, banned] = float("-inf")
        totals = (scores[:, None] + log_probs).flatten()  # (K * V,)
        scores, best = totals.topk(min(beam, totals.numel()))
        picks[position, : len(best)] = best
        if position + 1 < length:
            rows, ids = best // vocab_size, best % vocab_size
            kept = tuple(h.index_select(1, rows) for h in stepper.hidden(states))  # each hypothesis its parent's state
            logits, states = stepper.step(ids, stepper.layer_states(kept))
    if length:
        require_usable(scores[:1])  # a NaN anywhere stays in the scores and tops them
    return traced_back(picks.cpu().numpy(), vocab_size)


def traced_back(picks: np.ndarray, vocab_size: int) -> list[int]:
    """The characters of the best final hypothesis (row 0: topk sorts), followed back through
    the hypotheses it extends (see beam_search)."""
    sequence, row = [], 0
    for step in reversed(range(len(picks))):
        row, char = divmod(int(picks[step, row]), vocab_size)
        sequence.append(char)
    return sequence[::-1]


def generate_beam(loaded: LoadedModel, prime: str | None, length: int, beam: int, stops: Sequence[str] = ()) -> str:
    """The prime and its most likely continuation by beam search, cut after the first of `stops`."""
    start = prime_ids(loaded.vocab, prime, torch.Generator().manual_seed(0))
    ids = beam_search(loaded.model, start, length, beam, banned=loaded.vocab.unknown_id)
    return (prime or "") + cut_at_stop(loaded.vocab.decode(ids), stops)


def generate_text(
    loaded: LoadedModel, prime: str | None, config: SampleConfig, seed: int | None = None, stops: Sequence[str] = ()
) -> Iterator[str]:
    """Text as it is made: the prime (if any) first, then one character at a time, up to and
    including the first of `stops` to appear in the continuation (generation ends there).

    The prime is checked and read here, before anything is generated, so a bad one (or a model
    that predicts NaN) fails at once.
    """
    generator = torch.Generator().manual_seed(seed if seed is not None else random_seed())
    start = prime_ids(loaded.vocab, prime, generator)
    chars = loaded.vocab.chars
    steps = generate_ids(loaded.model, start, config, generator, banned=loaded.vocab.unknown_id)
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
    loaded: LoadedModel,
    prime: str | None,
    config: SampleConfig,
    num_samples: int,
    seed: int | None = None,
    stops: Sequence[str] = (),
) -> list[str]:
    """`num_samples` independent texts from one batched pass, each starting with the prime and
    each cut after the first of `stops` in its continuation."""
    generator = torch.Generator().manual_seed(seed if seed is not None else random_seed())
    start = prime_ids(loaded.vocab, prime, generator)
    steps = generate_ids(loaded.model, start, config, generator, num_samples, banned=loaded.vocab.unknown_id)
    columns = [ids.tolist() for ids in steps]
    chars = loaded.vocab.chars
    return [
        (prime or "") + cut_at_stop("".join(chars[column[row]] for column in columns), stops)
        for row in range(num_samples)
    ]


def random_seed() -> int:
    return int.from_bytes(os.urandom(4), "little")

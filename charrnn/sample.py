"""Generating text: the prime is read once, then one step per character, state carried.

Each new character costs one single-step forward pass, however long the text grows.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from charrnn.checkpoint import model_parts
from charrnn.config import SampleConfig
from charrnn.errors import CheckpointError, OptionError
from charrnn.model import CharRNN
from charrnn.outdir import load_from
from charrnn.vocab import Vocab


@dataclass(frozen=True)
class LoadedModel:
    model: CharRNN
    vocab: Vocab
    path: Path
    step: int
    passed_over: tuple[str, ...] = ()  # damaged checkpoints skipped to reach this one


def load_model(location: str | Path, device: torch.device) -> LoadedModel:
    """The model in a checkpoint file, or in an out folder's best.pt (else its newest good one)."""
    found = load_from(location, prefer="best")
    model_config, _, vocab = model_parts(found.state, found.path)
    model = CharRNN(model_config)
    try:
        model.load_state_dict(found.state["model"])
    except (RuntimeError, KeyError, TypeError) as error:
        raise CheckpointError(f"{found.path} does not fit its own model config: {str(error).splitlines()[0]}") from None
    return LoadedModel(model.to(device).eval(), vocab, found.path, found.state["step"], found.passed_over)


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


def pick_next(logits: torch.Tensor, config: SampleConfig, generator: torch.Generator) -> torch.Tensor:
    """The next character id of each of B samples (B,), from logits (B, V)."""
    if config.greedy:
        return logits.argmax(dim=-1)
    logits = filter_logits(logits.float() / config.temperature, config.top_k, config.top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def prime_ids(vocab: Vocab, prime: str | None, generator: torch.Generator) -> list[int]:
    """Ids to start from: the prime's, or a newline (else a random character) with no prime."""
    if prime:
        unknown = vocab.unknown_chars(prime)
        if unknown:
            listed = ", ".join(repr(c) for c in unknown[:20])
            raise OptionError("--prime", f"has characters the model never saw in training: {listed}")
        return [int(i) for i in vocab.encode(prime)]
    for start in ("\n", " "):
        if start in vocab:
            return [int(vocab.encode(start)[0])]
    return [int(torch.randint(len(vocab), (1,), generator=generator))]


@torch.inference_mode()
def generate_ids(
    model: CharRNN, start_ids: list[int], config: SampleConfig, generator: torch.Generator, num_samples: int = 1
) -> Iterator[torch.Tensor]:
    """Yield the next character id of each of `num_samples` samples, `config.length` times."""
    device = model.head.weight.device
    inputs = torch.tensor(start_ids, device=device).repeat(num_samples, 1)  # (B, P)
    logits, hidden = model(inputs, model.init_hidden(num_samples, device))  # the prime, read once
    for position in range(config.length):
        ids = pick_next(logits[:, -1].cpu(), config, generator)  # (B,)
        yield ids
        if position + 1 < config.length:
            logits, hidden = model(ids.view(-1, 1).to(device), hidden)  # one step: (B, 1, V)


def generate_text(
    loaded: LoadedModel, prime: str | None, config: SampleConfig, seed: int | None = None
) -> Iterator[str]:
    """Text as it is made: the prime (if any) first, then one character at a time.

    The prime is checked here, before anything is generated, so a bad one fails at once.
    """
    generator = torch.Generator().manual_seed(seed if seed is not None else random_seed())
    start = prime_ids(loaded.vocab, prime, generator)
    chars = loaded.vocab.chars
    continuation = (chars[int(ids[0])] for ids in generate_ids(loaded.model, start, config, generator))
    return itertools.chain([prime] if prime else [], continuation)


def random_seed() -> int:
    return int.from_bytes(os.urandom(4), "little")

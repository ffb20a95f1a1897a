"""`charrnn viz`: what a trained model sees in a text, gathered for one self-contained page.

The page (drawn by page.py) shows the model's surprise at each character with its five
likeliest guesses, the cells that track simple properties of the text, how often its gates
saturate, how far back its predictions reach, and samples at several temperatures. Everything
but the memory curve runs in numpy (trace.py, cell_roles.py, core/sampling.py), one stream of small steps
that one thread runs fastest; the memory curve needs gradients, so torch is imported for it
alone (reach.py), and its batch of windows runs on the threads --threads says (auto: tuned).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass

import numpy as np

from charrnn.core.nearest import Unseen
from charrnn.core.sampling import generate_text, prime_ids
from charrnn.core.threads import running_on, torch_threads
from charrnn.display import printable
from charrnn.errors import CorpusError, OptionError
from charrnn.inspect.cell_roles import gate_saturation, rank_cells, text_properties
from charrnn.inspect.page import cell_chars_that_fit
from charrnn.inspect.trace import Trace, text_ids, trace_text
from charrnn.settings.config import AdaptConfig, SampleConfig
from charrnn.store.corpus import resolve_corpus
from charrnn.store.encoded import Progress, no_progress
from charrnn.store.loading import LoadedModel

CELL_CHARS_LEAST = 1_000  # characters of activations shown even where the page's budget is spent
PRIME_CHARS = 40  # the samples' default prime: the start of the text's first line, at most this long
TEMPERATURES_MAX = 8  # samples side by side
MEMORY_WINDOWS = 64  # target positions the memory curve averages over


@dataclass(frozen=True)
class VizText:
    """The characters a page shows, and where they came from."""

    text: str
    source: str  # for the page: the file and which of its characters


@dataclass(frozen=True)
class VizSettings:
    """The page's choices (their defaults are the options', in options.py)."""

    temperatures: tuple[float, ...]
    sample_length: int
    prime: str | None  # None: the start of the text's first line
    seed: int  # a page is reproducible: the same text and model draw the same samples
    memory_span: int
    unknown: str = "skip"  # what the text's (and the prime's) characters the model never saw become
    adapt: AdaptConfig | None = None  # also read the text learning from it (dynamic evaluation)


def read_text(arguments: Sequence[str], literal: str | None, chars: int, encoding: str, errors: str) -> VizText:
    """The first `chars` characters of the files named (as for eval), or `literal` itself."""
    if literal is not None:
        if not literal:
            raise OptionError("--text", "is empty")
        return VizText(literal[:chars], _shown_part("the text given with --text", literal, chars))
    corpus = resolve_corpus(arguments, encoding, errors)
    pieces: list[str] = []
    read = 0
    with closing(corpus.chunks()) as chunks:  # read no further than needed: the file may be a whole corpus
        for chunk in chunks:
            pieces.append(chunk)
            read += len(chunk)
            if read > chars:
                break
    text = "".join(pieces)
    if not text:
        raise CorpusError(f"{corpus.description} is empty: there is nothing to look at")
    return VizText(text[:chars], _shown_part(corpus.description, text, chars))


def _shown_part(description: str, text: str, chars: int) -> str:
    if len(text) > chars:
        return f"{description} (its first {chars:,} characters)"
    return f"{description} ({len(text):,} characters)"


def parse_cell(value: str, loaded: LoadedModel) -> tuple[int, int]:
    """`--cell LAYER:CELL` (layers from 1, cells from 0, as the page numbers them) -> (layer index, cell)."""
    config = loaded.model.config
    layer_text, colon, cell_text = value.partition(":")
    if not (colon and layer_text.strip().isdigit() and cell_text.strip().isdigit()):
        raise OptionError("--cell", f"must be LAYER:CELL, e.g. 1:17, not {printable(value)}")
    layer, cell = int(layer_text), int(cell_text)
    if not 1 <= layer <= config.layers:
        raise OptionError("--cell", f"names layer {layer}; the model has layers 1 to {config.layers}")
    if cell >= config.hidden_size:
        raise OptionError("--cell", f"names cell {cell}; each layer has cells 0 to {config.hidden_size - 1}")
    return layer - 1, cell


def unseen_in(loaded: LoadedModel, text: str, unknown: str) -> Unseen:
    """What becomes of the characters of `text` that the model never saw, under the --unknown
    policy; refused in one line where the policy cannot read them."""
    vocab = loaded.vocab
    unseen = vocab.unseen(vocab.unknown_chars(text), unknown)
    if unseen.refusal:
        raise CorpusError(f"the text {unseen.refusal}")
    return unseen


def check_prime(loaded: LoadedModel, settings: VizSettings) -> None:
    """Refuse a --prime that the --unknown policy cannot read, before the page is made."""
    if settings.prime:
        prime_ids(loaded.vocab, settings.prime, np.random.default_rng(0), settings.unknown)


def trace(loaded: LoadedModel, text: str, unseen: Unseen, progress: Progress = no_progress) -> Trace:
    read = int((text_ids(loaded.vocab, text, unseen) >= 0).sum())
    advance = progress("reading the text", read * loaded.model.config.layers, unit="characters")
    traced = trace_text(loaded.model, loaded.vocab, text, unseen, advance)
    advance(None)
    return traced


def page_data(
    loaded: LoadedModel,
    shown: VizText,
    settings: VizSettings,
    unseen: Unseen | None = None,
    progress: Progress = no_progress,
    threads: int | str | None = None,
) -> dict:
    """The page's data (the schema page.py draws): JSON-able, numbers rounded for size.
    `unseen`: what `unseen_in` says of the text under `settings.unknown` (found here if not given);
    `progress` hears how far each long part is; `threads`: the memory curve's (see `_memory`)."""
    unseen = unseen or unseen_in(loaded, shown.text, settings.unknown)
    traced = trace(loaded, shown.text, unseen, progress)
    text = list(shown.text)
    properties = text_properties(shown.text)
    scored = traced.bits[np.isfinite(traced.bits)]
    data = {
        "version": 1,
        "model": _model_summary(loaded),
        "source": shown.source,
        "vocab": list(loaded.vocab.entries),
        "text": text,
        "bits": [None if math.isnan(b) else round(float(b), 3) for b in traced.bits],
        "mean_bits": round(float(scored.mean()), 4) if scored.size else None,
        "top_ids": traced.top_ids.reshape(-1).tolist(),
        "top_probs": np.rint(traced.top_probs * 1000).astype(int).reshape(-1).tolist(),
        "cells": None,  # filled last: the activations take what room the rest of the page leaves
        "findings": _findings(traced, properties),
        "gates": [
            {"layer": s.layer + 1, "gate": s.gate, "left": _rounded(s.left), "right": _rounded(s.right)}
            for s in gate_saturation(traced.gates)
        ],
        "memory": _memory(loaded, traced.ids, settings.memory_span, threads, progress),
        "adapted": _adapted(loaded, traced.ids, settings.adapt, threads, progress),
        "samples": _samples(loaded, shown.text, settings, unseen, progress),
    }
    data["cells"] = _cells(traced, loaded.model.config.cell_type.quantity, data)
    return data


def _model_summary(loaded: LoadedModel) -> dict:
    config = loaded.model.config
    return {
        "path": str(loaded.path),
        "step": loaded.step,
        "cell": config.cell,
        "cell_title": config.cell_type.title,
        "update_rule": config.cell_type.update_rule,
        "layers": config.layers,
        "hidden_size": config.hidden_size,
        "input_mode": config.input_mode,
        "parameters": config.parameter_count,
        "vocab_size": len(loaded.vocab),
    }


def _cells(traced: Trace, quantity: str, data: dict) -> dict:
    """Every cell's activation, a byte each, over as many leading characters as the page's size
    budget leaves room for beside the rest of `data` (page.py)."""
    cells = sum(layer.shape[1] for layer in traced.cells)
    fits = cell_chars_that_fit(data, cells)
    chars = max(fits, min(len(traced.bits), CELL_CHARS_LEAST))
    return {
        "chars": chars,
        "quantity": quantity,
        "layers": [{"size": layer.shape[1], "data": _bytes_of(layer[:chars])} for layer in traced.cells],
    }


def _bytes_of(activations: np.ndarray) -> str:
    """(T, H) values in [-1, 1] -> base64 of uint8 (H, T): a row per cell, 0 = -1 and 255 = +1."""
    quantised = np.rint((np.clip(activations, -1, 1) + 1) / 2 * 255).astype(np.uint8)
    return base64.b64encode(np.ascontiguousarray(quantised.T).tobytes()).decode("ascii")


def _findings(traced: Trace, properties: list) -> list[dict]:
    """Per property, the cells that track it best; the properties some cell tracks best come first."""
    found = rank_cells(traced.cells, properties)
    findings = [
        {
            "property": prop.name,
            "description": prop.description,
            "cells": [
                {"layer": f.layer + 1, "cell": f.cell, "r": round(f.r, 3)}
                for f in found
                if f.property == prop.name and f.r != 0  # r = 0: no cell varies with it at all
            ],
        }
        for prop in properties
    ]
    return sorted(findings, key=lambda finding: -max((abs(c["r"]) for c in finding["cells"]), default=0))


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in values]


def _memory(
    loaded: LoadedModel, ids: np.ndarray, span: int, threads: int | str | None, progress: Progress
) -> dict | None:
    """How far back the predictions reach (reach.py): needs torch, and a text longer than 2
    characters. It runs on `threads` of PyTorch's: a count, AUTO (tuned on the warm-up, see
    threads.running_on), or None (as the process is set)."""
    read = ids[ids >= 0]
    span = min(span, len(read) - 1)
    if span < 1 or loaded.checkpoint is None:
        return None
    import torch

    from charrnn.inspect.reach import choose_windows, memory_chars, memory_curve
    from charrnn.store.loading import torch_model
    from charrnn.store.outdir import FoundCheckpoint

    model = torch_model(FoundCheckpoint(loaded.path, loaded.checkpoint), torch.device("cpu"))
    advance = progress("memory curve", memory_chars(len(read), span, MEMORY_WINDOWS), unit="characters")
    with running_on(torch_threads(), threads) as tuning:
        grad = memory_curve(model, read, span, MEMORY_WINDOWS, tuning=tuning, advance=advance)
    advance(None)
    used = len(choose_windows(len(read), span, MEMORY_WINDOWS)[0])  # fewer on a short text
    return {"grad": [float(f"{g:.4g}") for g in grad], "windows": used}


def _adapted(
    loaded: LoadedModel, ids: np.ndarray, adapt: AdaptConfig | None, threads: int | str | None, progress: Progress
) -> dict | None:
    """With `adapt`, the surprise at each character while the model learns from the text as it
    reads it (run/adapt.py): bits, aligned with the page's own (None where not predicted)."""
    read = np.flatnonzero(ids >= 0)
    if adapt is None or loaded.checkpoint is None:
        return None
    import torch

    from charrnn.run.adapt import adapter_for, adaptive_losses
    from charrnn.run.evaluate import check_adaptable
    from charrnn.store.loading import torch_model
    from charrnn.store.outdir import FoundCheckpoint

    check_adaptable(ids[read], adapt.adapt_segment, "the text")
    model = torch_model(FoundCheckpoint(loaded.path, loaded.checkpoint), torch.device("cpu"), loaded.weights)
    advance = progress("learning as it reads", len(read) - 1, unit="characters")
    with running_on(torch_threads(), threads) as tuning:
        adapter = adapter_for(model, adapt, loaded.checkpoint)
        losses = adaptive_losses(adapter, ids[read], torch.device("cpu"), tuning, advance)
    advance(None)
    bits: list[float | None] = [None] * len(ids)
    for position, loss in zip(read[1:], losses / math.log(2)):
        bits[position] = round(float(loss), 3)
    return {"bits": bits, "mean_bits": round(float(losses.mean() / math.log(2)), 4), "settings": adapt.describe()}


def _samples(
    loaded: LoadedModel, text: str, settings: VizSettings, unseen: Unseen, progress: Progress = no_progress
) -> list[dict]:
    """One sample per temperature, all from the same prime and seed."""
    prime = settings.prime if settings.prime is not None else default_prime(text, unseen)
    advance = progress("samples", len(settings.temperatures) * settings.sample_length, unit="characters")
    samples = []
    for temperature in settings.temperatures:
        config = SampleConfig(length=settings.sample_length, temperature=temperature)
        made = "".join(generate_text(loaded, prime, config, settings.seed, unknown=settings.unknown))
        samples.append({"temperature": temperature, "prime": prime or "", "text": made[len(prime or "") :]})
        advance(settings.sample_length)
    advance(None)
    return samples


def parse_temperatures(value: str) -> tuple[float, ...]:
    """`--temperatures 0.5,0.8,1.0` -> (0.5, 0.8, 1.0): each a number > 0, at most TEMPERATURES_MAX."""
    try:
        temperatures = tuple(float(part) for part in value.split(","))
    except ValueError:
        temperatures = ()
    if not temperatures or not all(math.isfinite(t) and t > 0 for t in temperatures):
        raise OptionError(
            "--temperatures", f"must be numbers > 0 separated by commas, e.g. 0.5,1.0, not {printable(value)}"
        )
    if len(temperatures) > TEMPERATURES_MAX:
        raise OptionError("--temperatures", f"gives {len(temperatures)}; at most {TEMPERATURES_MAX} fit side by side")
    return temperatures


def default_prime(text: str, unseen: Unseen) -> str | None:
    """The start of the text's first line (without the characters `unseen` leaves out), so that
    the samples continue what the page shows; None (a newline) when there is none."""
    line = text.split("\n", 1)[0][:PRIME_CHARS]
    read = "".join(c for c in line if c not in unseen.left_out)
    return read or None

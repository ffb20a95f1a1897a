"""The web page `charrnn export --html` writes: one self-contained HTML file that holds the model
and writes with it in the browser, as `charrnn sample` writes.

The template (model_page.html) carries the style and the form; the script (model_page.js) is
the network of core/numpy_model.py and the rules of core/sampling.py in JavaScript, step for
step, with numpy's random generator, so that the same seed, prime and settings give the same
text (where float rounding could ever part them: model_page.js's head). The model rides along as
one JSON block (config, vocabulary, where each tensor lies) and one base64 block of its weights'
little-endian bytes; nothing is fetched, so the page opens from disk, offline.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charrnn.core.nearest import page_indexes
from charrnn.core.numpy_model import float32_values
from charrnn.core.vocab import Vocab
from charrnn.display import printable
from charrnn.inspect.page import page_resource, script_json
from charrnn.settings.config import ModelConfig, to_dict
from charrnn.store.files import write_atomic
from charrnn.store.loading import check_new_file, export_model
from charrnn.store.metrics import nats_to_bits
from charrnn.store.outdir import FoundCheckpoint, load_from
from charrnn.version import __version__

_PLACEHOLDER = re.compile(r"__CHARRNN_(VERSION|TITLE|MODEL|WEIGHTS|SCRIPT)__")
_ALIGN = 8  # each tensor's bytes start on a multiple of this, for typed arrays over them
_CONFIG_FIELDS = ("cell", "layers", "hidden_size", "input_mode", "embed_dim", "vocab_size")
PAGE_SUFFIXES = (".html", ".htm")  # a file `charrnn export` writes as a page without --html


def export(
    location: str | Path, path: Path, half: bool, option: str, html: bool = False
) -> tuple[FoundCheckpoint, bool]:
    """What `charrnn export` writes of the checkpoint at `location`, never over a file: a web page
    where `html` or `path` ends in one of PAGE_SUFFIXES, else a model file (export_model); its
    weights in float16 with `half`. The checkpoint, and whether a page was written."""
    page = html or path.suffix.lower() in PAGE_SUFFIXES
    return (export_page if page else export_model)(location, path, half, option), page


def export_page(location: str | Path, path: Path, half: bool, option: str) -> FoundCheckpoint:
    """Write the page of the model of the checkpoint at `location` (an out folder: its best.pt)
    to `path`, never over a file; its weights in float16 with `half`."""
    check_new_file(path, option)
    found = load_from(location, prefer="best", arrays="numpy")
    checkpoint = found.checkpoint
    corpus = checkpoint.record.corpus
    trained_on = [Path(place).stem for place in corpus.locations()] if corpus is not None else []
    model = PageModel(
        checkpoint.model_config,
        checkpoint.vocab,
        checkpoint.weights,
        checkpoint.step,
        checkpoint.last_val_loss,
        name=" + ".join(trained_on) or path.stem,
    )
    source = Path(location) if not Path(location).is_absolute() else Path(found.path.name)
    page = render_page(model, np.float16 if half else np.float32, str(source))
    write_atomic(path, lambda file: file.write(page.encode("utf-8")))
    return found


@dataclass(frozen=True)
class PageModel:
    """What a page shows and writes with."""

    config: ModelConfig
    vocab: Vocab
    weights: Mapping[str, Any]  # the state_dict, as numpy arrays or torch tensors
    step: int = 0
    validation_loss: float | None = None  # nats
    name: str = "a model"  # what it is of: its corpus's file names


def render_page(model: PageModel, dtype: type, source: str) -> str:
    """The whole page of `model`, its weights stored as `dtype`; `source`: the checkpoint its
    `charrnn sample` line names (as export was given it, a relative path, else its file name)."""
    data, weights = page_data(model, dtype, source)
    blocks = {
        "VERSION": printable(__version__),
        "TITLE": html.escape(f"{model.name}: a charrnn model", quote=False),
        "MODEL": script_json(data),
        "WEIGHTS": base64.b64encode(weights).decode("ascii"),
        "SCRIPT": page_resource("model_page.js"),
    }
    return _PLACEHOLDER.sub(lambda match: blocks[match[1]], page_resource("model_page.html"))  # one pass


def page_data(model: PageModel, dtype: type, source: str) -> tuple[dict[str, Any], bytes]:
    """What the page's script reads: the model's description and where each tensor lies in the
    weights' bytes (little-endian `dtype`), and those bytes."""
    stored = np.dtype(dtype).newbyteorder("<")
    tensors, chunks, offset = {}, [], 0
    for name, value in model.weights.items():
        array = np.ascontiguousarray(float32_values(value).astype(stored))
        tensors[name] = [stored.name, list(array.shape), offset]
        raw = array.tobytes()
        chunks.append(raw + bytes(-len(raw) % _ALIGN))
        offset += len(chunks[-1])
    config, vocab = to_dict(model.config), model.vocab
    data = {
        "source": source,
        "config": {field: config[field] for field in _CONFIG_FIELDS},
        "chars": vocab.chars,
        "unknown_id": vocab.unknown_id,
        "aliases": dict(vocab.aliases),
        "nearest": page_indexes(vocab.known_chars),
        "parameters": model.config.parameter_count,
        "step": model.step,
        "validation_bpc": None if model.validation_loss is None else round(nats_to_bits(model.validation_loss), 4),
        "dtype": stored.name,
        "tensors": tensors,
    }
    return data, b"".join(chunks)

"""Sample previews while training: at each evaluation, a short sample from the model as it is,
shown under the evaluation line and kept in `samples.txt` in the out folder, so a run's
samples can be watched getting better (the "evolution of samples" of Karpathy's essay).

Every preview of a run starts from the same place with the same seed, so two previews differ
only because the model did. Generating one leaves training exactly as it was: the sampler runs
a numpy copy of the weights (no dropout, nothing of torch's touched), draws from a generator of
its own, never the one that drives dropout, and starts from a fresh hidden state, never the one
training carries.

`samples.txt` begins with a line naming the run that started it, then holds one entry per
preview, a header line then the text:

    --- charrnn previews of run 3f2a9c0e51d84b7a9d6e2f1c0b5a4e3d ---

    --- step 500 (validation 1.8301 bpc) ---
    def __init__(self, name):
        ...

Like metrics.jsonl it is a convenience, never worth a run: a resumed run first drops the entries
of steps its checkpoint does not hold (they are about to be redone), and a file that cannot be
read or written costs one warning.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from charrnn.core.sampling import generate_ids, prime_ids
from charrnn.core.vocab import Vocab
from charrnn.errors import CheckpointError
from charrnn.settings.config import SampleConfig
from charrnn.store.files import own_opener
from charrnn.store.metrics import RunFile
from charrnn.store.runfiles import SAMPLES

if TYPE_CHECKING:
    from charrnn.core.model import CharRNN

NAME = SAMPLES
TEMPERATURE = 0.8  # the README's own: samples as a user would draw them
_HEADER = re.compile(rb"--- step (\d+)(?: \([^\n]*\))? ---\r?\n")
_RUN_LINE = re.compile(rb"--- charrnn previews of run ([0-9a-f]{1,64}) ---\r?\n")
_MAX_LINE_BYTES = 1 << 16  # headers are short; longer lines are sample text, read past in pieces


def preview_text(model: CharRNN, vocab: Vocab, length: int, seed: int) -> str | None:
    """`length` characters sampled from `model` after a newline (else the character prime_ids
    picks), at TEMPERATURE, with a generator seeded with `seed`; never the unknown character.
    None when there is nothing to show: a vocabulary of the unknown character alone, or a model
    that predicts NaN (a preview never stops a run; the loss checks do that)."""
    rng = np.random.default_rng(seed)  # its own generator: training's draws stay as they were
    try:
        start = prime_ids(vocab, None, rng)
        steps = generate_ids(model, start, SampleConfig(length, TEMPERATURE), rng, banned=vocab.unknown_id)
        return vocab.decode([int(ids[0]) for ids in steps])
    except CheckpointError:
        return None


class PreviewLog(RunFile):
    """The run's `samples.txt`."""

    name = NAME
    without = "keeping its previews"

    def header(self) -> str:
        return f"--- charrnn previews of run {self.run} ---\n\n"

    def run_named(self, first_line: bytes) -> str | None:
        named = _RUN_LINE.fullmatch(first_line)
        return named[1].decode("ascii") if named else None

    def append(self, step: int, text: str, val_bpc: float | None = None) -> None:
        figure = f" (validation {val_bpc:.4f} bpc)" if val_bpc is not None else ""
        # always two newlines: the text can be read back exactly; a \r stays a \r (RunFile._write)
        self._write(f"--- step {step}{figure} ---\n{text}\n\n")

    def forget_after(self, step: int) -> None:
        """Drop the entries of steps after `step`, and anything written after them: entries
        come in step order, so the file is cut where the first such entry begins."""
        if self.given_up:
            return
        try:
            self.close()
            with open(self.path, "r+b", opener=own_opener) as file:  # cut in place: never through a link
                cut = _first_entry_after(file, step)
                if cut is not None:
                    file.truncate(cut)  # one call: the file is cut, or left as it was
        except FileNotFoundError:
            return
        except OSError as error:
            self._give_up(error.strerror or str(error))


def _first_entry_after(file, step: int) -> int | None:
    """The offset of the first header of a step after `step` (None: there is none). A line of
    sample text that is itself such a header (a model trained on a samples.txt) would be taken
    for one: the file would lose the rest of that entry, nothing more."""
    offset, at_line_start = 0, True
    while piece := file.readline(_MAX_LINE_BYTES):
        header = _HEADER.fullmatch(piece) if at_line_start else None
        if header and int(header[1]) > step:
            return offset
        offset += len(piece)
        at_line_start = piece.endswith(b"\n")
    return None

"""Encoded text -> train/validation split -> parallel streams -> BPTT windows."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from charrnn.errors import CorpusError
from charrnn.settings.spelling import spelled

# Validation runs this many streams in parallel with long windows: evaluation is
# forward-only, so wide and long is fastest, and a fixed layout keeps figures comparable
# across training batch sizes.
EVAL_STREAMS = 32
EVAL_SEQ_LEN = 256


def split_train_val(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The first (1 - val_fraction) of the ids for training, the rest for validation.

    Tiny Shakespeare's 1,115,394 characters at 0.1 give the standard 1,003,854 / 111,540.
    """
    n_train = int(len(ids) * (1.0 - val_fraction))
    return ids[:n_train], ids[n_train:]


class Streams:
    """A text laid out as `batch_size` contiguous streams, read one window at a time.

    With the text "abcdefghijklmnopqrstuvwxyz", batch_size 4 and seq_len 2:

        stream 0: a b c d e f     window 0 = columns 0-1, targets = columns 1-2
        stream 1: g h i j k l     window 1 = columns 2-3, targets = columns 3-4
        stream 2: m n o p q r     (the 6th column only ever serves as a target;
        stream 3: s t u v w x      "y z" is the remainder, dropped)

    Row b of window i+1 continues row b of window i, so the hidden state the model
    ends window i with is the right state to start window i+1 with.
    """

    def __init__(self, ids: np.ndarray | torch.Tensor, batch_size: int, seq_len: int, name: str = "text"):
        ids = torch.as_tensor(ids)
        stream_len = len(ids) // batch_size
        if stream_len < seq_len + 1:
            raise CorpusError(
                f"the {name} is too short: {len(ids):,} characters make {batch_size} streams of "
                f"{stream_len:,}, and a window needs {seq_len + 1} ({spelled('seq_len')} + 1); "
                f"use a longer text, a smaller {spelled('batch_size')} or a smaller {spelled('seq_len')}"
            )
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.data = ids[: batch_size * stream_len].view(batch_size, stream_len)  # (B, L)
        self.num_windows = (stream_len - 1) // seq_len

    def keep_rows(self, rows: slice) -> Streams:
        """Only these streams (one process's share in distributed training); windows stay aligned."""
        self.data = self.data[rows]
        self.batch_size = self.data.shape[0]
        return self

    def to(self, device: torch.device) -> Streams:
        """On a GPU, the streams live there (a corpus of ids is small), so windows need no copying."""
        self.data = self.data.to(device)
        return self

    @property
    def num_targets(self) -> int:
        """Characters scored by `every_window`: all of each stream but its first."""
        return self.batch_size * (self.data.shape[1] - 1)

    def unigram_bits(self) -> float:
        """Bits per character of the streams' text scored by its characters' frequencies alone
        (its unigram entropy): what a model that learned nothing of their order scores."""
        counts = torch.bincount(self.data.flatten().long().cpu())
        share = counts[counts > 0].double() / counts.sum()
        return float(-(share * share.log2()).sum())

    @property
    def chars_per_window(self) -> int:
        return self.batch_size * self.seq_len

    def window(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets (each (B, T), int64) of window `index`; targets are shifted by one."""
        return self._chunk(index * self.seq_len)

    def every_window(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """All windows in order, the last one shorter if needed so every stream is read to its end.

        Training uses equal windows (`window`); evaluation uses this to score every character.
        """
        for start in range(0, self.data.shape[1] - 1, self.seq_len):
            yield self._chunk(start)

    def _chunk(self, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        chunk = self.data[:, start : start + self.seq_len + 1].long()  # (B, T + 1)
        return chunk[:, :-1], chunk[:, 1:]


def eval_streams(ids: np.ndarray) -> Streams | None:
    """Streams that cover a validation text, or None if it is too short to evaluate on."""
    if len(ids) < 2:
        return None
    batch_size = max(1, min(EVAL_STREAMS, (len(ids) - 1) // EVAL_SEQ_LEN))
    seq_len = min(EVAL_SEQ_LEN, len(ids) // batch_size - 1)
    return Streams(ids, batch_size, seq_len, name="validation text")

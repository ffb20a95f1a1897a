import numpy as np
import pytest
import torch

from charrnn.core.data import EVAL_STREAMS, Streams, eval_streams, split_train_val
from charrnn.errors import CorpusError


def test_split_is_by_position_and_matches_the_standard_shakespeare_split():
    ids = np.arange(1_115_394)
    train, val = split_train_val(ids, 0.1)
    assert (len(train), len(val)) == (1_003_854, 111_540)
    assert train[-1] + 1 == val[0]


def test_streams_are_contiguous_rows_and_targets_are_inputs_shifted_by_one():
    ids = np.arange(26)
    streams = Streams(ids, batch_size=4, seq_len=2)
    assert streams.data.tolist()[1] == [6, 7, 8, 9, 10, 11]
    assert streams.num_windows == 2
    x0, y0 = streams.window(0)
    x1, y1 = streams.window(1)
    assert x0.tolist() == [[0, 1], [6, 7], [12, 13], [18, 19]]
    assert y0.tolist() == [[1, 2], [7, 8], [13, 14], [19, 20]]
    assert x1[:, 0].tolist() == [2, 8, 14, 20]  # each row continues where it left off
    assert torch.equal(y1[:, :-1], x1[:, 1:])
    assert x0.dtype == torch.int64


def test_every_window_scores_each_position_of_each_stream_once():
    streams = Streams(np.arange(100), batch_size=3, seq_len=7)
    targets = torch.cat([y for _, y in streams.every_window()], dim=1)
    assert targets.shape == (3, 32)  # streams of 33: every character after the first
    assert torch.equal(targets, streams.data[:, 1:].long())


def test_a_text_too_short_for_one_window_is_refused_with_advice():
    with pytest.raises(CorpusError, match="--batch-size"):
        Streams(np.arange(50), batch_size=8, seq_len=16, name="training text")


def test_eval_streams_fit_short_validation_texts():
    assert eval_streams(np.arange(1)) is None
    short = eval_streams(np.arange(10))
    assert short.batch_size == 1 and short.num_windows >= 1
    long = eval_streams(np.arange(111_540))
    assert long.batch_size == EVAL_STREAMS

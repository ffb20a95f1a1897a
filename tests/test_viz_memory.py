"""The memory curve: the right gradient, at the right distance, for every cell and input mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from charrnn.core.model import CharRNN
from charrnn.inspect.reach import choose_windows, memory_curve
from charrnn.settings.cells import CELLS
from charrnn.settings.config import ModelConfig
from charrnn.settings.option import INPUT_MODES


def tiny_model(cell: str, input_mode: str, vocab_size: int = 7) -> CharRNN:
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=vocab_size,
        cell=cell,
        layers=2,
        hidden_size=6,
        input_mode=input_mode,
        embed_dim=4,
        dropout=0.3,
        weight_drop=0.2,
        input_dropout=0.2,
    )
    return CharRNN(config)


def random_ids(length: int, vocab_size: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab_size, length)


def gradient_through_forward(model: CharRNN, ids: np.ndarray, target: int, span: int, warmup: int) -> np.ndarray:
    """|| d log p(x_target) / d input_{target-k} ||, k = 1..span, through the model's own forward:
    one window, read from `warmup` characters before it with the graph kept all the way."""
    captured = []

    def leaf_inputs(module, args):
        inputs = args[0].detach().requires_grad_()
        captured.append(inputs)
        return (inputs, *args[1:])

    handle = model.rnn.register_forward_pre_hook(leaf_inputs)
    try:
        logits, _ = model(torch.from_numpy(ids[target - span - warmup : target])[None])
    finally:
        handle.remove()
    F.log_softmax(logits[0, -1], dim=-1)[ids[target]].backward()
    norms = captured[0].grad[0, -span:].norm(dim=-1)
    return norms.flip(0).double().numpy()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("input_mode", INPUT_MODES)
def test_the_curve_is_the_mean_of_each_windows_own_gradient(cell, input_mode):
    model = tiny_model(cell, input_mode)  # in training mode, with every kind of dropout on
    ids = random_ids(60)
    span, windows = 9, 5
    curve = memory_curve(model, ids, span, windows=windows, seed=3)
    assert model.training  # left as it was
    targets, warmup = choose_windows(len(ids), span, windows, seed=3)
    assert len(targets) == windows and warmup == span
    model.eval()
    expected = np.mean([gradient_through_forward(model, ids, t, span, warmup) for t in targets], axis=0)
    assert curve.shape == (span,) and curve.dtype == np.float64
    np.testing.assert_allclose(curve, expected, rtol=1e-4, atol=1e-8)
    assert (curve > 0).all()


def test_a_short_warm_up_reaching_the_start_of_the_text_is_exact():
    model = tiny_model("lstm", "embedding").eval()
    ids = random_ids(16)
    curve = memory_curve(model, ids, span=10, windows=6)  # no room for a warm-up: every target, from the start
    targets, warmup = choose_windows(len(ids), 10, 6)
    assert warmup == 0 and list(targets) == list(range(10, 16))
    expected = np.mean([gradient_through_forward(model, ids, t, 10, 0) for t in targets], axis=0)
    np.testing.assert_allclose(curve, expected, rtol=1e-4, atol=1e-8)


def delay_line(vocab_size: int, k: int) -> CharRNN:
    """A vanilla RNN set by hand as a shift register: slot j of its state holds the character
    read j steps ago, and the output reads slot k - 1 alone, so it predicts from the character k
    steps back and nothing else."""
    size = vocab_size * k
    model = CharRNN(
        ModelConfig(vocab_size=vocab_size, cell="rnn", layers=1, hidden_size=size, input_mode="one-hot", dropout=0.0)
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.rnn.weight_ih_l0[:vocab_size] = torch.eye(vocab_size)
        model.rnn.weight_hh_l0[vocab_size:, : size - vocab_size] = 2 * torch.eye(size - vocab_size)
        model.head.weight[:, size - vocab_size :] = 3 * torch.eye(vocab_size)
    return model.eval()


def test_a_hand_set_delay_line_shows_its_memory_at_exactly_k():
    k = 6
    curve = memory_curve(delay_line(vocab_size=5, k=k), random_ids(300, vocab_size=5), span=20)
    assert curve.argmax() == k - 1
    others = np.delete(curve, k - 1)
    assert others.max() == 0.0  # the shift register mixes nothing: every other gradient is exactly zero


def test_characters_outside_the_vocabulary_are_skipped_as_the_model_skips_them():
    model = tiny_model("gru", "one-hot")
    ids = random_ids(80)
    with_unknown = np.insert(ids, [5, 30, 31, 70], -1)
    np.testing.assert_array_equal(memory_curve(model, with_unknown, 12), memory_curve(model, ids, 12))


def test_it_works_under_no_grad_and_leaves_the_weights_gradients_alone():
    model = tiny_model("lstm", "embedding")
    ids = random_ids(100)
    with torch.no_grad():
        curve = memory_curve(model, ids, 15, windows=8)
    assert (curve > 0).all()
    assert all(parameter.grad is None for parameter in model.parameters())


def test_a_text_shorter_than_the_span_is_a_clear_error():
    model = tiny_model("rnn", "one-hot")
    with pytest.raises(ValueError, match="the text has 20 characters; a memory span of 20 needs at least 21"):
        memory_curve(model, random_ids(20), 20)
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        memory_curve(model, np.array([0, 1, 7, 2, 3]), 2)
    assert memory_curve(model, random_ids(21), 20).shape == (20,)  # just long enough: one window


def test_windows_are_distinct_seeded_and_inside_the_text():
    targets, warmup = choose_windows(10_000, 200, 64, seed=1)
    assert warmup == 200 and len(targets) == 64 and len(set(targets)) == 64
    assert (np.diff(targets) > 0).all() and targets.min() >= 400 and targets.max() < 10_000
    assert np.array_equal(choose_windows(10_000, 200, 64, seed=1)[0], targets)
    assert not np.array_equal(choose_windows(10_000, 200, 64, seed=2)[0], targets)
    # A text with room for the windows but not for a whole warm-up: the warm-up shrinks.
    targets, warmup = choose_windows(300, 200, 64)
    assert warmup == 36 and len(targets) == 64 and targets.min() >= 236
    # Fewer positions than windows: every one of them, no warm-up.
    targets, warmup = choose_windows(230, 200, 64)
    assert warmup == 0 and list(targets) == list(range(200, 230))


def copy_stream(length: int, k: int, vocab_size: int, rng: np.random.Generator, copy: float = 0.8) -> np.ndarray:
    """Each character is, with probability `copy`, the one k steps back, else a fresh random one:
    given the character k steps back, nothing else tells anything about the next one."""
    ids = rng.integers(0, vocab_size, length)
    copied = rng.random(length) < copy
    for t in range(k, length):
        if copied[t]:
            ids[t] = ids[t - k]
    return ids


@pytest.mark.parametrize("k", [3, 8])
def test_a_model_trained_to_copy_from_k_steps_back_shows_its_memory_at_k(k):
    vocab_size = 4
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = CharRNN(
        ModelConfig(vocab_size=vocab_size, cell="lstm", layers=1, hidden_size=32, input_mode="one-hot", dropout=0.0)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):  # about 0.4 s; the loss ends near the task's entropy (0.59 nats) for k = 3
        batch = torch.from_numpy(np.stack([copy_stream(41, k, vocab_size, rng) for _ in range(32)]))
        logits, _ = model(batch[:, :-1])
        loss = F.cross_entropy(logits[:, k - 1 :].reshape(-1, vocab_size), batch[:, k:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    curve = memory_curve(model, copy_stream(3000, k, vocab_size, rng), span=3 * k)
    # The peak is at k, above even k = 1 (the character just read, which moves every prediction).
    assert 1 + curve.argmax() == k

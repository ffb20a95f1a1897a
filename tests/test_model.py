import pytest
import torch

from charrnn.core.model import CharRNN, detach_hidden
from charrnn.settings.cells import CELLS
from charrnn.settings.config import ModelConfig
from charrnn.settings.option import INPUT_MODES


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("input_mode", INPUT_MODES)
def test_forward_shapes_for_every_cell_and_input(cell, input_mode):
    model = CharRNN(ModelConfig(vocab_size=11, cell=cell, layers=2, hidden_size=8, input_mode=input_mode, embed_dim=5))
    ids = torch.randint(0, 11, (3, 7))
    logits, hidden = model(ids)
    assert logits.shape == (3, 7, 11)
    assert len(hidden) == (2 if cell == "lstm" else 1)
    assert all(h.shape == (2, 3, 8) for h in hidden)


def test_one_hot_input_reads_one_column_of_the_input_weights():
    model = CharRNN(ModelConfig(vocab_size=6, cell="rnn", layers=1, hidden_size=4, input_mode="one-hot", dropout=0.0))
    ids = torch.tensor([[2, 5]])
    inputs = model.inputs(ids)
    assert torch.equal(inputs, torch.nn.functional.one_hot(ids, 6).float())


def test_hidden_state_is_carried_between_calls():
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=5, hidden_size=8, dropout=0.0)).eval()
    ids = torch.randint(0, 5, (2, 10))
    whole, _ = model(ids)
    first, hidden = model(ids[:, :6])
    second, _ = model(ids[:, 6:], hidden)
    assert torch.allclose(torch.cat([first, second], dim=1), whole, atol=1e-6)
    fresh, _ = model(ids[:, 6:])
    assert not torch.allclose(fresh, second, atol=1e-3)  # without the carried state it differs


def test_detached_hidden_keeps_values_and_cuts_the_graph():
    model = CharRNN(ModelConfig(vocab_size=5, hidden_size=8))
    _, hidden = model(torch.randint(0, 5, (2, 4)))
    assert all(h.requires_grad for h in hidden)
    detached = detach_hidden(hidden)
    assert all(not h.requires_grad for h in detached)
    assert all(torch.equal(a, b) for a, b in zip(hidden, detached))
    logits, _ = model(torch.randint(0, 5, (2, 4)), detached)
    logits.sum().backward()  # backward through this window only; the old graph is not needed

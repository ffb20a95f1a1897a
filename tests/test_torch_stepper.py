"""The sampling benchmark's PyTorch baseline (scripts/torch_stepper.py) computes the model's function."""

import sys
from pathlib import Path

import pytest
import torch

from charrnn.core.model import CharRNN
from charrnn.settings.cells import CELLS
from charrnn.settings.config import ModelConfig
from charrnn.settings.option import INPUT_MODES

sys.path.insert(0, str(Path(__file__).parent.parent / "scripts"))
from torch_stepper import CharStepper  # noqa: E402


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("input_mode", INPUT_MODES)
def test_stepping_one_character_at_a_time_matches_the_fused_layers(cell, input_mode):
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=11, cell=cell, layers=3, hidden_size=16, input_mode=input_mode)).eval()
    ids = torch.randint(0, 11, (2, 9))
    with torch.inference_mode():
        prefix_logits, hidden = model(ids[:, :4])
        whole, whole_hidden = model(ids)
        stepper = CharStepper(model)
        states = stepper.layer_states(hidden)
        stepped = []
        for t in range(4, 9):
            logits, states = stepper.step(ids[:, t], states)
            stepped.append(logits)
    assert torch.allclose(torch.stack(stepped, dim=1), whole[:, 4:], atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(stepper.hidden(states), whole_hidden))

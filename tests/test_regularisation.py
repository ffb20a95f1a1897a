"""The regularisation levers (AWD-LSTM's): each does what it says while training, nothing at
inference, and leaves resume exact."""

import pytest
import torch

from charrnn.core.model import CharRNN
from charrnn.errors import ConfigError
from charrnn.settings.config import ModelConfig
from charrnn.store.checkpoint import read_checkpoint
from charrnn.store.outdir import LATEST
from helpers import PANGRAM, TINY_OPTIONS, Crash, CrashAtStep, assert_same_training_state, train

IDS = torch.randint(0, 12, (3, 20), generator=torch.Generator().manual_seed(0))


def _model(**levers) -> CharRNN:
    torch.manual_seed(0)
    return CharRNN(ModelConfig(vocab_size=12, hidden_size=16, layers=2, embed_dim=8, dropout=0.0, **levers))


@pytest.mark.parametrize("lever", ["weight_drop", "input_dropout", "embed_dropout"])
def test_a_lever_changes_training_passes_and_nothing_at_inference(lever):
    model, plain = _model(**{lever: 0.5}), _model()
    model.eval()
    assert torch.equal(model(IDS)[0], plain.eval()(IDS)[0])  # the same weights, no dropout
    model.train()
    first, second = model(IDS)[0], model(IDS)[0]
    assert not torch.equal(first, second)  # a new mask each window
    first.sum().backward()
    assert model.rnn.weight_hh_l0.grad.abs().sum() > 0


def test_weight_drop_drops_hidden_to_hidden_weights_only(monkeypatch):
    model = _model(weight_drop=0.5)
    seen = {}
    original = torch.func.functional_call

    def spy(module, weights, args):
        seen.update(weights)
        return original(module, weights, args)

    monkeypatch.setattr(torch.func, "functional_call", spy)
    model.train()(IDS)
    for name, weight in model.rnn.named_parameters():
        dropped = seen[name] == 0
        if name.startswith("weight_hh"):
            assert 0.3 < dropped.float().mean() < 0.7
        else:
            assert torch.equal(seen[name], weight)


def test_input_dropout_drops_the_same_units_at_every_step_of_a_window(monkeypatch):
    model = _model(input_dropout=0.5)
    inputs = {}
    model.rnn.register_forward_pre_hook(lambda module, args: inputs.setdefault("x", args[0]))
    model.train()(IDS)
    zero = inputs["x"] == 0  # (B, T, D)
    assert zero.any() and torch.equal(zero, zero[:, :1].expand_as(zero))


def test_embed_dropout_drops_whole_characters():
    model = _model(embed_dropout=0.5)
    inputs = {}
    model.rnn.register_forward_pre_hook(lambda module, args: inputs.setdefault("x", args[0]))
    model.train()(IDS)
    dropped = {int(i) for i, row in zip(IDS.flatten(), inputs["x"].flatten(0, 1)) if not row.any()}
    kept = {int(i) for i, row in zip(IDS.flatten(), inputs["x"].flatten(0, 1)) if row.any()}
    assert dropped and kept and not dropped & kept  # every occurrence of a character alike


def test_orthogonal_start_keeps_each_gate_block_orthogonal_and_opens_the_forget_gate():
    model = _model(recurrent_init="orthogonal")
    for layer in range(2):
        for block in getattr(model.rnn, f"weight_hh_l{layer}").split(16):
            assert torch.allclose(block @ block.T, torch.eye(16), atol=1e-5)
        forget = getattr(model.rnn, f"bias_ih_l{layer}")[16:32] + getattr(model.rnn, f"bias_hh_l{layer}")[16:32]
        assert torch.equal(forget, torch.ones(16))


def test_embed_dropout_needs_an_embedding():
    with pytest.raises(ConfigError, match="needs --input embedding"):
        ModelConfig(vocab_size=12, input_mode="one-hot", embed_dropout=0.1)


def test_a_run_with_every_lever_resumes_bit_identically(tmp_path):
    corpus = tmp_path / "short.txt"
    corpus.write_text(PANGRAM * 20, encoding="utf-8")
    levers = {"weight_drop": 0.3, "input_dropout": 0.2, "embed_dropout": 0.1, "recurrent_init": "orthogonal"}
    options = {**TINY_OPTIONS, "max_steps": 30, "save_every": 10, "eval_every": 10, **levers}
    train(corpus, tmp_path / "whole", options)
    with pytest.raises(Crash):
        train(corpus, tmp_path / "broken", options, reporter=CrashAtStep(17))
    train(corpus, tmp_path / "broken", options, resume=str(tmp_path / "broken"))
    assert_same_training_state(tmp_path / "whole" / LATEST, tmp_path / "broken" / LATEST)
    assert read_checkpoint(tmp_path / "whole" / LATEST).model_config.weight_drop == 0.3

import dataclasses
import re

import click
import pytest

from charrnn.cli.params import Count, Number
from charrnn.errors import ConfigError
from charrnn.run.sizing import SIZED_FIELDS
from charrnn.settings.config import (
    LAYOUT_FIELDS,
    ModelConfig,
    SampleConfig,
    TrainConfig,
    architecture_differences,
    from_dict,
    resume_configs,
    to_dict,
)
from charrnn.settings.option import FLOAT, INT
from charrnn.settings.options import SAMPLE
from charrnn.settings.spelling import spelled
from charrnn.settings.train_options import TRAIN


def test_flag_names_follow_fields():
    assert spelled("hidden_size") == "--hidden-size"
    assert spelled("input_mode") == "--input"


@pytest.mark.parametrize(
    "config_class, field, value",
    [
        (ModelConfig, "dropout", 1.0),
        (ModelConfig, "cell", "transformer"),
        (ModelConfig, "layers", 0),
        (TrainConfig, "lr", float("nan")),
        (TrainConfig, "seq_len", 0),
        (TrainConfig, "batch_size", 2.5),
    ],
)
def test_invalid_values_name_their_flag(config_class, field, value):
    base = {"vocab_size": 10} if config_class is ModelConfig else {}
    with pytest.raises(ConfigError, match=spelled(field)):
        config_class(**base, **{field: value})


def test_stored_configs_round_trip_and_unknown_fields_are_refused():
    config = ModelConfig(vocab_size=7, cell="gru")
    assert from_dict(ModelConfig, to_dict(config), "model config") == config
    with pytest.raises(ConfigError, match="unknown fields: evil"):
        from_dict(ModelConfig, {**to_dict(config), "evil": 1}, "model config")


def test_resume_takes_the_checkpoint_config_and_explicit_training_options():
    saved_model, saved_train = ModelConfig(vocab_size=7, hidden_size=64), TrainConfig(max_steps=100, lr=1e-3)
    model, train = resume_configs(saved_model, saved_train, {"max_steps": 300, "hidden_size": 64})
    assert model == saved_model
    assert (train.max_steps, train.lr) == (300, 1e-3)


def test_resume_refuses_a_different_architecture_or_layout_listing_each_difference():
    saved_model, saved_train = ModelConfig(vocab_size=7), TrainConfig()
    with pytest.raises(ConfigError) as caught:
        resume_configs(saved_model, saved_train, {"hidden_size": 512, "cell": "gru", "seq_len": 10})
    message = str(caught.value)
    assert "--hidden-size 512 (checkpoint: 256)" in message
    assert "--cell gru (checkpoint: lstm)" in message
    assert "--seq-len 10 (checkpoint: 64)" in message


def test_a_new_max_steps_on_resume_replaces_a_length_in_epochs():
    _, train = resume_configs(ModelConfig(vocab_size=7), TrainConfig(epochs=2.0), {"max_steps": 50})
    assert train.epochs is None and train.max_steps == 50


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("input_mode", ["one-hot", "embedding"])
def test_the_parameter_count_checked_before_building_is_the_built_models(cell, input_mode):
    from charrnn.core.model import CharRNN

    config = ModelConfig(vocab_size=37, cell=cell, layers=3, hidden_size=20, embed_dim=7, input_mode=input_mode)
    assert config.parameter_count == sum(p.numel() for p in CharRNN(config).parameters())


@pytest.mark.parametrize(
    "config_class, field, value, message",
    [
        (ModelConfig, "layers", 65, "--layers must be at most 64, got 65"),
        (ModelConfig, "hidden_size", 16_385, "--hidden-size must be at most 16,384"),
        (ModelConfig, "embed_dim", 10**12, "--embed-dim must be at most 16,384"),
        (TrainConfig, "seed", 2**63, "--seed must be at most 9,223,372,036,854,775,807"),
        (TrainConfig, "max_steps", 10**30, "--max-steps must be at most 1,000,000,000,000,000"),
        (TrainConfig, "lr", 1e39, "--lr must be a number > 0 and at most 3.4e+38"),
        (TrainConfig, "epochs", 1e300, "--epochs must be a number > 0 and at most"),
        (TrainConfig, "encoding", "rot13", "--encoding must be a text encoding Python knows"),
        (TrainConfig, "encoding", 8, "--encoding must be a text encoding Python knows"),
    ],
)
def test_values_past_their_bounds_are_refused_wherever_they_come_from(config_class, field, value, message):
    base = {"vocab_size": 10} if config_class is ModelConfig else {}
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_class(**base, **{field: value})


def _boundary_values(option):
    """Values on each side of an option's range and of its upper limit."""
    values = [option.low, option.low + 1, option.low - 1, option.low + 1e-9, option.low - 1e-9, 0.5, 2]
    for top in (option.high, option.limit):
        if top is not None:
            values += [top, top - 1, top + 1, top * 2, top + 1e-9 * max(1, abs(top))]
    return [v for v in values if option.kind != INT or v == int(v)]


@pytest.mark.parametrize("option", [o for o in TRAIN + SAMPLE if o.kind in (INT, FLOAT)], ids=lambda o: o.flag)
def test_the_command_line_and_the_configs_apply_one_rule_to_each_number(option):
    """The click type and the dataclass check both come from the table: they accept the same values."""
    click_type = Number(option) if option.kind == FLOAT else Count(option.low, option.limit)
    for value in _boundary_values(option):
        value = int(value) if option.kind == INT else float(value)
        try:
            click_type.convert(value, None, None)
            by_click = True
        except click.BadParameter:
            by_click = False
        assert by_click == (option.problem(value) is None), (option.flag, value)


@pytest.mark.parametrize("config_class, table", [(ModelConfig, TRAIN), (TrainConfig, TRAIN), (SampleConfig, SAMPLE)])
def test_every_config_field_is_an_option_with_the_tables_default(config_class, table):
    options = {option.name: option for option in table}
    for field in dataclasses.fields(config_class):
        if field.name == "vocab_size":  # the vocabulary decides it
            continue
        assert field.name in options, (
            f"{config_class.__name__}.{field.name} has no entry in charrnn/settings/options.py"
        )
        if field.name in SIZED_FIELDS:  # `charrnn train` sizes it to the text; the dataclass has a reference value
            assert options[field.name].default is None and options[field.name].shown_default == "auto", field.name
        else:
            assert field.default == options[field.name].default, field.name


def test_what_may_not_change_on_resume_is_what_the_table_marks():
    fixed = {option.name for option in TRAIN if option.fixed_on_resume}
    assert set(LAYOUT_FIELDS) == fixed & {f.name for f in dataclasses.fields(TrainConfig)}
    explicit = {name: "changed" for name in fixed}
    message = "; ".join(architecture_differences(ModelConfig(vocab_size=7), explicit))
    assert all(f"{spelled(name)} changed" in message for name in fixed - set(LAYOUT_FIELDS))

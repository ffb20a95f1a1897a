"""Typed configuration: what a model is, how it is trained, how text is sampled.

Each field is an option of the option tables (train_options.py, options.py), which gives its default and its rule (`hidden_size`
<-> `--hidden-size`; `input_mode` <-> `--input`). The dataclasses are stored in checkpoints as plain dicts
and validated again when read back, since a checkpoint may come from anywhere.
No torch here: the CLI imports this module before it needs torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from charrnn.display import shown
from charrnn.errors import ConfigError
from charrnn.settings.budget import duration_option
from charrnn.settings.cells import CELLS, Cell
from charrnn.settings.option import (
    DURATION,
    Option,
)
from charrnn.settings.options import EVAL, SAMPLE, by_name
from charrnn.settings.spelling import for_python, spelled
from charrnn.settings.train_options import TRAIN

# One-hot input is as wide as the vocabulary; past this size its first layer dwarfs the model
# (a 9,589-character Chinese vocabulary would give an LSTM of 256 nearly 10 M input weights).
ONE_HOT_MAX_VOCAB = 4096
MAX_PARAMETERS = 2**31  # 8 GiB of float32 weights; training needs about four times that

_TRAIN_OPTIONS, _SAMPLE_OPTIONS, _EVAL_OPTIONS = by_name(TRAIN), by_name(SAMPLE), by_name(EVAL)


def _train_default(name: str) -> Any:
    return _TRAIN_OPTIONS[name].default


def _check_fields(config: Any, options: Mapping[str, Option]) -> None:
    """Each field by its option's rule; None passes where the field's type allows it."""
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name not in options or (value is None and "None" in str(f.type)):
            continue
        expected = options[f.name].problem(value)
        if expected:
            raise ConfigError(f"{spelled(f.name)} must be {expected}, got {shown(value)}")


_VOCAB_SIZE = Option(("--vocab-size",), "", kind="int", low=1)  # not an option: the vocabulary decides it
_MODEL_OPTIONS = {"vocab_size": _VOCAB_SIZE, **_TRAIN_OPTIONS}


@dataclass(frozen=True)
class ModelConfig:
    """The architecture: everything needed to rebuild the network's shapes."""

    vocab_size: int
    cell: str = _train_default("cell")
    layers: int = _train_default("layers")
    hidden_size: int = 256  # when built directly; `charrnn train` sizes it to the text (sizing.py)
    dropout: float = 0.2
    input_mode: str = _train_default("input_mode")
    embed_dim: int = _train_default("embed_dim")
    # Added in checkpoint format 4 (older runs had them off: see stored_form.MIGRATIONS).
    weight_drop: float = _train_default("weight_drop")
    input_dropout: float = _train_default("input_dropout")
    embed_dropout: float = _train_default("embed_dropout")
    recurrent_init: str = _train_default("recurrent_init")

    def __post_init__(self) -> None:
        _check_fields(self, _MODEL_OPTIONS)
        if self.input_mode == "one-hot" and self.vocab_size > ONE_HOT_MAX_VOCAB:
            raise ConfigError(
                f"{spelled('input_mode', 'one-hot')} with a vocabulary of {self.vocab_size:,} characters would make every "
                f"input vector {self.vocab_size:,} wide (the limit is {ONE_HOT_MAX_VOCAB:,}); "
                f"use {spelled('input_mode', 'embedding')}"
            )
        if self.embed_dropout > 0 and self.input_mode != "embedding":
            raise ConfigError(
                f"{spelled('embed_dropout')} drops rows of the embedding: it needs {spelled('input_mode', 'embedding')}"
            )
        if self.parameter_count > MAX_PARAMETERS:
            raise ConfigError(
                f"a model of {self.parameter_count:,} parameters is more than charrnn builds ({MAX_PARAMETERS:,}); "
                f"use a smaller {spelled('hidden_size')}, {spelled('layers')} or {spelled('embed_dim')}"
            )

    @property
    def parameter_count(self) -> int:
        """Weights and biases of the network model.py builds (each fused recurrent layer has two biases)."""
        return self.embedding_parameter_count + self.recurrent_parameter_count + self.output_parameter_count

    @property
    def embedding_parameter_count(self) -> int:
        return self.vocab_size * self.embed_dim if self.input_mode == "embedding" else 0

    @property
    def recurrent_parameter_count(self) -> int:
        """The recurrent layers' weights and biases (each fused layer has two biases)."""
        widths = [self.input_size] + [self.hidden_size] * (self.layers - 1)
        return sum(self.gate_width * (width + self.hidden_size + 2) for width in widths)

    @property
    def output_parameter_count(self) -> int:
        return (self.hidden_size + 1) * self.vocab_size

    @property
    def cell_type(self) -> Cell:
        """The facts of its cell type (settings/cells.py)."""
        return CELLS[self.cell]

    @property
    def gate_width(self) -> int:
        """Rows of each recurrent weight matrix: PyTorch stacks the cell's gates."""
        return self.cell_type.gates * self.hidden_size

    @property
    def input_size(self) -> int:
        """Width of the vectors the recurrent layers read."""
        return self.vocab_size if self.input_mode == "one-hot" else self.embed_dim


@dataclass(frozen=True)
class TrainConfig:
    """How training runs. Options `fixed_on_resume` (the data layout) are fixed for a run's life."""

    seq_len: int = _train_default("seq_len")
    batch_size: int = _train_default("batch_size")
    val_fraction: float = _train_default("val_fraction")
    encoding: str = _train_default("encoding")
    errors: str = _train_default("errors")
    min_count: int = _train_default("min_count")
    max_vocab: int | None = _train_default("max_vocab")
    eval_chars: int | None = _train_default("eval_chars")
    lr: float = _train_default("lr")
    min_lr_ratio: float = _train_default("min_lr_ratio")
    warmup_steps: int = _train_default("warmup_steps")
    weight_decay: float = _train_default("weight_decay")
    clip: float = _train_default("clip")
    max_steps: int | None = _train_default("max_steps")
    epochs: float | None = _train_default("epochs")
    max_time: float | None = _train_default("max_time")  # seconds of training
    eval_every: int = _train_default("eval_every")
    save_every: int = _train_default("save_every")
    keep: int = _train_default("keep")
    log_every: int = _train_default("log_every")
    patience: int | None = _train_default("patience")  # stop after this many evaluations without a new best
    seed: int = _train_default("seed")
    preview_chars: int = _train_default("preview_chars")  # of the sample at each evaluation; 0: none
    # Added in checkpoint format 5 (older runs never folded: see stored_form.MIGRATIONS).
    fold_variants: bool = _train_default("fold_variants")  # variant Chinese characters share one id

    def __post_init__(self) -> None:
        _check_fields(self, _TRAIN_OPTIONS)
        if self.max_steps is None and self.epochs is None and self.max_time is None:
            raise ConfigError(
                f"a run needs a length: give {spelled('max_steps')}, {spelled('epochs')} or {spelled('max_time')}"
            )


# A run's length: whichever of these is set and comes first ends it.
LENGTH_FIELDS = ("max_steps", "epochs", "max_time")


def with_run_length(options: Mapping[str, Any]) -> dict[str, Any]:
    """The length options given replace those not given: `--max-time 30m` alone means no step
    limit, whatever the default or the checkpoint said."""
    if not any(name in options for name in LENGTH_FIELDS):
        return dict(options)
    return {**{name: None for name in LENGTH_FIELDS}, **options}


# Options that fix how the text is cut into streams and windows: changing one on resume
# would change what every later step sees, so resume refuses instead.
LAYOUT_FIELDS = tuple(o.name for o in TRAIN if o.fixed_on_resume and o.name in {f.name for f in fields(TrainConfig)})


@dataclass(frozen=True)
class SampleConfig:
    """How characters are drawn from the model's predictions."""

    length: int = _SAMPLE_OPTIONS["length"].default
    temperature: float = _SAMPLE_OPTIONS["temperature"].default
    top_k: int | None = _SAMPLE_OPTIONS["top_k"].default
    top_p: float | None = _SAMPLE_OPTIONS["top_p"].default
    greedy: bool = _SAMPLE_OPTIONS["greedy"].default
    sharpen_runs: bool = _SAMPLE_OPTIONS[
        "sharpen_runs"
    ].default  # False: the run rule (sample.runs_as_the_model_has_them)

    def __post_init__(self) -> None:
        _check_fields(self, _SAMPLE_OPTIONS)


@dataclass(frozen=True)
class AdaptConfig:
    """How a model learns from a text as it reads it (dynamic evaluation: run/adapt.py)."""

    adapt_lr: float = _EVAL_OPTIONS["adapt_lr"].default
    adapt_decay: float = _EVAL_OPTIONS["adapt_decay"].default
    adapt_segment: int = _EVAL_OPTIONS["adapt_segment"].default

    def __post_init__(self) -> None:
        _check_fields(self, _EVAL_OPTIONS)

    def describe(self) -> str:
        return ", ".join(f"{spelled(f.name, getattr(self, f.name))}" for f in fields(self))


def field_names(config_class: type) -> tuple[str, ...]:
    """Names of a config dataclass's fields."""
    return tuple(f.name for f in fields(config_class))


def pick(config_class: type, options: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `options` that are fields of `config_class`."""
    names = field_names(config_class)
    return {key: value for key, value in options.items() if key in names}


def from_dict(config_class: type, data: Any, what: str):
    """Rebuild a config from a stored dict, refusing unknown or malformed entries."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{what} is not a mapping")
    unknown = sorted(set(data) - set(field_names(config_class)))
    if unknown:
        raise ConfigError(f"{what} has unknown fields: {', '.join(map(str, unknown))}")
    try:
        return config_class(**data)
    except TypeError as error:
        raise ConfigError(f"{what} is incomplete: {error}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """A config as a plain dict (what checkpoints store)."""
    return dataclasses.asdict(config)


def architecture_differences(saved: ModelConfig, explicit: Mapping[str, Any]) -> list[str]:
    """`--flag value (checkpoint: other)` for each explicit option that changes the architecture."""
    return _differences(
        {k: v for k, v in to_dict(saved).items() if k in _TRAIN_OPTIONS and _TRAIN_OPTIONS[k].fixed_on_resume}, explicit
    )


def _differences(fixed: Mapping[str, Any], explicit: Mapping[str, Any]) -> list[str]:
    return [
        f"{_setting(name, explicit[name])} (checkpoint: {shown_value(name, fixed[name])})"
        for name in fixed
        if name in explicit and explicit[name] != fixed[name]
    ]


def _setting(name: str, value: Any) -> str:
    """`--patience 5`, `--max-time 3m` or `--patience off`; in Python, `patience=5` or `patience=None`."""
    return spelled(name, value) if for_python() else f"{spelled(name)} {shown_value(name, value)}"


def shown_value(name: str, value: Any) -> str:
    """An option's value as a user would write it: `3m` for --max-time's 180 seconds; `off` for
    None, no limit (--max-steps, --patience, ...)."""
    if value is None:
        return "off"
    option = _TRAIN_OPTIONS.get(name) or _SAMPLE_OPTIONS.get(name)
    return duration_option(value) if option is not None and option.kind == DURATION else str(value)


def options_beyond_defaults(config: TrainConfig) -> list[str]:
    """Each training option whose value is not its default, as the run's command could have
    given it (`--max-time 3m`): a run length left None because another one was given
    (`--max-time 3m` alone lifts the step limit) goes without saying."""
    defaults, values = to_dict(TrainConfig()), to_dict(config)
    length_given = any(values[name] is not None for name in LENGTH_FIELDS)
    return [
        _setting(name, value)
        for name, value in values.items()
        if value != defaults.get(name) and not (name in LENGTH_FIELDS and value is None and length_given)
    ]


# Options that change only what a run shows (the loss log, the previews), never what it trains,
# saves or evaluates; the machine's options (--device, --dtype, --threads, --compile) are in
# no config, since a run may move between machines.
DISPLAY_FIELDS = ("log_every", "preview_chars")


def rerun_differences(saved_model: ModelConfig, saved_train: TrainConfig, options: Mapping[str, Any]) -> list[str]:
    """`--flag value (checkpoint: other)` for each option whose value in a new run of `options`
    (the options given, defaults for the rest) differs from the checkpoint's run: every option
    of the architecture, the data, the optimisation and the checkpoints, not the display ones."""
    model_defaults = {f.name: f.default for f in fields(ModelConfig) if f.default is not dataclasses.MISSING}
    train = TrainConfig(**pick(TrainConfig, with_run_length(options)))
    wanted = {**model_defaults, **pick(ModelConfig, options), **to_dict(train)}
    saved = {**to_dict(saved_model), **to_dict(saved_train)}
    return _differences({name: value for name, value in saved.items() if name not in DISPLAY_FIELDS}, wanted)


def resume_configs(
    saved_model: ModelConfig, saved_train: TrainConfig, explicit: Mapping[str, Any]
) -> tuple[ModelConfig, TrainConfig]:
    """Configs for a resumed run: the checkpoint's, with the options the user gave.

    Options the user did not give come from the checkpoint, so `--resume` alone continues
    the run as it was. An explicit option that changes the architecture or the data layout
    cannot be honoured exactly and is refused, naming every difference.
    """
    differences = architecture_differences(saved_model, explicit) + _differences(
        {name: getattr(saved_train, name) for name in LAYOUT_FIELDS}, explicit
    )
    if differences:
        raise ConfigError(
            "cannot resume with a different architecture or data layout: "
            + "; ".join(differences)
            + f". Leave these options out to continue the run, or start a new run with another {spelled('out')}"
        )
    return saved_model, dataclasses.replace(saved_train, **pick(TrainConfig, with_run_length(explicit)))

"""Typed configuration: what a model is, how it is trained, how text is sampled.

Each field has the name of its command-line option (`hidden_size` <-> `--hidden-size`;
`input_mode` <-> `--input`). The dataclasses are stored in checkpoints as plain dicts
and validated again when read back, since a checkpoint may come from anywhere.
No torch here: the CLI imports this module before it needs torch.
"""

from __future__ import annotations

import codecs
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from charrnn.errors import ConfigError

CELLS = ("rnn", "lstm", "gru")
INPUT_MODES = ("one-hot", "embedding")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("float32", "bfloat16")
DECODE_ERRORS = ("strict", "replace", "ignore")
DEFAULT_OUT = "checkpoints"  # where a run writes, and what sample/eval/info read, when not told
# One-hot input is as wide as the vocabulary; past this size its first layer dwarfs the model
# (a 9,589-character Chinese vocabulary would give an LSTM of 256 nearly 10 M input weights).
ONE_HOT_MAX_VOCAB = 4096

ENCODING_EXPECTED = "a text encoding Python knows (e.g. utf-8, latin-1, gb18030)"

# Upper bounds, checked before anything is built or allocated. Model sizes reach far beyond any
# character model one GPU can train, yet a typo or a crafted checkpoint cannot hang charrnn (a
# million layers) or ask for terabytes. Counts (steps, characters, streams) and seeds stay
# within a signed 64-bit integer, with room for arithmetic on them, as torch and numpy need.
MAX_LAYERS = 64
MAX_WIDTH = 16_384  # --hidden-size and --embed-dim
MAX_PARAMETERS = 2**31  # 8 GiB of float32 weights; training needs about four times that
MAX_COUNT = 10**15
MAX_SEED = 2**63 - 1
MAX_STREAMS = 65_536  # samples or beams generated side by side
MAX_LR = 3.4e38  # about the largest float32, as torch holds the learning rate; more fails inside AdamW

# Fields whose command-line flag is not simply the field name with dashes.
_FLAG_NAMES = {"input_mode": "--input"}


def flag_name(field_name: str) -> str:
    """The command-line flag for a config field (`seq_len` -> `--seq-len`)."""
    return _FLAG_NAMES.get(field_name, "--" + field_name.replace("_", "-"))


def _require(condition: bool, field_name: str, value: Any, expected: str) -> None:
    if not condition:
        raise ConfigError(f"{flag_name(field_name)} must be {expected}, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_int(field_name: str, value: Any, low: int, high: int = MAX_COUNT) -> None:
    _require(_is_int(value) and value >= low, field_name, value, f"an integer >= {low}")
    _require(value <= high, field_name, value, f"at most {high:,}")


def is_text_encoding(name: Any) -> bool:
    """Whether `name` is a codec that decodes bytes into text: not one of the bytes-to-bytes
    (base64, hex, zlib, ...) or text-to-text (rot13) codecs, nor "undefined", which refuses all."""
    try:
        info = codecs.lookup(name)
    except (LookupError, TypeError, ValueError):  # unknown; not a string; a NUL in the name
        return False
    return info._is_text_encoding and info.name != "undefined"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ModelConfig:
    """The architecture: everything needed to rebuild the network's shapes."""

    vocab_size: int
    cell: str = "lstm"
    layers: int = 2
    hidden_size: int = 256
    dropout: float = 0.2
    input_mode: str = "embedding"
    embed_dim: int = 64

    def __post_init__(self) -> None:
        _require_int("vocab_size", self.vocab_size, 1)
        _require(self.cell in CELLS, "cell", self.cell, "one of " + ", ".join(CELLS))
        _require_int("layers", self.layers, 1, MAX_LAYERS)
        _require_int("hidden_size", self.hidden_size, 1, MAX_WIDTH)
        _require(_is_number(self.dropout) and 0 <= self.dropout < 1, "dropout", self.dropout, "in [0, 1)")
        _require(self.input_mode in INPUT_MODES, "input_mode", self.input_mode, "one of " + ", ".join(INPUT_MODES))
        _require_int("embed_dim", self.embed_dim, 1, MAX_WIDTH)
        if self.input_mode == "one-hot" and self.vocab_size > ONE_HOT_MAX_VOCAB:
            raise ConfigError(
                f"--input one-hot with a vocabulary of {self.vocab_size:,} characters would make every input "
                f"vector {self.vocab_size:,} wide (the limit is {ONE_HOT_MAX_VOCAB:,}); use --input embedding"
            )
        if self.parameter_count > MAX_PARAMETERS:
            raise ConfigError(
                f"a model of {self.parameter_count:,} parameters is more than charrnn builds ({MAX_PARAMETERS:,}); "
                "use a smaller --hidden-size, --layers or --embed-dim"
            )

    @property
    def parameter_count(self) -> int:
        """Weights and biases of the network model.py builds (each fused recurrent layer has two biases)."""
        gates = {"rnn": 1, "gru": 3, "lstm": 4}[self.cell]
        widths = [self.input_size] + [self.hidden_size] * (self.layers - 1)
        recurrent = sum(gates * self.hidden_size * (width + self.hidden_size + 2) for width in widths)
        embedding = self.vocab_size * self.embed_dim if self.input_mode == "embedding" else 0
        return embedding + recurrent + (self.hidden_size + 1) * self.vocab_size

    @property
    def input_size(self) -> int:
        """Width of the vectors the recurrent layers read."""
        return self.vocab_size if self.input_mode == "one-hot" else self.embed_dim


@dataclass(frozen=True)
class TrainConfig:
    """How training runs. Data layout fields (`LAYOUT_FIELDS`) are fixed for a run's life."""

    seq_len: int = 64
    batch_size: int = 16
    val_fraction: float = 0.1
    encoding: str = "utf-8"
    errors: str = "strict"
    min_count: int = 1
    max_vocab: int | None = None
    eval_chars: int | None = 250_000
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.0
    clip: float = 5.0
    max_steps: int | None = 12000
    epochs: float | None = None
    max_time: float | None = None  # seconds of training
    eval_every: int = 500
    save_every: int = 500
    keep: int = 2
    log_every: int = 100
    patience: int | None = None  # stop after this many evaluations without a new best
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("seq_len", "batch_size", "eval_every", "save_every", "keep", "log_every", "min_count"):
            _require_int(name, getattr(self, name), 1)
        for name in ("max_vocab", "eval_chars", "patience", "max_steps"):
            if getattr(self, name) is not None:
                _require_int(name, getattr(self, name), 1)
        if self.max_time is not None:
            _require(_is_number(self.max_time) and self.max_time > 0, "max_time", self.max_time, "a duration > 0")
        if self.max_steps is None and self.epochs is None and self.max_time is None:
            raise ConfigError("a run needs a length: give --max-steps, --epochs or --max-time")
        _require_int("warmup_steps", self.warmup_steps, 0)
        _require_int("seed", self.seed, 0, MAX_SEED)
        _require(_is_number(self.val_fraction) and 0 <= self.val_fraction < 1, "val_fraction", self.val_fraction, "in [0, 1)")
        _require(_is_number(self.lr) and 0 < self.lr <= MAX_LR, "lr", self.lr, f"a number > 0 and at most {MAX_LR:g}")
        _require(_is_number(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1, "min_lr_ratio", self.min_lr_ratio, "in [0, 1]")
        _require(_is_number(self.weight_decay) and self.weight_decay >= 0, "weight_decay", self.weight_decay, "a number >= 0")
        _require(_is_number(self.clip) and self.clip >= 0, "clip", self.clip, "a number >= 0 (0 disables clipping)")
        if self.epochs is not None:
            _require(_is_number(self.epochs) and 0 < self.epochs <= MAX_COUNT, "epochs", self.epochs, f"a number > 0 and at most {MAX_COUNT:,}")
        _require(is_text_encoding(self.encoding), "encoding", self.encoding, ENCODING_EXPECTED)
        _require(self.errors in DECODE_ERRORS, "errors", self.errors, "one of " + ", ".join(DECODE_ERRORS))


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
LAYOUT_FIELDS = ("seq_len", "batch_size", "val_fraction", "min_count", "max_vocab")


@dataclass(frozen=True)
class SampleConfig:
    """How characters are drawn from the model's predictions."""

    length: int = 1000
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False

    def __post_init__(self) -> None:
        _require_int("length", self.length, 0)
        _require(_is_number(self.temperature) and self.temperature > 0, "temperature", self.temperature, "a number > 0")
        if self.top_k is not None:
            _require_int("top_k", self.top_k, 1)
        if self.top_p is not None:
            _require(_is_number(self.top_p) and 0 < self.top_p <= 1, "top_p", self.top_p, "in (0, 1]")


def field_names(config_class: type) -> tuple[str, ...]:
    """Names of a config dataclass's fields."""
    return tuple(f.name for f in fields(config_class))


def default_of(config_class: type, name: str) -> Any:
    """The default value of one field, so the CLI states each default only once."""
    return next(f.default for f in fields(config_class) if f.name == name)


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
    return _differences({k: v for k, v in to_dict(saved).items() if k != "vocab_size"}, explicit)


def _differences(fixed: Mapping[str, Any], explicit: Mapping[str, Any]) -> list[str]:
    return [f"{flag_name(name)} {explicit[name]} (checkpoint: {fixed[name]})" for name in fixed if name in explicit and explicit[name] != fixed[name]]


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
            + ". Leave these options out to continue the run, or start a new run with another --out"
        )
    return saved_model, dataclasses.replace(saved_train, **pick(TrainConfig, with_run_length(explicit)))

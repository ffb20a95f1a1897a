"""The Python API's arguments, checked at its door by the rules the command line's options
have (settings/options.py): a value of the wrong type or out of range is one ConfigError naming the
Python argument (`seed must be an integer >= 0 and at most ..., got -1`), before any work.
No torch here: sampling imports this.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, TypeVar

from charrnn.display import shown
from charrnn.errors import ConfigError
from charrnn.settings.config import AdaptConfig, ModelConfig, SampleConfig, TrainConfig, field_names
from charrnn.settings.option import FLAG, INT, MAX_HELD, PATH, Option
from charrnn.settings.options import EVAL, SAMPLE, by_name
from charrnn.settings.spelling import PYTHON, read_by
from charrnn.settings.train_options import TRAIN

SAMPLE_OPTIONS = by_name(SAMPLE)
OPTIONAL_CHOICES = ("top_k", "top_p")  # None: off

# Every argument is checked at the door by its command-line option's rule (settings/), named as
# the Python argument: what the command line refuses, the API refuses, before any work.
EVAL_OPTIONS, TRAIN_OPTIONS = by_name(EVAL), by_name(TRAIN)
LOCATION = Option(("--location",), "", kind=PATH)  # a file, folder or glob: a corpus, a text to score
OPTIONAL_FIELDS = {f.name for config in (ModelConfig, TrainConfig) for f in fields(config) if "None" in str(f.type)}
FILE_COUNT = Option(("-n",), "", kind=INT, low=1)  # samples written to a file: any number, a batch at a time
FLAG_ARGUMENT = Option(("--flag",), "", kind=FLAG)
TRAINING_OPTIONS = field_names(ModelConfig)[1:] + field_names(TrainConfig)  # vocab_size comes from the corpus
_Call = TypeVar("_Call", bound=Callable[..., Any])


def in_python_words(function: _Call) -> _Call:
    """Messages raised inside name Python arguments (`max_steps`), not flags, unless the
    command line called (settings.spelling.read_by)."""

    @functools.wraps(function)
    def called(*args: Any, **kwargs: Any) -> Any:
        with read_by(PYTHON, unless_said=True):
            return function(*args, **kwargs)

    return called  # type: ignore[return-value]


def argument(name: str, value: Any, option: Option, optional: bool = False) -> Any:
    """`value` if it meets `option`'s rule (or is None, where `optional`); else a ConfigError."""
    if value is None and optional:
        return None
    if option.problem(value) is not None:
        raise ConfigError(f"{name} must be {option.rule()}, got {shown(value)}")
    return value


def texts(name: str, value: Any) -> tuple[str, ...]:
    """A string, or a sequence of them, as a tuple of non-empty strings (`stop`)."""
    items = (value,) if isinstance(value, str) else value
    if isinstance(items, Sequence) and all(isinstance(item, str) and item for item in items):
        return tuple(items)
    raise ConfigError(f"{name} must be a non-empty string or a sequence of them, got {shown(value)}")


def documents(name: str, value: Any) -> tuple[str, ...]:
    """A list or tuple of non-empty strings, each a document (`texts`), as a tuple."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, str) and item for item in value):
        return tuple(value)
    raise ConfigError(
        f"{name} must be a non-empty list or tuple of non-empty strings (each a document), got {shown(value)}"
    )


def too_much_held(streams: int, length: int) -> str | None:
    """Why `streams` side by side of `length` characters each cannot be made when all of it is
    held in memory until the end (batched samples, beam back-pointers, a joined sample), or None.
    Checked before anything is made: past MAX_HELD, memory would run out only hours later."""
    if streams * length <= MAX_HELD:
        return None
    return (
        f"would hold {streams * length:,} characters at once (the limit is {MAX_HELD:,}): "
        f"give at most {MAX_HELD // streams:,}"
    )


# The sampling calls' arguments (Model.sample, samples, stream, generate).


def sampling_config(length: int, choices: dict[str, Any]) -> SampleConfig:
    """The validated SampleConfig of a call's length and choices."""
    unknown = sorted(set(choices) - set(field_names(SampleConfig)))
    if unknown:
        raise ConfigError(f"unknown sampling options: {', '.join(unknown)} (temperature, top_k, top_p, greedy)")
    for name, value in choices.items():  # each named as the caller wrote it, with its whole rule
        argument(name, value, SAMPLE_OPTIONS[name], optional=name in OPTIONAL_CHOICES)
    return SampleConfig(length=checked_length(length), **choices)


def adapt_config(adapting: dict[str, Any]) -> AdaptConfig:
    """The validated AdaptConfig of a call's adapt_lr, adapt_decay and adapt_segment."""
    unknown = sorted(set(adapting) - set(field_names(AdaptConfig)))
    if unknown:
        raise ConfigError(f"unknown options: {', '.join(unknown)} (adapt_lr, adapt_decay, adapt_segment)")
    for name, value in adapting.items():
        argument(name, value, EVAL_OPTIONS[name])
    return AdaptConfig(**adapting)


def checked_training_arguments(
    corpus: Sequence[Any],
    texts: Any,
    out: Any,
    resume: Any,
    init_from: Any,
    device: Any,
    dtype: Any,
    compile: Any,
    threads: Any,
    options: dict[str, Any],
) -> tuple[str, ...] | None:
    """charrnn.train's arguments checked, its `texts` as a tuple (or None)."""
    for location in corpus:
        argument("corpus", location, LOCATION)
    if texts is not None:
        texts = documents("texts", texts)
        if corpus:
            raise ConfigError("give corpus paths or texts, not both")
    argument("out", out, TRAIN_OPTIONS["out"], optional=True)
    if resume is not None and not isinstance(resume, bool) and LOCATION.problem(resume):
        raise ConfigError(f"resume must be True, False, None or a checkpoint file or out folder, got {shown(resume)}")
    argument("init_from", init_from, TRAIN_OPTIONS["init_from"], optional=True)
    argument("device", device, TRAIN_OPTIONS["device"])
    argument("dtype", dtype, TRAIN_OPTIONS["dtype"])
    argument("compile", compile, TRAIN_OPTIONS["compile_model"])
    argument("threads", threads, TRAIN_OPTIONS["threads"], optional=True)
    unknown = sorted(set(options) - set(TRAINING_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown training options: {', '.join(unknown)} (see charrnn.arguments.TRAINING_OPTIONS)")
    for name, value in options.items():
        argument(name, value, TRAIN_OPTIONS[name], optional=name in OPTIONAL_FIELDS)
    return texts


def checked_text_arguments(text: Sequence[Any], texts: Any, encoding: Any, errors: Any, unknown: Any) -> str:
    """The arguments naming a text to read (Model.score, Model.adapt) checked; the --unknown policy."""
    if texts is not None:
        documents("texts", texts)
        if text:
            raise ConfigError("give text paths or texts, not both")
    elif not text:
        raise ConfigError("score needs a text: a file, folder or glob pattern")
    for location in text:
        argument("text", location, LOCATION)
    argument("encoding", encoding, EVAL_OPTIONS["encoding"])
    argument("errors", errors, EVAL_OPTIONS["errors"])
    return argument("unknown", unknown, EVAL_OPTIONS["unknown"])


def checked_temperatures(temperature: Any) -> tuple[float, ...]:
    """One temperature or a non-empty list of them, each checked, as a tuple."""
    several = several_temperatures(temperature)
    values = tuple(temperature) if several else (temperature,)
    if several and not values:
        raise ConfigError("temperature must be a number or a non-empty list of numbers, got []")
    for value in values:
        argument("temperature", value, SAMPLE_OPTIONS["temperature"])
    return values


def several_temperatures(temperature: Any) -> bool:
    return isinstance(temperature, (list, tuple))


def checked_length(length: Any) -> int:
    return argument("length", length, SAMPLE_OPTIONS["length"])


def refuse_held(streams: int, length: int, with_what: str = "", hint: str = "") -> None:
    """Refuse a call that would hold more characters in memory at once than MAX_HELD (too_much_held)."""
    problem = too_much_held(streams, length)
    if problem:
        raise ConfigError(f"length={length:,}{with_what} {problem}{'; ' + hint if hint else ''}")


def checked_prime(prime: Any) -> str | None:
    return argument("prime", prime, SAMPLE_OPTIONS["prime"], optional=True)


def checked_seed(seed: Any) -> int | None:
    return argument("seed", seed, SAMPLE_OPTIONS["seed"], optional=True)


def checked_policy(unknown: Any) -> str:
    return argument("unknown", unknown, SAMPLE_OPTIONS["unknown"])


def checked_stops(stop: Any) -> tuple[str, ...]:
    return texts("stop", stop)

"""click's side of the option tables (settings/options.py): the parameter types, the generated
click options, --help grouped by section, `--config FILE` (TOML) read into defaults, and what the
commands share of their options' meaning (a checkpoint that must exist, the BLAS thread count)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from charrnn.display import printable
from charrnn.errors import CheckpointError
from charrnn.settings.budget import parse_duration
from charrnn.settings.option import (
    AUTO,
    CHOICE,
    DURATION,
    ENCODING,
    ENCODING_EXPECTED,
    FLAG,
    FLOAT,
    INT,
    INT_OR_AUTO,
    NONEMPTY,
    PATH,
    RESUME_LATEST,
    Option,
    is_text_encoding,
)
from charrnn.store.files import NotAFile, open_to_read


class _Limited:
    """An upper bound against overflow and runaway sizes, kept out of the range that help shows
    (`x>=1`, the rule users meet) and refused with a message of its own."""

    limit: float = math.inf

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)  # type: ignore[misc]
        if number > self.limit:
            self.fail(f"{number:,} is too large (at most {self.limit:,}).", param, ctx)  # type: ignore[attr-defined]
        return number


class Count(_Limited, click.IntRange):
    """A whole number from `low` up to `limit`."""

    name = "integer"

    def __init__(self, low: int, limit: int):
        super().__init__(low)
        self.limit = limit


class CountOrAuto(Count):
    """`auto`, or a whole number from `low` up to `limit` (train's --threads)."""

    name = "auto|integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == AUTO:
            return value
        try:
            int(value)
        except (TypeError, ValueError):
            self.fail(f"'{printable(str(value), limit=100)}' is neither {AUTO} nor an integer.", param, ctx)
        return super().convert(value, param, ctx)


class _FiniteFloatRange(click.FloatRange):
    """click's FloatRange, refusing NaN and infinity too (NaN passes every range comparison)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class Number(_Limited, _FiniteFloatRange):
    """A finite number in the option's range, up to its limit."""

    def __init__(self, option: Option):
        super().__init__(option.low, option.high, min_open=option.low_open, max_open=option.high_open)
        self.limit = option.limit if option.limit is not None else math.inf


class Duration(click.ParamType):
    """A wall-clock duration: 90, 90s, 5m, 1h30m, 1.5h (seconds when no unit is given)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            seconds = float(value) if isinstance(value, (int, float)) else parse_duration(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)
        if not 0 < seconds < math.inf:
            self.fail(f"{value!r} is not a positive duration", param, ctx)
        return seconds


class _NotEmpty(click.ParamType):
    """Refuses the empty string: as a path it would mean the current folder, and it is most often
    a shell variable that was never set (`--out "$RUN"`)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "":
            self.fail("must not be empty (is a shell variable unset?)", param, ctx)
        return super().convert(value, param, ctx)


class Location(_NotEmpty, click.Path):
    """A file or folder name: never empty, and without the NUL no name holds (a TOML file can give one)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and "\0" in value:
            self.fail("must not contain a NUL character", param, ctx)
        return super().convert(value, param, ctx)


class NonEmptyText(_NotEmpty, click.types.StringParamType):
    name = "text"


class TextEncoding(click.ParamType):
    """A codec that decodes bytes into text (utf-8, latin-1, gb18030; not base64 or rot13)."""

    name = "encoding"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not is_text_encoding(value):
            self.fail(f"'{printable(value, limit=100)}' is not {ENCODING_EXPECTED}", param, ctx)
        return value


class TableOption(click.Option):
    """A click option made from an entry of the option table, which it keeps as `spec`.

    It reads the environment the same way under every click release the project admits: a
    flag's variable is judged as a boolean (click 8.2 takes any value as "on"), and the
    variable a value came from is noted (click 8.4 records a value's source only once it is
    valid, too late for the message about a bad one)."""

    def __init__(self, *args: Any, spec: Option, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.spec = spec
        if kwargs.get("is_flag") is False and "flag_value" in kwargs:
            self._flag_needs_value = True  # a bare `--resume` takes the flag value (click 8.3.0-8.3.1 asked for one)

    def consume_value(self, ctx: click.Context, opts: Any) -> tuple[Any, ParameterSource]:
        value, source = super().consume_value(ctx, opts)
        if source is ParameterSource.ENVIRONMENT:
            variable = self._set_variable(ctx)
            if variable is not None:
                ctx.meta.setdefault(_VARIABLES, {})[self.name] = variable
                if self.is_flag and not self.multiple:
                    value = os.environ[variable]  # as set, for the boolean type to judge
        return value, source

    def _set_variable(self, ctx: click.Context) -> str | None:
        """The environment variable this option's value comes from, as click looks them up."""
        names = self.envvar or (f"{ctx.auto_envvar_prefix}_{self.name.upper()}" if ctx.auto_envvar_prefix else None)
        names = [names] if isinstance(names, str) else list(names or ())
        return next((name for name in names if os.environ.get(name)), None)


_VARIABLES = "charrnn.environment_variables"  # ctx.meta: option name -> the variable its value came from


def environment_variable(error: click.UsageError) -> str | None:
    """The environment variable a bad option value came from, or None if it did not come from one."""
    if not isinstance(error, click.BadParameter) or error.param is None or error.ctx is None:
        return None
    return error.ctx.meta.get(_VARIABLES, {}).get(error.param.name)


def _click_option(spec: Option, command: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    settings = {
        "type": _click_type(spec),
        "default": spec.default,
        "help": spec.help + (f"  [default: {spec.shown_default}]" if spec.shown_default else ""),
        "envvar": [f"CHARRNN_{command.upper()}_{name}" for name in spec.envvar_names] or None,
        "is_flag": spec.kind == FLAG or None,
        "multiple": spec.multiple,
        **_EXTRA.get(spec.name, {}),
    }
    return click.option(*spec.flags, spec.name, cls=TableOption, spec=spec, **settings)


def _click_type(spec: Option) -> Any:
    if spec.kind == INT:
        return Count(int(spec.low or 0), int(spec.limit))  # type: ignore[arg-type]
    if spec.kind == INT_OR_AUTO:
        return CountOrAuto(int(spec.low or 0), int(spec.limit))  # type: ignore[arg-type]
    if spec.kind == FLOAT:
        return Number(spec)
    if spec.kind == CHOICE:
        return click.Choice(spec.choices)
    if spec.kind == PATH:
        return Location(**{"path_type": Path, **spec.path_args})
    return {NONEMPTY: NonEmptyText(), DURATION: Duration(), ENCODING: TextEncoding()}.get(spec.kind)


def table_options(table: tuple[Option, ...], command: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator adding the options of `table` to a command, in the table's order."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        for spec in reversed(table):
            function = _click_option(spec, command)(function)
        return function

    return decorate


class SectionedCommand(click.Command):
    """A command whose --help lists its options under their table sections, in the table's order;
    options in no section come last, under "Other options"."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if isinstance(param, click.Option) and record:
                section = param.spec.section if isinstance(param, TableOption) else None
                sections.setdefault(section or "Other options", []).append(record)
        if list(sections) == ["Other options"]:  # no sections at all: click's plain "Options"
            return super().format_options(ctx, formatter)
        sections["Other options"] = sections.pop("Other options", [])
        for heading, rows in sections.items():
            if rows:
                with formatter.section(heading):
                    formatter.write_dl(rows)


def explicit_options(ctx: click.Context, names: tuple[str, ...]) -> dict[str, Any]:
    """The options the user actually gave (not click's defaults): on resume, only these
    override what the checkpoint holds."""
    return {
        name: ctx.params[name]
        for name in names
        if name in ctx.params and ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)
    }


CONFIG_MAX_BYTES = 1 << 20  # an options file is a few lines; the bound keeps `--config /dev/zero` finite


def _read_config_file(ctx: click.Context, param: click.Parameter, path: Path | None) -> None:
    """`--config run.toml`: its keys (option names, as on the command line) become defaults,
    so an option given on the command line (or in the environment) wins over the file.

    Each value must have its option's TOML type (`hidden-size = 16.9` is refused, not cut to
    16) and is converted and range-checked here, so an error names the file and the key.
    """
    if path is None:
        return
    values = _load_toml(path, ctx, param)
    try:
        ctx.default_map = {**(ctx.default_map or {}), **_config_defaults(path, values, ctx, param)}
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError, UnicodeError) as error:
        # A property of the file (a value nested thousands deep, say), never a bug of the run: named as such.
        raise click.BadParameter(f"{printable(path)} cannot be read as options: {_why(error)}", ctx, param) from None


def _config_defaults(path: Path, values: dict[str, Any], ctx: click.Context, param: click.Parameter) -> dict[str, Any]:
    """The options a config file's `values` give, converted and checked, by parameter name."""
    options = _options_by_key(ctx.command)
    unknown = [key for key in values if _normal_key(key) not in options]
    if unknown:
        raise click.BadParameter(
            f"{printable(path)} has keys that are not options of 'charrnn {ctx.command.name}': "
            f"{', '.join(printable(key, limit=100) for key in unknown)}",
            ctx,
            param,
        )
    defaults: dict[str, Any] = {}
    for key, value in values.items():
        option = options[_normal_key(key)]
        if option.name in defaults:
            raise click.BadParameter(f"{printable(path)} gives {option.opts[0]} twice", ctx, param)
        try:
            defaults[str(option.name)] = option.type_cast_value(ctx, _checked_toml_value(option.spec, value))
        except click.BadParameter as error:
            raise click.BadParameter(
                f"{printable(path)}: {printable(key, limit=100)}: {error.message}", ctx, param
            ) from None
    return defaults


def _why(error: BaseException) -> str:
    """What is wrong with a file that made a parser or a check fail, in a few words."""
    if isinstance(error, RecursionError):
        return "its values are nested too deeply"
    if isinstance(error, MemoryError):
        return "it holds more than fits in memory"
    first_line = str(error).strip().split("\n")[0]
    return printable(first_line, limit=200) or type(error).__name__


def _load_toml(path: Path, ctx: click.Context, param: click.Parameter) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    try:
        with open_to_read(path) as file:  # a FIFO would block, a device never end
            data = file.read(CONFIG_MAX_BYTES + 1)
        if len(data) > CONFIG_MAX_BYTES:
            raise click.BadParameter(
                f"{printable(path)} is larger than {CONFIG_MAX_BYTES >> 20} MiB: not an options file", ctx, param
            )
        return tomllib.loads(data.decode("utf-8"))
    except NotAFile:
        raise click.BadParameter(f"{printable(path)} is not a regular file", ctx, param) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise click.BadParameter(f"{printable(path)} is not a readable TOML file: {error}", ctx, param) from None
    except (RecursionError, MemoryError, ValueError) as error:  # the parser's own limits: tables or arrays nested
        raise click.BadParameter(f"{printable(path)} is not a readable TOML file: {_why(error)}", ctx, param) from None


def _normal_key(key: str) -> str:
    return key.replace("-", "_")


def _options_by_key(command: click.Command) -> dict[str, TableOption]:
    """A command's options by each name a file may give them: `input-mode` or `input`, `max-steps` or `max_steps`."""
    options: dict[str, TableOption] = {}
    for option in command.params:
        if isinstance(option, TableOption) and option.expose_value:
            for name in [option.spec.name, *(flag[2:] for flag in option.spec.flags if flag.startswith("--"))]:
                options[_normal_key(name)] = option
    return options


# The TOML value types each kind of option takes, and how to say so (strings for the rest).
_TOML_TYPES = {
    FLAG: ((bool,), "true or false"),
    INT: ((int,), "an integer"),
    INT_OR_AUTO: ((int, str), f'"{AUTO}" or an integer'),
    FLOAT: ((int, float), "a number"),
    DURATION: ((int, float, str), 'a number of seconds or a duration such as "1h30m"'),
}


def _checked_toml_value(spec: Option, value: Any) -> Any:
    """`value` if TOML typed it as `spec` needs (click would turn 16.9 or "16" into 16, true into 1)."""
    kinds, expected = _TOML_TYPES.get(spec.kind, ((str,), "a string"))
    items = value if spec.multiple and isinstance(value, list) else [value]
    if not all(isinstance(item, kinds) and (bool in kinds or not isinstance(item, bool)) for item in items):
        shown = printable(json.dumps(value, ensure_ascii=False, default=str), limit=100)
        raise click.BadParameter(f"must be {expected}{' (or a list of them)' if spec.multiple else ''}, got {shown}")
    return items if spec.multiple else value


# What click needs beyond the table for two options: --config is read first, into defaults;
# a bare --resume (no PATH) means the out folder's latest checkpoint.
_EXTRA: dict[str, dict[str, Any]] = {
    "config": {"is_eager": True, "expose_value": False, "callback": _read_config_file},
    "resume": {"is_flag": False, "flag_value": RESUME_LATEST, "metavar": "[PATH]"},
}


def existing_checkpoint(checkpoint: Path, how: str) -> Path:
    """`checkpoint` if anything is there; else a refusal that says how to name one, and which
    runs lie in the current folder or the two below it."""
    if checkpoint.exists():
        return checkpoint
    from charrnn.store.outdir import runs_near

    runs = runs_near(Path.cwd())
    if runs:
        shown = ", ".join(printable(run.relative_to(Path.cwd())) for run in runs[:RUNS_SHOWN])
        more = f" and {len(runs) - RUNS_SHOWN:,} more" if len(runs) > RUNS_SHOWN else ""
        seen = f"runs here: {shown}{more}"
    else:
        seen = "no run in this folder or the two below it; train one with charrnn train"
    raise CheckpointError(f"checkpoint not found: {printable(checkpoint)}; give one with {how} ({seen})")


RUNS_SHOWN = 3  # runs named when a checkpoint is not found


_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads(threads: int | str, streams: int, torch_first: bool = False) -> None:
    """For one stream, run numpy's matrix products on `threads` threads; with auto on one (a
    count set in the environment is kept): a chain of small matrix-vector products, where a
    second thread only adds synchronisation (measured: 10% slower; docs/benchmarks.md). Not
    when PyTorch works first (`torch_first`, sample --adapt): it reads MKL_NUM_THREADS too, and
    its training steps gain from every core.

    The BLAS library reads its count once, when numpy is first imported, which nothing before
    this does; set here, the count costs nothing at start-up. Several streams (-n, --beam) are
    left to the API, which changes the count as they run (threads.running_on)."""
    if "numpy" in sys.modules or streams > 1:
        return
    if threads != AUTO:
        os.environ.update(dict.fromkeys(_BLAS_THREADS, str(threads)))
    elif not torch_first and not any(name in os.environ for name in _BLAS_THREADS):
        os.environ.update(dict.fromkeys(_BLAS_THREADS, "1"))

"""The `charrnn` command line: parse and validate options, call one function per command.

torch is imported inside the commands, so `charrnn --help` answers at once. Every error a
user can cause ends as one line on stderr: click's usage errors exit 2, charrnn's own
errors (CharRNNError) exit 1; `charrnn --debug ...` shows the traceback instead.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import re
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from charrnn import __version__
from charrnn.budget import format_duration, parse_duration
from charrnn.config import (
    CELLS,
    DECODE_ERRORS,
    DEFAULT_OUT,
    DEVICES,
    DTYPES,
    ENCODING_EXPECTED,
    INPUT_MODES,
    MAX_COUNT,
    MAX_LAYERS,
    MAX_LR,
    MAX_SEED,
    MAX_STREAMS,
    MAX_WIDTH,
    ModelConfig,
    SampleConfig,
    TrainConfig,
    default_of,
    field_names,
    is_text_encoding,
)
from charrnn.display import printable
from charrnn.errors import CharRNNError, OptionError, TrainingStopped

_RESUME_LATEST = "\0latest"  # the value of a bare --resume (no path given)


class SectionedCommand(click.Command):
    """A command whose --help lists its options under headings: `sections` maps each heading
    to option names; options in no section come last, under "Other options"."""

    def __init__(self, *args: Any, sections: dict[str, tuple[str, ...]] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sections = sections or {}

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        records = {param.name: param.get_help_record(ctx) for param in self.get_params(ctx) if isinstance(param, click.Option)}
        placed: set[str | None] = set()
        for heading, names in self.sections.items():
            placed.update(names)
            rows = [records[name] for name in names if records.get(name)]
            if rows:
                with formatter.section(heading):
                    formatter.write_dl(rows)
        rest = [record for name, record in records.items() if record and name not in placed]
        if rest:
            with formatter.section("Other options"):
                formatter.write_dl(rest)


TRAIN_SECTIONS = {
    "Data": ("val_fraction", "seq_len", "batch_size", "encoding", "errors", "min_count", "max_vocab", "eval_chars"),
    "Model": ("cell", "layers", "hidden_size", "dropout", "input_mode", "embed_dim"),
    "Optimisation": ("lr", "min_lr_ratio", "warmup_steps", "weight_decay", "clip", "max_steps", "epochs", "max_time", "patience", "seed"),
    "Checkpoints and progress": ("out", "resume", "init_from", "eval_every", "save_every", "keep", "log_every", "quiet", "config"),
    "Hardware": ("device", "dtype", "compile_model"),
}
SAMPLE_SECTIONS = {
    "Model": ("checkpoint", "device"),
    "What to generate": ("length", "prime", "num_samples", "stops", "interactive", "seed"),
    "How to choose each character": ("temperature", "top_k", "top_p", "greedy", "beam"),
}


class CharRNNGroup(click.Group):
    """A click group that reports every failure as a single line on stderr."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        debug = "--debug" in (sys.argv[1:] if args is None else list(args))
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            sys.stdout.flush()  # a full disk must fail here, where it can be reported, not at exit
        except click.UsageError as error:
            hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
            _fail(f"{error.format_message()}{_environment_source(error)}{hint}", error.exit_code, debug)
        except click.ClickException as error:
            _fail(error.format_message(), error.exit_code, debug)
        except OptionError as error:
            _fail(f"Invalid value for '{error.option}': {error.detail}", 2, debug)
        except CharRNNError as error:
            _fail(str(error), error.exit_code, debug)
        except (click.Abort, KeyboardInterrupt):
            _fail("interrupted", 130, debug)
        except BrokenPipeError:  # `charrnn sample | head`: the reader left, as it may
            _abandon_stdout()
            sys.exit(1)
        except UnicodeError as error:  # a codec that refuses the text in its own way (utf-16 without BOM, idna)
            _fail(f"cannot {'encode' if isinstance(error, UnicodeEncodeError) else 'decode'} the text: {error}", 1, debug)
        except _Stdout.Error as error:
            _abandon_stdout()
            _fail(f"cannot write to standard output: {error.strerror}", 1, debug)
        except Exception as error:  # a bug, or the machine failing
            _fail(_out_of_memory(error) or _overflow(error) or _unexpected(error), 1, debug)
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, exit_code: int, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    # printable: a value quoted in the message (a file name, an option's value) may hold a
    # newline or a terminal escape sequence; the message stays one harmless line.
    click.echo(f"Error: {printable(message, limit=2000)}", err=True)
    sys.exit(exit_code)


def _unexpected(error: Exception) -> str:
    first_line = str(error).strip().split("\n")[0]  # torch's C++ errors append a stack of frames
    return f"unexpected {type(error).__name__}: {first_line} (rerun with --debug for the traceback)"


def _out_of_memory(error: Exception) -> str | None:
    """A one-line report of an allocation that failed (torch raises RuntimeError subclasses), else None."""
    message = str(error)
    if not (isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and _OUT_OF_MEMORY.search(message))):
        return None
    asked = re.search(r"tried to allocate (\d+) bytes", message)
    size = f": {int(asked[1]) / 2**30:,.1f} GiB asked for" if asked else ""
    return f"out of memory{size}; smaller sizes (--batch-size, --hidden-size, -n, --beam, --length) need less"


_OUT_OF_MEMORY = re.compile(r"out of memory|can't allocate memory", re.IGNORECASE)


def _overflow(error: Exception) -> str | None:
    """A one-line report of a number torch could not hold in float32, else None: an extreme
    --lr or --weight-decay, say, once AdamW's bias correction or the decay multiplies it."""
    if isinstance(error, RuntimeError) and "cannot be converted to type float without overflow" in str(error):
        return "a number grew past what float32 holds while training; a smaller --lr or --weight-decay avoids it"
    return None


def _environment_source(error: click.UsageError) -> str:
    """` (from CHARRNN_TRAIN_LR)` when the bad value came from the environment, which the
    command line does not show."""
    if not isinstance(error, click.BadParameter) or error.param is None or error.ctx is None or error.param.name is None:
        return ""
    if error.ctx.get_parameter_source(error.param.name) is not ParameterSource.ENVIRONMENT:
        return ""
    names = error.param.envvar or f"{error.ctx.auto_envvar_prefix}_{error.param.name.upper()}"
    envvar = names if isinstance(names, str) else next((name for name in names if os.environ.get(name)), names[0])
    return f" (from the environment variable {envvar})"


def _abandon_stdout() -> None:
    """Drop what could not be written, so the interpreter's final flush cannot fail with a traceback."""
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until the process ends


class _Stdout:
    """Standard output, its write errors (closed, or a full disk) raised as `_Stdout.Error`, which
    main reports in one line. A process started without stdout (`charrnn sample >&-`) fails only
    in the commands that write to it (train does not)."""

    class Error(OSError):
        pass

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._guarded("write", text)

    def flush(self) -> None:
        if self._stream is not None:
            self._guarded("flush")

    def _guarded(self, method: str, *args: Any) -> Any:
        if self._stream is None:
            raise self.Error(errno.EBADF, "it is closed")
        try:
            return getattr(self._stream, method)(*args)
        except BrokenPipeError:  # the reader left (`| head`): main ends quietly
            raise
        except OSError as error:
            raise self.Error(error.errno, error.strerror) from error

    def __getattr__(self, name: str) -> Any:
        if self._stream is None:
            raise AttributeError(name)
        return getattr(self._stream, name)


class _Diagnostics:
    """Standard error for messages and progress: a full or broken stderr must not stop the work
    it reports on (a training run, say); what cannot be written there is dropped."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _prepare_standard_streams() -> None:
    """Text that the terminal's encoding cannot show is written escaped (\\u4e16), not a crash;
    a closed stdout fails only the commands that write to it; stderr never stops the work."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    sys.stdout = _Stdout(sys.stdout)
    sys.stderr = _Diagnostics(sys.stderr if sys.stderr is not None else open(os.devnull, "w"))  # noqa: SIM115


class _UpperBound(click.ParamType):
    """An upper bound against overflow and runaway sizes, kept out of the range that help shows
    (`x>=1`, the rule users meet) and refused with a message of its own."""

    high: float

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number > self.high:
            self.fail(f"{number:,} is too large (at most {self.high:,}).", param, ctx)
        return number


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange, refusing NaN and infinity too (NaN passes every range comparison)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class Count(_UpperBound, click.IntRange):
    """A whole number from `low` up to `high` (by default far beyond any sensible value)."""

    name = "integer"

    def __init__(self, low: int, high: int = MAX_COUNT):
        super().__init__(low)
        self.high = high


class Positive(_UpperBound, FiniteFloatRange):
    """A finite number above 0, up to `high`."""

    def __init__(self, high: float):
        super().__init__(0, min_open=True)
        self.high = high


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


def _explicit_options(ctx: click.Context, names: tuple[str, ...]) -> dict[str, Any]:
    """The options the user actually gave (not click's defaults): on resume, only these
    override what the checkpoint holds."""
    return {
        name: ctx.params[name]
        for name in names
        if name in ctx.params and ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)
    }


# Every option can also come from the environment: CHARRNN_<COMMAND>_<OPTION>, e.g. CHARRNN_TRAIN_LR.
@click.group(cls=CharRNNGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True, "auto_envvar_prefix": "CHARRNN"})
@click.version_option(__version__, prog_name="charrnn")
@click.option("--debug", is_flag=True, help="Show the full traceback when something fails.")
def main(debug: bool) -> None:
    """charrnn: train character-level RNN language models and sample text from them.

    \b
    Quick start:
      charrnn train corpus.txt          # train (or leave out corpus.txt: built-in corpus)
      charrnn train corpus.txt --resume # continue a stopped run exactly
      charrnn sample --temp 0.8         # generate text from checkpoints/best.pt
    """


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
    options = _options_by_key(ctx.command)
    unknown = [key for key in values if _normal_key(key) not in options]
    if unknown:
        raise click.BadParameter(
            f"{printable(path)} has keys that are not options of 'charrnn {ctx.command.name}': "
            f"{', '.join(printable(key, limit=100) for key in unknown)}", ctx, param
        )
    defaults: dict[str, Any] = {}
    for key, value in values.items():
        option = options[_normal_key(key)]
        if option.name in defaults:
            raise click.BadParameter(f"{printable(path)} gives {option.opts[0]} twice", ctx, param)
        try:
            defaults[str(option.name)] = option.type_cast_value(ctx, _checked_toml_value(option, value))
        except click.BadParameter as error:
            raise click.BadParameter(f"{printable(path)}: {printable(key, limit=100)}: {error.message}", ctx, param) from None
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


def _load_toml(path: Path, ctx: click.Context, param: click.Parameter) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    if not path.is_file():  # a FIFO would block, a device never end
        raise click.BadParameter(f"{printable(path)} is not a regular file", ctx, param)
    try:
        with open(path, "rb") as file:
            data = file.read(CONFIG_MAX_BYTES + 1)
        if len(data) > CONFIG_MAX_BYTES:
            raise click.BadParameter(f"{printable(path)} is larger than {CONFIG_MAX_BYTES >> 20} MiB: not an options file", ctx, param)
        return tomllib.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise click.BadParameter(f"{printable(path)} is not a readable TOML file: {error}", ctx, param) from None


def _normal_key(key: str) -> str:
    return key.replace("-", "_")


def _options_by_key(command: click.Command) -> dict[str, click.Option]:
    """A command's options by each name a file may give them: `input-mode` or `input`, `max-steps` or `max_steps`."""
    options: dict[str, click.Option] = {}
    for option in command.params:
        if isinstance(option, click.Option) and option.expose_value and option.name:
            for name in [option.name, *(flag[2:] for flag in option.opts if flag.startswith("--"))]:
                options[_normal_key(name)] = option
    return options


def _checked_toml_value(option: click.Option, value: Any) -> Any:
    """`value` if TOML typed it as `option` needs (click would turn 16.9 or "16" into 16, true into 1)."""
    kinds, expected = _toml_type(option)
    items = value if option.multiple and isinstance(value, list) else [value]
    if not all(isinstance(item, kinds) and (bool in kinds or not isinstance(item, bool)) for item in items):
        shown = printable(json.dumps(value, ensure_ascii=False, default=str), limit=100)
        raise click.BadParameter(f"must be {expected}{' (or a list of them)' if option.multiple else ''}, got {shown}")
    return items if option.multiple else value


def _toml_type(option: click.Option) -> tuple[tuple[type, ...], str]:
    """The TOML value types an option takes, and how to say so."""
    if option.is_flag:
        return (bool,), "true or false"
    if isinstance(option.type, click.types.IntParamType):
        return (int,), "an integer"
    if isinstance(option.type, click.types.FloatParamType):
        return (int, float), "a number"
    if isinstance(option.type, Duration):
        return (int, float, str), 'a number of seconds or a duration such as "1h30m"'
    return (str,), "a string"


def _envvars(command: str, *names: str) -> list[str]:
    """The environment variables of an option whose flag and parameter are named differently
    (--temp sets temperature): click's automatic name follows the parameter; both work."""
    return [f"CHARRNN_{command}_{name}" for name in names]


def _default(config_class: type, name: str) -> Any:
    return default_of(config_class, name)


@main.command(cls=SectionedCommand, sections=TRAIN_SECTIONS, short_help="Train a model on text files (or the built-in corpus).")
@click.argument("corpus", nargs=-1, type=Location(path_type=str))
# data
@click.option("--val-fraction", type=FiniteFloatRange(0, 1, max_open=True), default=_default(TrainConfig, "val_fraction"), help="Fraction of the text, from its end, held out for validation.")
@click.option("--seq-len", type=Count(1), default=_default(TrainConfig, "seq_len"), help="Characters per window: how far back gradients flow (truncated BPTT).")
@click.option("--batch-size", type=Count(1), default=_default(TrainConfig, "batch_size"), help="Parallel streams the training text is laid out in (under torchrun: of all processes together).")
@click.option("--encoding", default=_default(TrainConfig, "encoding"), type=TextEncoding(), help="Text encoding of CORPUS (e.g. latin-1, gb18030, utf-16).")
@click.option("--errors", type=click.Choice(DECODE_ERRORS), default=_default(TrainConfig, "errors"), help="What to do with bytes that are not valid in --encoding: stop, replace them with U+FFFD, or drop them.")
@click.option("--min-count", type=Count(1), default=_default(TrainConfig, "min_count"), help="Characters seen fewer times than this share one unknown id (which sampling never produces).")
@click.option("--max-vocab", type=Count(1), default=None, help="Keep at most this many characters, the most frequent; the rest share the unknown id.")
@click.option("--eval-chars", type=Count(1), default=_default(TrainConfig, "eval_chars"), help="Validate on at most this many characters from the start of the validation text.")
# model
@click.option("--cell", type=click.Choice(CELLS), default=_default(ModelConfig, "cell"), help="Recurrent cell type.")
@click.option("--layers", type=Count(1, MAX_LAYERS), default=_default(ModelConfig, "layers"), help="Number of stacked recurrent layers.")
@click.option("--hidden-size", type=Count(1, MAX_WIDTH), default=_default(ModelConfig, "hidden_size"), help="Units in each recurrent layer.")
@click.option("--dropout", type=FiniteFloatRange(0, 1, max_open=True), default=_default(ModelConfig, "dropout"), help="Dropout between layers and before the output layer.")
@click.option("--input", "input_mode", envvar=_envvars("TRAIN", "INPUT", "INPUT_MODE"), type=click.Choice(INPUT_MODES), default=_default(ModelConfig, "input_mode"), help="Feed characters as one-hot vectors or as learned embeddings.")
@click.option("--embed-dim", type=Count(1, MAX_WIDTH), default=_default(ModelConfig, "embed_dim"), help="Embedding width (with --input embedding).")
# optimisation
@click.option("--lr", type=Positive(MAX_LR), default=_default(TrainConfig, "lr"), help="Peak learning rate (AdamW).")
@click.option("--min-lr-ratio", type=FiniteFloatRange(0, 1), default=_default(TrainConfig, "min_lr_ratio"), help="Final learning rate as a fraction of --lr (cosine decay); 1 keeps it constant.")
@click.option("--warmup-steps", type=Count(0), default=_default(TrainConfig, "warmup_steps"), help="Steps of linear learning-rate warm-up.")
@click.option("--weight-decay", type=FiniteFloatRange(0), default=_default(TrainConfig, "weight_decay"), help="AdamW weight decay on weight matrices.")
@click.option("--clip", type=FiniteFloatRange(0), default=_default(TrainConfig, "clip"), help="Clip the gradient norm to this; 0 turns clipping off.")
@click.option("--max-steps", type=Count(1), default=_default(TrainConfig, "max_steps"), help="Total updates of the run (resumed runs count the steps already done); with --max-time, whichever comes first ends the run.")
@click.option("--epochs", type=Positive(MAX_COUNT), default=None, help="Run length in passes over the training text, instead of --max-steps.")
@click.option("--max-time", type=Duration(), default=None, help="Stop after this much training (e.g. 90s, 5m, 1h30m), evaluating and saving; alone, it lifts the step limit. The learning rate decays over the time.")
@click.option("--seed", type=Count(0, MAX_SEED), default=_default(TrainConfig, "seed"), help="Random seed for weights and dropout.")
# checkpoints and progress
@click.option("--out", type=Location(file_okay=False, path_type=Path), default=DEFAULT_OUT, help="Folder for checkpoints: latest.pt, best.pt and step-N.pt; it holds one run. With --resume PATH: PATH's own folder.")
@click.option("--resume", type=NonEmptyText(), is_flag=False, flag_value=_RESUME_LATEST, default=None, metavar="[PATH]", help="Continue a run: from OUT/latest.pt, or from the checkpoint or out folder PATH.")
@click.option("--init-from", type=Location(path_type=str), default=None, help="Start a new run from this checkpoint's weights (fine-tuning): its architecture, its vocabulary plus CORPUS's new characters, a fresh optimizer.")
@click.option("--patience", type=Count(1), default=None, help="Stop early once validation has not improved for this many evaluations in a row.  [default: off]")
@click.option("--eval-every", type=Count(1), default=_default(TrainConfig, "eval_every"), help="Steps between validation passes (best.pt is saved when validation improves).")
@click.option("--save-every", type=Count(1), default=_default(TrainConfig, "save_every"), help="Steps between saves (step-N.pt and latest.pt): the most work a crash can cost.")
@click.option("--keep", type=Count(1), default=_default(TrainConfig, "keep"), help="Step-numbered checkpoints to keep; older ones are removed once a newer one is safely written.")
@click.option("--log-every", type=Count(1), default=_default(TrainConfig, "log_every"), help="Steps between training-loss reports (on the progress bar, or as log lines when stderr is not a terminal).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", help="Where to train: auto picks CUDA, then MPS, then CPU.")
@click.option("--dtype", type=click.Choice(DTYPES), default="float32", help="Precision of the forward passes: bfloat16 autocast is faster on GPUs (and some CPUs); weights stay float32.")
@click.option("--compile", "compile_model", envvar=_envvars("TRAIN", "COMPILE", "COMPILE_MODEL"), is_flag=True, help="torch.compile the model first (minutes of compiling; pays off on long GPU runs).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; only errors and the final summary.")
@click.option("--config", type=Location(exists=True, dir_okay=False, path_type=Path), default=None, is_eager=True, expose_value=False, callback=_read_config_file, help="A TOML file of options (e.g. hidden-size = 512); the command line wins over it.")
@click.pass_context
def train(
    ctx: click.Context, corpus: tuple[str, ...], out: Path, resume: str | None, init_from: str | None, device: str,
    dtype: str, compile_model: bool, quiet: bool, **_: Any,
) -> None:
    """Train a character model on CORPUS: UTF-8 text files, folders of them, or glob patterns,
    read in sorted order (a newline ends each file that lacks one).

    With no CORPUS, trains on the built-in corpus (Python's own standard-library sources);
    with --resume and no CORPUS, on the corpus the checkpoint was trained on.

    \b
    Examples:
      charrnn train shakespeare.txt
      charrnn train poems/ --cell gru --hidden-size 512 --out runs/poems
      charrnn train 'src/**/*.py' --max-time 1h
      charrnn train shakespeare.txt --resume
      charrnn train shakespeare.txt --resume --max-steps 8000   # train further
      charrnn train sonnets.txt --init-from checkpoints --out runs/sonnets --lr 0.001
    """
    options = _explicit_options(ctx, field_names(ModelConfig) + field_names(TrainConfig))
    if "epochs" in options and "max_steps" in options:
        raise click.UsageError("give --max-steps or --epochs, not both")
    if resume is not None and init_from is not None:
        raise click.UsageError("give --resume (continue a run) or --init-from (start a new one from its weights), not both")
    # Not given, --out is checkpoints/ for a new run, and a resumed checkpoint's own folder.
    out_dir = out if ctx.get_parameter_source("out") is not ParameterSource.DEFAULT else None
    if resume is not None:
        resume = _resume_location(resume, out)
    from charrnn.progress import console_reporter
    from charrnn.train import TrainRequest, run_training

    request = TrainRequest(
        corpus=corpus, out_dir=out_dir, device=device, dtype=dtype, compile=compile_model, resume=resume,
        init_from=init_from, options=options,
    )
    # Under torchrun, rank 0 speaks for the run (a lone RANK without WORLD_SIZE is no torchrun run).
    is_main = os.environ.get("WORLD_SIZE", "1").strip() in ("", "1") or os.environ.get("RANK", "0") == "0"
    try:
        result = run_training(request, console_reporter(quiet))
    except TrainingStopped as stopped:
        folder = Path(stopped.saved).parent
        out_flag = "" if folder == Path(DEFAULT_OUT) else f" --out {folder}"
        if is_main:
            click.echo(f"Training {stopped}. Resume with: charrnn train --resume{out_flag}", err=True)
        ctx.exit(stopped.exit_code)
    if is_main:
        _print_summary(result)


def _resume_location(resume: str, out: Path) -> str:
    if resume == _RESUME_LATEST:
        return str(out)
    from charrnn.checkpoint import is_checkpoint_file

    if Path(resume).is_file() and not is_checkpoint_file(resume):
        raise click.BadParameter(
            f"{resume} is not a charrnn checkpoint (to resume on corpus {resume}, put it before --resume)",
            param_hint="--resume",
        )
    return resume


def _print_summary(result: Any) -> None:
    from charrnn.evaluate import nats_to_bits

    done = f"step {result.step:,} after {format_duration(result.elapsed)} of training"
    if result.already_complete:
        click.echo(
            f"The run in {result.out_dir} is complete ({done}; its length: {result.budget.describe()}); "
            "give a larger --max-steps or --max-time to train further.",
            err=True,
        )
        return
    best = ""
    if result.best_val_loss is not None:
        best = f"; best validation {nats_to_bits(result.best_val_loss):.4f} bpc ({result.best_val_loss:.4f} nats)"
    click.echo(f"Finished at {done}{best}. Checkpoints are in {result.out_dir}/.", err=True)
    click.echo(f"Sample with: charrnn sample --checkpoint {result.out_dir}", err=True)


@main.command(cls=SectionedCommand, sections=SAMPLE_SECTIONS, short_help="Generate text from a trained model.")
@click.option("--checkpoint", "-c", type=Location(path_type=Path), default=DEFAULT_OUT, help="A checkpoint file, or an out folder (its best.pt, else latest.pt).")
@click.option("--length", "-l", type=Count(0), default=_default(SampleConfig, "length"), help="Characters to generate after the prime.")
@click.option("--temp", "--temperature", "temperature", envvar=_envvars("SAMPLE", "TEMP", "TEMPERATURE"), type=FiniteFloatRange(0, min_open=True), default=_default(SampleConfig, "temperature"), help="Sampling temperature: lower is more conservative, higher more surprising.")
@click.option("--prime", default=None, help="Text to start from; it is printed, then continued.  [default: a newline]")
@click.option("--seed", type=Count(0, MAX_SEED), default=None, help="Random seed: the same seed and options give the same text.  [default: random]")
@click.option("--top-k", type=Count(1), default=None, help="Sample only from the K most likely characters.")
@click.option("--top-p", type=FiniteFloatRange(0, 1, min_open=True), default=None, help="Sample only from the most likely characters whose probabilities sum to P (nucleus).")
@click.option("--greedy", is_flag=True, help="Always take the most likely character (no randomness).")
@click.option("--num-samples", "-n", type=Count(1, MAX_STREAMS), default=1, help="Generate this many independent samples in one batched pass, each under a header line.")
@click.option("--beam", type=Count(1, MAX_STREAMS), default=None, help="Beam search with this many hypotheses: the most likely continuation, instead of a random one (--temp, --top-k, --top-p do not apply).  [default: off]")
@click.option("--interactive", "-i", is_flag=True, help="Keep the model loaded and ask for primes: type one, see it continued; Ctrl-D ends.")
@click.option("--stop", "stops", envvar=_envvars("SAMPLE", "STOP", "STOPS"), multiple=True, default=None, help="End a sample once this text appears in it (included); repeatable.  [default: none]")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", help="Where to run the model.")
def sample(
    checkpoint: Path, prime: str | None, seed: int | None, device: str, num_samples: int, stops: tuple[str, ...],
    interactive: bool, beam: int | None, **options: Any,
) -> None:
    """Generate text from a trained model, streaming it to stdout as it is made.

    \b
    Examples:
      charrnn sample
      charrnn sample --temp 0.8 --length 2000 --prime "ROMEO:"
      charrnn sample --checkpoint runs/poems/best.pt --top-p 0.9 --seed 1
      charrnn sample -n 5 --length 200 --prime "JULIET:"
      charrnn sample --prime "ROMEO:" --stop $'\\n\\n'     # one speech: stop at a blank line
      charrnn sample -i --length 300                    # type primes, see them continued
      charrnn sample --prime "ROMEO:" --beam 8 --length 100   # the most likely continuation
    """
    if any(not stop for stop in stops):
        raise click.BadParameter("must not be empty", param_hint="'--stop'")
    if beam is not None and (num_samples > 1 or interactive):
        raise click.UsageError("--beam finds the one most likely continuation: leave out -n and --interactive")
    if interactive and (num_samples > 1 or prime is not None):
        raise click.UsageError("--interactive asks for each prime itself and makes one sample at a time: leave out --prime and -n")
    config = SampleConfig(**options)
    import torch

    from charrnn.runtime import select_device
    from charrnn.sample import generate_beam, generate_samples, generate_text, load_model

    loaded = load_model(checkpoint, select_device(device))
    if num_samples == 1:
        # One stream is a chain of small matrix-vector products: a second CPU thread only
        # adds synchronisation (measured: 10% slower; docs/benchmarks.md).
        torch.set_num_threads(1)
    if interactive:
        _sample_interactively(loaded, config, seed, stops)
        return
    # Each call checks the prime before anything is printed; only a single sample streams.
    if beam is not None:
        output = [generate_beam(loaded, prime, config.length, beam, stops)]
    elif num_samples == 1:
        output = generate_text(loaded, prime, config, seed, stops)
    else:
        output = _with_headers(generate_samples(loaded, prime, config, num_samples, seed, stops))
    for note in loaded.passed_over:
        click.echo(f"warning: {note}", err=True)
    click.echo(f"(sampling from {loaded.path}, step {loaded.step:,}, on {loaded.model.head.weight.device.type})", err=True)
    for piece in output:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()


def _sample_interactively(loaded: Any, config: SampleConfig, seed: int | None, stops: tuple[str, ...]) -> None:
    """Ask for a prime, stream its continuation, again, until end of input (Ctrl-D)."""
    from charrnn.sample import generate_text

    click.echo(f"(model {loaded.path}, step {loaded.step:,}; type a prime and press Enter, Ctrl-D to end)", err=True)
    while True:
        click.echo("prime> ", nl=False, err=True)
        try:
            prime = _read_line(sys.stdin, INTERACTIVE_PRIME_LIMIT)
        except KeyboardInterrupt:  # Ctrl-C at the prompt ends the session, as end of input does
            prime = None
        except UnicodeDecodeError as error:
            click.echo(err=True)  # the error line goes below the prompt, not after it
            raise click.ClickException(f"the prime typed is not valid {error.encoding} text ({error.reason})") from None
        if prime is None:
            click.echo(err=True)
            return
        try:
            if len(prime) > INTERACTIVE_PRIME_LIMIT:
                raise OptionError("--prime", f"is longer than {INTERACTIVE_PRIME_LIMIT:,} characters; type a shorter one")
            for piece in generate_text(loaded, prime or None, config, seed, stops):
                sys.stdout.write(piece)
                sys.stdout.flush()
        except OptionError as error:  # a prime too long or with unseen characters: say so, and ask again
            click.echo(f"that prime {error.detail}", err=True)
            continue
        sys.stdout.write("\n\n")
        sys.stdout.flush()


INTERACTIVE_PRIME_LIMIT = 100_000  # characters of one typed prime: whatever is piped in, memory stays bounded


def _read_line(stream: Any, limit: int) -> str | None:
    """The next line of `stream` without its newline; None at end of input (or no stdin at all).

    A line longer than `limit` is not kept whole: its first `limit` + 1 characters come back
    (for the caller to refuse) and the rest is read and dropped a piece at a time.
    """
    line = stream.readline(limit + 1) if stream is not None else ""
    if not line:
        return None
    if line.endswith("\n"):
        return line[:-1]
    rest = line
    while len(rest) >= limit and not rest.endswith("\n"):  # a piece this long may have more after it
        rest = stream.readline(limit)
    return line


def _with_headers(samples: list[str]) -> list[str]:
    """Several samples as one text, each under a `--- sample i of n ---` line."""
    return ["\n\n".join(f"--- sample {i} of {len(samples)} ---\n{text}" for i, text in enumerate(samples, start=1))]


@main.command("eval", short_help="Score a model on a held-out text: bits per character and perplexity.")
@click.argument("text", nargs=-1, required=True, type=Location(path_type=str))
@click.option("--checkpoint", "-c", type=Location(path_type=Path), default=DEFAULT_OUT, help="A checkpoint file, or an out folder (its best.pt, else latest.pt).")
@click.option("--encoding", default="utf-8", type=TextEncoding(), help="Text encoding of TEXT.")
@click.option("--errors", type=click.Choice(DECODE_ERRORS), default="strict", help="What to do with bytes that are not valid in --encoding.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", help="Where to run the model.")
def evaluate(text: tuple[str, ...], checkpoint: Path, encoding: str, errors: str, device: str) -> None:
    """How well a model predicts TEXT (files, folders or globs, as for train): bits per
    character, nats and perplexity. Characters outside the model's vocabulary are counted and
    reported: scored as unknown where the vocabulary has an unknown id, else left out.

    \b
    Examples:
      charrnn eval held_out.txt
      charrnn eval chapter12.txt --checkpoint runs/novel/best.pt
    """
    from charrnn.corpus import resolve_corpus
    from charrnn.evaluate import score_text
    from charrnn.progress import console_reporter
    from charrnn.runtime import select_device
    from charrnn.sample import load_model

    loaded = load_model(checkpoint, select_device(device))
    corpus = resolve_corpus(text, encoding, errors)
    score = score_text(loaded.model, loaded.vocab, corpus, loaded.model.head.weight.device, console_reporter(False).progress)
    click.echo(f"model: {loaded.path} (step {loaded.step:,})")
    click.echo(f"text: {corpus.description}: {score.chars:,} characters, {score.scored:,} scored")
    if score.outside:
        fate = "scored as the unknown character" if score.outside_mapped_to_unknown else "left out"
        click.echo(f"outside the vocabulary: {score.outside:,} characters ({score.outside_distinct:,} distinct), {fate}")
    click.echo(f"bits per character: {score.bits:.4f}")
    click.echo(f"nats per character: {score.nats:.4f}")
    click.echo(f"perplexity: {score.perplexity:.3f}")


@main.command(short_help="Describe a checkpoint: model, vocabulary, training, corpus.")
@click.argument("checkpoint", required=False, type=Location(path_type=Path), default=DEFAULT_OUT)
def info(checkpoint: Path) -> None:
    """Describe CHECKPOINT (a file, or an out folder: its best.pt, else newest): architecture,
    parameter count, vocabulary size and preview, steps, best validation loss, corpus, format.
    """
    from charrnn.checkpoint import describe_checkpoint
    from charrnn.outdir import OutDir, load_from

    found = load_from(checkpoint, prefer="best")
    for note in found.passed_over:
        click.echo(f"warning: {note}", err=True)
    for line in describe_checkpoint(found.state, found.path):
        click.echo(line)
    if checkpoint.is_dir():
        click.echo(f"checkpoints in {checkpoint}: {', '.join(OutDir(checkpoint).checkpoint_names())}")


@main.command(short_help="Plot train and validation bits per character against step (needs matplotlib).")
@click.argument("out_dirs", metavar="[OUT_DIR]...", nargs=-1, type=Location(file_okay=False, path_type=Path))
@click.option("--output", "-o", type=Location(dir_okay=False, path_type=Path), default="bpc.png", help="The PNG file to write.")
def plot(out_dirs: tuple[Path, ...], output: Path) -> None:
    """Draw the training and validation loss of one or more runs (their out folders, default
    checkpoints/) from their metrics.jsonl, overlaid, into a PNG.

    \b
    Examples:
      charrnn plot
      charrnn plot runs/small runs/large -o compare.png
    """
    from charrnn.plot import plot_runs

    for warning in plot_runs(out_dirs or (Path(DEFAULT_OUT),), output):
        click.echo(warning, err=True)
    click.echo(f"wrote {printable(output)}", err=True)


def entry_point() -> None:
    """The `charrnn` program (console script and `python -m charrnn`)."""
    _prepare_standard_streams()
    try:
        main()
    finally:
        # The process is ending: a late Ctrl-C (say, a second one after training stopped and
        # saved) must not print a traceback from Python's shutdown.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

"""What an option is: its kind, range and default, its help and section, its place in the
reference, and the limits and choices options share. The tables of options are options.py (every
command but train) and train_options.py; no click and no torch here."""

from __future__ import annotations

import codecs
import math
import os
from dataclasses import dataclass, field, replace
from typing import Any

INPUT_MODES = ("one-hot", "embedding")
RECURRENT_INITS = ("uniform", "orthogonal")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("float32", "bfloat16")
DECODE_ERRORS = ("strict", "replace", "ignore")
UNKNOWN_POLICIES = ("map", "skip", "refuse")  # what a character the model never saw becomes (nearest.py)
COLOR_CHOICES = ("auto", "always", "never")  # when to colour (display.no_colour_reason)
DEFAULT_OUT = "checkpoints"  # where a run writes, and what sample/eval/info read, when not told
RESUME_LATEST = "\0latest"  # the value of a bare --resume (no path given)
AUTO = "auto"  # --threads: the work's loop keeps the faster thread count (threads.py)
SIZED = "auto"  # --hidden-size and --dropout not given: sized to the corpus and the budget (sizing.py)

ENCODING_EXPECTED = "a text encoding Python knows (e.g. utf-8, latin-1, gb18030)"

# Upper bounds, checked before anything is built or allocated. Model sizes reach far beyond any
# character model one GPU can train, yet a typo or a crafted checkpoint cannot hang charrnn (a
# million layers) or ask for terabytes. Counts (steps, characters, streams) and seeds stay
# within a signed 64-bit integer, with room for arithmetic on them, as torch and numpy need.
MAX_LAYERS = 64
MAX_WIDTH = 16_384  # --hidden-size and --embed-dim
MAX_COUNT = 10**15
MAX_SEED = 2**63 - 1
MAX_STREAMS = 65_536  # samples or beams generated side by side
# Characters (or beam back-pointers) that several streams hold until the end, checked before one
# is made: -n K × --length characters, --beam N × --length back-pointers (8 bytes each: 1 GiB).
MAX_HELD = 2**27
MAX_LR = 3.4e38  # about the largest float32, as torch holds the learning rate; more fails inside AdamW
PRIME_FILE_MAX = 1_000_000  # characters of a --prime-file: read whole, then fed to the model 4,096 at a time
PREVIEW_MAX = 100_000  # characters of a training preview: each costs a forward step, at every evaluation

# What an option takes. Numbers have a range shown in --help (`low`/`high`) and, against
# overflow and runaway sizes, an upper `limit` kept out of it (integers: MAX_COUNT unless told).
INT, INT_OR_AUTO, FLOAT, CHOICE, FLAG, TEXT, NONEMPTY, DURATION, ENCODING, PATH = (
    "int",
    "int-or-auto",
    "float",
    "choice",
    "flag",
    "text",
    "nonempty",
    "duration",
    "encoding",
    "path",
)


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]  # long flags first (the longest names the option in messages), then short ones
    help: str  # for --help; the reference says `doc` instead where it has more to say
    kind: str = TEXT
    default: Any = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    limit: float | None = None
    choices: tuple[str, ...] = ()
    section: str | None = None  # the --help heading; None: "Other options" (or plain "Options")
    fixed_on_resume: bool = False  # the architecture and the data layout: resume refuses a change
    name: str = ""  # the parameter (and config field) name; by default the first flag's
    shown_default: str | None = None  # how --help and the reference name a default of None ("off")
    multiple: bool = False
    envvar_names: tuple[str, ...] = ()  # CHARRNN_<COMMAND>_<NAME> for each, when flag and name differ
    path_args: dict[str, Any] = field(default_factory=dict)  # file_okay, dir_okay, exists; path_type str
    doc: str = ""  # the reference's wording, when it differs from `help`
    doc_metavar: str = ""  # the reference's placeholder: `--seq-len T`

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.flags[0].lstrip("-").replace("-", "_"))
        if self.kind == INT and self.limit is None:
            object.__setattr__(self, "limit", MAX_COUNT)

    @property
    def flag(self) -> str:
        """The flag that names the option in messages: its longest (`--temperature`, `--num-samples`)."""
        return max(self.flags, key=len)

    def problem(self, value: Any) -> str | None:
        """What `value` should be (`an integer >= 1`, `at most 64`), or None when it is valid."""
        if self.kind == INT:
            if not (_is_int(value) and value >= self.low):
                return f"an integer >= {self.low}"
            return f"at most {self.limit:,}" if value > self.limit else None
        if self.kind == INT_OR_AUTO:
            if isinstance(value, str) and value == AUTO:
                return None
            return replace(self, kind=INT).problem(value) if _is_int(value) else f"{AUTO} or an integer >= {self.low}"
        if self.kind == FLOAT:
            return None if _is_number(value) and self._in_range(value) else self._float_rule()
        if self.kind == DURATION:
            return None if _is_number(value) and value > 0 else "a duration > 0"
        if self.kind == CHOICE:
            return None if isinstance(value, str) and value in self.choices else "one of " + ", ".join(self.choices)
        if self.kind == ENCODING:
            return None if is_text_encoding(value) else ENCODING_EXPECTED
        if self.kind == FLAG:
            return None if isinstance(value, bool) else "True or False"
        if self.kind == PATH:
            return None if _is_location(value) else "a file or folder name (a non-empty str or Path, without NUL)"
        if self.kind == NONEMPTY:
            return None if isinstance(value, str) and value else "a non-empty string"
        return None if isinstance(value, str) else "a string"

    def rule(self) -> str:
        """The whole rule of the option's values, as a refusal states it (`an integer >= 0 and at
        most 9,223,372,036,854,775,807`), where `problem` names only the part a value breaks."""
        if self.kind == INT:
            return f"an integer >= {self.low} and at most {self.limit:,}"
        if self.kind == INT_OR_AUTO:
            return f'"{AUTO}" or ' + replace(self, kind=INT).rule()
        if self.kind == FLOAT:
            return self._float_rule()
        if self.kind == FLAG:
            return "True or False"
        if self.kind == DURATION:
            return "a number of seconds > 0"
        return self.problem(object()) or ""  # the other kinds' rule is the same whatever breaks it

    def _in_range(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        top = self.high if self.high is not None else self.limit
        below = top is None or (value < top if self.high_open else value <= top)
        return above and below

    def _float_rule(self) -> str:
        if self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        rule = f"a number {'>' if self.low_open else '>='} {self.low:g}"
        if self.limit is not None:
            rule += f" and at most {self.limit:,}" if isinstance(self.limit, int) else f" and at most {self.limit:g}"
        return rule


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_location(value: Any) -> bool:
    """A file or folder name: a string or path, neither empty (it would mean the current folder)
    nor holding NUL (no name can)."""
    if not isinstance(value, (str, os.PathLike)):
        return False
    name = os.fspath(value)
    return isinstance(name, str) and name != "" and "\0" not in name


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_text_encoding(name: Any) -> bool:
    """Whether `name` is a codec that decodes bytes into text: not one of the bytes-to-bytes
    (base64, hex, zlib, ...) or text-to-text (rot13) codecs, nor "undefined", which refuses all."""
    try:
        info = codecs.lookup(name)
    except (LookupError, TypeError, ValueError):  # unknown; not a string; a NUL in the name
        return False
    return info._is_text_encoding and info.name != "undefined"


def one_of(names: list[str]) -> str:
    """ "a, b or c"."""
    return " or ".join(filter(None, [", ".join(names[:-1]), names[-1]]))


def count_option(flags: tuple[str, ...], help: str, low: int = 1, **rest: Any) -> Option:
    return Option(flags, help, kind=INT, low=low, **rest)


def fraction_option(flags: tuple[str, ...], help: str, **rest: Any) -> Option:
    return Option(flags, help, kind=FLOAT, low=0, high=1, **rest)


DATA, MODEL, OPTIMISATION, CHECKPOINTS, HARDWARE = (
    "Data",
    "Model",
    "Optimisation",
    "Checkpoints and progress",
    "Hardware",
)
CHECKPOINT_HELP = "A checkpoint file, or an out folder (its best.pt, else latest.pt)."
ENCODING_OPTION = Option(("--encoding",), "", kind=ENCODING, default="utf-8")
ERRORS_OPTION = Option(("--errors",), "", kind=CHOICE, choices=DECODE_ERRORS, default="strict")
DEVICE_OPTION = Option(
    ("--device",), "Where to run the model.", kind=CHOICE, choices=DEVICES, doc="where to run the model"
)
THREADS_OPTION = Option(
    ("--threads",),
    "CPU threads PyTorch uses. auto: start with one a core, then keep whichever count runs faster, timing the "
    "work piece by piece (fewer beside other busy programs); a number fixes the count.",
    kind=INT_OR_AUTO,
    default=AUTO,
    low=1,
    limit=1024,
    doc_metavar="N",
    doc="CPU threads PyTorch uses: `auto` starts with one a core and, on CPU, keeps whichever count runs "
    "faster, timing the work piece by piece and now and then trying one fewer or one more (beside a busy "
    "program, one thread runs twice as fast as two on two cores; [measured](docs/benchmarks.md)); a number "
    "fixes the count",
)

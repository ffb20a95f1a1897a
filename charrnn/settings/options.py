"""Every option of every command, defined once: flags, type and range, default, help, help
section, and whether it may change when a run is resumed.

From this table come the click options and grouped --help (cli.py), the checks of the config
dataclasses (config.py), the TOML type checks of --config, and the reference's option tables (docs/reference.md)
(`reference_table`, compared with docs/reference.md by tests/test_readme.py). Adding an option is one
entry here plus the code that uses it. No click and no torch here: config.py imports this.
"""

from __future__ import annotations

import codecs
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

# Each recurrent cell, and how many gate blocks PyTorch stacks in its weights (model.py builds it).
CELL_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CELLS = tuple(CELL_GATES)
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
            return None if isinstance(value, bool) else "true or false"
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


def _count(flags: tuple[str, ...], help: str, low: int = 1, **rest: Any) -> Option:
    return Option(flags, help, kind=INT, low=low, **rest)


def _fraction(flags: tuple[str, ...], help: str, **rest: Any) -> Option:
    return Option(flags, help, kind=FLOAT, low=0, high=1, **rest)


DATA, MODEL, OPTIMISATION, CHECKPOINTS, HARDWARE = (
    "Data",
    "Model",
    "Optimisation",
    "Checkpoints and progress",
    "Hardware",
)
_CHECKPOINT_HELP = "A checkpoint file, or an out folder (its best.pt, else latest.pt)."
_ENCODING = Option(("--encoding",), "", kind=ENCODING, default="utf-8")
_ERRORS = Option(("--errors",), "", kind=CHOICE, choices=DECODE_ERRORS, default="strict")
_DEVICE = Option(("--device",), "Where to run the model.", kind=CHOICE, choices=DEVICES, doc="where to run the model")
_THREADS = Option(
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

# In --help order: by section, and within a section as listed.
TRAIN = (
    _fraction(
        ("--val-fraction",),
        "Fraction of the text, from its end, held out for validation.",
        default=0.1,
        high_open=True,
        section=DATA,
        fixed_on_resume=True,
        doc_metavar="F",
        doc="the last F of the text is held out for validation (0 disables it)",
    ),
    _count(
        ("--seq-len",),
        "Characters per window: how far back gradients flow (truncated BPTT).",
        default=64,
        section=DATA,
        fixed_on_resume=True,
        doc_metavar="T",
        doc="characters per window: how far back gradients flow (truncated BPTT)",
    ),
    _count(
        ("--batch-size",),
        "Parallel streams the training text is laid out in (under torchrun: of all processes together).",
        default=16,
        section=DATA,
        fixed_on_resume=True,
        doc_metavar="B",
        doc="the training text is laid out as B contiguous streams read in parallel (under torchrun, the streams of all processes together)",
    ),
    replace(
        _ENCODING,
        help="Text encoding of CORPUS (e.g. latin-1, gb18030, utf-16).",
        section=DATA,
        doc="the corpus's text encoding (`latin-1`, `gb18030`, `utf-16`, ...)",
    ),
    replace(
        _ERRORS,
        help="What to do with bytes that are not valid in --encoding: stop, replace them with U+FFFD, or drop them.",
        section=DATA,
        doc="bytes invalid in that encoding: `strict` stops, `replace` substitutes U+FFFD, `ignore` drops them",
    ),
    _count(
        ("--min-count",),
        "Characters seen fewer times than this share one unknown id (which sampling never produces).",
        default=1,
        section=DATA,
        fixed_on_resume=True,
        doc_metavar="N",
        doc="characters seen fewer than N times share one unknown id, never sampled",
    ),
    _count(
        ("--max-vocab",),
        "Keep at most this many characters, the most frequent; the rest share the unknown id.",
        section=DATA,
        fixed_on_resume=True,
        doc_metavar="N",
        doc="keep the N most frequent characters; the rest share the unknown id",
    ),
    Option(
        ("--fold-variants",),
        "Give each group of variant Chinese characters in the corpus (traditional and simplified: 牀/床, 裏/里) "
        'one id, its most frequent member\'s; the others read as it. Needs OpenCC: pip install "charrnn-tool[chinese]".',
        kind=FLAG,
        default=False,
        section=DATA,
        fixed_on_resume=True,
        doc="give each group of variant Chinese characters in the corpus (traditional and simplified forms of one "
        "character, as OpenCC's `t2s` finds them) one id, its most frequent member's; the others are read as it, "
        'and sampling writes only that one. Needs `pip install "charrnn-tool[chinese]"`',
    ),
    _count(
        ("--eval-chars",),
        "Validate on at most this many characters from the start of the validation text.",
        default=250_000,
        section=DATA,
        doc_metavar="N",
        doc="validate on at most the first N characters of the validation text",
    ),
    Option(
        ("--cell",),
        "Recurrent cell type.",
        kind=CHOICE,
        choices=CELLS,
        default="lstm",
        section=MODEL,
        fixed_on_resume=True,
        doc="`rnn` (tanh), `lstm` or `gru`",
    ),
    _count(
        ("--layers",),
        "Number of stacked recurrent layers.",
        default=2,
        limit=MAX_LAYERS,
        section=MODEL,
        fixed_on_resume=True,
        doc="stacked recurrent layers",
    ),
    _count(
        ("--hidden-size",),
        "Units in each recurrent layer; by default sized to the text and the run's length.",
        limit=MAX_WIDTH,
        shown_default=SIZED,
        section=MODEL,
        fixed_on_resume=True,
        doc="units per layer; `auto` sizes the model to the text and the run's length (see above)",
    ),
    _fraction(
        ("--dropout",),
        "Dropout between layers and before the output layer; by default chosen with the model's size.",
        high_open=True,
        shown_default=SIZED,
        section=MODEL,
        fixed_on_resume=True,
        doc="dropout between layers and before the output layer; `auto` chooses it with the model's size",
    ),
    _fraction(
        ("--weight-drop",),
        "DropConnect on the recurrent (hidden-to-hidden) weights while training, as AWD-LSTM does.",
        default=0.0,
        high_open=True,
        section=MODEL,
        fixed_on_resume=True,
        doc="DropConnect on the hidden-to-hidden weights while training (AWD-LSTM's weight drop): each "
        "window zeroes this share of them, the same for every time step",
    ),
    _fraction(
        ("--input-dropout",),
        "Dropout on the recurrent layers' inputs, one mask per stream for a whole window.",
        default=0.0,
        high_open=True,
        section=MODEL,
        fixed_on_resume=True,
        doc="dropout on what the first layer reads, the same units dropped at every step of a window "
        "(locked, or variational, dropout)",
    ),
    _fraction(
        ("--embed-dropout",),
        "Drop whole characters from the embedding while training (with --input embedding).",
        default=0.0,
        high_open=True,
        section=MODEL,
        fixed_on_resume=True,
        doc="drop whole characters' embeddings for a window (with `--input embedding`): the model learns "
        "not to lean on any one character",
    ),
    Option(
        ("--recurrent-init",),
        "How the recurrent weights start: PyTorch's uniform, or orthogonal with an LSTM forget bias of 1.",
        kind=CHOICE,
        choices=RECURRENT_INITS,
        default="uniform",
        section=MODEL,
        fixed_on_resume=True,
        doc="`uniform` (PyTorch's) or `orthogonal`: each gate's hidden-to-hidden block orthogonal, and an "
        "LSTM's forget-gate bias 1, so that it starts by remembering",
    ),
    Option(
        ("--input",),
        "Feed characters as one-hot vectors or as learned embeddings.",
        kind=CHOICE,
        choices=INPUT_MODES,
        default="embedding",
        name="input_mode",
        envvar_names=("INPUT", "INPUT_MODE"),
        section=MODEL,
        fixed_on_resume=True,
        doc="`one-hot` vectors or a learned `embedding` of the characters",
    ),
    _count(
        ("--embed-dim",),
        "Embedding width (with --input embedding).",
        default=64,
        limit=MAX_WIDTH,
        section=MODEL,
        fixed_on_resume=True,
        doc="embedding width (with `--input embedding`)",
    ),
    Option(
        ("--lr",),
        "Peak learning rate (AdamW).",
        kind=FLOAT,
        default=3e-3,
        low=0,
        low_open=True,
        limit=MAX_LR,
        section=OPTIMISATION,
        doc="peak learning rate of AdamW",
    ),
    _fraction(
        ("--min-lr-ratio",),
        "Final learning rate as a fraction of --lr (cosine decay); 1 keeps it constant.",
        default=0.1,
        section=OPTIMISATION,
        doc="final learning rate as a fraction of `--lr`; 1 keeps the rate constant",
    ),
    _count(
        ("--warmup-steps",),
        "Steps of linear learning-rate warm-up to --lr, at most a tenth of --max-steps (a 50-step run warms up "
        "over 5); the cosine decay then ends at the last step on --min-lr-ratio x --lr.",
        low=0,
        default=100,
        section=OPTIMISATION,
        doc="steps of linear learning-rate warm-up to `--lr`, at most a tenth of the run's steps; the cosine decay then "
        "ends on the floor, `--min-lr-ratio` × `--lr`, at the last step",
    ),
    Option(
        ("--weight-decay",),
        "AdamW weight decay on weight matrices.",
        kind=FLOAT,
        low=0,
        default=0.1,  # the one lever that helped at 5 minutes: 1.451 -> 1.416 nats (docs/benchmarks.md)
        section=OPTIMISATION,
        doc="AdamW weight decay on weight matrices (not biases)",
    ),
    Option(
        ("--clip",),
        "Clip the gradient norm to this; 0 turns clipping off.",
        kind=FLOAT,
        low=0,
        default=5.0,
        section=OPTIMISATION,
        doc="clip the gradient norm to this value; 0 turns clipping off",
    ),
    _count(
        ("--max-steps",),
        "Total updates of the run (resumed runs count the steps already done); with --max-time, whichever comes "
        "first ends the run.",
        default=12000,
        section=OPTIMISATION,
        doc="total updates of the run, counting those before a resume",
    ),
    Option(
        ("--epochs",),
        "Run length in passes over the training text, instead of --max-steps.",
        kind=FLOAT,
        low=0,
        low_open=True,
        limit=MAX_COUNT,
        section=OPTIMISATION,
        doc_metavar="E",
        doc="run length in passes over the training text instead of `--max-steps`",
    ),
    Option(
        ("--max-time",),
        "Stop after this much training (e.g. 90s, 5m, 1h30m), evaluating and saving; alone, it lifts the step "
        "limit. The learning rate decays over the time.",
        kind=DURATION,
        section=OPTIMISATION,
        doc_metavar="T",
        doc="stop after T of training (`90s`, `5m`, `1h30m`), evaluating and saving; given alone, there is no step limit; "
        "the learning rate decays over the time",
    ),
    _count(
        ("--patience",),
        "Stop early once validation has not improved for this many evaluations in a row.",
        shown_default="off",
        section=OPTIMISATION,
        doc_metavar="N",
        doc="stop early once validation has not improved for N evaluations in a row, saying so; `best.pt` keeps the best",
    ),
    _count(
        ("--seed",),
        "Random seed for weights and dropout.",
        low=0,
        limit=MAX_SEED,
        default=42,
        section=OPTIMISATION,
        doc="seed for the initial weights and dropout",
    ),
    Option(
        ("--out",),
        "Folder for checkpoints: latest.pt, best.pt and step-N.pt; it holds one run. With --resume PATH: PATH's own "
        "folder.",
        kind=PATH,
        path_args={"file_okay": False},
        default=DEFAULT_OUT,
        section=CHECKPOINTS,
        doc_metavar="DIR",
        doc="folder for `latest.pt`, `best.pt` and `step-N.pt`: one run's; with `--resume PATH`, PATH's folder when not given",
    ),
    Option(
        ("--resume",),
        "Continue a run: from OUT/latest.pt, or from the checkpoint or out folder PATH.",
        kind=NONEMPTY,
        section=CHECKPOINTS,
        doc_metavar="[PATH]",
        doc="continue from `DIR/latest.pt`, or from a checkpoint file or out folder PATH (put CORPUS before `--resume`)",
    ),
    Option(
        ("--init-from",),
        "Start a new run from this checkpoint's weights (fine-tuning): its architecture, its vocabulary plus "
        "CORPUS's new characters, a fresh optimizer.",
        kind=PATH,
        path_args={"path_type": str},
        section=CHECKPOINTS,
        doc_metavar="PATH",
        doc="start a new run from this checkpoint's weights (fine-tuning; see above)",
    ),
    _count(
        ("--eval-every",),
        "Steps between validation passes (best.pt is saved when validation improves).",
        default=500,
        section=CHECKPOINTS,
        doc_metavar="N",
        doc="steps between validation passes (and `best.pt` updates)",
    ),
    _count(
        ("--save-every",),
        "Steps between saves (step-N.pt and latest.pt): the most work a crash can cost.",
        default=500,
        section=CHECKPOINTS,
        doc_metavar="N",
        doc="steps between saves (`step-N.pt` and `latest.pt`): the most work a crash can cost",
    ),
    _count(
        ("--keep",),
        "Step-numbered checkpoints to keep; older ones are removed once a newer one is safely written.",
        default=2,
        section=CHECKPOINTS,
        doc_metavar="N",
        doc="step-numbered checkpoints to keep; older ones are removed only after a newer one is safely written",
    ),
    _count(
        ("--log-every",),
        "Steps between training-loss reports (on the progress bar, or as log lines when stderr is not a terminal).",
        default=100,
        section=CHECKPOINTS,
        doc_metavar="N",
        doc="steps between training-loss reports (on the bar, or as a log line when stderr is not a terminal)",
    ),
    _count(
        ("--preview-chars",),
        "Characters of the sample generated at each evaluation, printed under it and added to OUT/samples.txt "
        "(0: no previews).",
        low=0,
        default=200,
        limit=PREVIEW_MAX,
        section=CHECKPOINTS,
        doc_metavar="N",
        doc="at each evaluation, a sample of N characters (temperature 0.8, a fixed seed) is printed under it and "
        "added to `samples.txt` in the out folder, with its step; 0 turns previews off",
    ),
    Option(
        ("--quiet", "-q"),
        "No progress bar or loss log lines; the run's header, its evaluations and the final summary still print.",
        kind=FLAG,
        section=CHECKPOINTS,
        doc="no progress bar or log lines; evaluations and the summary still print (without a terminal, as under `nohup`, "
        "log lines replace the bar)",
    ),
    Option(
        ("--config",),
        "A TOML file of options (e.g. hidden-size = 512); the command line wins over it.",
        kind=PATH,
        path_args={"exists": True, "dir_okay": False},
        section=CHECKPOINTS,
        doc_metavar="FILE",
        doc="a TOML file of these options (`hidden-size = 512`, `lr = 0.002`, ...); options on the command line or in the "
        "environment win over it",
    ),
    replace(
        _DEVICE,
        help="Where to train: auto picks CUDA, then MPS, then CPU.",
        default="auto",
        section=HARDWARE,
        doc="`auto` (CUDA, then Apple MPS, then CPU), `cpu`, `cuda` or `mps`",
    ),
    Option(
        ("--dtype",),
        "Precision of the forward passes: bfloat16 autocast is faster on GPUs (and some CPUs); weights stay float32.",
        kind=CHOICE,
        choices=DTYPES,
        default="float32",
        section=HARDWARE,
        doc="`bfloat16` runs the forward passes under bfloat16 autocast (weights stay float32): faster on GPUs and on CPUs with "
        "bfloat16 units",
    ),
    replace(_THREADS, section=HARDWARE),
    Option(
        ("--compile",),
        "torch.compile the model first (minutes of compiling; pays off on long GPU runs).",
        kind=FLAG,
        name="compile_model",
        envvar_names=("COMPILE", "COMPILE_MODEL"),
        section=HARDWARE,
        doc="`torch.compile` the model first: minutes of compiling, for long GPU runs (no gain on CPU, where the fused RNN "
        "kernel dominates)",
    ),
)

_CHECKPOINT = Option(
    ("--checkpoint", "-c"),
    _CHECKPOINT_HELP,
    kind=PATH,
    default=DEFAULT_OUT,
    doc_metavar="PATH",
    doc="a checkpoint file, or an out folder (its `best.pt`, else `latest.pt`)",
)
_GENERATE, _CHOOSE = "What to generate", "How to choose each character"
# sample, eval and viz: one rule for the characters of a prime or a text that the model never saw
_UNKNOWN = Option(
    ("--unknown",),
    "A character the model never saw: map reads it as the nearest one it knows (牀 for 床, '，' for ',', 'z' for "
    "'Z'), else as the unknown id, else stops; skip leaves out what map would stop on; refuse stops, naming them.",
    kind=CHOICE,
    choices=UNKNOWN_POLICIES,
    default="map",
    doc="what a character the model never saw becomes: `map`, its nearest known form (a Chinese variant, the other "
    "width, the other case), else the unknown id, else charrnn stops; `skip`, the same but left out instead of "
    "stopping; `refuse`, charrnn stops, naming them",
)

# An output file is never written over a file charrnn did not write, or a link, without this (output.py).
_FORCE = Option(
    ("--force",),
    "Replace the output file even if charrnn did not write it (a symbolic link is replaced, never its target).",
    kind=FLAG,
    default=False,
    doc="replace the output file even if charrnn did not write it (a link is replaced, never its target)",
)

SAMPLE = (
    replace(_CHECKPOINT, section=MODEL),
    replace(
        _THREADS,
        help="CPU threads numpy's matrix products use. auto: one for one sample (a chain of small steps that a second "
        "thread only slows); for -n or --beam, start with one a core and keep whichever count runs faster. A number "
        "fixes the count.",
        section=MODEL,
        doc="CPU threads numpy's matrix products use: `auto` gives a single sample one (a chain of small steps a "
        "second thread only slows) and, for `-n` or `--beam`, starts with one a core and keeps whichever count "
        "runs faster, timing the steps; a number fixes the count",
    ),
    _count(
        ("--length", "-l"),
        "Characters to generate after the prime.",
        low=0,
        default=1000,
        section=_GENERATE,
        doc_metavar="N",
        doc="characters to generate after the prime",
    ),
    Option(
        ("--prime",),
        "Text to start from; it is printed, then continued.",
        shown_default="a newline",
        section=_GENERATE,
        doc_metavar="TEXT",
        doc="text to start from; printed, then continued",
    ),
    Option(
        ("--prime-file",),
        f"Read the prime from this UTF-8 file (- for standard input), up to {PRIME_FILE_MAX:,} characters; "
        "instead of --prime.",
        kind=PATH,
        path_args={"path_type": str, "dir_okay": False, "exists": True, "allow_dash": True},
        section=_GENERATE,
        doc_metavar="FILE",
        doc=f"read the prime from a UTF-8 file (`-`: standard input), up to {PRIME_FILE_MAX:,} characters",
    ),
    replace(_UNKNOWN, section=_GENERATE),
    _count(
        ("--num-samples", "-n"),
        "Generate this many independent samples in one batched pass, each under a header line.",
        default=1,
        limit=MAX_STREAMS,
        section=_GENERATE,
        doc_metavar="K",
        doc="K independent samples from one batched pass, each under a `--- sample i of K ---` line",
    ),
    Option(
        ("--stop",),
        "End a sample once this text appears in it (included); repeatable.",
        name="stops",
        multiple=True,
        envvar_names=("STOP", "STOPS"),
        shown_default="none",
        section=_GENERATE,
        doc_metavar="TEXT",
        doc="end each sample once TEXT appears in it (TEXT included); repeatable, e.g. `--stop $'\\n\\n'` for one paragraph",
    ),
    Option(
        ("--interactive", "-i"),
        "Keep the model loaded and ask for primes: type one, see it continued; Ctrl-D ends.",
        kind=FLAG,
        section=_GENERATE,
        doc="keep the model loaded and ask for primes on the terminal: each is continued as it is typed in; Ctrl-D ends",
    ),
    Option(
        ("--output", "-o"),
        "Write the text to this file instead of standard output, under a first line naming the model; whole or "
        "not at all. A file charrnn did not write is replaced only with --force.",
        kind=PATH,
        path_args={"dir_okay": False},
        shown_default="standard output",
        section=_GENERATE,
        doc_metavar="FILE",
        doc="write the text to FILE instead of standard output, under a first line naming the model (by which charrnn "
        "knows the file for its own): whole or not at all; a file charrnn did not write is replaced only with `--force`",
    ),
    replace(_FORCE, section=_GENERATE),
    _count(
        ("--seed",),
        "Random seed: the same seed and options give the same text.",
        low=0,
        limit=MAX_SEED,
        shown_default="random",
        section=_GENERATE,
        doc_metavar="N",
        doc="the same seed and options give the same text",
    ),
    Option(
        ("--temp", "--temperature"),
        "Sampling temperature: lower is more conservative, higher more surprising.",
        kind=FLOAT,
        low=0,
        low_open=True,
        default=1.0,
        name="temperature",
        envvar_names=("TEMP", "TEMPERATURE"),
        section=_CHOOSE,
        doc_metavar="T",
        doc="divide the logits by T: below 1 is safer, above 1 wilder; below 1 (and with top-k or top-p) a run of one "
        "character (spaces, blank lines) goes on no likelier than the model says, so it never runs away "
        "(`--sharpen-runs` turns that off)",
    ),
    _count(
        ("--top-k",),
        "Sample only from the K most likely characters.",
        shown_default="off",
        section=_CHOOSE,
        doc_metavar="K",
        doc="draw only from the K most likely characters",
    ),
    _fraction(
        ("--top-p",),
        "Sample only from the most likely characters whose probabilities sum to P (nucleus).",
        low_open=True,
        shown_default="off",
        section=_CHOOSE,
        doc_metavar="P",
        doc="draw only from the most likely characters whose probabilities add up to P",
    ),
    Option(
        ("--greedy",),
        "Always take the most likely character (no randomness).",
        kind=FLAG,
        default=False,
        section=_CHOOSE,
        doc="always take the most likely character",
    ),
    Option(
        ("--sharpen-runs",),
        "Let --temp below 1, --top-k and --top-p sharpen the repeat of the last character too. Without it a run "
        "of one character (spaces, blank lines) goes on no likelier than the model says, since sharpening the "
        "repeat makes runs grow far beyond any in the text, often without end.",
        kind=FLAG,
        default=False,
        section=_CHOOSE,
        doc="let `--temp` below 1, `--top-k` and `--top-p` sharpen the repeat of the last character too; without it, a "
        "run of one character (spaces, blank lines) goes on no likelier than the model says, since sharpening the "
        "repeat makes runs grow far beyond any in the text (at temperature 0.8, runs of 60 to 80 spaces where the "
        "corpus's longest is 40), often without end",
    ),
    _count(
        ("--beam",),
        "Beam search with this many hypotheses: the most likely continuation, instead of a random one (--temp, "
        "--top-k, --top-p do not apply).",
        limit=MAX_STREAMS,
        shown_default="off",
        section=_CHOOSE,
        doc_metavar="N",
        doc="beam search with N hypotheses: the most likely continuation (deterministic; `--temp`, `--top-k`, `--top-p` do not apply)",
    ),
)

# info names its checkpoint positionally too (cli.py); it has no option table in the README.
INFO = (_CHECKPOINT,)

# How eval and viz decode the TEXT files they read
_TEXT_ENCODING = replace(_ENCODING, help="Text encoding of TEXT.", doc="the text encoding of TEXT")
_TEXT_ERRORS = replace(
    _ERRORS,
    help="What to do with bytes that are not valid in --encoding.",
    doc="bytes invalid in that encoding: `strict`, `replace` or `ignore`",
)

EVAL = (
    replace(_CHECKPOINT, doc="a checkpoint file, or an out folder (its `best.pt`, else the newest)"),
    _TEXT_ENCODING,
    _TEXT_ERRORS,
    replace(_UNKNOWN, default="skip"),
    replace(_DEVICE, default="auto"),
    _THREADS,
    _count(
        ("--windows",),
        "Score independent windows of this many characters, each from a zero state, as nanoGPT scores its "
        "validation loss (256 for its tiny Shakespeare figure); unset: the state is carried through the text.",
        shown_default="off (state carried)",
        doc_metavar="N",
        doc="score the text in independent windows of N predicted characters, each from a zero state, as nanoGPT "
        "scores (`--windows 256` for its figures); by default the state is carried through the whole text",
    ),
)

PLOT = (
    Option(
        ("--output", "-o"),
        "The PNG file to write.",
        kind=PATH,
        path_args={"dir_okay": False},
        shown_default="OUT_DIR/bpc.png",
        doc_metavar="FILE",
        doc="the PNG file to write; by default `bpc.png` in the (first) run's folder",
    ),
    _FORCE,
)

VIZ_CHARS_MAX = 20_000  # characters a viz page shows at most: it stays under ~3 MB and opens at once
_VIZ_PAGE, _VIZ_TERMINAL = "The page", "In the terminal instead"

VIZ = (
    replace(_CHECKPOINT, section=MODEL),
    replace(
        _THREADS,
        help="CPU threads of the memory plot, the one part that runs in PyTorch (the rest, one stream of small "
        "steps, runs on one). auto: start with one a core, then keep whichever count runs faster; a number fixes "
        "the count.",
        section=MODEL,
        doc="CPU threads of the memory plot, the one part that runs in PyTorch (the rest, one stream of small steps, "
        "runs on one): `auto` starts with one a core and keeps whichever count runs faster; a number fixes the count",
    ),
    Option(
        ("--text",),
        "Look at this text itself instead of TEXT files.",
        name="literal_text",  # TEXT names the files
        envvar_names=("TEXT",),
        section=DATA,
        doc_metavar="STRING",
        doc="look at this text itself instead of TEXT files",
    ),
    _count(
        ("--chars",),
        f"Characters to look at, from the start of the text (at most {VIZ_CHARS_MAX:,}).",
        default=10_000,
        limit=VIZ_CHARS_MAX,
        section=DATA,
        doc_metavar="N",
        doc=f"characters to look at, from the start of the text (at most {VIZ_CHARS_MAX:,}: the page stays small)",
    ),
    replace(_TEXT_ENCODING, section=DATA),
    replace(_TEXT_ERRORS, section=DATA),
    replace(_UNKNOWN, default="skip", section=DATA),
    Option(
        ("--output", "-o"),
        "The HTML file to write.",
        kind=PATH,
        path_args={"dir_okay": False},
        shown_default="the run's folder/viz.html",
        section=_VIZ_PAGE,
        doc_metavar="FILE",
        doc="the HTML file to write; by default `viz.html` in the checkpoint's folder",
    ),
    replace(_FORCE, section=_VIZ_PAGE),
    Option(
        ("--temperatures",),
        "Comma-separated temperatures of the samples shown side by side.",
        default="0.5,0.8,1.0,1.3",
        section=_VIZ_PAGE,
        doc_metavar="LIST",
        doc="the temperatures of the samples shown side by side, comma-separated",
    ),
    _count(
        ("--sample-length",),
        "Characters of each sample.",
        default=300,
        limit=10_000,
        section=_VIZ_PAGE,
        doc_metavar="N",
        doc="characters of each sample",
    ),
    Option(
        ("--prime",),
        "The samples' prime.",
        shown_default="the start of the text",
        section=_VIZ_PAGE,
        doc_metavar="TEXT",
        doc="the samples' prime; by default the start of the text's first line",
    ),
    _count(
        ("--seed",),
        "Random seed of the samples.",
        low=0,
        limit=MAX_SEED,
        default=1,
        section=_VIZ_PAGE,
        doc_metavar="N",
        doc="random seed of the samples: the same page each time",
    ),
    _count(
        ("--memory-span",),
        "How far back, in characters, the memory plot looks.",
        default=200,
        limit=2_000,
        section=_VIZ_PAGE,
        doc_metavar="K",
        doc="how many characters back the memory plot looks (the gradient of each prediction with respect to the "
        "input k characters before it, k = 1 … K)",
    ),
    Option(
        ("--ansi",),
        "Print the text coloured by the model's surprise (or by --cell) to the terminal, instead of writing a page.",
        kind=FLAG,
        default=False,
        section=_VIZ_TERMINAL,
        doc="print the text coloured by the model's surprise (or by `--cell`) to the terminal instead of writing a page",
    ),
    Option(
        ("--color",),
        "With --ansi: when to colour. auto: when standard output is a terminal and NO_COLOR is not set; always "
        "(whatever NO_COLOR says); never (the text alone).",
        kind=CHOICE,
        choices=COLOR_CHOICES,
        default="auto",
        section=_VIZ_TERMINAL,
        doc_metavar="WHEN",
        doc="with `--ansi`, when to write colour codes: `auto` when standard output is a terminal and "
        "[`NO_COLOR`](https://no-color.org) is unset or empty, `always` (even into a pipe, whatever `NO_COLOR` "
        "says), `never`; uncoloured, the text is printed as it is",
    ),
    Option(
        ("--cell",),
        "With --ansi: colour by this cell's activation, LAYER:CELL (layers from 1, cells from 0), e.g. 2:17.",
        shown_default="surprise",
        section=_VIZ_TERMINAL,
        doc_metavar="L:N",
        doc="with `--ansi`, colour the text by one cell's activation: layer L (from 1), cell N (from 0), e.g. `2:17`",
    ),
)

COMMANDS = {"train": TRAIN, "sample": SAMPLE, "eval": EVAL, "plot": PLOT, "viz": VIZ}


def by_name(options: tuple[Option, ...]) -> dict[str, Option]:
    return {option.name: option for option in options}


def reference_table(command: str) -> str:
    """The reference's option table of `charrnn COMMAND`, with a bold row for each help section."""
    lines = ["| option | default | meaning |", "| --- | --- | --- |"]
    section = None
    for option in COMMANDS[command]:
        if option.section != section and option.section is not None:
            section = option.section
            lines.append(f"| **{section.lower()}** | | |")
        lines.append(
            f"| {_readme_flags(option)} | {_readme_default(option)} | {option.doc or _as_phrase(option.help)} |"
        )
    return "\n".join(lines)


def _readme_flags(option: Option) -> str:
    first = f"{option.flags[0]} {option.doc_metavar}".strip()
    return ", ".join(f"`{flag}`" for flag in (first, *option.flags[1:]))


def _readme_default(option: Option) -> str:
    if option.kind == FLAG:
        return "off"
    if option.default is None:
        return option.shown_default or "—"
    return f"{option.default:g}" if isinstance(option.default, (int, float)) else str(option.default)


def _as_phrase(help: str) -> str:
    """`Where to run the model.` as the reference's tables say it: `where to run the model`."""
    return (help[:1].lower() + help[1:]).removesuffix(".")


# --- how a message names an option: for the reader who will act on it -----------------------
#
# The command line's user types flags (`--max-steps 24000`), a Python caller keywords
# (`max_steps=24000`): every message that names an option asks `spelled`, and the reader is
# said once, around a command (cli.py) or an API call (api.py). Unsaid: flags.
COMMAND_LINE, PYTHON = "command line", "python"
_READER: ContextVar[str | None] = ContextVar("charrnn_reader", default=None)
# Where the API's argument differs from the option's name (`charrnn.train(compile=True)`).
_PYTHON_NAMES = {
    "compile_model": "compile",
    "stops": "stop",
    "checkpoint": "location",
    "literal_text": "text",
    "output": "path",  # Model.generate_to_file(path, overwrite=True)
    "force": "overwrite",
}
# Each name's flag, train's first where commands share a name.
_FLAGS = {option.name: option.flag for table in reversed(COMMANDS.values()) for option in table}
_BARE = object()  # no value: the option's name alone


@contextmanager
def read_by(reader: str, unless_said: bool = False) -> Iterator[None]:
    """Messages raised inside name options for `reader` (COMMAND_LINE or PYTHON); with
    `unless_said`, only where no reader was said already (the CLI calling the API)."""
    token = None if unless_said and _READER.get() is not None else _READER.set(reader)
    try:
        yield
    finally:
        if token is not None:
            _READER.reset(token)


def for_python() -> bool:
    """Whether messages now go to a Python caller."""
    return _READER.get() == PYTHON


def spelled(name: str, value: Any = _BARE) -> str:
    """The option `name` (its Python name: `max_steps`), with `value` if given, as the reader
    types it: `--max-steps 24000` or `max_steps=24000`; `--resume` or `resume=True`."""
    if for_python():
        keyword = _PYTHON_NAMES.get(name, name)
        return keyword if value is _BARE else f"{keyword}={value!r}"
    flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
    if value is _BARE or value is True:
        return flag
    return f"{flag} {'none' if value is None else value}"

"""Every option of every command but train (train_options.py), defined once: flags, type and
range, default, help, help section, and whether it may change when a run is resumed (option.py).

From this table come the click options and grouped --help (cli/params.py), the checks of the config
dataclasses (config.py), the TOML type checks of --config, and the reference's option tables (docs/reference.md)
(`reference_table`, compared with docs/reference.md by tests/test_readme.py). Adding an option is one
entry here plus the code that uses it. No click and no torch here: config.py imports this.
"""

from __future__ import annotations

from dataclasses import replace

from charrnn.settings.option import (
    CHECKPOINT_HELP,
    CHOICE,
    COLOR_CHOICES,
    DATA,
    DEFAULT_OUT,
    DEVICE_OPTION,
    ENCODING_OPTION,
    ERRORS_OPTION,
    FLAG,
    FLOAT,
    MAX_SEED,
    MAX_STREAMS,
    MODEL,
    PATH,
    PRIME_FILE_MAX,
    THREADS_OPTION,
    UNKNOWN_POLICIES,
    Option,
    count_option,
    fraction_option,
)
from charrnn.settings.train_options import TRAIN

_CHECKPOINT = Option(
    ("--checkpoint", "-c"),
    CHECKPOINT_HELP,
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

# Dynamic evaluation (run/adapt.py): eval and viz adapt to their TEXT with --adapt, sample to
# the text --adapt names. The defaults come from the sweep in docs/benchmarks.md ("A model that
# keeps learning as it reads"), tuned on texts apart from those it reports.
_ADAPTING = "Adapting to the text (dynamic evaluation)"
_ADAPT_TUNING = (
    Option(
        ("--adapt-lr",),
        "How far each segment moves the weights, in units of their gradients' size in training.",
        kind=FLOAT,
        default=1e-4,
        low=0,
        low_open=True,
        high=1,
        section=_ADAPTING,
        doc_metavar="X",
        doc="how far each segment moves the weights, in units of the size of their gradients in training",
    ),
    fraction_option(
        ("--adapt-decay",),
        "How fast the weights are pulled back toward the trained ones at each segment (0: never).",
        default=0.01,
        section=_ADAPTING,
        doc_metavar="X",
        doc="how fast the weights are pulled back toward the trained ones at each segment (0: never)",
    ),
    count_option(
        ("--adapt-segment",),
        "Characters read between two steps of adaptation.",
        default=100,
        limit=65_536,
        section=_ADAPTING,
        doc_metavar="N",
        doc="characters read between two steps of adaptation",
    ),
)

SAMPLE = (
    replace(_CHECKPOINT, section=MODEL),
    replace(
        THREADS_OPTION,
        help="CPU threads numpy's matrix products use. auto: one for one sample (a chain of small steps that a second "
        "thread only slows); for -n or --beam, start with one a core and keep whichever count runs faster. A number "
        "fixes the count.",
        section=MODEL,
        doc="CPU threads numpy's matrix products use: `auto` gives a single sample one (a chain of small steps a "
        "second thread only slows) and, for `-n` or `--beam`, starts with one a core and keeps whichever count "
        "runs faster, timing the steps; a number fixes the count",
    ),
    count_option(
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
    count_option(
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
    count_option(
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
    count_option(
        ("--top-k",),
        "Sample only from the K most likely characters.",
        shown_default="off",
        section=_CHOOSE,
        doc_metavar="K",
        doc="draw only from the K most likely characters",
    ),
    fraction_option(
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
    count_option(
        ("--beam",),
        "Beam search with this many hypotheses: the most likely continuation, instead of a random one (--temp, "
        "--top-k, --top-p do not apply).",
        limit=MAX_STREAMS,
        shown_default="off",
        section=_CHOOSE,
        doc_metavar="N",
        doc="beam search with N hypotheses: the most likely continuation (deterministic; `--temp`, `--top-k`, `--top-p` do not apply)",
    ),
    Option(
        ("--adapt",),
        "First read this text (files, folders or globs, as for train) and learn from it as it is read, so "
        "that the samples continue in its style; the checkpoint is not changed.",
        name="adapt_text",
        kind=PATH,
        section=_ADAPTING,
        doc_metavar="TEXT",
        doc="first read TEXT (files, folders or globs, as for train), learning from it as it is read, so that "
        "the samples continue in its style; the checkpoint is not changed",
    ),
    Option(
        ("--save",),
        "With --adapt: also write the adapted model to this new checkpoint file (never over an existing file).",
        kind=PATH,
        path_args={"dir_okay": False},
        section=_ADAPTING,
        doc_metavar="FILE",
        doc="with `--adapt`: also write the adapted model to this new checkpoint file (never over an existing one)",
    ),
    *_ADAPT_TUNING,
)

# info names its checkpoint positionally too (cli/examine.py); it has no option table in the README.
INFO = (_CHECKPOINT,)

# How eval and viz decode the TEXT files they read
_TEXT_ENCODING = replace(ENCODING_OPTION, help="Text encoding of TEXT.", doc="the text encoding of TEXT")
_TEXT_ERRORS = replace(
    ERRORS_OPTION,
    help="What to do with bytes that are not valid in --encoding.",
    doc="bytes invalid in that encoding: `strict`, `replace` or `ignore`",
)

EVAL = (
    replace(_CHECKPOINT, doc="a checkpoint file, or an out folder (its `best.pt`, else the newest)"),
    _TEXT_ENCODING,
    _TEXT_ERRORS,
    replace(_UNKNOWN, default="skip"),
    replace(DEVICE_OPTION, default="auto"),
    THREADS_OPTION,
    count_option(
        ("--windows",),
        "Score independent windows of this many characters, each from a zero state, as nanoGPT scores its "
        "validation loss (256 for its tiny Shakespeare figure); unset: the state is carried through the text.",
        shown_default="off (state carried)",
        doc_metavar="N",
        doc="score the text in independent windows of N predicted characters, each from a zero state, as nanoGPT "
        "scores (`--windows 256` for its figures); by default the state is carried through the whole text",
    ),
    Option(
        ("--adapt",),
        "Learn from the text while scoring it (dynamic evaluation): each segment is scored, then the weights "
        "take a step on it. With --windows, each window adapts on its own past only.",
        kind=FLAG,
        default=False,
        section=_ADAPTING,
        doc="learn from the text while scoring it (dynamic evaluation): each segment is scored first, then the "
        "weights take a step on it, so every character is predicted before the model has learned from it; with "
        "`--windows`, each window starts from the trained weights and adapts on its own past only",
    ),
    *_ADAPT_TUNING,
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
        THREADS_OPTION,
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
    count_option(
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
        ("--adapt",),
        "Also read the text learning from it (dynamic evaluation), so the page shows where that helped.",
        kind=FLAG,
        default=False,
        section=_VIZ_PAGE,
        doc="also read the text while learning from it (dynamic evaluation, as `eval --adapt`), so that the page "
        "can shade it by surprise with and without learning, and by what learning saved",
    ),
    *(replace(option, section=_VIZ_PAGE) for option in _ADAPT_TUNING),
    Option(
        ("--temperatures",),
        "Comma-separated temperatures of the samples shown side by side.",
        default="0.5,0.8,1.0,1.3",
        section=_VIZ_PAGE,
        doc_metavar="LIST",
        doc="the temperatures of the samples shown side by side, comma-separated",
    ),
    count_option(
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
    count_option(
        ("--seed",),
        "Random seed of the samples.",
        low=0,
        limit=MAX_SEED,
        default=1,
        section=_VIZ_PAGE,
        doc_metavar="N",
        doc="random seed of the samples: the same page each time",
    ),
    count_option(
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

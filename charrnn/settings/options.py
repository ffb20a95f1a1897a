"""The options of sample, eval and info, and COMMANDS: every command's table (train's is
train_options.py, plot's and viz's inspect_options.py, the ones several share shared_options.py),
each option defined once: flags, type and range, default, help, help section, and whether it may
change when a run is resumed (option.py).

From this table come the click options and grouped --help (cli/params.py), the checks of the config
dataclasses (config.py), the TOML type checks of --config, and the reference's option tables (docs/reference.md)
(`reference_table`, compared with docs/reference.md by tests/test_readme.py). Adding an option is one
entry here plus the code that uses it. No click and no torch here: config.py imports this.
"""

from __future__ import annotations

from dataclasses import replace

from charrnn.settings.inspect_options import PLOT, VIZ
from charrnn.settings.option import (
    DEVICE_OPTION,
    FLAG,
    FLOAT,
    MAX_SEED,
    MAX_STREAMS,
    MODEL,
    PATH,
    PRIME_FILE_MAX,
    THREADS_OPTION,
    Option,
    count_option,
    fraction_option,
)
from charrnn.settings.shared_options import (
    ADAPT_TUNING,
    ADAPTING,
    CHECKPOINT,
    FORCE,
    TEXT_ENCODING,
    TEXT_ERRORS,
    UNKNOWN,
)
from charrnn.settings.train_options import TRAIN

_GENERATE, _CHOOSE = "What to generate", "How to choose each character"

SAMPLE = (
    replace(CHECKPOINT, section=MODEL),
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
    replace(UNKNOWN, section=_GENERATE),
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
    replace(FORCE, section=_GENERATE),
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
        section=ADAPTING,
        doc_metavar="TEXT",
        doc="first read TEXT (files, folders or globs, as for train), learning from it as it is read, so that "
        "the samples continue in its style; the checkpoint is not changed",
    ),
    Option(
        ("--save",),
        "With --adapt: also write the adapted model to this new checkpoint file (never over an existing file).",
        kind=PATH,
        path_args={"dir_okay": False},
        section=ADAPTING,
        doc_metavar="FILE",
        doc="with `--adapt`: also write the adapted model to this new checkpoint file (never over an existing one)",
    ),
    *ADAPT_TUNING,
)

# info names its checkpoint positionally too (cli/examine.py); it has no option table in the README.
INFO = (CHECKPOINT,)

EXPORT = (
    CHECKPOINT,
    Option(
        ("--half",),
        "Store the weights as 16-bit floats: half the file, the same text within a rounding.",
        kind=FLAG,
        default=False,
        doc="store the weights as 16-bit floats (half the size; sampling and scoring read them as 32-bit)",
    ),
    Option(
        ("--html",),
        "Write a web page instead: the model in one HTML file that writes in any browser, offline, the text "
        "charrnn sample writes for the same seed and settings (a FILE ending .html is a page without it).",
        kind=FLAG,
        default=False,
        doc="write a web page instead (a FILE ending `.html` or `.htm` is one without it): the model in one "
        "self-contained HTML file that writes in any browser, offline, the text `charrnn sample` writes for the "
        "same seed and settings",
    ),
)

EVAL = (
    replace(CHECKPOINT, doc="a checkpoint file, or an out folder (its `best.pt`, else the newest)"),
    TEXT_ENCODING,
    TEXT_ERRORS,
    replace(UNKNOWN, default="skip"),
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
        section=ADAPTING,
        doc="learn from the text while scoring it (dynamic evaluation): each segment is scored first, then the "
        "weights take a step on it, so every character is predicted before the model has learned from it; with "
        "`--windows`, each window starts from the trained weights and adapts on its own past only",
    ),
    *ADAPT_TUNING,
)

COMMANDS = {"train": TRAIN, "sample": SAMPLE, "eval": EVAL, "export": EXPORT, "plot": PLOT, "viz": VIZ}


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

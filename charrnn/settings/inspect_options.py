"""The options of the commands that look inside a trained model: `charrnn plot` and `charrnn viz`."""

from __future__ import annotations

from dataclasses import replace

from charrnn.settings.option import (
    CHOICE,
    COLOR_CHOICES,
    DATA,
    FLAG,
    MAX_SEED,
    MODEL,
    PATH,
    THREADS_OPTION,
    Option,
    count_option,
)
from charrnn.settings.shared_options import ADAPT_TUNING, CHECKPOINT, FORCE, TEXT_ENCODING, TEXT_ERRORS, UNKNOWN

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
    FORCE,
)

VIZ_CHARS_MAX = 20_000  # characters a viz page shows at most: it stays under ~3 MB and opens at once
_VIZ_PAGE, _VIZ_TERMINAL = "The page", "In the terminal instead"

VIZ = (
    replace(CHECKPOINT, section=MODEL),
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
    replace(TEXT_ENCODING, section=DATA),
    replace(TEXT_ERRORS, section=DATA),
    replace(UNKNOWN, default="skip", section=DATA),
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
    replace(FORCE, section=_VIZ_PAGE),
    Option(
        ("--adapt",),
        "Also read the text learning from it (dynamic evaluation), so the page shows where that helped.",
        kind=FLAG,
        default=False,
        section=_VIZ_PAGE,
        doc="also read the text while learning from it (dynamic evaluation, as `eval --adapt`), so that the page "
        "can shade it by surprise with and without learning, and by what learning saved",
    ),
    *(replace(option, section=_VIZ_PAGE) for option in ADAPT_TUNING),
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

"""The options several commands' tables share (options.py, inspect_options.py): which checkpoint
to read, what a character the model never saw becomes, replacing an output file, how a TEXT is
decoded, and how a model adapts to a text as it reads it (dynamic evaluation, run/adapt.py)."""

from __future__ import annotations

from dataclasses import replace

from charrnn.settings.option import (
    CHECKPOINT_HELP,
    CHOICE,
    DEFAULT_OUT,
    ENCODING_OPTION,
    ERRORS_OPTION,
    FLAG,
    FLOAT,
    PATH,
    UNKNOWN_POLICIES,
    Option,
    count_option,
    fraction_option,
)

CHECKPOINT = Option(
    ("--checkpoint", "-c"),
    CHECKPOINT_HELP,
    kind=PATH,
    default=DEFAULT_OUT,
    doc_metavar="PATH",
    doc="a checkpoint file, or an out folder (its `best.pt`, else `latest.pt`)",
)
# sample, eval and viz: one rule for the characters of a prime or a text that the model never saw
UNKNOWN = Option(
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
FORCE = Option(
    ("--force",),
    "Replace the output file even if charrnn did not write it (a symbolic link is replaced, never its target).",
    kind=FLAG,
    default=False,
    doc="replace the output file even if charrnn did not write it (a link is replaced, never its target)",
)

# Dynamic evaluation (run/adapt.py): eval and viz adapt to their TEXT with --adapt, sample to
# the text --adapt names. The defaults come from the sweep in docs/benchmarks.md ("A model that
# keeps learning as it reads"), tuned on texts apart from those it reports.
ADAPTING = "Adapting to the text (dynamic evaluation)"
ADAPT_TUNING = (
    Option(
        ("--adapt-lr",),
        "How far each segment moves the weights, in units of their gradients' size in training.",
        kind=FLOAT,
        default=1e-4,
        low=0,
        low_open=True,
        high=1,
        section=ADAPTING,
        doc_metavar="X",
        doc="how far each segment moves the weights, in units of the size of their gradients in training",
    ),
    fraction_option(
        ("--adapt-decay",),
        "How fast the weights are pulled back toward the trained ones at each segment (0: never).",
        default=0.003,
        section=ADAPTING,
        doc_metavar="X",
        doc="how fast the weights are pulled back toward the trained ones at each segment (0: never)",
    ),
    count_option(
        ("--adapt-segment",),
        "Characters read between two steps of adaptation.",
        default=30,
        limit=65_536,
        section=ADAPTING,
        doc_metavar="N",
        doc="characters read between two steps of adaptation",
    ),
)

# How eval and viz decode the TEXT files they read
TEXT_ENCODING = replace(ENCODING_OPTION, help="Text encoding of TEXT.", doc="the text encoding of TEXT")
TEXT_ERRORS = replace(
    ERRORS_OPTION,
    help="What to do with bytes that are not valid in --encoding.",
    doc="bytes invalid in that encoding: `strict`, `replace` or `ignore`",
)

"""The commands that look at a trained model: `charrnn eval` (its score on a text), `info` (what
a checkpoint holds), `plot` (its learning curves) and `viz` (what it sees in a text); and
`export`, which writes the model alone to share."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from charrnn.cli.params import Location, SectionedCommand, existing_checkpoint, limit_blas_threads, table_options
from charrnn.display import no_colour_reason, printable
from charrnn.errors import OptionError
from charrnn.settings.inspect_options import PLOT, VIZ
from charrnn.settings.option import AUTO, DEFAULT_OUT
from charrnn.settings.options import EVAL, EXPORT, INFO
from charrnn.store.runfiles import PLOT_PNG, VIZ_PAGE


@click.command("eval", short_help="Score a model on a held-out text: bits per character and perplexity.")
@click.argument("text", nargs=-1, required=True, type=Location(path_type=str))
@table_options(EVAL, "eval")
def evaluate(
    text: tuple[str, ...],
    checkpoint: Path,
    encoding: str,
    errors: str,
    unknown: str,
    device: str,
    threads: int | str,
    windows: int | None,
    adapt: bool,
    **adapting: Any,
) -> None:
    """How well a model predicts TEXT (files, folders or globs, as for train): bits per
    character, nats and perplexity. Characters outside the model's vocabulary are counted and
    reported: read as the nearest character the model knows, else scored as unknown where the
    vocabulary has an unknown id, else left out (--unknown).

    \b
    Examples:
      charrnn eval held_out.txt
      charrnn eval chapter12.txt --checkpoint runs/novel/best.pt
      charrnn eval held_out.txt --windows 256   # as nanoGPT scores: windows from a zero state
      charrnn eval held_out.txt --adapt         # learning from the text as it reads it
    """
    from charrnn import api
    from charrnn.run.progress import console_reporter

    model = api.load(existing_checkpoint(checkpoint, "-c PATH"), device, threads=threads)
    reporter = console_reporter(False)
    score = model.score(
        *text,
        encoding=encoding,
        errors=errors,
        progress=reporter,
        windows=windows,
        unknown=unknown,
        adapt=adapt,
        **adapting,
    )
    click.echo(f"model: {model.path} (step {model.step:,})")
    click.echo(f"text: {score.text}: {score.chars:,} characters, {score.scored:,} scored{_unscored(score)}")
    if score.window:
        click.echo(
            f"scored in {score.streams:,} independent windows of {score.window:,} characters, each from a zero state"
        )
    if score.adapted is not None:
        click.echo(
            f"adapted to the text as it was read (dynamic evaluation: {score.adapted.describe()}); "
            "each segment was scored before the model learned from it, and the checkpoint is unchanged"
        )
    if score.outside:
        click.echo(
            f"outside the vocabulary: {score.outside:,} characters ({score.outside_distinct:,} distinct), "
            f"{_fates(score)}"
        )
    click.echo(f"bits per character: {score.bits:.4f}")
    click.echo(f"nats per character: {score.nats:.4f}")
    click.echo(f"perplexity: {score.perplexity:.3f}")


def _fates(score: Any) -> str:
    """What became of the characters outside the vocabulary: `left out`, or `of which 80 read as
    their nearest known character ('床' as '牀'), 40 left out`."""
    unseen = score.unseen
    pairs = ", ".join(f"{char!r} as {near.char!r}" for char, near in sorted(unseen.mapped.items())[:SHOWN_PAIRS])
    fates = [
        (score.mapped, f"read as the nearest character the model knows ({pairs})"),
        (score.as_unknown, "scored as the unknown character"),
        (score.left_out, "left out"),
    ]
    fates = [(count, fate) for count, fate in fates if count]
    if len(fates) == 1:
        return fates[0][1] + unseen.hint
    return "of which " + ", ".join(f"{count:,} {fate}" for count, fate in fates) + unseen.hint


SHOWN_PAIRS = 5  # characters shown with the nearest one read for them, in eval's report


def _unscored(score: Any) -> str:
    """Why some characters of an evaluated text were not scored (outside the vocabulary has its own line)."""
    left_out = score.left_out
    if score.window:  # windows overlap by one: only the text's first character starts none
        tail = score.chars - score.scored - 1 - left_out
        reasons = ["the first, which has nothing before it to predict it from"]
        filler = "a window"
    else:
        tail = score.chars - score.scored - score.streams - left_out
        reasons = [
            f"the first of each of the {score.streams:,} streams it is read in, which has nothing before it to predict it from"
            if score.streams > 1
            else "the first, which has nothing before it to predict it from"
        ]
        filler = "a stream"
    if tail > 0:
        reasons.append(f"the last {tail:,}, too few to fill {filler}")
    return f" (not scored: {'; '.join(reasons)})"


@click.command(short_help="Describe a checkpoint: model, vocabulary, training, corpus.")
@click.argument("location", metavar="[CHECKPOINT]", required=False, type=Location(path_type=Path))
@table_options(INFO, "info")
@click.pass_context
def info(ctx: click.Context, location: Path | None, checkpoint: Path) -> None:
    """Describe CHECKPOINT (a file, or an out folder: its best.pt, else newest), given here or
    with -c as for the other commands: architecture, parameter count, vocabulary, steps, best
    validation loss, corpus, format.
    """
    from charrnn.store.checkpoint import describe_checkpoint
    from charrnn.store.outdir import OutDir, load_from

    if location is not None:
        if ctx.get_parameter_source("checkpoint") is ParameterSource.COMMANDLINE:
            raise click.UsageError("give the checkpoint as CHECKPOINT or with -c, not both")
        checkpoint = location  # the command line wins over CHARRNN_INFO_CHECKPOINT
    found = load_from(existing_checkpoint(checkpoint, "charrnn info PATH"), prefer="best")
    for note in found.passed_over:
        click.echo(f"warning: {note}", err=True)
    for line in describe_checkpoint(found.checkpoint, found.path):
        click.echo(line)
    if checkpoint.is_dir():
        click.echo(f"checkpoints in {checkpoint}: {', '.join(OutDir(checkpoint).checkpoint_names())}")


@click.command(short_help="Write the model alone, to share: a small model file, or a web page that writes with it.")
@click.argument("file", type=Location(path_type=Path))
@table_options(EXPORT, "export")
def export(file: Path, checkpoint: Path, half: bool, html: bool) -> None:
    """Write the model of CHECKPOINT (-c: a file, or an out folder's best.pt) to FILE, a new
    file: its weights, vocabulary and configs, without the optimizer's state, a third of the
    checkpoint (a sixth with --half). sample, eval, viz, info and charrnn.load read it as they
    read a checkpoint; it cannot be resumed. With --html (or a FILE ending .html), a web page
    that writes with the model in the browser instead.

    \b
      charrnn export sonnets.model                      # the model in ./checkpoints
      charrnn export sonnets.model -c runs/poems --half
      charrnn export sonnets.html --half                # open it in a browser
    """
    from charrnn.inspect.model_page import export as write

    found, page = write(existing_checkpoint(checkpoint, "-c PATH"), file, half, "FILE", html)
    for note in found.passed_over:
        click.echo(f"warning: {note}", err=True)
    size, source = file.stat().st_size, found.path.stat().st_size
    what = "a page that writes with" if page else "the model of"
    click.echo(
        f"wrote {printable(file)}: {what} {printable(found.path)} (step {found.checkpoint.step:,}), "
        f"{size:,} bytes, {size / source:.0%} of the checkpoint"
    )


@click.command(short_help="Plot train and validation bits per character against step (needs matplotlib).")
@click.argument("out_dirs", metavar="[OUT_DIR]...", nargs=-1, type=Location(file_okay=False, path_type=Path))
@table_options(PLOT, "plot")
def plot(out_dirs: tuple[Path, ...], output: Path | None, force: bool) -> None:
    """Draw the training and validation loss of one or more runs (their out folders, default
    checkpoints/) from their metrics.jsonl, overlaid, into a PNG: by default bpc.png in the
    first run's folder. A file charrnn did not write is replaced only with --force.

    \b
    Examples:
      charrnn plot
      charrnn plot runs/small runs/large -o compare.png
    """
    from charrnn.inspect.plot import plot_runs

    out_dirs = out_dirs or (Path(DEFAULT_OUT),)
    output = output or out_dirs[0] / PLOT_PNG
    for warning in plot_runs(out_dirs, output, force):
        click.echo(warning, err=True)
    click.echo(f"wrote {printable(output)}", err=True)


@click.command(
    cls=SectionedCommand, short_help="See inside a model: its guesses, cells, gates and memory, as one page."
)
@click.argument("text", nargs=-1, type=Location(path_type=str))
@table_options(VIZ, "viz")
def viz(
    text: tuple[str, ...],
    checkpoint: Path,
    threads: int | str,
    literal_text: str | None,
    chars: int,
    encoding: str,
    errors: str,
    output: Path | None,
    force: bool,
    temperatures: str,
    sample_length: int,
    prime: str | None,
    seed: int,
    memory_span: int,
    ansi: bool,
    color: str,
    cell: str | None,
    unknown: str,
    adapt: bool,
    **adapting: Any,
) -> None:
    """Run the model over TEXT (files, as for eval) and write one self-contained HTML page:
    each character shaded by the model's surprise, with its five likeliest guesses; a browser of
    its cells, and the cells that best track quotes, brackets, line position and more; how often
    its gates saturate; how far back its predictions reach; samples at several temperatures.

    \b
    Examples:
      charrnn viz data/tinyshakespeare.txt            # writes checkpoints/viz.html
      charrnn viz poem.txt -c runs/poems -o poems.html
      charrnn viz --text "def main():" --ansi          # coloured by surprise, in the terminal
      charrnn viz poem.txt --ansi --color always | less -R   # colours kept in a pipe
      charrnn viz chapter1.txt --ansi --cell 2:17      # coloured by one cell
      charrnn viz chapter1.txt --adapt                 # and where learning as it reads helped
    """
    from charrnn.inspect import viz as inspect

    if bool(text) == (literal_text is not None):
        raise click.UsageError(
            "--text replaces TEXT files: give one or the other"
            if text
            else "give a TEXT file to look at, or the text itself with --text"
        )
    from charrnn.settings.config import AdaptConfig

    settings = inspect.VizSettings(
        inspect.parse_temperatures(temperatures),
        sample_length,
        prime,
        seed,
        memory_span,
        unknown,
        AdaptConfig(**adapting) if adapt else None,
    )
    if adapt and ansi:
        raise click.UsageError("--adapt shades the page: leave out --ansi")
    if cell is not None and not ansi:
        raise click.UsageError("--cell colours the text in the terminal: add --ansi (the page has a cell browser)")
    if output is not None and output.suffix.lower() not in (".html", ".htm"):
        raise OptionError("--output", f"must name an .html file (not {printable(output)}): the page is HTML")
    shown = inspect.read_text(text, literal_text, chars, encoding, errors)
    limit_blas_threads(AUTO, 1)  # the numpy parts: one stream of small steps
    from charrnn.run.progress import console_reporter
    from charrnn.store.loading import load_for_sampling

    loaded = load_for_sampling(existing_checkpoint(checkpoint, "-c PATH"))
    for note in loaded.passed_over:
        click.echo(f"warning: {note}", err=True)
    unseen = inspect.unseen_in(loaded, shown.text, unknown)
    reporter = console_reporter(False)
    if ansi:
        _print_coloured(loaded, shown, unseen, cell, reporter, color)
        return
    from charrnn.inspect.page import page_output, write_html

    page = page_output(output or loaded.path.parent / VIZ_PAGE, force)
    page.check()  # before the work: a user's file, a link, a read-only or full disk
    inspect.check_prime(loaded, settings)
    click.echo(f"(looking at {shown.source} with {loaded.path}, step {loaded.step:,})", err=True)
    if unseen.note():
        click.echo(f"note: {unseen.note()}", err=True)
    data = inspect.page_data(loaded, shown, settings, unseen, reporter.progress, threads)
    unpredicted = sum(bits is None for bits in data["bits"][1:])  # characters left out
    if unpredicted:
        are = "character is" if unpredicted == 1 else "characters are"
        click.echo(f"note: {unpredicted:,} {are} outside the model's vocabulary: shown, not scored", err=True)
    write_html(data, page)
    click.echo(f"wrote {printable(page.path)}: open it in a browser", err=True)


def _print_coloured(loaded: Any, shown: Any, unseen: Any, cell: str | None, reporter: Any, color: str) -> None:
    """The text on stdout, each character's background coloured by surprise or by one cell
    (where --color lets colour codes go: else the text as it is, with a note why)."""
    from charrnn.inspect import viz as inspect
    from charrnn.inspect.page import ansi_legend, ansi_text

    chosen = None if cell is None else inspect.parse_cell(cell, loaded)  # a bad --cell before any note
    no_colour = no_colour_reason(color, sys.stdout)
    if no_colour is not None and color != "never":  # asked for colours and not given them: say why
        click.echo(f"note: the text is not coloured ({no_colour}); --color always colours it", err=True)
    if unseen.note():
        click.echo(f"note: {unseen.note()}", err=True)
    traced = inspect.trace(loaded, shown.text, unseen, reporter.progress)
    if chosen is None:
        values, scale = traced.bits.tolist(), "surprise"  # NaN (not predicted) stays uncoloured
    else:
        layer, index = chosen
        values, scale = traced.cells[layer][:, index].tolist(), "activation"
    if no_colour is None:
        click.echo(ansi_legend(scale), err=True)
    coloured = ansi_text(list(shown.text), values, scale, coloured=no_colour is None)
    sys.stdout.write(coloured if shown.text.endswith("\n") else coloured + "\n")
    sys.stdout.flush()

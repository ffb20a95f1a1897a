"""The `charrnn` command line: parse and validate options, call one function per command.

torch is imported inside the commands, so `charrnn --help` answers at once. Every failure
ends as one line on stderr and an exit code (failures.py); `charrnn --debug ...` shows the
traceback as well.
"""

from __future__ import annotations

import io
import itertools
import os
import signal
import stat
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from charrnn.arguments import too_much_held
from charrnn.cli.failures import fail
from charrnn.cli.params import Location, SectionedCommand, explicit_options, table_options
from charrnn.cli.stdio import prepare_standard_streams, write_streaming
from charrnn.display import no_colour_reason, printable
from charrnn.errors import CheckpointError, OptionError, TrainingStopped
from charrnn.settings.config import ModelConfig, SampleConfig, TrainConfig, field_names
from charrnn.settings.option import AUTO, DEFAULT_OUT, PRIME_FILE_MAX, RESUME_LATEST
from charrnn.settings.options import EVAL, INFO, PLOT, SAMPLE, VIZ
from charrnn.settings.spelling import COMMAND_LINE, read_by
from charrnn.settings.train_options import TRAIN
from charrnn.store.files import NotAFile, open_to_read
from charrnn.store.runfiles import PLOT_PNG, VIZ_PAGE
from charrnn.version import __version__


class CharRNNGroup(click.Group):
    """A click group that reports every failure as a single line on stderr."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        with read_by(COMMAND_LINE):  # messages name flags, also those of the API functions the commands call
            return self._main(args, prog_name, complete_var, standalone_mode, **extra)

    def _main(self, args, prog_name, complete_var, standalone_mode, **extra):  # type: ignore[no-untyped-def]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        debug = "--debug" in (sys.argv[1:] if args is None else list(args))
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            sys.stdout.flush()  # a full disk must fail here, where it can be reported, not at exit
        except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - every failure ends as one line
            fail(error, debug)
        sys.exit(code if isinstance(code, int) else 0)


# Every option can also come from the environment: CHARRNN_<COMMAND>_<OPTION>, e.g. CHARRNN_TRAIN_LR.
@click.group(
    cls=CharRNNGroup,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True, "auto_envvar_prefix": "CHARRNN"},
)
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


@main.command(cls=SectionedCommand, short_help="Train a model on text files (or the built-in corpus).")
@click.argument("corpus", nargs=-1, type=Location(path_type=str))
@table_options(TRAIN, "train")
@click.pass_context
def train(
    ctx: click.Context,
    corpus: tuple[str, ...],
    out: Path,
    resume: str | None,
    init_from: str | None,
    device: str,
    dtype: str,
    compile_model: bool,
    quiet: bool,
    threads: int | str,
    **_: Any,
) -> None:
    """Train a character model on CORPUS: UTF-8 text files, folders of them, glob patterns, or
    - for standard input, read in sorted order (a newline ends each file that lacks one).

    With no CORPUS, trains on the built-in corpus (Python's own standard-library sources);
    with --resume and no CORPUS, on the corpus the checkpoint was trained on.

    \b
    Examples:
      charrnn train shakespeare.txt
      charrnn train poems/ --cell gru --hidden-size 512 --out runs/poems
      charrnn train 'src/**/*.py' --max-time 1h
      cat chapters/*.txt | charrnn train - --out runs/book
      charrnn train shakespeare.txt --resume
      charrnn train shakespeare.txt --resume --max-steps 8000   # train further
      charrnn train sonnets.txt --init-from checkpoints --out runs/sonnets --lr 0.001
    """
    options = explicit_options(ctx, field_names(ModelConfig) + field_names(TrainConfig))
    if "epochs" in options and "max_steps" in options:
        raise click.UsageError("give --max-steps or --epochs, not both")
    if resume is not None and init_from is not None:
        raise click.UsageError(
            "give --resume (continue a run) or --init-from (start a new one from its weights), not both"
        )
    # Not given, --out is checkpoints/ for a new run, and a resumed checkpoint's own folder.
    out_dir = out if ctx.get_parameter_source("out") is not ParameterSource.DEFAULT else None
    if resume is not None:
        resume = _resume_location(resume, out)
    from charrnn import api
    from charrnn.run.progress import console_reporter

    # Under torchrun, rank 0 speaks for the run (a lone RANK without WORLD_SIZE is no torchrun run).
    is_main = os.environ.get("WORLD_SIZE", "1").strip() in ("", "1") or os.environ.get("RANK", "0") == "0"
    try:
        result = api.train(
            *corpus,
            out=out_dir,
            resume=resume,
            init_from=init_from,
            device=device,
            dtype=dtype,
            compile=bool(compile_model),  # None when not given
            threads=threads,
            progress=console_reporter(quiet),
            **options,
        )
    except TrainingStopped as stopped:
        folder = Path(stopped.saved).parent
        out_flag = "" if folder == Path(DEFAULT_OUT) else f" --out {folder}"
        if is_main:
            click.echo(f"Training {stopped}. Resume with: charrnn train --resume{out_flag}", err=True)
        ctx.exit(stopped.exit_code)
    if is_main:
        _print_summary(result)


def _resume_location(resume: str, out: Path) -> str:
    if resume == RESUME_LATEST:
        return str(out)
    from charrnn.store.checkpoint_file import is_checkpoint_file

    if Path(resume).is_file() and not is_checkpoint_file(resume):
        raise click.BadParameter(
            f"{resume} is not a charrnn checkpoint (to resume on corpus {resume}, put it before --resume)",
            param_hint="--resume",
        )
    return resume


def _print_summary(result: Any) -> None:
    for line in result.summary():  # the advice is part of it, so -q keeps it
        click.echo(line, err=True)


@main.command(cls=SectionedCommand, short_help="Generate text from a trained model.")
@table_options(SAMPLE, "sample")
def sample(
    checkpoint: Path,
    prime: str | None,
    prime_file: str | None,
    seed: int | None,
    num_samples: int,
    stops: tuple[str, ...],
    interactive: bool,
    output: Path | None,
    force: bool,
    beam: int | None,
    threads: int | str,
    unknown: str,
    **options: Any,
) -> None:
    """Generate text from a trained model, streaming it to stdout as it is made. A prime's
    character the model never saw is read as the nearest one it knows (--unknown).

    \b
    Examples:
      charrnn sample
      charrnn sample --temp 0.8 --length 2000 --prime "ROMEO:"
      charrnn sample --checkpoint runs/poems/best.pt --top-p 0.9 --seed 1
      charrnn sample -n 5 --length 200 --prime "JULIET:"
      charrnn sample --prime "ROMEO:" --stop $'\\n\\n'     # one speech: stop at a blank line
      charrnn sample -i --length 300                    # type primes, see them continued
      charrnn sample --prime "ROMEO:" --beam 8 --length 100   # the most likely continuation
      charrnn sample --prime-file opening.txt --length 500    # a long prime, from a file
      charrnn sample --prime "床前" --unknown refuse   # stop on characters the model never saw
      charrnn sample -n 3 --seed 1 -o samples.txt      # into a file, whole or not at all
    """
    if any(not stop for stop in stops):
        raise click.BadParameter("must not be empty", param_hint="'--stop'")
    if beam is not None and (num_samples > 1 or interactive):
        raise click.UsageError("--beam finds the one most likely continuation: leave out -n and --interactive")
    if prime_file is not None:
        if prime is not None:
            raise click.UsageError("give --prime or --prime-file, not both")
        prime = _read_prime_file(prime_file)
    if interactive and (num_samples > 1 or prime is not None):
        raise click.UsageError(
            "--interactive asks for each prime itself and makes one sample at a time: leave out --prime and -n"
        )
    if interactive and output is not None:
        raise click.UsageError("--interactive shows each continuation on the terminal: leave out --output")
    SampleConfig(**options)  # every value checked before the model is loaded
    streams = beam or num_samples
    held = too_much_held(streams, options["length"]) if streams > 1 or beam else None
    if held:  # several samples, or a beam's back-pointers, are held until the end
        how = f"--beam {beam}" if beam else f"-n {num_samples}"
        raise OptionError("--length", f"{options['length']:,} with {how} {held}")
    _limit_blas_threads(threads, streams)
    from charrnn import api  # sampling runs in numpy: this imports no torch
    from charrnn.cli.session import note_unseen, sample_interactively
    from charrnn.store.output import sample_file_header, sample_output

    target = sample_output(output, force) if output is not None else None
    if target is not None:
        target.check()  # before the work: a user's file, a link, a read-only or full disk

    # Several streams run on `threads`, tuned with auto as they go; one already has its count.
    model = api.load(_existing(checkpoint, "-c PATH"), threads=threads if streams > 1 else None)
    if interactive:
        sample_interactively(model, options, seed, stops, unknown)
        return
    # Each call checks the prime before anything is printed; only a single sample streams.
    if beam is not None:
        made = [model.sample(options["length"], prime, beam=beam, stop=stops, unknown=unknown)]
    elif num_samples == 1:
        made = model.stream(prime=prime, seed=seed, stop=stops, unknown=unknown, **options)
    else:
        made = _with_headers(model.samples(num_samples, prime=prime, seed=seed, stop=stops, unknown=unknown, **options))
    for note in model.passed_over:
        click.echo(f"warning: {note}", err=True)
    note_unseen(model, prime, unknown)
    click.echo(f"(sampling from {model.path}, step {model.step:,}, on cpu)", err=True)
    text = itertools.chain(made, "\n")
    if target is None:
        write_streaming(text)
        return
    header = sample_file_header(model.path, model.step, seed)
    # Written as made, into a temporary file renamed into place at the end (as stdout would show it: as it is).
    target.write(piece.encode("utf-8", "backslashreplace") for piece in itertools.chain([header], text))
    click.echo(f"wrote {printable(target.path)}", err=True)


# Not OMP_NUM_THREADS: PyTorch reads it too, and viz's memory plot sets PyTorch's count itself.
_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _limit_blas_threads(threads: int | str, streams: int) -> None:
    """For one stream, run numpy's matrix products on `threads` threads; with auto on one (a
    count set in the environment is kept): a chain of small matrix-vector products, where a
    second thread only adds synchronisation (measured: 10% slower; docs/benchmarks.md).

    The BLAS library reads its count once, when numpy is first imported, which nothing before
    this does; set here, the count costs nothing at start-up. Several streams (-n, --beam) are
    left to the API, which changes the count as they run (threads.running_on)."""
    if "numpy" in sys.modules or streams > 1:
        return
    if threads != AUTO:
        os.environ.update(dict.fromkeys(_BLAS_THREADS, str(threads)))
    elif not any(name in os.environ for name in _BLAS_THREADS):
        os.environ.update(dict.fromkeys(_BLAS_THREADS, "1"))


def _read_prime_file(name: str) -> str:
    """The prime in file `name` (`-`: standard input): UTF-8 text of at most PRIME_FILE_MAX
    characters, read whole (the sampler feeds it to the model a chunk at a time). A file or a
    pipe (`<(...)`); a FIFO nothing writes to is not waited on, a device not read."""
    pipe = False
    try:
        if name == "-":
            opened = click.open_file(name, encoding="utf-8-sig", errors="strict")
        else:
            raw = open_to_read(name, pipes=True)
            pipe = stat.S_ISFIFO(os.fstat(raw.fileno()).st_mode)
            opened = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict")
        with opened as file:
            prime = file.read(PRIME_FILE_MAX + 1)  # one more than allowed tells a longer file, without reading it all
    except UnicodeDecodeError as error:
        raise OptionError("--prime-file", f"{printable(name)} is not UTF-8 text ({error.reason})") from None
    except NotAFile as error:
        raise OptionError("--prime-file", f"{printable(name)} cannot be read: {error.strerror}") from None
    except OSError as error:
        raise OptionError("--prime-file", f"cannot read {printable(name)}: {error.strerror}") from None
    if not prime:
        nothing = "; nothing was writing to it (start the writer first)" if pipe else ""
        raise OptionError("--prime-file", f"{printable(name)} is empty{nothing}")
    if len(prime) > PRIME_FILE_MAX:
        raise OptionError(
            "--prime-file", f"{printable(name)} holds more than {PRIME_FILE_MAX:,} characters; give its end (tail -c)"
        )
    return prime


def _existing(checkpoint: Path, how: str) -> Path:
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


def _with_headers(samples: list[str]) -> list[str]:
    """Several samples as one text, each under a `--- sample i of n ---` line."""
    from charrnn.core.sampling import heading

    return ["\n\n".join(f"{heading(i, len(samples))}\n{text}" for i, text in enumerate(samples, start=1))]


@main.command("eval", short_help="Score a model on a held-out text: bits per character and perplexity.")
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
    """
    from charrnn import api
    from charrnn.run.progress import console_reporter

    model = api.load(_existing(checkpoint, "-c PATH"), device, threads=threads)
    reporter = console_reporter(False)
    score = model.score(*text, encoding=encoding, errors=errors, progress=reporter, windows=windows, unknown=unknown)
    click.echo(f"model: {model.path} (step {model.step:,})")
    click.echo(f"text: {score.text}: {score.chars:,} characters, {score.scored:,} scored{_unscored(score)}")
    if score.window:
        click.echo(
            f"scored in {score.streams:,} independent windows of {score.window:,} characters, each from a zero state"
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
        ]
        filler = "a stream"
    if tail > 0:
        reasons.append(f"the last {tail:,}, too few to fill {filler}")
    return f" (not scored: {'; '.join(reasons)})"


@main.command(short_help="Describe a checkpoint: model, vocabulary, training, corpus.")
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
    found = load_from(_existing(checkpoint, "charrnn info PATH"), prefer="best")
    for note in found.passed_over:
        click.echo(f"warning: {note}", err=True)
    for line in describe_checkpoint(found.checkpoint, found.path):
        click.echo(line)
    if checkpoint.is_dir():
        click.echo(f"checkpoints in {checkpoint}: {', '.join(OutDir(checkpoint).checkpoint_names())}")


@main.command(short_help="Plot train and validation bits per character against step (needs matplotlib).")
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


@main.command(cls=SectionedCommand, short_help="See inside a model: its guesses, cells, gates and memory, as one page.")
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
    """
    from charrnn.inspect import viz as inspect

    if bool(text) == (literal_text is not None):
        raise click.UsageError(
            "--text replaces TEXT files: give one or the other"
            if text
            else "give a TEXT file to look at, or the text itself with --text"
        )
    settings = inspect.VizSettings(
        inspect.parse_temperatures(temperatures), sample_length, prime, seed, memory_span, unknown
    )
    if cell is not None and not ansi:
        raise click.UsageError("--cell colours the text in the terminal: add --ansi (the page has a cell browser)")
    if output is not None and output.suffix.lower() not in (".html", ".htm"):
        raise OptionError("--output", f"must name an .html file (not {printable(output)}): the page is HTML")
    shown = inspect.read_text(text, literal_text, chars, encoding, errors)
    _limit_blas_threads(AUTO, 1)  # the numpy parts: one stream of small steps
    from charrnn.run.progress import console_reporter
    from charrnn.store.loading import load_for_sampling

    loaded = load_for_sampling(_existing(checkpoint, "-c PATH"))
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


def entry_point() -> None:
    """The `charrnn` program (console script and `python -m charrnn`)."""
    prepare_standard_streams()
    try:
        main()
    finally:
        # The process is ending: a late Ctrl-C (say, a second one after training stopped and
        # saved) must not print a traceback from Python's shutdown.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

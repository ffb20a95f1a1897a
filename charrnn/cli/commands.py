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
from charrnn.cli.examine import evaluate, export, info, plot, viz
from charrnn.cli.failures import fail
from charrnn.cli.params import (
    Location,
    SectionedCommand,
    existing_checkpoint,
    explicit_options,
    limit_blas_threads,
    table_options,
)
from charrnn.cli.stdio import prepare_standard_streams, write_streaming
from charrnn.display import printable
from charrnn.errors import OptionError, TrainingStopped
from charrnn.settings.config import ModelConfig, TrainConfig, field_names
from charrnn.settings.option import DEFAULT_OUT, PRIME_FILE_MAX, RESUME_LATEST
from charrnn.settings.options import SAMPLE
from charrnn.settings.spelling import COMMAND_LINE, read_by
from charrnn.settings.train_options import TRAIN
from charrnn.store.files import NotAFile, open_to_read
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
    adapt_text: str | None,
    save: Path | None,
    adapt_lr: float,
    adapt_decay: float,
    adapt_segment: int,
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
      charrnn sample --adapt her_poems.txt --temp 0.8  # first learn a text's style as it is read
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
    if save is not None and adapt_text is None:
        raise click.UsageError("--save writes a model adapted to a text: give the text with --adapt TEXT")
    streams = beam or num_samples
    held = too_much_held(streams, options["length"]) if streams > 1 or beam else None
    if held:  # several samples, or a beam's back-pointers, are held until the end
        how = f"--beam {beam}" if beam else f"-n {num_samples}"
        raise OptionError("--length", f"{options['length']:,} with {how} {held}")
    limit_blas_threads(threads, streams, torch_first=adapt_text is not None)
    from charrnn import api  # sampling runs in numpy: this imports no torch
    from charrnn.cli.session import note_unseen, sample_interactively
    from charrnn.store.output import sample_file_header, sample_output

    target = sample_output(output, force) if output is not None else None
    if target is not None:
        target.check()  # before the work: a user's file, a link, a read-only or full disk
    if save is not None:
        from charrnn.store.loading import check_new_file

        check_new_file(save, "--save")

    # Several streams run on `threads`, tuned with auto as they go; one already has its count.
    model = api.load(existing_checkpoint(checkpoint, "-c PATH"), threads=threads if streams > 1 else None)
    if adapt_text is not None:
        adapting = {"adapt_lr": adapt_lr, "adapt_decay": adapt_decay, "adapt_segment": adapt_segment}
        model = _adapted(model, adapt_text, prime, save, adapting)
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
    adapted = f", adapted to {printable(model.adapted_score.text)}" if model.adapted_score else ""
    click.echo(f"(sampling from {model.path}, step {model.step:,}{adapted}, on cpu)", err=True)
    text = itertools.chain(made, "\n")
    if target is None:
        write_streaming(text)
        return
    header = sample_file_header(model.path, model.step, seed)
    # Written as made, into a temporary file renamed into place at the end (as stdout would show it: as it is).
    target.write(piece.encode("utf-8", "backslashreplace") for piece in itertools.chain([header], text))
    click.echo(f"wrote {printable(target.path)}", err=True)


def _adapted(model: Any, text: str, prime: str | None, save: Path | None, adapting: dict[str, Any]) -> Any:
    """`model` after reading `text` with dynamic evaluation (run/adapt.py), then a prime longer
    than a segment the same way (the sample continues it in its style too); saved to `save`."""
    from charrnn.run.progress import console_reporter

    made = model.adapt(text, progress=console_reporter(False), **adapting)
    _say_adapted(made.adapted_score.text, made.adapted_score)
    if prime is not None and len(prime) > adapting["adapt_segment"]:
        read = made.adapted_score
        made = made.adapt(texts=[prime], progress=console_reporter(False), **adapting)
        _say_adapted("the prime", made.adapted_score)
        made.adapted_score = read  # the text it was told to adapt to
    if save is not None:
        click.echo(f"wrote the adapted model to {printable(made.save(save))}", err=True)
    return made


def _say_adapted(name: str, read: Any) -> None:
    click.echo(
        f"(adapted to {printable(name)}: {read.scored:,} characters read at {read.bits:.3f} bits per character "
        "while learning from them)",
        err=True,
    )


# Not OMP_NUM_THREADS: PyTorch reads it too, and viz's memory plot sets PyTorch's count itself.
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


def _with_headers(samples: list[str]) -> list[str]:
    """Several samples as one text, each under a `--- sample i of n ---` line."""
    from charrnn.core.sampling import heading

    return ["\n\n".join(f"{heading(i, len(samples))}\n{text}" for i, text in enumerate(samples, start=1))]


# The commands that look at a model (examine.py), beside train and sample above.
for command in (evaluate, export, info, plot, viz):
    main.add_command(command)


def entry_point() -> None:
    """The `charrnn` program (console script and `python -m charrnn`)."""
    prepare_standard_streams()
    try:
        main()
    finally:
        # The process is ending: a late Ctrl-C (say, a second one after training stopped and
        # saved) must not print a traceback from Python's shutdown.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

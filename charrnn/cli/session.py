"""`charrnn sample -i`: the loop that reads primes (with line editing on a terminal) and streams
their continuations, the settings a session changes as it goes (`:temp 0.5`, `:length 300`),
and the random stream each prime's sample draws from.

A line that starts with `:` is a command, any other a prime (`::` begins a prime with `:`).
Each setting is a sampling option of the option table, read and checked by its rule there, so
`:temp` takes what `--temp` takes. With a seed, the n-th sample of a session draws from a
stream of its own, child n of the seed (numpy's SeedSequence spawn keys): the same session
gives the same texts, and two samples of one prime differ.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from charrnn.cli.stdio import write_streaming
from charrnn.core.sampling import child_seed
from charrnn.display import is_terminal, printable
from charrnn.errors import OptionError
from charrnn.settings.option import FLAG, FLOAT, INT, Option
from charrnn.settings.options import SAMPLE, by_name

COMMAND, ESCAPE = ":", "::"
SETTINGS = ("temperature", "length", "top_k", "top_p", "greedy", "sharpen_runs")  # SampleConfig's fields
_OPTIONS = by_name(SAMPLE)
_ON, _OFF = ("on", "true", "yes", "1"), ("off", "false", "no", "0")  # a flag's values; off also means none


def _command_names() -> dict[str, str]:
    """Each name a command may go by (`temp`, `temperature`, `top-k`, `top_k`) -> its option's name."""
    names = {}
    for name in (*SETTINGS, "seed"):
        for flag in _OPTIONS[name].flags:
            if flag.startswith("--"):
                names[flag[2:]] = names[flag[2:].replace("-", "_")] = name
    return names


_NAMES = _command_names()


class BadCommand(ValueError):
    """A command the session cannot take: its message is the one line to show."""


@dataclass
class Session:
    """The settings of a session's next sample, and how many samples it has made since its seed."""

    settings: dict[str, Any]  # SampleConfig's fields, as the command line gave them
    seed: int | None  # None: every sample from fresh randomness
    made: int = field(default=0)

    @staticmethod
    def is_command(line: str) -> bool:
        return line.startswith(COMMAND) and not line.startswith(ESCAPE)

    @staticmethod
    def prime(line: str) -> str:
        """The prime a line that is no command stands for: `::x` is the prime `:x`."""
        return line[1:] if line.startswith(ESCAPE) else line

    def stream_seed(self) -> int | None:
        """The seed of the next sample's random stream: child `made` of the session's seed."""
        return None if self.seed is None else child_seed(self.seed, self.made)

    def run(self, line: str) -> str:
        """Carry out the command `line` (`:temp 0.5`); what to show the user. BadCommand if it is none."""
        word, _, value = line[len(COMMAND) :].strip().partition(" ")
        value = value.strip()
        if word in ("help", "h", "?"):
            return self.help()
        name = _NAMES.get(word)
        if name is None:
            raise BadCommand(
                f"{COMMAND}{printable(word, 40)} is no command; {COMMAND}help lists them "
                f"(begin a prime with {ESCAPE} to start it with {COMMAND})"
            )
        if value:
            self._set(name, _parsed(_OPTIONS[name], word, value))
        return f"{name} {self._shown(name)}"

    def _set(self, name: str, value: Any) -> None:
        if name == "seed":
            self.seed, self.made = value, 0  # the same streams again, from the first
        else:
            self.settings[name] = value

    def _shown(self, name: str) -> str:
        value = self.seed if name == "seed" else self.settings[name]
        if value is None:
            return "off (random)" if name == "seed" else "off"
        if isinstance(value, bool):
            return "on" if value else "off"
        return f"{value:g}" if isinstance(value, float) else str(value)

    def help(self) -> str:
        rows = [
            ("temp T", "temperature", "the sampling temperature, > 0"),
            ("length N", "length", "characters to generate after each prime"),
            ("top_k K|off", "top_k", "draw only from the K likeliest characters"),
            ("top_p P|off", "top_p", "draw only from the likeliest characters that add up to P"),
            ("greedy on|off", "greedy", "always take the likeliest character"),
            ("sharpen_runs on|off", "sharpen_runs", "let temp, top_k and top_p sharpen repeats (runs) too"),
            ("seed N|off", "seed", "start the random streams again from seed N, or off for fresh randomness"),
        ]
        lines = [f"  {COMMAND}{usage:<19} {what} (now {self._shown(name)})" for usage, name, what in rows]
        lines.append(f"  {COMMAND}help{'':<15} this list; a command without a value shows its setting")
        lines.append(f"  {ESCAPE}text{'':<14} the prime ':text'; any other line is a prime. Ctrl-D ends")
        return "commands (each applies to the primes after it):\n" + "\n".join(lines)


def _parsed(option: Option, word: str, text: str) -> Any:
    """The value `text` gives `option`, checked by the option's rule; BadCommand if it breaks it."""
    nullable = option.default is None and option.kind != FLAG
    try:
        value = _value(option, text.lower(), nullable)
        problem = None if value is None else option.problem(value)
    except ValueError:
        problem = "on or off" if option.kind == FLAG else option.problem(object())  # what any value must be
    if problem is None:
        return value
    off = " or off" if nullable else ""
    raise BadCommand(f"{COMMAND}{word} {printable(text, 40)}: must be {problem}{off}; nothing changed")


def _value(option: Option, text: str, nullable: bool) -> Any:
    if nullable and text in ("off", "none"):
        return None
    if option.kind == FLAG:
        if text not in _ON + _OFF:
            raise ValueError(text)
        return text in _ON
    if option.kind == INT:
        return int(text)
    if option.kind == FLOAT:
        number = float(text)
        if not math.isfinite(number):
            raise ValueError(text)
        return number
    raise ValueError(text)  # no setting of another kind


def note_unseen(model: Any, prime: str | None, unknown: str) -> None:
    """One line on stderr saying what the prime's characters the model never saw were read as."""
    note = model.unseen(prime, unknown).note() if prime else None
    if note:
        click.echo(f"note: {note}", err=True)


def sample_interactively(
    model: Any, options: dict[str, Any], seed: int | None, stops: tuple[str, ...], unknown: str
) -> None:
    """Ask for a prime, stream its continuation, again, until end of input (Ctrl-D); each
    prime's unseen characters are read as --unknown says. A line starting with `:` is a
    command that changes the settings (Session): `:temp 0.5`, `:help`."""
    session = Session(dict(options), seed)
    read = _prime_reader()
    click.echo(
        f"(model {model.path}, step {model.step:,}; type a prime and press Enter, :help for commands, Ctrl-D to end)",
        err=True,
    )
    while True:
        try:
            line = read()
        except KeyboardInterrupt:  # Ctrl-C at the prompt ends the session, as end of input does
            line = None
        except UnicodeDecodeError as error:
            click.echo(err=True)  # the error line goes below the prompt, not after it
            raise click.ClickException(f"the prime typed is not valid {error.encoding} text ({error.reason})") from None
        if line is None:
            click.echo(err=True)
            return
        if session.is_command(line):
            try:
                click.echo(session.run(line), err=True)
            except BadCommand as error:  # one line, and the session goes on
                click.echo(str(error), err=True)
            continue
        _continue_prime(model, session, session.prime(line), stops, unknown)


def _continue_prime(model: Any, session: Any, prime: str, stops: tuple[str, ...], unknown: str) -> None:
    """Stream the continuation of one typed prime, or say in one line why it is refused."""
    try:
        if len(prime) > INTERACTIVE_PRIME_LIMIT:
            raise OptionError("--prime", f"is longer than {INTERACTIVE_PRIME_LIMIT:,} characters; type a shorter one")
        pieces = model.stream(
            prime=prime or None, seed=session.stream_seed(), stop=stops, unknown=unknown, **session.settings
        )
    except OptionError as error:  # a prime too long or with unseen characters: say so, and ask again
        click.echo(f"that prime {error.detail}", err=True)
        return
    session.made += 1  # the next sample draws from the next stream
    note_unseen(model, prime, unknown)
    write_streaming(pieces)
    sys.stdout.write("\n\n")
    sys.stdout.flush()


PROMPT = "prime> "


def _prime_reader() -> Any:
    """A function that reads the next line typed (None at end of input). On a terminal, with
    line editing and history (readline: the arrow keys move and recall, never become text);
    else a bounded line of stdin, the prompt on stderr so that stdout holds only samples."""
    if is_terminal(sys.stdin) and is_terminal(sys.stdout):
        with contextlib.suppress(ImportError):  # Windows has no readline: input() still reads lines
            import readline  # noqa: F401 - importing it gives input() line editing and history

            readline.parse_and_bind("tab: tab-insert")  # a tab is part of a prime, not a completion

        def typed() -> str | None:
            try:
                return input(PROMPT)  # history stays in memory: primes are not written anywhere
            except EOFError:
                return None

        return typed

    def piped() -> str | None:
        click.echo(PROMPT, nl=False, err=True)
        return _read_line(sys.stdin, INTERACTIVE_PRIME_LIMIT)

    return piped


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

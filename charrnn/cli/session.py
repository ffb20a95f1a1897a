"""`charrnn sample -i`: the settings a session changes as it goes (`:temp 0.5`, `:length 300`),
and the random stream each prime's sample draws from.

A line that starts with `:` is a command, any other a prime (`::` begins a prime with `:`).
Each setting is a sampling option of the option table, read and checked by its rule there, so
`:temp` takes what `--temp` takes. With a seed, the n-th sample of a session draws from a
stream of its own, child n of the seed (numpy's SeedSequence spawn keys): the same session
gives the same texts, and two samples of one prime differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from charrnn.core.sampling import child_seed
from charrnn.display import printable
from charrnn.settings.options import FLAG, FLOAT, INT, SAMPLE, Option, by_name

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

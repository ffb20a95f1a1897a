"""The README and the docs are part of the product: the README reads in ten minutes, every command
in it is one charrnn accepts, every figure it states is the one measured, and the reference's option
tables are the code's."""

import math
import re
import shlex
from pathlib import Path

import click
import pytest

import charrnn
from charrnn.api import Model
from charrnn.cli.commands import main
from charrnn.settings.options import COMMANDS, reference_table

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
REFERENCE = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
BENCHMARKS = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "data" / "README.md"]


def _code_blocks(text: str, language: str = "") -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def _table_defaults(command: str) -> dict[str, str]:
    """`--option` -> the default column, from the option table of `charrnn COMMAND`."""
    section = REFERENCE.split(f"### `charrnn {command}")[1].split("\n### ")[0]
    rows = re.findall(r"^\| `(--[a-z-]+)[^|]*\| ([^|]*) \|", section, flags=re.MULTILINE)
    return {flag: default.strip() for flag, default in rows}


def _shown(value) -> str:
    """A default as the reference writes it: 5.0 as 5, 12000 as 12000."""
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


@pytest.mark.parametrize("command", ["train", "sample", "eval", "plot"])
def test_every_option_is_in_the_reference_with_its_real_default(command):
    table = _table_defaults(command)
    for param in main.commands[command].params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        flag = max(param.opts, key=len)
        assert any(opt in table for opt in param.opts), f"{command} {flag} is not in docs/reference.md"
        documented = next(table[opt] for opt in param.opts if opt in table)
        if param.default is not None and not param.is_flag:
            assert documented == _shown(param.default), (
                f"{flag}: the reference says {documented}, code says {param.default}"
            )


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_option_table_is_the_one_options_py_defines(command):
    section = REFERENCE.split(f"### `charrnn {command}")[1].split("\n### ")[0]
    table = re.search(r"^\| option \| default \| meaning \|\n(?:\|.*\n)*", section, flags=re.MULTILINE)
    assert table and table.group(0).rstrip("\n") == reference_table(command), (
        f"the reference's table of charrnn {command} differs from charrnn/settings/options.py: run python scripts/option_tables.py"
    )


def test_the_two_fresh_machine_commands_are_marked():
    for name in ("run-command", "test-command"):
        block = re.search(rf"<!-- {name}:start -->\n```\n(.+)\n```\n<!-- {name}:end -->", README)
        assert block and "pip install -c constraints.txt" in block.group(1), name


def test_the_readme_is_read_in_ten_minutes_before_its_reference():
    before = README.split("\n## Reference\n")
    assert len(before) == 2, "the README has a Reference section"
    assert len(before[0].splitlines()) <= 250


@pytest.mark.parametrize("path", USER_DOCS, ids=lambda p: p.name)
def test_what_users_read_names_no_issue_and_no_commit(path):
    text = path.read_text(encoding="utf-8")
    assert not re.findall(r"(?i)\bissues?[ -]?#?\d+|#\d+\b", text), "issue numbers are for commit messages"
    hashes = [
        word for word in re.findall(r"\b[0-9a-f]{7,12}\b", text) if re.search(r"[a-f]", word) and re.search(r"\d", word)
    ]
    assert not hashes, f"commit hashes are for commit messages: {hashes}"


def _commands(text: str) -> list[list[str]]:
    """Each `charrnn ...` command in the text's code blocks, as its arguments: on lines that start
    one (after a `$ ` prompt) or pipe or chain into one."""
    found = []
    for block in _code_blocks(text):
        for line in block.splitlines():
            line = line.removeprefix("$ ")
            if not re.match(r"charrnn |.*(&&|\|) charrnn ", line):
                continue
            lexer = shlex.shlex(line.replace("$'", "'"), posix=True, punctuation_chars="&|;")
            lexer.whitespace_split, lexer.commenters = True, "#"
            command: list[str] = []
            for word in [*lexer, "&&"]:
                if word in ("&&", "|", ";"):
                    if command[:1] == ["charrnn"]:
                        found.append(command[1:])
                    command = []
                else:
                    command.append(word)
    return found


def _parse(args: list[str]) -> None:
    """What click makes of the arguments, as `charrnn` would (no command runs)."""
    group = click.Context(main, info_name="charrnn", **main.context_settings)  # -h as well as --help
    with main.commands[args[0]].make_context(args[0], args[1:], parent=group):
        pass


@pytest.mark.parametrize("args", _commands(README) + _commands(REFERENCE), ids=" ".join)
def test_every_command_the_docs_show_is_one_charrnn_accepts(args):
    _parse(args)


def test_every_python_name_the_readme_uses_exists():
    for block in _code_blocks(README, "python"):
        compile(block, "README.md", "exec")
        for name in re.findall(r"\bcharrnn\.(\w+)", block):
            assert hasattr(charrnn, name), f"charrnn.{name}"
        for name in re.findall(r"\bmodel\.(\w+)", block):
            assert hasattr(Model, name), f"Model.{name}"


def _benchmark(pattern: str) -> float:
    """The number docs/benchmarks.md gives where `pattern`'s group is."""
    found = re.search(pattern, BENCHMARKS)
    assert found, f"docs/benchmarks.md has no {pattern!r}"
    return float(found.group(1).replace(",", ""))


def _bits(nats: float) -> float:
    return nats / math.log(2)


def _minutes(pattern: str) -> float:
    """A time docs/benchmarks.md gives as `4 min 58 s`, in minutes."""
    found = re.search(pattern, BENCHMARKS)
    assert found, f"docs/benchmarks.md has no {pattern!r}"
    return _number(found.group(1))


def _number(figure: str) -> float:
    """`5 min 4 s` in minutes, `82.5%` as 82.5, `1.612 bpc` as 1.612."""
    if " min " in figure:
        minutes, seconds = map(int, re.findall(r"\d+", figure))
        return minutes + seconds / 60
    return float(figure.split()[0].rstrip("%").replace(",", ""))


def _precision(figure: str) -> float:
    """Half the last digit the figure states: how far the measured value may be from it."""
    if " min " in figure:
        return 0.5 / 60
    return 0.5 * 10 ** -len(figure.split()[0].rstrip("%").partition(".")[2])


def _unigram(corpus: str) -> float:
    return _benchmark(rf"\| {re.escape(corpus)} \| [\d,]+ \| [\d,]+ \| ([\d.]+) \|")


# Every figure the README states outside its code blocks, and where docs/benchmarks.md measured it.
FIGURES = {
    "4.8 bpc": lambda: _unigram("tinyshakespeare.txt"),
    "4.5 bpc": lambda: _unigram("the built-in corpus"),
    "9.3 bpc": lambda: _unigram("tang300.txt"),
    "2.04 bpc": lambda: _bits(_benchmark(r"Median of 3: ([\d.]+) nats carried")),
    "1.612 bpc": lambda: _benchmark(
        r"\| the built-in corpus \(3\.0 MB of Python; `charrnn train`\) \| [\d,]+ \| [^|]+ \| ([\d.]+) bpc"
    ),
    "1.61 bpc": lambda: _benchmark(
        r"\| the built-in corpus \(3\.0 MB of Python; `charrnn train`\) \| [\d,]+ \| [^|]+ \| ([\d.]+) bpc"
    ),
    "1.731 bpc": lambda: _benchmark(r"validation reached\n?\s*([\d.]+) bpc .{0,20}at step 4,000"),
    "8.2 bpc": lambda: _bits(_benchmark(r"\| tang300 \| 2m \| ([\d.]+) \|")),
    "89.0%": lambda: _benchmark(r"\| non-blank lines that tokenize as Python \| ([\d.]+)%"),
    "82.5%": lambda: _benchmark(r"\| non-blank lines that tokenize as Python \| [\d.]+% \| ([\d.]+)%"),
    "85.4%": lambda: _benchmark(r"lines that\s+tokenize as Python ([\d.]+) %"),
    "5 min 4 s": lambda: _minutes(r"median (\d+ min \d+ s); training alone"),
    "47 s": lambda: _benchmark(r"own count: \d+ to (\d+) s alone"),
    "75 s": lambda: _benchmark(r"and (\d+) s beside a busy program \(`python3"),
    "100 s": lambda: _benchmark(r"the same tier took (\d+) s alone"),
    "182 s": lambda: _benchmark(r"(\d+) s beside the busy program"),
    "1.46 nats": lambda: _benchmark(r"Median of the three 13,495-step models: ([\d.]+) nats static"),
    "1.31 nats": lambda: _benchmark(r"Median of the three 13,495-step models: [\d.]+ nats static, ([\d.]+) adapted"),
}


def test_every_figure_the_readme_states_is_the_measured_one():
    prose = re.sub(r"^```.*?^```$", "", README, flags=re.MULTILINE | re.DOTALL)
    stated = set(re.findall(r"\b\d+ min \d+ s\b|\b\d[\d,.]*(?: bpc| nats|%| min\b| s\b)", prose))
    assert stated <= set(FIGURES), f"figures with no source in this test: {sorted(stated - set(FIGURES))}"
    for figure, source in FIGURES.items():
        assert abs(source() - _number(figure)) <= _precision(figure), (
            f"the README says {figure}, docs/benchmarks.md {source()}"
        )


def test_the_layout_page_names_every_module_and_a_short_reading_path():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:\w+/)?\w+\.py)`", page))
    package = ROOT / "charrnn"
    modules = {path.relative_to(package).as_posix() for path in package.rglob("*.py") if path.name != "__init__.py"}
    assert modules <= named, f"docs/architecture.md does not name {sorted(modules - named)}"
    wings = {path.name for path in package.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    in_package = {name for name in named if name.split("/")[0] in wings}
    assert in_package <= modules, f"docs/architecture.md names {sorted(in_package - modules)}"
    path = page.split("## Reading path")[1].split("\n## ")[0]
    reading = re.findall(r"^\d+\. `((?:\w+/)?\w+\.py)`", path, re.MULTILINE)
    lines = sum(len((package / name).read_text().splitlines()) for name in reading)
    assert 3 <= len(reading) <= 8 and lines <= 900, (reading, lines)

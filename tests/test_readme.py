"""The README is part of the product: its commands and option tables must match the code."""

import re
from pathlib import Path

import click
import pytest

from charrnn.cli import main
from charrnn.options import COMMANDS, readme_table

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def _table_defaults(command: str) -> dict[str, str]:
    """`--option` -> the default column, from the option table of `charrnn COMMAND`."""
    section = README.split(f"### `charrnn {command}")[1].split("\n### ")[0]
    rows = re.findall(r"^\| `(--[a-z-]+)[^|]*\| ([^|]*) \|", section, flags=re.MULTILINE)
    return {flag: default.strip() for flag, default in rows}


def _shown(value) -> str:
    """A default as the README writes it: 5.0 as 5, 12000 as 12000."""
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


@pytest.mark.parametrize("command", ["train", "sample", "eval", "plot"])
def test_every_option_is_in_the_readme_with_its_real_default(command):
    table = _table_defaults(command)
    for param in main.commands[command].params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        flag = max(param.opts, key=len)
        assert any(opt in table for opt in param.opts), f"{command} {flag} is not in the README"
        documented = next(table[opt] for opt in param.opts if opt in table)
        if param.default is not None and not param.is_flag:
            assert documented == _shown(param.default), f"{flag}: README says {documented}, code says {param.default}"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_option_table_is_the_one_options_py_defines(command):
    section = README.split(f"### `charrnn {command}")[1].split("\n### ")[0]
    table = re.search(r"^\| option \| default \| meaning \|\n(?:\|.*\n)*", section, flags=re.MULTILINE)
    assert table and table.group(0).rstrip("\n") == readme_table(command), (
        f"the README's table of charrnn {command} differs from charrnn/options.py: run python scripts/option_tables.py"
    )


def test_the_two_fresh_machine_commands_are_marked():
    for name in ("run-command", "test-command"):
        block = re.search(rf"<!-- {name}:start -->\n```\n(.+)\n```\n<!-- {name}:end -->", README)
        assert block and "pip install -c constraints.txt" in block.group(1), name

"""Rewrite the reference's option tables (docs/reference.md) from the option table (charrnn/settings/options.py).

python scripts/option_tables.py          # rewrite docs/reference.md
python scripts/option_tables.py --check  # exit 1 if docs/reference.md differs (tests/test_readme.py checks it too)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from charrnn.settings.options import COMMANDS, reference_table

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"
# A table: its header row and every table row after it.
_TABLE = re.compile(r"^\| option \| default \| meaning \|\n(?:\|.*\n)*", re.MULTILINE)


def with_tables(text: str) -> str:
    """`text` (the reference) with the option table under each `### \\`charrnn COMMAND` heading regenerated."""
    for command in COMMANDS:
        head, _, rest = text.partition(f"### `charrnn {command}")
        section, heading, tail = rest.partition("\n### ")
        section, count = _TABLE.subn(reference_table(command).replace("\\", "\\\\") + "\n", section, count=1)
        if not count:
            raise SystemExit(f"docs/reference.md: no option table under charrnn {command}")
        text = f"{head}### `charrnn {command}{section}{heading}{tail}"
    return text


def main() -> int:
    text = REFERENCE.read_text(encoding="utf-8")
    updated = with_tables(text)
    if "--check" in sys.argv[1:]:
        return int(updated != text)
    REFERENCE.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

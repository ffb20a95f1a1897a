"""The package as published: its own name on PyPI, an SPDX licence, install hints that install it."""

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_distribution_is_not_named_after_the_unrelated_charrnn_on_pypi():
    assert re.sub(r"[-_.]+", "-", PROJECT["name"].lower()) != "charrnn"


def test_no_install_hint_names_the_unrelated_package():
    texts = [
        ROOT / "README.md",
        *(ROOT / "charrnn").glob("*.py"),
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "scripts").glob("*.py"),
    ]
    hint = re.compile(r"pip install\s+['\"]?charrnn(\[|['\"\s]|$)", re.MULTILINE)
    offenders = [path.name for path in texts if hint.search(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_the_licence_is_an_spdx_expression_with_its_file():
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")

"""The package as published: its own name on PyPI, an SPDX licence, install hints that install it."""

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

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


@pytest.mark.slow  # builds a wheel: a few seconds of setuptools
def test_the_wheel_holds_every_module_of_every_wing_and_the_viz_template(tmp_path):
    source = tmp_path / "source"  # a clean copy: a build/ folder left in the checkout would hide a gap
    shutil.copytree(ROOT / "charrnn", source / "charrnn", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
    subprocess.run([*command, str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "charrnn"
    wanted = {f"charrnn/{path.relative_to(package).as_posix()}" for path in package.rglob("*.py")}
    assert wanted | {"charrnn/inspect/viz_page.html"} <= shipped, sorted(wanted - shipped)

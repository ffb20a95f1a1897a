"""docs/benchmarks.md holds each script's sections once, and a script rewrites only its own."""

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

from benchmark_doc import DOC, MARKER, SECTIONS, replace_section  # noqa: E402


def test_no_marker_appears_twice():
    markers = Counter(match[0] for match in MARKER.finditer(DOC.read_text(encoding="utf-8")))
    assert [marker for marker, count in markers.items() if count > 1] == []


@pytest.mark.parametrize("script, name", [(script, name) for script, names in SECTIONS.items() for name in names])
def test_every_section_of_every_script_is_on_the_page_once(script, name):
    text = DOC.read_text(encoding="utf-8")
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    assert text.count(start) == 1 and text.count(end) == 1
    assert text.index(start) < text.index(end)


def test_every_marker_on_the_page_belongs_to_a_script():
    listed = {name for names in SECTIONS.values() for name in names}
    on_page = {match[1] for match in MARKER.finditer(DOC.read_text(encoding="utf-8"))}
    assert on_page == listed


@pytest.mark.parametrize("script", sorted(SECTIONS))
def test_sections_listed_for_a_script_are_the_ones_it_writes(script):
    """The names a script passes to replace_section (an f-string's fields match any text) cover
    exactly the sections SECTIONS lists for it."""
    source = (SCRIPTS / script).read_text(encoding="utf-8")
    written = re.findall(r'replace_section\(f?"([^"]+)"', source)
    assert written or f'SECTIONS["{script}"]' in source
    patterns = [re.compile(re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(name))) for name in written]
    for name in SECTIONS[script]:
        assert any(pattern.fullmatch(name) for pattern in patterns), name
    for pattern in patterns:
        assert any(pattern.fullmatch(name) for name in SECTIONS[script]), pattern.pattern


PAGE = """# Benchmarks

## Training
<!-- bench-training:start -->
old training figures
<!-- bench-training:end -->

## Sampling
<!-- bench-sampling:start -->
old sampling figures
<!-- bench-sampling:end -->
"""


def test_replace_section_rewrites_only_its_own_section(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(PAGE, encoding="utf-8")
    replace_section("bench-training", "new training figures\n", doc)
    assert doc.read_text(encoding="utf-8") == PAGE.replace("old training figures", "new training figures")


@pytest.mark.parametrize(
    "page, name",
    [
        (PAGE + "\n<!-- bench-training:start -->\ncopy\n<!-- bench-training:end -->\n", "bench-training"),  # twice
        (PAGE, "bench-footprint"),  # a section of bench.py the page lacks
        (PAGE.replace("<!-- bench-sampling:end -->", ""), "bench-sampling"),  # no end
        (PAGE, "bench-nonsense"),  # no script writes it
    ],
)
def test_replace_section_refuses_a_page_it_cannot_write_and_leaves_it_alone(tmp_path, page, name):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(page, encoding="utf-8")
    with pytest.raises(SystemExit, match=r"^Error: .*" + re.escape(name)):
        replace_section(name, "figures\n", doc)
    assert doc.read_text(encoding="utf-8") == page

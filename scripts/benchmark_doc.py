"""Helpers for scripts that record results in docs/benchmarks.md.

Each script owns its sections, each between `<!-- NAME:start -->` and `<!-- NAME:end -->`
under a heading written by hand, and replaces only those, so results from different scripts
and machines sit side by side. `SECTIONS` lists them; tests/test_benchmarks_doc.py checks that
the page holds each exactly once.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

# The sections of the page, by the script that writes them. A new one goes here and, with its
# markers, under its heading in the page: a section appended at the end of the page is how
# the page once came to hold two copies of three sections with contradicting figures.
SECTIONS = {
    "bench.py": ("bench-training", "bench-sampling", "bench-footprint"),
    "quality.py": ("quality-5m", "quality-30m"),
    "sweep.py": ("sweep-5m", "sweep-30m"),
    "sizing_sweep.py": ("sizing",),
    "bench_corpus.py": ("corpus-1gb",),
    "fault_test.py": ("fault-test",),
    "bench_threads.py": ("threads",),
    "bench_memory.py": ("memory",),
    "sample_quality.py": ("sample-quality",),
    "corpus_scale.py": ("corpus-scale",),
    "adapt_quality.py": ("adapt-sweep", "adapt-report"),
    "bench_page.py": ("page",),
}
MARKER = re.compile(r"<!-- (\S+):(start|end) -->")


def machine_description() -> str:
    """CPU model, cores, Python and torch versions: what a reader needs to weigh a figure."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {cores} cores{gpu}; Python {platform.python_version()}, torch {torch.__version__}"


def section_problem(name: str, text: str) -> str | None:
    """Why section `name` of the page `text` cannot be replaced, or None when it can."""
    if not any(name in names for names in SECTIONS.values()):
        return f"{name!r} is not a section of {DOC.name}: add it to SECTIONS and its markers to the page"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        return f"{DOC.name} must hold {start} once, followed by {end} once"
    return None


def check_section(name: str, doc: Path = DOC) -> None:
    """Fail before a long measurement, rather than after it, when its section cannot be written."""
    problem = section_problem(name, doc.read_text(encoding="utf-8"))
    if problem:
        raise SystemExit(f"Error: {problem}")


def replace_section(name: str, body: str, doc: Path = DOC) -> None:
    """Put `body` between the section's markers, leaving the rest of the page as it is."""
    from charrnn.store.files import write_atomic

    check_section(name, doc)
    text = doc.read_text(encoding="utf-8")
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    page = f"{before}{start}\n{body.rstrip()}\n{end}{after}"
    write_atomic(doc, lambda file: file.write(page.encode("utf-8")))

"""The files viz, plot and sample -o write: never over a file charrnn did not write, nor through a link,
without --force; checked before the work (a missing, read-only or full folder, a FIFO, a
folder in the way), and an error while writing is one line."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from charrnn.cli.commands import main
from charrnn.core import sampling as sample
from charrnn.inspect.page import PAGE_MARK
from charrnn.inspect.plot import PNG_MARK
from charrnn.store import output
from charrnn.store.output import SAMPLES_MARK
from charrnn.store.runfiles import PLOT_PNG, VIZ_PAGE
from helpers import PANGRAM, fast_args

USERS = b"the user's own page\n"
QUICK_VIZ = ["--chars", "200", "--sample-length", "20", "--memory-span", "8", "--temperatures", "1.0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A small finished run (its metrics.jsonl too), and its corpus beside it."""
    folder = tmp_path_factory.mktemp("outputs")
    (folder / "corpus.txt").write_text(PANGRAM * 60, encoding="utf-8")
    result = CliRunner().invoke(
        main, ["train", str(folder / "corpus.txt"), *fast_args(quiet=True), "--out", str(folder / "run")]
    )
    assert result.exit_code == 0, result.output
    return folder / "run"


def _viz(run: Path, *args: str):
    return CliRunner().invoke(main, ["viz", str(run.parent / "corpus.txt"), "-c", str(run), *QUICK_VIZ, *args])


def _plot(run: Path, *args: str):
    return CliRunner().invoke(main, ["plot", str(run), *args])


def _sample(run: Path, *args: str):
    return CliRunner().invoke(main, ["sample", "-c", str(run), "--length", "200", "--seed", "1", *args])


COMMANDS = {
    "viz": (_viz, "page.html", PAGE_MARK),
    "plot": (_plot, "bpc.png", PNG_MARK),
    "sample": (_sample, "samples.txt", SAMPLES_MARK),
}


def _refused(result, excerpt: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert excerpt in lines[0], lines[0]


@pytest.fixture
def users_file(tmp_path) -> Path:
    path = tmp_path / "mine" / "thesis.html"
    path.parent.mkdir()
    path.write_bytes(USERS)
    return path


@pytest.mark.parametrize("command", COMMANDS)
def test_a_file_charrnn_did_not_write_is_replaced_only_with_force(run, tmp_path, command):
    invoke, name, mark = COMMANDS[command]
    target = tmp_path / name
    target.write_bytes(USERS)

    refused = invoke(run, "-o", str(target))
    _refused(refused, f"{target} was not written by charrnn, so charrnn will not replace it; give --force")
    assert target.read_bytes() == USERS

    forced = invoke(run, "-o", str(target), "--force")
    assert forced.exit_code == 0, forced.output
    assert mark in target.read_bytes()[:8192]
    again = invoke(run, "-o", str(target))  # charrnn's own file: replaced without --force
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("command", COMMANDS)
def test_a_symbolic_link_is_never_written_through_and_replaced_only_with_force(run, tmp_path, users_file, command):
    invoke, name, mark = COMMANDS[command]
    link = tmp_path / name
    link.symlink_to(users_file)

    refused = invoke(run, "-o", str(link))
    _refused(refused, f"{link} is a symbolic link, not a regular file, so charrnn will not replace it (give --force")
    assert users_file.read_bytes() == USERS and link.is_symlink()

    forced = invoke(run, "-o", str(link), "--force")
    assert forced.exit_code == 0, forced.output
    assert users_file.read_bytes() == USERS  # the link was replaced, not its target
    assert not link.is_symlink() and mark in link.read_bytes()[:8192]


@pytest.mark.parametrize("command", ["viz", "plot"])  # sample writes to stdout unless told
def test_the_default_output_in_the_run_folder_is_guarded_too(run, tmp_path, users_file, command):
    invoke, _, _ = COMMANDS[command]
    default = run / (VIZ_PAGE if command == "viz" else PLOT_PNG)
    default.symlink_to(users_file)
    try:
        _refused(invoke(run), f"{default} is a symbolic link")
        assert users_file.read_bytes() == USERS
    finally:
        default.unlink()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_in_the_way_is_refused_even_with_force(run, tmp_path, command):
    invoke, name, _ = COMMANDS[command]
    (tmp_path / name).mkdir()
    (tmp_path / name / "inside.txt").write_bytes(USERS)
    result = invoke(run, "-o", str(tmp_path / name), "--force")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "is a directory" in lines[0], result.output  # click's check
    assert (tmp_path / name / "inside.txt").read_bytes() == USERS


@pytest.mark.parametrize("command", ["viz", "plot"])
def test_a_fifo_as_the_output_is_refused_at_once(run, tmp_path, command):
    """In a process of its own, with a timeout: a regression would wait for a reader for ever."""
    fifo = tmp_path / ("page.html" if command == "viz" else "bpc.png")
    os.mkfifo(fifo)
    args = [str(run.parent / "corpus.txt"), "-c", str(run), *QUICK_VIZ] if command == "viz" else [str(run)]
    result = subprocess.run(
        [sys.executable, "-m", "charrnn", command, *args, "-o", str(fifo), "--force"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert f"{fifo} is a named pipe, not a regular file, so charrnn will not replace it" in lines[0]


def _failing_probe(number: int):
    def create_new(path):  # as a read-only or full disk answers (tests run as root, which a mode does not stop)
        raise OSError(number, os.strerror(number), str(path))

    return create_new


@pytest.mark.parametrize("number", [errno.EROFS, errno.ENOSPC, errno.EACCES])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_that_cannot_take_the_file_is_refused_before_the_work(run, tmp_path, monkeypatch, number, command):
    invoke, name, _ = COMMANDS[command]
    monkeypatch.setattr(output, "create_new", _failing_probe(number))
    result = invoke(run, "-o", str(tmp_path / name))
    # one line, and nothing before it: viz says "(looking at ...)" as its work begins
    _refused(result, f"cannot write {tmp_path / name}: {os.strerror(number)} (in {tmp_path})")
    assert not (tmp_path / name).exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder all the same")
def test_viz_into_a_read_only_folder_is_refused_before_the_work(run, tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        _refused(_viz(run, "-o", str(folder / "page.html")), f"cannot write {folder / 'page.html'}: Permission denied")
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_write_that_fails_after_the_work_is_one_line_and_leaves_no_file(run, tmp_path, monkeypatch, command):
    invoke, name, _ = COMMANDS[command]

    def full(path, write):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(output, "write_atomic", full)
    result = invoke(run, "-o", str(tmp_path / name))
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and lines[-1] == f"Error: cannot write {tmp_path / name}: No space left on device"
    assert "Traceback" not in result.output and "unexpected" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_sample_writes_to_a_file_what_it_would_print_under_a_line_naming_the_model(run, tmp_path):
    target = tmp_path / "samples.txt"
    for args in (["-n", "2"], ["--prime", "the "]):
        written = _sample(run, *args, "-o", str(target))
        assert written.exit_code == 0 and written.stdout == "", written.output
        assert f"wrote {target}" in written.stderr
        printed = _sample(run, *args).stdout
        assert (
            target.read_text(encoding="utf-8") == f"--- charrnn sample of {run}/best.pt, step 20, seed 1 ---\n{printed}"
        )


def test_sampling_interrupted_while_writing_leaves_the_old_file_and_no_part_of_the_new(run, tmp_path, monkeypatch):
    target = tmp_path / "samples.txt"
    assert _sample(run, "-o", str(target)).exit_code == 0
    before = target.read_bytes()
    real_pick, picked = sample.pick_next, []

    def interrupted(*args, **kwargs):  # Ctrl-C (or a crash) halfway through the text
        picked.append(1)
        if len(picked) == 100:
            raise KeyboardInterrupt
        return real_pick(*args, **kwargs)

    monkeypatch.setattr(sample, "pick_next", interrupted)
    result = _sample(run, "--seed", "2", "-o", str(target))
    assert result.exit_code == 130 and len(picked) == 100, result.output
    assert target.read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["samples.txt"]  # no temporary file left


def test_sample_output_is_refused_with_interactive(run, tmp_path):
    result = _sample(run, "-i", "-o", str(tmp_path / "samples.txt"))
    assert result.exit_code == 2 and "leave out --output" in result.stderr
    assert not (tmp_path / "samples.txt").exists()

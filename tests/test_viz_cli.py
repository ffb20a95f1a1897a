"""`charrnn viz` end to end: the page it writes holds what the model really computes, for every
cell type and input mode, and the terminal mode colours the text."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_viz_report import VISIBLE, open_page

from charrnn.cli.commands import main
from helpers import PANGRAM, cli_in_fresh_process, fast_args

POEM = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n𠀀字在此。\n"
TEXT = 'she said "hello (there)" and left.\n' + PANGRAM


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny finished runs: an LSTM with embeddings, a GRU with one-hot input, a vanilla RNN."""
    folder = tmp_path_factory.mktemp("viz")
    corpus = folder / "corpus.txt"
    corpus.write_text((TEXT + POEM) * 40, encoding="utf-8")
    made = {}
    for name, options in {
        "lstm": {"cell": "lstm", "layers": 2},
        "gru": {"cell": "gru", "input": "one-hot"},
        "rnn": {"cell": "rnn"},
    }.items():
        out = folder / name
        args = ["train", str(corpus), *fast_args(**options), "--out", str(out), "--quiet"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        made[name] = out
    made["corpus"] = corpus
    return made


def page_data(page: Path) -> dict:
    found = re.search(
        r'<script type="application/json" id="charrnn-data">(.*?)</script>', page.read_text(encoding="utf-8"), re.S
    )
    assert found, "the page embeds its data"
    return json.loads(found[1])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_page_holds_the_text_the_predictions_and_every_section(runs, cell, tmp_path):
    page = tmp_path / "page.html"
    result = CliRunner().invoke(
        main, ["viz", str(runs["corpus"]), "-c", str(runs[cell]), "-o", str(page), "--chars", "300"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stderr and "page.html" in result.stderr
    data = page_data(page)
    text = runs["corpus"].read_text(encoding="utf-8")[:300]
    assert data["text"] == list(text)
    assert data["bits"][0] is None and all(b is not None and b >= 0 for b in data["bits"][1:])
    assert len(data["top_ids"]) == len(data["top_probs"]) == 5 * len(text)
    assert data["model"]["cell"] == cell
    layers = data["cells"]["layers"]
    assert len(layers) == data["model"]["layers"]
    assert all(len(base64.b64decode(layer["data"])) == layer["size"] * data["cells"]["chars"] for layer in layers)
    assert {f["property"] for f in data["findings"]} >= {"inside quotes", "bracket depth", "position in line"}
    assert (data["gates"] == []) == (cell == "rnn")
    assert len(data["memory"]["grad"]) == 200 and all(g >= 0 for g in data["memory"]["grad"])
    assert [s["temperature"] for s in data["samples"]] == [0.5, 0.8, 1.0, 1.3]
    assert all(len(s["text"]) == 300 for s in data["samples"])


def test_the_page_scores_the_text_as_eval_does(runs, tmp_path):
    """The page's mean surprise is eval's loss on the same characters read as one stream from a
    zero state: --windows (characters - 1) scores exactly that."""
    text = runs["corpus"].read_text(encoding="utf-8")[:499] + "\n"  # eval would add the newline a file lacks
    piece = tmp_path / "piece.txt"
    piece.write_text(text, encoding="utf-8")
    page = tmp_path / "page.html"
    assert CliRunner().invoke(main, ["viz", str(piece), "-c", str(runs["lstm"]), "-o", str(page)]).exit_code == 0
    scored = CliRunner().invoke(main, ["eval", str(piece), "-c", str(runs["lstm"]), "--windows", str(len(text) - 1)])
    assert scored.exit_code == 0, scored.output
    eval_bits = float(re.search(r"bits per character: ([\d.]+)", scored.stdout)[1])
    assert page_data(page)["mean_bits"] == pytest.approx(eval_bits, abs=2e-4)


def test_chinese_text_given_inline_keeps_every_character_whole(runs, tmp_path):
    page = tmp_path / "poem.html"
    result = CliRunner().invoke(main, ["viz", "--text", POEM, "-c", str(runs["lstm"]), "-o", str(page)])
    assert result.exit_code == 0, result.output
    data = page_data(page)
    assert data["text"] == list(POEM) and "𠀀" in data["text"]
    assert "verse position" in {f["property"] for f in data["findings"]}


def test_the_page_goes_to_the_run_folder_unless_told(runs):
    result = CliRunner().invoke(main, ["viz", "--text", TEXT, "-c", str(runs["gru"]), "--memory-span", "20"])
    assert result.exit_code == 0, result.output
    assert len(page_data(runs["gru"] / "viz.html")["memory"]["grad"]) == 20


def test_a_long_text_is_cut_to_the_characters_asked_for(runs, tmp_path):
    page = tmp_path / "page.html"
    args = ["viz", str(runs["corpus"]), "-c", str(runs["rnn"]), "-o", str(page), "--chars", "120"]
    assert CliRunner().invoke(main, args).exit_code == 0
    data = page_data(page)
    assert len(data["text"]) == 120 and "first 120 characters" in data["source"]


@pytest.mark.parametrize("extra", [[], ["--cell", "1:0"]])
def test_ansi_mode_colours_the_text_in_the_terminal(runs, extra):
    result = CliRunner().invoke(
        main,
        ["viz", "--text", TEXT, "-c", str(runs["lstm"]), "--ansi", "--color", "always", *extra],
        env={"NO_COLOR": "1"},
    )
    assert result.exit_code == 0, result.output
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    assert plain.rstrip("\n") == TEXT.rstrip("\n")
    assert result.stdout.count("48;2;") > len(TEXT) // 2  # a 24-bit background per character
    assert result.stderr.strip()  # the legend


def test_ansi_mode_writes_no_colour_codes_into_a_pipe_unless_told(runs):
    args = ["viz", "--text", TEXT, "-c", str(runs["lstm"]), "--ansi"]
    results = {
        given: CliRunner().invoke(main, [*args, *given.split()]) for given in ("", "--color auto", "--color never")
    }
    for result in results.values():  # CliRunner's stdout is no terminal
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and result.stdout == TEXT
    assert "not coloured (standard output is not a terminal); --color always" in results[""].stderr
    assert "not coloured" not in results["--color never"].stderr  # none asked for: nothing to explain


def _on_a_terminal(args: list[str], **env: str) -> str:
    """What `charrnn ARGS` writes to its stdout when that is a terminal (a pseudo-terminal)."""
    reader, writer = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "charrnn", *args],
        stdin=subprocess.DEVNULL,
        stdout=writer,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )
    os.close(writer)
    shown = b""
    while True:
        try:
            piece = os.read(reader, 1 << 16)
        except OSError:  # EIO: the process closed the terminal's other end
            break
        if not piece:
            break
        shown += piece
    os.close(reader)
    assert process.wait(timeout=120) == 0, process.stderr.read()
    return shown.decode("utf-8")


def test_ansi_mode_on_a_terminal_is_coloured_unless_no_color_is_set(runs):
    args = ["viz", "--text", "the fox", "-c", str(runs["lstm"]), "--ansi"]
    assert "\x1b[" in _on_a_terminal(args, NO_COLOR="")  # set but empty: as if unset (no-color.org)
    plain = _on_a_terminal(args, NO_COLOR="1")
    assert "\x1b" not in plain and plain.replace("\r\n", "\n") == "the fox\n"


@pytest.mark.parametrize("how", ["cli", "env"])
def test_a_color_that_is_none_of_the_three_is_refused_in_one_line(runs, how):
    args = ["viz", "--text", "the fox", "-c", str(runs["lstm"]), "--ansi"]
    result = (
        CliRunner().invoke(main, [*args, "--color", "sometimes"])
        if how == "cli"
        else CliRunner().invoke(main, args, env={"CHARRNN_VIZ_COLOR": "sometimes"})
    )
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "'--color': 'sometimes' is not one of 'auto', 'always', 'never'" in lines[0]
    assert how == "cli" or "CHARRNN_VIZ_COLOR" in lines[0]


def test_ansi_mode_imports_no_torch(runs):
    stdout, imported_torch = cli_in_fresh_process(
        ["viz", "--text", "the fox", "-c", runs["lstm"], "--ansi", "--color", "always"]
    )
    assert not imported_torch
    assert "the fox" in re.sub(r"\x1b\[[0-9;]*m", "", stdout)


@pytest.mark.slow
def test_a_page_charrnn_viz_wrote_works_in_a_real_browser(runs, chromium, tmp_path):
    """The page of a real model, opened in headless Chromium: the text is there, the panel of a
    tapped character shows the model's guesses for it, the cell list is filled, no errors."""
    page = tmp_path / "page.html"
    result = CliRunner().invoke(main, ["viz", "--text", TEXT + POEM, "-c", str(runs["lstm"]), "-o", str(page)])
    assert result.exit_code == 0, result.output
    data = page_data(page)
    position = data["text"].index("(")
    root = open_page(chromium, tmp_path, data, position)
    assert root.by_id("pred-text").text() == TEXT + POEM
    panel = root.by_id("pred-panel")
    guesses = [data["vocab"][i] for i in data["top_ids"][5 * position : 5 * position + 5]]
    assert [node.text() for node in panel.all(cls="guess-char")] == [VISIBLE.get(g, g) for g in guesses]
    assert len(root.all("button", "finding-cell")) >= 3

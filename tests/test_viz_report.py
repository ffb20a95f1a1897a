"""The report page and the terminal colours: the page carries its data back unchanged, fetches
nothing, cannot be broken out of by the text it shows, stays small, and works in a real browser."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from charrnn.inspect.page import (
    RESET,
    SCALES,
    ansi_legend,
    ansi_text,
    cell_chars_that_fit,
    colour,
    page_output,
    render_html,
    write_html,
)
from charrnn.settings.cells import CELLS

# Quotes, markup that must stay text, a script end tag, a non-BMP character (one entry, two
# UTF-16 units in the browser), brackets, a tab, and a character outside the vocabulary.
SKIPPED = "¤"
FRAGMENT = 'He said "hi" </script><b>bold</b> & 𠀀 (a [b]) ' + SKIPPED + "\n\tnext line\u2028 it's\n"
GATES = {"lstm": ("input", "forget", "output"), "gru": ("reset", "update"), "rnn": ()}


def report_data(
    text: str = FRAGMENT * 3, cell: str = "lstm", layers: int = 2, hidden_size: int = 8, cells_chars: int | None = None
) -> dict[str, Any]:
    """A report's data as viz.page_data builds it, with made-up numbers."""
    rng = np.random.default_rng(0)
    characters = list(text)
    vocab = [""] + sorted((set(characters) | set("etaoin ")) - {SKIPPED})  # at least five guesses
    count = len(characters)
    chars = count if cells_chars is None else cells_chars
    predicted = np.array([t > 0 and char != SKIPPED for t, char in enumerate(characters)])
    bits = np.round(rng.uniform(0, 10, count), 3)
    top_ids = np.argsort(rng.random((count, len(vocab))), axis=1)[:, :5]
    top_probs = -np.sort(-rng.integers(0, 400, (count, 5)), axis=1)
    top_ids[~predicted], top_probs[~predicted] = -1, 0
    activations = rng.integers(0, 256, (layers, hidden_size, chars), dtype=np.uint8)
    return {
        "version": 1,
        "model": {
            "path": "out/<latest>.safetensors",
            "step": 12000,
            "cell": cell,
            "cell_title": CELLS[cell].title,
            "update_rule": CELLS[cell].update_rule,
            "layers": layers,
            "hidden_size": hidden_size,
            "input_mode": "embedding",
            "parameters": 876929,
            "vocab_size": len(vocab),
        },
        "source": 'a "test" text </script> (first 100 characters)',
        "vocab": vocab,
        "text": characters,
        "bits": [float(b) if p else None for b, p in zip(bits, predicted)],
        "mean_bits": round(float(bits[predicted].mean()), 3) if predicted.any() else None,
        "top_ids": top_ids.ravel().tolist(),
        "top_probs": top_probs.ravel().tolist(),
        "cells": {
            "chars": chars,
            "quantity": CELLS[cell].quantity,
            "layers": [
                {"size": hidden_size, "data": base64.b64encode(layer.tobytes()).decode()} for layer in activations
            ],
        },
        "findings": [
            {
                "property": "inside quotes",
                "description": 'Between an opening " and its closing one.',
                "cells": [{"layer": layers, "cell": 3, "r": 0.912}, {"layer": 1, "cell": 0, "r": -0.415}],
            },
            {
                "property": "line start",
                "description": "The first character of a line.",
                "cells": [{"layer": 1, "cell": 5, "r": 0.5}],
            },
        ],
        "gates": [
            {
                "layer": layer,
                "gate": gate,
                "left": rng.uniform(0, 0.5, hidden_size).round(3).tolist(),
                "right": rng.uniform(0, 0.5, hidden_size).round(3).tolist(),
            }
            for layer in range(1, layers + 1)
            for gate in GATES[cell]
        ],
        "memory": {"grad": [0.9**k for k in range(1, 150)] + [0.0] * 10, "windows": 64} if cell != "rnn" else None,
        "samples": [
            {"temperature": temperature, "prime": "He said ", "text": "He said </script><b>no</b> more\nthan that"}
            for temperature in (0.5, 0.8, 1.0, 1.3)
        ],
    }


def data_block(page: str, name: str = "charrnn-data") -> str:
    match = re.search(f'<script type="application/json" id="{name}">(.*?)</script>', page, re.DOTALL)
    assert match, f"no {name} script in the page"
    return match[1]


# ---- the page, without a browser ---------------------------------------------------------


def test_the_page_carries_its_data_back_unchanged():
    for cell in GATES:
        data = report_data(cell=cell)
        assert json.loads(data_block(render_html(data))) == data


def test_the_page_carries_the_colour_scales_it_shares_with_the_terminal():
    assert json.loads(data_block(render_html(report_data()), "charrnn-scales")) == json.loads(json.dumps(SCALES))


def test_no_text_can_close_the_script_that_carries_it():
    data = report_data(text="</script><script>alert(1)</script><!-- \u2028\u2029 & <b>x</b>")
    page = render_html(data)
    empty_page = render_html(report_data(text="x"))
    assert page.count("</script>") == empty_page.count("</script>")
    block = data_block(page)
    assert not set("<>&\u2028\u2029") & set(block)
    assert json.loads(block)["text"] == data["text"]


def test_a_lone_surrogate_in_the_text_is_carried_as_an_escape():
    data = report_data(text="a\udc80b")
    page = render_html(data)
    page.encode("utf-8")  # would raise on a raw surrogate
    assert json.loads(data_block(page))["text"] == ["a", "\udc80", "b"]


def test_the_page_fetches_nothing():
    page = render_html(report_data())
    outside_the_data = page.replace(data_block(page), "")
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:|//|file:)""", outside_the_data, re.IGNORECASE)
    assert "@import" not in page and "url(" not in page
    assert not re.search(r"<(link|iframe|img|object|embed)\b", outside_the_data, re.IGNORECASE)
    assert not re.search(r"<script[^>]*\bsrc=", page, re.IGNORECASE)
    assert not re.search(r"\b(fetch|XMLHttpRequest|import)\s*\(", outside_the_data)


def test_the_pages_fonts_name_faces_with_chinese_glyphs_for_text_and_code():
    """Without a CJK face in the stack, a minimal Linux shows Chinese text as empty boxes."""
    style = re.search(r"<style>(.*?)</style>", render_html(report_data()), re.DOTALL)[1]
    stacks = dict(re.findall(r"--(sans|mono|cjk):([^;]*);", style))
    assert {'"Noto Sans CJK SC"', '"Source Han Sans SC"', '"PingFang SC"', '"Microsoft YaHei"'} <= set(
        re.findall(r'"[^"]+"', stacks["cjk"])
    )
    assert "var(--cjk)" in stacks["sans"] and stacks["sans"].strip().endswith("sans-serif")
    assert '"Noto Sans Mono CJK SC"' in stacks["mono"] and "var(--cjk)" in stacks["mono"]
    assert stacks["mono"].strip().endswith("monospace")
    assert "font: 16px/1.55 var(--sans);" in style


def test_twenty_thousand_characters_and_a_default_models_cells_stay_under_3_mb():
    rng = np.random.default_rng(1)
    alphabet = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ,.;:'!?-\n&$3")
    text = "".join(rng.choice(alphabet, 20_000))
    data = report_data(text=text, layers=2, hidden_size=256, cells_chars=2_900)
    # pessimistic numbers: three-digit probabilities, bits with three decimals everywhere
    data["top_probs"] = rng.integers(100, 1000, 5 * 20_000).tolist()
    size = len(render_html(data).encode("utf-8"))
    assert size < 3_000_000, f"{size:,} bytes"


def test_the_activations_that_fit_fill_the_budget_and_no_more():
    text = "".join(np.random.default_rng(2).choice(list("abc def\n"), 5_000))
    chars = cell_chars_that_fit(report_data(text=text, hidden_size=64), 2 * 64, budget=400_000)
    assert 500 < chars < 5_000
    for fitted, inside in ((chars, True), (chars + 20, False)):
        size = len(render_html(report_data(text=text, hidden_size=64, cells_chars=fitted)).encode("utf-8"))
        assert (size <= 400_000) == inside, (fitted, size)
    assert cell_chars_that_fit(report_data(text="short"), 512) == len("short")


def test_write_html_writes_the_page_whole(tmp_path):
    data = report_data()
    path = tmp_path / "report.html"
    path.write_text("an old report")
    write_html(data, page_output(path, force=True))
    assert path.read_text(encoding="utf-8") == render_html(data)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_data_whose_parts_disagree_is_refused(tmp_path):
    data = report_data()
    data["bits"] = data["bits"][:-1]
    with pytest.raises(ValueError, match="bits has"):
        render_html(data)
    data = report_data(cells_chars=10)
    data["cells"]["layers"][0]["data"] = data["cells"]["layers"][0]["data"][:-8]
    with pytest.raises(ValueError, match="layer 1's activations"):
        write_html(data, page_output(tmp_path / "report.html"))
    assert not (tmp_path / "report.html").exists()


# ---- the terminal ------------------------------------------------------------------------


def background(rgb: tuple[int, int, int]) -> str:
    return "48;2;{};{};{}m".format(*rgb)


def test_the_scales_run_blue_white_red_and_calm_to_hot():
    blue, white, red = colour(-1, "activation"), colour(0, "activation"), colour(1, "activation")
    assert blue[2] > blue[0] and red[0] > red[2] and white == (255, 255, 255)
    assert colour(-5, "activation") == blue and colour(5, "activation") == red
    assert colour(0, "surprise") == (255, 255, 255)
    assert colour(20, "surprise") == colour(8, "surprise") != colour(4, "surprise")
    assert sum(colour(3, "surprise")) < sum(colour(1, "surprise"))  # hotter is darker


def test_ansi_text_resets_before_every_newline_and_at_the_end():
    text = list("ab\ncd\n\nef")
    shown = ansi_text(text, [1.0, 2.0, 3.0, None, 9.0, 0.0, 1.0, 2.0, float("nan")], "surprise")
    assert shown.count("\n") == 3
    assert all(shown[i - len(RESET) : i] == RESET for i, char in enumerate(shown) if char == "\n")
    assert shown.endswith(RESET)
    assert re.sub(r"\x1b\[[0-9;]*m", "", shown) == "".join(text)


def test_ansi_text_colours_each_value_and_leaves_none_uncoloured():
    shown = ansi_text(["x", "y", "z"], [-1.0, None, 1.0], "activation")
    assert background(colour(-1, "activation")) + "x" in shown
    assert background(colour(1, "activation")) + "z" in shown
    assert RESET + "y" in shown  # y is written with no colour at all
    assert shown.count("48;2;") == 2


def test_ansi_text_sends_no_control_character_of_the_text():
    shown = ansi_text(["\x1b", "]", "2", ";", "\r", "\t", "𠀀"], [1.0] * 7, "surprise")
    assert "\r" not in shown and "\x1b]" not in shown
    assert "\\x1b" in shown and "\t" in shown and "𠀀" in shown


def test_ansi_text_uncoloured_is_the_text_alone_with_control_characters_escaped():
    assert ansi_text(list("a\x1bb\tc\n"), [1.0, 2.0, 3.0, None, 4.0, 5.0], "surprise", coloured=False) == "a\\x1bb\tc\n"


def test_ansi_text_refuses_values_that_do_not_match_the_text():
    with pytest.raises(ValueError):
        ansi_text(["a", "b"], [1.0], "surprise")


def test_ansi_legend_is_one_coloured_line_per_scale():
    for scale, words in (("surprise", ("bits", "8+")), ("activation", ("-1", "+1", "blue", "red"))):
        legend = ansi_legend(scale)
        assert "\n" not in legend and "48;2;" in legend and RESET in legend
        assert all(word in legend for word in words)


# ---- the page in a real browser (headless Chromium) ---------------------------------------

VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "": "⟨unknown⟩", "\u2028": "U+2028"}


@dataclass
class Node:
    """An element of a page parsed back from the browser's DOM."""

    tag: str
    attributes: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)

    def all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        found = (
            [self]
            if (tag in (None, self.tag) and (cls is None or cls in self.attributes.get("class", "").split()))
            else []
        )
        return found + [node for child in self.children if isinstance(child, Node) for node in child.all(tag, cls)]

    def by_id(self, id: str) -> Node:
        (node,) = [node for node in self.all() if node.attributes.get("id") == id]
        return node


class _TreeBuilder(HTMLParser):
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        while len(self.stack) > 1 and self.stack.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html)
    return builder.root


def open_page(chromium, tmp_path: Path, data: dict[str, Any], position: int) -> Node:
    """The page's DOM after its script ran and its self-test hook tapped character `position`."""
    path = tmp_path / "report.html"
    write_html(data, page_output(path))
    root = parse(chromium("--dump-dom", f"{path.as_uri()}#selftest={position}"))
    (html,) = root.all("html")
    assert json.loads(html.attributes["data-errors"]) == []
    assert html.attributes.get("data-selftest") == "done"
    return root


@pytest.mark.slow
def test_the_page_works_in_a_real_browser(chromium, tmp_path):
    data = report_data(cell="lstm")
    position = data["text"].index("𠀀")
    page = open_page(chromium, tmp_path, data, position)

    assert page.by_id("pred-text").text() == "".join(data["text"])
    assert len(page.by_id("pred-text").all("span")) == len(data["text"])  # the astral character is one span
    panel = page.by_id("pred-panel")
    assert "hidden" not in panel.attributes
    assert [node.text() for node in panel.all(cls="panel-char")] == ["𠀀"]
    guesses = [data["vocab"][i] for i in data["top_ids"][5 * position : 5 * position + 5]]
    probabilities = [f"{p / 10:.1f} %" for p in data["top_probs"][5 * position : 5 * position + 5]]
    assert [node.text() for node in panel.all(cls="guess-char")] == [VISIBLE.get(g, g) for g in guesses]
    assert [node.text() for node in panel.all(cls="guess-prob")] == probabilities
    (bits,) = re.findall(r"([0-9.]+) bits", panel.text())
    assert float(bits) == pytest.approx(data["bits"][position], abs=0.006)

    buttons = page.all("button", "finding-cell")
    assert len(buttons) == sum(len(finding["cells"]) for finding in data["findings"]) == 3
    first = data["findings"][0]["cells"][0]
    assert page.by_id("cell-title").text().startswith(f"Layer {first['layer']}, cell {first['cell']}")
    assert [b.attributes["aria-pressed"] for b in buttons] == ["true", "false", "false"]
    assert len(page.by_id("cell-text").all("span")) == data["cells"]["chars"]
    assert len(page.by_id("gate-plots").all("figure")) == 2 * 3
    assert len(page.by_id("memory-plot").all("polyline")) == 1
    assert len(page.by_id("samples").all("article")) == 4
    assert "</script><b>bold</b>" in page.by_id("pred-text").text()  # shown as text, not markup
    assert not page.by_id("pred-text").all("b")


@pytest.mark.slow
def test_an_adapted_page_shades_by_what_learning_saved(chromium, tmp_path):
    data = report_data()
    learnt = [None if bits is None else round(bits / 2, 3) for bits in data["bits"]]
    data["adapted"] = {"bits": learnt, "mean_bits": 2.5, "settings": "--adapt-lr 0.0001"}
    position = next(i for i, bits in enumerate(data["bits"]) if bits is not None and bits > 1)
    path = tmp_path / "report.html"
    write_html(data, page_output(path))
    pages = {
        shade: parse(chromium("--dump-dom", f"{path.as_uri()}#selftest={position}&shade={shade}"))
        for shade in ("trained", "adapted", "saved")
    }
    expected = {
        "trained": colour(data["bits"][position], "surprise"),
        "adapted": colour(learnt[position], "surprise"),
        "saved": colour(data["bits"][position] - learnt[position], "saved"),
    }
    for shade, page in pages.items():
        (html,) = page.all("html")
        assert json.loads(html.attributes["data-errors"]) == []
        span = page.by_id("pred-text").all("span")[position]
        assert f"rgb({', '.join(map(str, expected[shade]))})" in span.attributes["style"], shade
    assert "Bits saved" in pages["saved"].by_id("surprise-legend").text()
    assert "Learning as it reads" in pages["trained"].by_id("facts").text()
    assert "learning as it reads: " in pages["trained"].by_id("pred-panel").text()
    assert "hidden" in open_page(chromium, tmp_path, report_data(), 0).by_id("pred-modes").attributes


@pytest.mark.slow
def test_a_vanilla_rnn_page_says_it_has_no_gates_and_no_memory_curve(chromium, tmp_path):
    data = report_data(cell="rnn", layers=1, cells_chars=20)
    page = open_page(chromium, tmp_path, data, 0)
    assert "no gates" in page.by_id("gates-explain").text()
    assert "Not computed" in page.by_id("memory-plot").text()
    assert "first character" in page.by_id("pred-panel").text()
    assert "first 20 of the" in page.by_id("cell-note").text()
    assert page.by_id("cell-text").text() == "".join(data["text"][:20])


@pytest.mark.slow
def test_a_screenshot_of_the_page_shows_something(chromium, tmp_path):
    path = tmp_path / "report.html"
    write_html(report_data(cell="lstm"), page_output(path))
    screenshot = tmp_path / "report.png"
    chromium(
        f"--screenshot={screenshot}", "--window-size=1280,2600", "--hide-scrollbars", f"{path.as_uri()}#selftest=30"
    )
    width, height, pixels = read_png(screenshot.read_bytes())
    assert (width, height) == (1280, 2600)
    assert len(set(pixels)) > 64  # text, colours and plots: not a blank or single-colour page


def read_png(png: bytes) -> tuple[int, int, bytes]:
    """(width, height, the decompressed scanlines) of a PNG file."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = {}, 8
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        chunks[kind] = chunks.get(kind, b"") + png[offset + 8 : offset + 8 + length]
        offset += 12 + length
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    return width, height, zlib.decompress(chunks[b"IDAT"])

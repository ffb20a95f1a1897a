#!/usr/bin/env python3
"""The web page `charrnn export --html` writes, for models of the default shape on tiny
Shakespeare's 65 characters and on all Tang poems' 9,589: its size in float32 and float16, how
fast it opens, and how fast it writes in headless Chromium (Debian's `chromium`).

The models have random weights: the work per character depends on the shape and the vocabulary
alone. Each round opens a float16 page afresh with `#length=N&<setting>&seed=S&run`, for the three
settings the parity tests use, and reads what the page measured itself (performance.now(), in
real time: characters a second, the longest stretch it went without answering, the time until
its script was ready, the time to lay out the weights on the first run).

    python scripts/bench_page.py              # writes the "page" section of docs/benchmarks.md
    python scripts/bench_page.py --no-write   # prints it only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_doc import check_section, machine_description, replace_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
TANG = ROOT.parent / "shared" / "data" / "tang_poems.txt"
# The settings the page's parity tests write with, named as `charrnn sample`'s options (and the
# page's URL fragment).
SETTINGS = {
    "temperature 0.8": {"temperature": 0.8},
    "top-k 5": {"top_k": 5},
    "top-p 0.9 at temperature 1.2": {"top_p": 0.9, "temperature": 1.2},
}


def page_model(text: str):
    """A model of the default shape on `text`'s characters, with random weights: the work per
    character depends on the shape and the vocabulary alone."""
    from charrnn.core.model import CharRNN
    from charrnn.core.vocab import Vocab
    from charrnn.inspect.model_page import PageModel
    from charrnn.settings.config import ModelConfig

    vocab = Vocab(sorted(set(text)))
    config = ModelConfig(vocab_size=len(vocab))
    model = CharRNN(config)
    weights = {name: value.detach().numpy() for name, value in model.state_dict().items()}
    return PageModel(config, vocab, weights)


def corpora() -> dict[str, str]:
    """Tiny Shakespeare's 65 characters and all Tang poems' 9,589, or stand-ins of their sizes
    (printable ASCII and a newline; the first 9,589 CJK ideographs) where ../shared/data lacks them."""
    found = {}
    for name, path, stand_in in (
        ("tiny Shakespeare", SHAKESPEARE, "".join(map(chr, range(32, 127))) + "\n"),
        ("all Tang poems", TANG, "".join(map(chr, range(0x4E00, 0x4E00 + 9_589)))),
    ):
        found[name if path.exists() else f"{name} (stand-in)"] = (
            path.read_text(encoding="utf-8") if path.exists() else stand_in
        )
    return found


def chromium() -> str:
    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if binary is None:
        raise SystemExit("Error: no chromium on PATH (Debian: apt-get install chromium)")
    return binary


# Waits for the page to finish and hands back what it measured (its output's data- attributes).
_FINISHED = """new Promise((done) => {
  const look = () => {
    const output = document.getElementById("output"), html = document.documentElement;
    if (output && output.hasAttribute("data-done")) {
      const status = document.getElementById("status").textContent;
      done(JSON.stringify({...html.dataset, ...output.dataset, status, chars: [...output.textContent].length}));
    }
    else setTimeout(look, 50);
  };
  look();
})"""


def run_page(binary: str, page: Path, fragment: str, profile: Path, meanwhile: str = "") -> dict[str, str]:
    """Open the page in a fresh headless Chromium, in real time (a virtual-time budget, as the tests
    use, stops the page's own clock while it works), and read its measures when it has finished:
    Chrome's DevTools protocol over the pipes of --remote-debugging-pipe (its fds 3 and 4).
    `meanwhile`: JavaScript run in the page while it writes (as a person clicking would), and
    the status line is read too (`status`)."""
    to_browser, from_browser = os.pipe(), os.pipe()

    def connect() -> None:
        reading, writing = os.dup(to_browser[0]), os.dup(from_browser[1])  # never 3 or 4 themselves
        os.dup2(reading, 3)
        os.dup2(writing, 4)

    flags = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-dev-shm-usage"]
    command = [binary, *flags, f"--user-data-dir={profile}", "--remote-debugging-pipe", f"{page.as_uri()}#{fragment}"]
    browser = subprocess.Popen(command, preexec_fn=connect, close_fds=False, stderr=subprocess.DEVNULL)
    os.close(to_browser[0]), os.close(from_browser[1])
    replies = _Pipe(to_browser[1], from_browser[0])
    try:
        target = next(t for t in replies.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        session = replies.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)["sessionId"]
        for _attempt in range(50):  # the page may still be replacing the blank one it opened as
            try:
                found = replies.call(
                    "Runtime.evaluate", session, expression=meanwhile + _FINISHED, awaitPromise=True, returnByValue=True
                )
                break
            except _Refused:
                time.sleep(0.1)
        else:
            raise SystemExit("Error: the page never became ready to ask")
        replies.call("Browser.close")
    finally:
        browser.wait(timeout=60)
    return {
        f"data-{re.sub('([A-Z])', lambda m: '-' + m[1].lower(), k)}": v
        for k, v in json.loads(found["result"]["value"]).items()
    }


class _Refused(Exception):
    """The browser answered a call with an error."""


class _Pipe:
    """The browser's end of the DevTools protocol: JSON messages, each ended by a NUL byte."""

    def __init__(self, write: int, read: int):
        self.write, self.read, self.pending, self.count = write, read, b"", 0

    def call(self, method: str, session: str | None = None, **params):
        self.count += 1
        message = {"id": self.count, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self.write, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.pending:
                chunk = os.read(self.read, 1 << 16)
                if not chunk:
                    raise SystemExit(f"Error: the browser closed before answering {method}")
                self.pending += chunk
            line, self.pending = self.pending.split(b"\0", 1)
            reply = json.loads(line)
            if reply.get("id") == self.count:
                if "error" in reply:
                    raise _Refused(f"{method}: {reply['error']}")
                return reply.get("result", {})


def spread(values: list[float], digits: int = 0) -> str:
    median, low, high = (f"{v:,.{digits}f}" for v in (statistics.median(values), min(values), max(values)))
    return f"{median} ({low}–{high})"


def measure(binary: str, page: Path, settings: dict, length: int, rounds: int, profile: Path) -> dict[str, list[float]]:
    """Each round opens the page afresh and writes `length` characters with a seed of its own."""
    fragment = urllib.parse.urlencode(settings)
    found = [run_page(binary, page, f"length={length}&{fragment}&seed={seed}&run", profile) for seed in range(rounds)]
    keys = ("data-chars-per-second", "data-longest-slice-ms", "data-opened-ms", "data-build-ms")
    return {key: [float(round_[key]) for round_ in found] for key in keys}


def sampler_rates(model, settings: dict, length: int, rounds: int) -> list[float]:
    """Characters a second of `charrnn sample`'s sampler (in this process, on one thread) on the
    page's float16 weights, as the page's rounds write them, once its weights are laid out."""
    from charrnn.core.numpy_model import NumpyCharRNN
    from charrnn.core.sampling import generate_text
    from charrnn.core.threads import blas_threads, running_on
    from charrnn.settings.config import SampleConfig
    from charrnn.store.loading import LoadedModel

    weights = {name: np.asarray(value, np.float16).astype(np.float32) for name, value in model.weights.items()}
    loaded = LoadedModel(NumpyCharRNN(model.config, weights), model.vocab, Path("page"), 0)
    rates = []
    with running_on(blas_threads(), 1):
        sum(1 for _ in generate_text(loaded, None, SampleConfig(length=1)))  # as the page, weights laid out first
        for seed in range(rounds):
            began = time.perf_counter()
            made = sum(1 for _ in generate_text(loaded, None, SampleConfig(length=length, **settings), seed=seed))
            rates.append(made / (time.perf_counter() - began))
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--length", type=int, default=20_000, help="characters each round writes (a tenth of it for the Chinese model)"
    )
    parser.add_argument("--no-write", action="store_true", help="print the section without writing it")
    args = parser.parse_args()
    if not args.no_write:
        check_section("page")
    from charrnn.inspect.model_page import render_page

    binary = chromium()
    sizes, speeds, models = [], [], {}
    with tempfile.TemporaryDirectory() as folder:
        for number, (corpus, text) in enumerate(corpora().items()):
            models[corpus] = model = page_model(text)
            pages = {}
            for dtype in (np.float32, np.float16):
                pages[dtype] = Path(folder) / f"{number}-{np.dtype(dtype).name}.html"
                pages[dtype].write_text(render_page(model, dtype, "model.pt"), encoding="utf-8")
            sizes.append((corpus, model, *(path.stat().st_size for path in pages.values())))
            length = args.length if number == 0 else max(1, args.length // 10)
            for setting, settings in SETTINGS.items():
                measured = measure(binary, pages[np.float16], settings, length, args.rounds, Path(folder) / "profile")
                measured["sampler"] = sampler_rates(model, settings, length, args.rounds)
                speeds.append((corpus, setting, length, measured))
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    size_rows = "\n".join(
        f"| {corpus} | {len(model.vocab):,} | {model.config.parameter_count:,} | {f32:,} | {f16:,} |"
        for corpus, model, f32, f16 in sizes
    )
    speed_rows = "\n".join(
        f"| {corpus} | {setting} | {length:,} | {spread(m['data-chars-per-second'])} | {spread(m['sampler'])} | "
        f"{spread(m['data-longest-slice-ms'], 1)} | {spread(m['data-opened-ms'])} | {spread(m['data-build-ms'])} |"
        for corpus, setting, length, m in speeds
    )
    body = (
        f"Command: `python scripts/bench_page.py`  \nMachine: {machine_description()}; {version}, headless\n"
        + f"""
Models of the default shape (LSTM 2x256, embedding 64) on each corpus's characters:

| corpus | characters | parameters | page, float32 weights, bytes | page, float16 weights (`--half`), bytes |
| --- | ---: | ---: | ---: | ---: |
{size_rows}

The float16 pages, {args.rounds} rounds each (median, range): characters a second, and beside it
`charrnn sample`'s sampler on the same weights and settings (in process, one thread, Python
{platform.python_version()}); the longest stretch the page went without answering; the time
until its script was ready after the page was asked for; laying out the weights on the first run.

| corpus | setting | characters a round | page, characters a second | `charrnn sample`'s sampler, characters a second | longest stretch without answering, ms | script ready, ms | weights laid out, ms |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |
{speed_rows}
"""
    )
    print(body)
    if not args.no_write:
        replace_section("page", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

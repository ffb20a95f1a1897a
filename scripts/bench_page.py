#!/usr/bin/env python3
"""The web page `charrnn export --html` writes, for the default model: its size in float32 and
float16, how fast it opens, and how fast it writes in headless Chromium (Debian's `chromium`).

The model has the default shape (LSTM 2x256, embedding 64) on tiny Shakespeare's 65 characters
(printable ASCII and a newline where tiny Shakespeare is not in ../shared/data), with random
weights: the work per character depends on the shape alone. Each round opens the page afresh
with `#length=N&temperature=0.8&seed=S&run` and reads what the page measured itself
(performance.now(), in real time: characters a second, the longest stretch it went without
answering, the time until its script was ready, the time to lay out the weights on the first run).

    python scripts/bench_page.py              # writes the "page" section of docs/benchmarks.md
    python scripts/bench_page.py --no-write   # prints it only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_doc import check_section, machine_description, replace_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


def default_model():
    from charrnn.core.model import CharRNN
    from charrnn.core.vocab import Vocab
    from charrnn.inspect.model_page import PageModel
    from charrnn.settings.config import ModelConfig

    text = SHAKESPEARE.read_text(encoding="utf-8") if SHAKESPEARE.exists() else "".join(map(chr, range(32, 127))) + "\n"
    vocab = Vocab(sorted(set(text)))
    config = ModelConfig(vocab_size=len(vocab))
    model = CharRNN(config)
    weights = {name: value.detach().numpy() for name, value in model.state_dict().items()}
    return PageModel(config, vocab, weights)


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--length", type=int, default=20_000, help="characters each round writes")
    parser.add_argument("--no-write", action="store_true", help="print the section without writing it")
    args = parser.parse_args()
    if not args.no_write:
        check_section("page")
    from charrnn.inspect.model_page import render_page

    binary, model = chromium(), default_model()
    with tempfile.TemporaryDirectory() as folder:
        pages = {}
        for dtype in (np.float32, np.float16):
            pages[dtype] = Path(folder) / f"default-{np.dtype(dtype).name}.html"
            pages[dtype].write_text(render_page(model, dtype, "model.pt"), encoding="utf-8")
        rounds = [
            run_page(
                binary, pages[np.float16], f"length={args.length}&temperature=0.8&seed={seed}&run", Path(folder) / "p"
            )
            for seed in range(args.rounds)
        ]
        sizes = {dtype: path.stat().st_size for dtype, path in pages.items()}
    measured = {
        key: [float(found[key]) for found in rounds]
        for key in ("data-chars-per-second", "data-longest-slice-ms", "data-opened-ms", "data-build-ms")
    }
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    body = (
        f"Command: `python scripts/bench_page.py`  \nMachine: {machine_description()}; {version}, headless\n"
        + f"""

The default model (LSTM 2x256, embedding 64, {model.config.parameter_count:,} parameters, {len(model.vocab)} characters):

| page | bytes |
| --- | ---: |
| float32 weights | {sizes[np.float32]:,} |
| float16 weights (`--half`) | {sizes[np.float16]:,} |

The float16 page, {args.rounds} rounds of {args.length:,} characters at temperature 0.8 (median, range):

| measure | value |
| --- | ---: |
| characters a second | {spread(measured["data-chars-per-second"])} |
| longest stretch without answering the page, ms | {spread(measured["data-longest-slice-ms"], 1)} |
| script ready after the page was asked for, ms | {spread(measured["data-opened-ms"])} |
| laying out the weights on the first run, ms | {spread(measured["data-build-ms"])} |
"""
    )
    print(body)
    if not args.no_write:
        replace_section("page", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

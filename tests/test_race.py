"""Several `charrnn train` processes started at the same instant on one out folder, round after
round: exactly one owns the folder, every other is refused in one line (or, coming after the owner
has finished, finds its run complete), and the owner's run is exactly the run it would have been alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from charrnn.store.outdir import LATEST
from helpers import PANGRAM, assert_same_training_state, fast_args

pytestmark = pytest.mark.slow

PROCESSES, ROUNDS = 4, 5
FAST = fast_args(max_steps=40, quiet=True)
# Each process imports everything first, then waits for the starting gun, so that all of
# them reach the folder within a few milliseconds of each other.
LAUNCHER = """
import os, sys, time
import charrnn.cli.commands, charrnn.run.training
go = sys.argv[1]
open(f"{go}.ready-{os.getpid()}", "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
sys.argv = ["charrnn", *sys.argv[2:]]
charrnn.cli.commands.entry_point()
"""


# One thread each, the lone run too: a small model's numbers depend on the thread count.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _start_together(arguments: list[str], folder: Path) -> list[subprocess.CompletedProcess]:
    go = folder / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(go), *arguments],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    deadline = time.monotonic() + 300
    while len(list(folder.glob("go.ready-*"))) < PROCESSES and time.monotonic() < deadline:
        time.sleep(0.05)  # until every process has imported torch and waits
    go.write_text("")
    return [
        subprocess.CompletedProcess(p.args, p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in processes
    ]


def test_exactly_one_process_owns_a_folder_and_its_run_stays_exact(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PANGRAM * 40, encoding="utf-8")
    alone = tmp_path / "alone"
    assert (
        subprocess.run(
            [sys.executable, "-m", "charrnn", "train", str(corpus), *FAST, "--out", str(alone)], env=ENV
        ).returncode
        == 0
    )

    for round_number in range(ROUNDS):
        folder = tmp_path / f"round-{round_number}"
        folder.mkdir()
        results = _start_together(["train", str(corpus), *FAST, "--out", str(folder / "run")], folder)

        # One that takes the folder only once the owner has finished finds the same command's run
        # complete, says so and changes nothing (the owner's run is checked below).
        late = [r for r in results if r.returncode == 0 and "is complete" in r.stderr]
        owners = [r for r in results if r.returncode == 0 and r not in late]
        refused = [r for r in results if r.returncode != 0]
        assert len(owners) == 1, [r.stderr for r in results]
        for result in refused:
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 1 and len(lines) == 1, result.stderr
            assert "is in use by another charrnn training process" in lines[0]
        assert_same_training_state(alone / LATEST, folder / "run" / LATEST)
        steps = [json.loads(line)["step"] for line in (folder / "run" / "metrics.jsonl").read_text().splitlines()]
        assert steps == sorted(steps) and steps[-1] == 40  # one run's lines, none interleaved

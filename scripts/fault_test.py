#!/usr/bin/env python3
"""Kill a training run with SIGKILL again and again; check that nothing is lost or corrupted.

A small run with a fixed seed and frequent saves is started as a real `charrnn train`
process and killed with SIGKILL at random moments: some while it starts up, some while it
trains, some while it is writing a checkpoint. After each kill every checkpoint in the out
folder must load, and the run is resumed. At the end its weights must be bit-identical to
those of a run of the same command that was never stopped.

    python scripts/fault_test.py                  # 20 kills; prints the report
    python scripts/fault_test.py --write-docs     # ...and records it in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEP_LINE = re.compile(r"^step ([\d,]+)/")

# A tiny model and frequent saves: many saves per second, so kills often land inside one.
SAVE_EVERY = 5
MAX_STEPS = 1500
TRAIN_OPTIONS = [
    "--hidden-size",
    "48",
    "--layers",
    "2",
    "--seq-len",
    "16",
    "--batch-size",
    "4",
    "--embed-dim",
    "16",
    "--max-steps",
    str(MAX_STEPS),
    "--save-every",
    str(SAVE_EVERY),
    "--eval-every",
    "100",
    "--log-every",
    "1",
    "--keep",
    "2",
    "--seed",
    "7",
    "--device",
    "cpu",
]


@dataclass
class FaultReport:
    kills: int = 0
    kills_while_starting: int = 0
    kills_while_training: int = 0
    kills_inside_a_save: int = 0  # proven by a half-written temporary file left behind
    resumes: int = 0
    resumes_failed: int = 0
    checkpoints_checked: int = 0
    corrupt_checkpoints: int = 0
    max_steps_lost: int = 0
    save_every: int = SAVE_EVERY
    final_step: int = 0
    final_weights_identical: bool = False
    differences: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            self.corrupt_checkpoints == 0
            and self.resumes_failed == 0
            and self.max_steps_lost <= self.save_every
            and self.final_weights_identical
            and self.final_step == MAX_STEPS
        )


class Training:
    """A `charrnn train` process whose progress (the last step it reported) is followed live."""

    def __init__(self, corpus: Path, out: Path, resume: bool):
        args = [sys.executable, "-m", "charrnn", "train", str(corpus), *TRAIN_OPTIONS, "--out", str(out)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            args + (["--resume"] if resume else []),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.last_step: int | None = None
        self.stderr: list[str] = []
        self.reader = threading.Thread(target=self._follow, daemon=True)
        self.reader.start()

    def _follow(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line)
            match = STEP_LINE.match(line)
            if match:
                self.last_step = int(match[1].replace(",", ""))

    def wait_until_training(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while self.last_step is None and self.process.poll() is None and time.time() < deadline:
            time.sleep(0.005)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.reader.join(timeout=10)


def _half_written(out: Path) -> bool:
    """Whether a checkpoint is being written in `out` (or was, when its writer was killed)."""
    try:
        return any(".charrnn-tmp-" in name for name in os.listdir(out))
    except FileNotFoundError:  # killed before it made the folder
        return False


def _kill_inside_a_save(training: Training, out: Path, timeout: float = 5) -> None:
    """SIGKILL the process as soon as a checkpoint is being written."""
    deadline = time.time() + timeout
    while time.time() < deadline and training.process.poll() is None and not _half_written(out):
        pass
    training.kill()


def _check_checkpoints(out: Path, report: FaultReport) -> None:
    from charrnn.errors import CheckpointError
    from charrnn.store.checkpoint import read_checkpoint
    from charrnn.store.outdir import OutDir

    for name in OutDir(out).checkpoint_names():  # empty if the folder is not there yet
        report.checkpoints_checked += 1
        try:
            read_checkpoint(out / name)
        except CheckpointError as error:
            report.corrupt_checkpoints += 1
            print(f"  CORRUPT: {name}: {error}", file=sys.stderr)


def _write_corpus(path: Path, seed: int) -> None:
    words = [
        "the",
        "of",
        "and",
        "to",
        "in",
        "a",
        "is",
        "that",
        "for",
        "it",
        "as",
        "with",
        "was",
        "on",
        "be",
        "by",
        "at",
        "this",
        "had",
        "not",
        "are",
        "but",
        "from",
        "or",
        "have",
    ]
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) for _ in range(2500)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def training_state_differences(a, b) -> list[str]:
    """What differs, bit for bit, between the training states of two checkpoints (step,
    weights, optimizer moments, carried hidden state, random generator state)."""
    import torch

    differences = [] if a.step == b.step else [f"step {a.step} != {b.step}"]
    pairs = [("model", a.weights, b.weights), ("rng", a.rng["torch"], b.rng["torch"])]
    pairs += [(f"hidden[{i}]", x, y) for i, (x, y) in enumerate(zip(a.hidden, b.hidden))]
    pairs += [
        (f"optimizer[{key}]", value, b.optimizer["state"].get(key, {})) for key, value in a.optimizer["state"].items()
    ]
    for name, x, y in pairs:
        if isinstance(x, torch.Tensor):
            x, y = {"": x}, {"": y}
        for key in x:
            if not (isinstance(y.get(key), torch.Tensor) and torch.equal(x[key], y[key])):
                differences.append(f"{name}{'.' + str(key) if key else ''}")
    return differences


def run_fault_test(workdir: Path, kills: int = 20, seed: int = 0) -> FaultReport:
    """Kill and resume a run `kills` times; compare its end with an uninterrupted run."""
    from charrnn.store.checkpoint import read_checkpoint
    from charrnn.store.outdir import LATEST, OutDir

    rng = random.Random(seed)
    corpus = workdir / "corpus.txt"
    _write_corpus(corpus, seed)
    reference = Training(corpus, workdir / "reference", resume=False)  # runs alongside the kills
    out = workdir / "killed"
    report = FaultReport()
    while report.kills < kills:
        started = (out / LATEST).exists()
        training = Training(corpus, out, resume=started)
        report.resumes += started
        mode = report.kills % 3
        if mode == 0:  # while starting up: loading torch, the corpus, the checkpoint
            time.sleep(rng.uniform(0.0, 1.5))
            report.kills_while_starting += training.last_step is None
        else:
            training.wait_until_training()
        if mode == 1:
            time.sleep(rng.uniform(0.0, 0.5))
        if mode == 2:
            _kill_inside_a_save(training, out)
        else:
            training.kill()
        if training.process.returncode != -signal.SIGKILL:  # it ended on its own: a failure or the finish
            report.resumes_failed += training.process.returncode != 0
            print("".join(training.stderr[-5:]), file=sys.stderr)
            break
        report.kills += 1
        report.kills_while_training += training.last_step is not None
        report.kills_inside_a_save += _half_written(out)
        _check_checkpoints(out, report)
        if training.last_step is not None and OutDir(out).checkpoint_names():
            lost = training.last_step - OutDir(out).newest().checkpoint.step
            report.max_steps_lost = max(report.max_steps_lost, lost)
        print(f"  kill {report.kills}: step {training.last_step}, mode {mode}", file=sys.stderr)

    final = Training(corpus, out, resume=(out / LATEST).exists())
    report.resumes += 1
    report.resumes_failed += final.process.wait() != 0
    final.reader.join(timeout=10)
    reference.process.wait()
    reference.reader.join(timeout=10)
    finished, expected = read_checkpoint(out / LATEST), read_checkpoint(workdir / "reference" / LATEST)
    report.final_step = finished.step
    report.differences = training_state_differences(finished, expected)
    report.final_weights_identical = not report.differences
    return report


def _write_docs(report: FaultReport, command: str) -> None:
    from benchmark_doc import machine_description, replace_section

    rows = "\n".join(
        f"| {name.replace('_', ' ')} | {value} |" for name, value in asdict(report).items() if name != "differences"
    )
    body = (
        f"Command: `{command}`  \nMachine: {machine_description()}\n\n"
        f"Result: **{'pass' if report.passed else 'FAIL'}**\n\n| measure | value |\n| --- | --- |\n{rows}\n"
    )
    replace_section("fault-test", body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-docs", action="store_true", help="record the result in docs/benchmarks.md")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
    if args.write_docs:  # before the test, not after it
        from benchmark_doc import check_section

        check_section("fault-test")
    with tempfile.TemporaryDirectory(prefix="charrnn-fault-") as folder:
        report = run_fault_test(Path(folder), args.kills, args.seed)
    print(json.dumps({**asdict(report), "passed": report.passed}, indent=2))
    if args.write_docs:
        _write_docs(report, "python scripts/fault_test.py " + " ".join(sys.argv[1:]))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())

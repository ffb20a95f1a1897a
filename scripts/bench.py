#!/usr/bin/env python3
"""charrnn's speed on this machine, against what PyTorch itself can do here.

1. Training throughput: charrnn's real training loop (the Trainer that `charrnn train` runs:
   windows, schedule, clipping, logging, progress bar) against a bare loop of the same fused
   PyTorch modules (forward, backward, AdamW step) on identical shapes and random data.
2. Sampling speed: charrnn's sampler (numpy) against the torch path it replaced (PyTorch's
   single-step cell kernels, torch draws) and a bare loop of single steps of the same modules,
   at batch 1 and 32, for 1,000 and 10,000 characters; and `charrnn sample` end to end: its
   first character against `python -c "import torch"`, and its characters per second after it.
3. Footprint: peak memory of `charrnn train` on tiny Shakespeare, and the time `charrnn --help` takes.

Timings on a shared CPU drift by tens of percent from minute to minute, so the two sides of each
comparison run in alternating rounds in one process and the median round of each is reported.

    python scripts/bench.py                   # everything; writes its sections of docs/benchmarks.md
    python scripts/bench.py --only sampling   # item 2 alone (about 10 minutes); writes its section
    python scripts/bench.py --quick           # a smoke run on tiny shapes, written nowhere
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchmark_doc import check_section, machine_description, replace_section  # noqa: E402
from torch_stepper import CharStepper  # noqa: E402

from charrnn.core.data import Streams  # noqa: E402
from charrnn.core.model import CharRNN  # noqa: E402
from charrnn.core.numpy_model import NumpyCharRNN  # noqa: E402
from charrnn.core.sampling import generate_ids, generate_text  # noqa: E402
from charrnn.core.vocab import Vocab  # noqa: E402
from charrnn.run.loop import Trainer  # noqa: E402
from charrnn.run.progress import ProgressBar  # noqa: E402
from charrnn.settings.budget import Budget  # noqa: E402
from charrnn.settings.config import ModelConfig, SampleConfig, TrainConfig  # noqa: E402
from charrnn.store.checkpoint import RunRecord  # noqa: E402
from charrnn.store.loading import LoadedModel  # noqa: E402
from charrnn.store.outdir import OutDir  # noqa: E402

VOCAB_SIZE = 65  # tiny Shakespeare's
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


@dataclass(frozen=True)
class Shape:
    name: str
    hidden_size: int
    layers: int
    embed_dim: int
    batch_size: int
    seq_len: int

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            vocab_size=VOCAB_SIZE, hidden_size=self.hidden_size, layers=self.layers, embed_dim=self.embed_dim
        )

    def train_config(self, max_steps: int) -> TrainConfig:
        return TrainConfig(
            batch_size=self.batch_size,
            seq_len=self.seq_len,
            max_steps=max_steps,
            eval_every=10**9,
            save_every=10**9,
            val_fraction=0.0,
        )


DEFAULTS = ModelConfig(vocab_size=VOCAB_SIZE)
DEFAULT_TRAIN = TrainConfig()
DEFAULT_SHAPE = Shape(
    "defaults",
    DEFAULTS.hidden_size,
    DEFAULTS.layers,
    DEFAULTS.embed_dim,
    DEFAULT_TRAIN.batch_size,
    DEFAULT_TRAIN.seq_len,
)
BIG_SHAPE = Shape("large", 512, 2, 64, 64, 128)
QUICK_SHAPE = Shape("tiny", 32, 1, 16, 4, 16)


# --- 1. training throughput -------------------------------------------------------------


class StepClock(ProgressBar):
    """charrnn's own progress bar (writing to a buffer), also noting when each step ends."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.times: list[float] = []

    def advance(self, step: int, elapsed: float) -> None:
        super().advance(step, elapsed)
        self.times.append(time.perf_counter())


def charrnn_trainer(shape: Shape, steps_per_round: int) -> tuple[Trainer, StepClock]:
    text_ids = torch.randint(
        0, VOCAB_SIZE, (shape.batch_size * shape.seq_len * (steps_per_round + 2),), dtype=torch.uint8
    )
    clock = StepClock()
    model = CharRNN(shape.model_config())
    streams = Streams(text_ids, shape.batch_size, shape.seq_len)
    record = RunRecord(run=None, vocab=Vocab([chr(32 + i) for i in range(VOCAB_SIZE)]))
    trainer = Trainer(
        model,
        streams,
        None,
        shape.train_config(steps_per_round),
        torch.device("cpu"),
        OutDir(tempfile.mkdtemp()),
        clock,
        record=record,
    )
    return trainer, clock


def charrnn_round(trainer: Trainer, clock: StepClock, steps: int) -> float:
    """Seconds per step of `steps` more steps of the real loop (the first one is not timed;
    the save at the end of the round comes after the last step and is not timed either)."""
    clock.times.clear()
    trainer.budget = Budget(trainer.step + steps, None)
    trainer.fit()
    return (clock.times[-1] - clock.times[0]) / (len(clock.times) - 1)


class BareModel(nn.Module):
    """The same network as charrnn's, written the plainest way."""

    def __init__(self, shape: Shape):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB_SIZE, shape.embed_dim)
        self.rnn = nn.LSTM(shape.embed_dim, shape.hidden_size, shape.layers, batch_first=True, dropout=DEFAULTS.dropout)
        self.dropout = nn.Dropout(DEFAULTS.dropout)
        self.head = nn.Linear(shape.hidden_size, VOCAB_SIZE)

    def forward(self, ids, state=None):
        outputs, state = self.rnn(self.embedding(ids), state)
        return self.head(self.dropout(outputs)), state


def bare_round(model: BareModel, optimizer: torch.optim.Optimizer, inputs, targets, steps: int) -> float:
    """Seconds per step of a plain forward + backward + AdamW loop (the first step not timed)."""
    times = []
    for _ in range(steps):
        logits, _ = model(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter())
    return (times[-1] - times[0]) / (steps - 1)


def training_throughput(shape: Shape, rounds: int, steps: int) -> dict:
    torch.manual_seed(0)
    trainer, clock = charrnn_trainer(shape, steps)
    bare = BareModel(shape)
    optimizer = torch.optim.AdamW(bare.parameters(), lr=DEFAULT_TRAIN.lr)
    inputs = torch.randint(0, VOCAB_SIZE, (shape.batch_size, shape.seq_len))
    targets = torch.randint(0, VOCAB_SIZE, (shape.batch_size, shape.seq_len))
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(charrnn_round(trainer, clock, steps))
        theirs.append(bare_round(bare, optimizer, inputs, targets, steps))
    chars = shape.batch_size * shape.seq_len
    ours_rate, bare_rate = chars / statistics.median(ours), chars / statistics.median(theirs)
    return {"shape": shape, "charrnn": ours_rate, "bare": bare_rate, "ratio": ours_rate / bare_rate}


# --- 2. sampling speed ----------------------------------------------------------------


@torch.inference_mode()
def bare_sampling(model: BareModel, batch: int, length: int, generator: torch.Generator) -> float:
    """Seconds for a bare loop of single steps: embed, LSTM, linear, softmax, draw."""
    ids = torch.zeros(batch, 1, dtype=torch.long)
    state = None
    start = time.perf_counter()
    for _ in range(length):
        logits, state = model(ids, state)
        ids = torch.multinomial(torch.softmax(logits[:, -1], dim=-1), 1, generator=generator)
    return time.perf_counter() - start


def charrnn_sampling(loaded: LoadedModel, batch: int, length: int) -> float:
    """Seconds for charrnn's sampler: text for batch 1 (what `charrnn sample` streams), ids otherwise."""
    config = SampleConfig(length=length)
    start = time.perf_counter()
    if batch == 1:
        for _ in generate_text(loaded, None, config, seed=0):
            pass
    else:
        for _ in generate_ids(loaded.model, [0], config, np.random.default_rng(0), batch):
            pass
    return time.perf_counter() - start


@torch.inference_mode()
def torch_sampling(model: CharRNN, batch: int, length: int, generator: torch.Generator) -> float:
    """Seconds for the torch path charrnn sampled with before numpy: PyTorch's single-step
    cell kernels (CharStepper), softmax and an inverse-CDF draw in torch, one step a character."""
    stepper = CharStepper(model)
    states = stepper.layer_states(model.init_hidden(batch))
    ids = torch.zeros(batch, dtype=torch.long)
    start = time.perf_counter()
    for _ in range(length):
        logits, states = stepper.step(ids, states)
        cdf = torch.softmax(logits, dim=-1).cumsum(dim=-1)
        point = torch.rand(batch, 1, generator=generator) * cdf[:, -1:]
        ids = torch.searchsorted(cdf, point, right=True).clamp_(max=VOCAB_SIZE - 1).view(-1)
    return time.perf_counter() - start


@contextlib.contextmanager
def threads(count: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def sampling_speed(shape: Shape, rounds: int, lengths: tuple[int, ...], batches: tuple[int, ...]) -> list[dict]:
    """Every side runs as `charrnn sample` does: one thread for a single stream, all for a batch.
    (numpy's BLAS threads are set when it is imported, here one a core: a batch-1 figure here may
    be a little under what `charrnn sample` makes on one thread; `sample_end_to_end` measures that.)"""
    torch.manual_seed(0)
    model = CharRNN(shape.model_config()).eval()
    loaded = LoadedModel(NumpyCharRNN.of(model), Vocab([chr(32 + i) for i in range(VOCAB_SIZE)]), Path("-"), 0)
    bare = BareModel(shape).eval()
    rows = []
    for batch in batches:
        for length in lengths:
            ours, old, theirs = [], [], []
            with threads(1 if batch == 1 else torch.get_num_threads()):
                for _ in range(rounds):  # alternating, so every side sees the same machine
                    ours.append(batch * length / charrnn_sampling(loaded, batch, length))
                    old.append(batch * length / torch_sampling(model, batch, length, torch.Generator().manual_seed(0)))
                    theirs.append(batch * length / bare_sampling(bare, batch, length, torch.Generator().manual_seed(0)))
            rows.append(
                {
                    "shape": shape,
                    "batch": batch,
                    "length": length,
                    "charrnn": statistics.median(ours),
                    "spread": (min(ours), max(ours)),
                    "torch": statistics.median(old),
                    "bare": statistics.median(theirs),
                }
            )
    return rows


def sample_end_to_end(shape: Shape, length: int, repeats: int) -> dict:
    """`charrnn sample` as users run it, on a checkpoint of `shape` (one training step on a text of
    VOCAB_SIZE characters): seconds to its first character, characters per second after it, the
    seconds of `python -c "import torch"` beside them, and what the command delivers into a pipe
    (`length` characters, less the time of a 1-character run: start-up and loading left out)
    against what its sampler makes in a process (medians of `repeats`, the sides alternating)."""
    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / "corpus.txt"
        corpus.write_text("".join(chr(32 + i) for i in range(VOCAB_SIZE)) * 500, encoding="utf-8")
        options = ["--hidden-size", shape.hidden_size, "--layers", shape.layers, "--embed-dim", shape.embed_dim]
        run = Path(folder) / "run"
        train = [sys.executable, "-m", "charrnn", "train", corpus, "--max-steps", "1", "--out", run]
        subprocess.run([*map(str, train + options), "--quiet"], check=True, capture_output=True, cwd=ROOT)
        sides = [
            lambda: _timed_sample(run, length),
            lambda: _timed_sample(run, 1)[1],
            lambda: _sampler_seconds(run, length),
            lambda: _seconds([sys.executable, "-c", "import torch"]),
        ]
        firsts, rates, imports, delivered, in_process = [], [], [], [], []
        for repeat in range(repeats):
            measured = {}
            for side in range(len(sides)) if repeat % 2 == 0 else reversed(range(len(sides))):
                measured[side] = sides[side]()
            (first, total), one, sampler, torch_import = (measured[side] for side in range(len(sides)))
            firsts.append(first)
            rates.append((length - 1) / (total - first))
            delivered.append((length - 1) / (total - one))
            in_process.append(length / sampler)
            imports.append(torch_import)
    return {
        "shape": shape,
        "length": length,
        "first": statistics.median(firsts),
        "rate": statistics.median(rates),
        "import_torch": statistics.median(imports),
        "delivered": statistics.median(delivered),
        "in_process": statistics.median(in_process),
    }


def _timed_sample(run: Path, length: int) -> tuple[float, float]:
    """Seconds from starting `charrnn sample` to its first character, and to its end, its text
    read from a pipe as it comes."""
    command = [sys.executable, "-m", "charrnn", "sample", "-c", str(run), "--length", str(length), "--seed", "0"]
    start = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT) as process:
        process.stdout.read(2)  # no prime: the first character is the first byte (2: one may be a newline's)
        first = time.perf_counter() - start
        process.stdout.read()
    return first, time.perf_counter() - start


# What `charrnn sample` runs, in a process of its own: one numpy thread, the text as it is made.
_SAMPLER = """
import os, sys, time
os.environ.update(OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
import charrnn
model = charrnn.load(sys.argv[1])
start = time.perf_counter()
for piece in model.stream(int(sys.argv[2]), seed=0):
    pass
print(time.perf_counter() - start)
"""


def _sampler_seconds(run: Path, length: int) -> float:
    command = [sys.executable, "-c", _SAMPLER, str(run), str(length)]
    return float(subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout)


def _seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return time.perf_counter() - start


# --- 3. footprint ---------------------------------------------------------------------


def peak_training_rss(corpus: Path, steps: int) -> float:
    """Peak resident memory (MiB) of a `charrnn train` process on `corpus`.

    Measured by a small wrapper process: a child forked from this (large) process would
    count this process's pages in its peak until it execs.
    """
    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            "-m",
            "charrnn",
            "train",
            str(corpus),
            "--max-steps",
            str(steps),
            "--out",
            out,
            "--quiet",
        ]
        result = subprocess.run(
            [sys.executable, "-c", wrapper, *command], check=True, capture_output=True, text=True, cwd=ROOT
        )
    return int(result.stdout.strip()) / 1024  # Linux reports KiB


def help_time(repeats: int) -> float:
    """Median seconds of `charrnn --help`, the console script as users run it."""
    script = Path(sys.executable).with_name("charrnn")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "charrnn"]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([*command, "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- report ----------------------------------------------------------------------------


def _shape_text(shape: Shape) -> str:
    return (
        f"{shape.name}: LSTM {shape.layers}x{shape.hidden_size}, embedding {shape.embed_dim}, "
        f"batch {shape.batch_size}, seq {shape.seq_len}"
    )


def training_section(results: list[dict], header: str) -> str:
    rows = "\n".join(
        f"| {_shape_text(r['shape'])} | {r['charrnn']:,.0f} | {r['bare']:,.0f} | {r['ratio']:.3f} |" for r in results
    )
    return f"{header}\n\n| shape | charrnn chars/s | bare PyTorch chars/s | ratio |\n| --- | ---: | ---: | ---: |\n{rows}\n"


def sampling_section(results: list[dict], end_to_end: list[dict], header: str) -> str:
    lines = []
    for r in results:
        low, high = r["spread"]
        lines.append(
            f"| {r['shape'].name} | {r['batch']} | {r['length']:,} | {r['charrnn']:,.0f} ({low:,.0f}–{high:,.0f}) | "
            f"{1e6 * r['batch'] / r['charrnn']:,.0f} | {r['torch']:,.0f} | {r['bare']:,.0f} | "
            f"{r['charrnn'] / r['bare']:.2f} |"
        )
    table = "\n".join(lines)
    commands = "\n".join(
        f"| {r['shape'].name} | {r['first']:.3f} s | {r['import_torch']:.3f} s | {r['first'] / r['import_torch']:.2f} | "
        f"{r['rate']:,.0f} | {r['delivered']:,.0f} | {r['in_process']:,.0f} | {r['delivered'] / r['in_process']:.2f} |"
        for r in end_to_end
    )
    return (
        f"{header}\n\n| model | batch | length | charrnn (numpy) chars/s, median (range) | µs per step | "
        f"torch path chars/s | bare chars/s | ratio to bare |\n"
        f"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n{table}\n\n"
        f"`charrnn sample` end to end (one stream, medians; into a pipe: {end_to_end[0]['length']:,} characters, less "
        f"the time of a 1-character run; in process: its sampler in a process of its own, on one thread):\n\n"
        f'| model | first character after | `python -c "import torch"` | ratio | chars/s after the first | '
        f"chars/s into a pipe | chars/s in process | pipe / in process |\n"
        f"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n{commands}\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few repeats; write nothing")
    parser.add_argument(
        "--only", choices=("training", "sampling", "footprint"), help="measure (and write) this item alone"
    )
    args = parser.parse_args()
    items = [args.only] if args.only else ["training", "sampling", "footprint"]
    for item in () if args.quick else items:
        check_section(f"bench-{item}")
    torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    command = (
        "python scripts/bench.py" + (" --quick" if args.quick else "") + (f" --only {args.only}" if args.only else "")
    )
    header = f"Command: `{command}`  \nMachine: {machine_description()}"
    shapes = [QUICK_SHAPE] if args.quick else [DEFAULT_SHAPE, BIG_SHAPE]
    sections = {}

    if "training" in items:
        rounds, steps = (2, 3) if args.quick else (7, 12)
        training = [training_throughput(shape, rounds, steps) for shape in shapes]
        sections["training"] = training_section(training, header)

    if "sampling" in items:
        lengths, batches = ((20, 200), (1, 4)) if args.quick else ((1_000, 10_000), (1, 32))
        sampling = [row for shape in shapes for row in sampling_speed(shape, 2 if args.quick else 7, lengths, batches)]
        end_to_end = [
            sample_end_to_end(shape, 500 if args.quick else 20_000, 2 if args.quick else 5) for shape in shapes
        ]
        sections["sampling"] = sampling_section(sampling, end_to_end, header)

    if "footprint" in items:
        corpus = SHAKESPEARE if SHAKESPEARE.exists() and not args.quick else _small_corpus()
        rss = peak_training_rss(corpus, 20 if args.quick else 300)
        help_seconds = help_time(3 if args.quick else 10)
        sections["footprint"] = (
            f"{header}\n\n| measure | value |\n| --- | ---: |\n"
            f"| peak RSS of `charrnn train {corpus.name}` (defaults) | {rss:,.0f} MiB |\n"
            f"| `charrnn --help` (median of {3 if args.quick else 10}) | {help_seconds:.3f} s |\n"
        )

    for item, text in sections.items():
        print(text)
        if not args.quick:
            replace_section(f"bench-{item}", text)
    return 0


def _small_corpus() -> Path:
    path = Path(tempfile.mkdtemp()) / "small.txt"
    path.write_text("the quick brown fox jumps over the lazy dog\n" * 2000, encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())

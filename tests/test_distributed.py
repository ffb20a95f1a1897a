"""Distributed training with torchrun on CPU (gloo): N processes against one with the same global batch.

Tolerance: with dropout off, a run on 2 processes does the same arithmetic as a run on 1
except for the order of summation: each rank averages the loss of its 4 streams, and DDP
averages the two gradients, where one process averages all 8 at once. Those float32 rounding
differences (about 1e-7 relative) are what separates the runs; 20 AdamW steps leave them far
below the 1e-4 we allow on weights and validation loss, while a real difference (a stream
read twice or not at all, a wrong gradient scale, a hidden state given to the wrong stream)
moves them by 1e-2 or more.
"""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from charrnn.store.checkpoint import load_checkpoint
from helpers import fast_args

pytestmark = pytest.mark.slow

# Dropout off, so that the runs draw no random numbers; a constant learning rate after the
# warm-up, so that a run stopped at step 10 and resumed to 20 follows the same schedule as one
# run straight to 20.
FAST = fast_args(
    hidden_size=32,
    layers=2,
    batch_size=8,
    dropout=0,
    # A constant rate after a warm-up that no run length here shortens (a run's warm-up is at
    # most a tenth of its steps): runs of 10 then 20 steps follow one schedule, as one of 20 does.
    warmup_steps=1,
    min_lr_ratio=1,
    lr=0.01,
    max_steps=None,
    quiet=True,
)
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = random.Random(0)
    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "a",
        "lazy",
        "dog",
        "while",
        "the",
        "cat",
        "sleeps",
        "on",
        "the",
        "mat",
    ]
    path = tmp_path_factory.mktemp("corpus") / "words.txt"
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(8)) for _ in range(2000)), encoding="utf-8")
    return path


def train(processes, corpus, out, *extra):
    charrnn = ["-m", "charrnn", "train", str(corpus), *FAST, "--out", str(out), *map(str, extra)]
    launcher = (
        [] if processes == 1 else ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, *launcher, *charrnn], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def assert_same_run(a, b):
    assert a["step"] == b["step"]
    assert a["val_loss"] == pytest.approx(b["val_loss"], abs=TOLERANCE)
    for name, weight in a["model"].items():
        assert torch.allclose(weight, b["model"][name], atol=TOLERANCE), name
    for mine, theirs in zip(a["hidden"], b["hidden"]):  # every stream's state, in stream order
        assert mine.shape == theirs.shape and torch.allclose(mine, theirs, atol=TOLERANCE)


@pytest.fixture(scope="module")
def one_process(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    train(1, corpus, out, "--max-steps", "20")
    return load_checkpoint(out / "latest.pt")


def test_two_processes_train_like_one_with_the_same_global_batch(corpus, one_process, tmp_path):
    result = train(2, corpus, tmp_path / "two", "--max-steps", "20")
    two = load_checkpoint(tmp_path / "two" / "latest.pt")
    assert_same_run(two, one_process)
    assert two["world_size"] == 2 and len(two["rng_ranks"]) == 2
    assert result.stderr.count("Finished at step 20") == 1  # rank 0 alone reports
    assert "2 processes, 4 streams each" in result.stderr
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        ".charrnn.lock",
        "best.pt",
        "latest.pt",
        "metrics.jsonl",
        "run.json",
        "samples.txt",
        "step-00000010.pt",
        "step-00000020.pt",
    ]


@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_a_run_resumes_on_another_number_of_processes(corpus, one_process, tmp_path, first, then):
    train(first, corpus, tmp_path / "run", "--max-steps", "10")
    train(then, corpus, tmp_path / "run", "--resume", "--max-steps", "20")
    assert_same_run(load_checkpoint(tmp_path / "run" / "latest.pt"), one_process)


def test_a_batch_that_does_not_split_evenly_is_refused(corpus, tmp_path):
    charrnn = [
        "-m",
        "charrnn",
        "train",
        str(corpus),
        *FAST,
        "--batch-size",
        "7",
        "--max-steps",
        "5",
        "--out",
        str(tmp_path / "run"),
    ]
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    result = subprocess.run(
        [sys.executable, *launcher, *charrnn],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode != 0
    assert "--batch-size 7 does not split evenly over 2 processes; give a multiple of 2" in result.stderr
    assert not (tmp_path / "run").exists() or not list((tmp_path / "run").iterdir())


def test_sigterm_stops_every_process_at_one_step_with_one_checkpoint(corpus, tmp_path):
    out = tmp_path / "run"
    charrnn = ["-m", "charrnn", "train", str(corpus), *FAST, "--max-steps", "1000000", "--out", str(out)]
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    process = subprocess.Popen(
        [sys.executable, *launcher, *charrnn],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 120
    while not (out / "latest.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)  # torchrun passes it on to every process
    _, stderr = process.communicate(timeout=120)
    stopped = [line for line in stderr.splitlines() if line.startswith("Training stopped by SIGTERM at step ")]
    assert len(stopped) == 1, stderr[-3000:]  # rank 0 alone speaks
    step = int(stopped[0].split("at step ")[1].split(";")[0].replace(",", ""))
    state = load_checkpoint(out / "latest.pt")
    assert state["step"] == step >= 10 and state["world_size"] == 2
    train(2, corpus, out, "--resume", "--max-steps", str(step + 5))  # and it goes on from there
    assert load_checkpoint(out / "latest.pt")["step"] == step + 5

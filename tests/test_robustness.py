"""Training under trouble: divergence, Ctrl-C and SIGTERM, a second Ctrl-C."""

import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from charrnn.errors import TrainingDiverged
from charrnn.run.runtime import StopSignals
from charrnn.store.checkpoint import load_checkpoint
from charrnn.store.outdir import LATEST, OutDir
from helpers import PANGRAM, TINY_OPTIONS, train


def _all_checkpoints_finite(folder):
    for name in OutDir(folder).checkpoint_names():
        state = load_checkpoint(folder / name)
        assert all(torch.isfinite(t).all() for t in state["model"].values()), name
        assert state["best_val_loss"] is None or math.isfinite(state["best_val_loss"]), name


def test_a_diverging_run_stops_with_advice_and_never_saves_nan(tmp_path, pangram_file):
    options = {**TINY_OPTIONS, "max_steps": 20, "eval_every": 10, "save_every": 10}
    train(pangram_file, tmp_path / "run", options)
    exploding = {**options, "max_steps": 60, "lr": 3e38, "clip": 0.0, "warmup_steps": 0}
    with pytest.raises(TrainingDiverged, match=r"the last good state is step 20.*--lr"):
        train(pangram_file, tmp_path / "run", exploding, resume=str(tmp_path / "run"))
    _all_checkpoints_finite(tmp_path / "run")
    assert load_checkpoint(tmp_path / "run" / LATEST)["step"] == 20


def _start(tmp_path, out, *extra):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PANGRAM * 200, encoding="utf-8")
    args = [
        "train",
        corpus,
        "--hidden-size",
        "32",
        "--layers",
        "1",
        "--seq-len",
        "16",
        "--batch-size",
        "4",
        "--max-steps",
        "100000",
        "--save-every",
        "50",
        "--eval-every",
        "100000",
        "--out",
        out,
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "charrnn", *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while not (out / LATEST).exists() and time.time() < deadline:  # wait until it is training
        time.sleep(0.05)
    return process


@pytest.mark.slow  # fault injection: signals to a training process
@pytest.mark.parametrize(
    "signal_number, exit_code, name", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_a_signal_saves_the_current_step_and_says_how_to_resume(tmp_path, signal_number, exit_code, name):
    out = tmp_path / "run"
    process = _start(tmp_path, out)
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == exit_code, stderr
    last = stderr.strip().splitlines()[-1]
    assert f"stopped by {name} at step" in last and f"Resume with: charrnn train --resume --out {out}" in last
    stopped_at = int(last.split(" at step ")[1].split(";")[0].replace(",", ""))
    assert load_checkpoint(out / LATEST)["step"] == stopped_at  # the step it stopped at, not the last periodic save
    assert "Traceback" not in stderr


def test_the_first_signal_asks_to_stop_and_a_second_interrupts_at_once():
    inherited = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)  # whatever the runner set
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.received == signal.SIGINT  # noted, nothing interrupted
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == inherited  # handlers restored


@pytest.mark.slow  # fault injection: signals to a training process
def test_two_quick_ctrl_cs_never_damage_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    process = _start(tmp_path, out, "--save-every", "1")  # saving all the time: signals land in saves
    process.send_signal(signal.SIGINT)
    time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr
    for name in OutDir(out).checkpoint_names():
        load_checkpoint(out / name)  # every file whole
    assert not [p for p in out.iterdir() if ".charrnn-tmp-" in p.name]

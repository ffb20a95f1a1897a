"""Text in any script: Chinese end to end, rare characters, and the commands that inspect models."""

import math
import random
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from charrnn.cli.commands import main
from charrnn.core.model import CharRNN, load_grown
from charrnn.settings.config import ModelConfig
from charrnn.store.checkpoint import load_checkpoint
from charrnn.store.checkpoint_file import FORMAT_VERSION
from helpers import fast_args

FAST = fast_args(hidden_size=48, lr=0.01, warmup_steps=5, eval_every=50, save_every=50, max_steps=None, quiet=True)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def chinese_poems(lines: int, seed: int = 0) -> str:
    """Five-character lines from a fixed stock of phrases: structure a model can learn."""
    phrases = [
        "春眠不觉晓",
        "处处闻啼鸟",
        "夜来风雨声",
        "花落知多少",
        "床前明月光",
        "疑是地上霜",
        "举头望明月",
        "低头思故乡",
    ]
    rng = random.Random(seed)
    return "".join(f"{phrases[i]}，{phrases[i + 1]}。\n" for i in (rng.randrange(0, 8, 2) for _ in range(lines)))


@pytest.fixture(scope="module")
def chinese_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chinese")
    (folder / "poems.txt").write_text(chinese_poems(600), encoding="utf-8")
    result = run("train", folder / "poems.txt", *FAST, "--max-steps", "250", "--out", folder / "run")
    assert result.exit_code == 0, result.output
    return folder


def test_chinese_trains_and_samples_chinese_from_a_chinese_prime(chinese_run):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "charrnn",
            "sample",
            "-c",
            str(chinese_run / "run"),
            "--prime",
            "春眠",
            "--length",
            "60",
            "--seed",
            "1",
            "--temp",
            "0.5",
        ],
        capture_output=True,
    )
    text = result.stdout.decode("utf-8")  # raises if streaming ever split a character's bytes
    assert result.returncode == 0 and text.startswith("春眠")
    assert set(text) <= set(chinese_poems(600))
    assert sum("\u4e00" <= c <= "\u9fff" for c in text) > 30


def test_rare_characters_become_unknown_and_are_never_sampled(tmp_path):
    text = "the quick brown fox jumps over the lazy dog\n" * 100 + "".join(chr(0x4E00 + i) for i in range(50))
    (tmp_path / "mixed.txt").write_text(text, encoding="utf-8")
    trained = run(
        "train", tmp_path / "mixed.txt", *FAST, "--max-steps", "30", "--min-count", "3", "--out", tmp_path / "run"
    )
    assert trained.exit_code == 0, trained.output
    assert "covering 98.88% of the text (50 rare characters map to unknown)" in trained.stderr
    state = load_checkpoint(tmp_path / "run" / "latest.pt")
    assert state["vocab"][-1] == "" and state["model_config"]["vocab_size"] == 29
    sampled = run("sample", "-c", tmp_path / "run", "--length", "3000", "--temp", "3", "--seed", "0", "--prime", "一")
    assert sampled.exit_code == 0, sampled.output  # a rare character in the prime maps to unknown, as in training
    assert "\ufffd" not in sampled.stdout[1:]


def test_eval_reports_bits_perplexity_and_characters_outside_the_vocabulary(chinese_run, tmp_path):
    held_out = tmp_path / "held_out.txt"
    held_out.write_text(chinese_poems(100, seed=1) + "新字", encoding="utf-8")
    result = run("eval", held_out, "-c", chinese_run / "run")
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    bits, nats = float(lines["bits per character"]), float(lines["nats per character"])
    assert bits < 2.0  # the structure was learned: a uniform guess over 39 characters is 5.3 bits
    assert nats == pytest.approx(bits * math.log(2), abs=1e-3)
    assert float(lines["perplexity"]) == pytest.approx(math.exp(nats), rel=1e-3)
    assert lines["outside the vocabulary"] == "2 characters (2 distinct), left out"


def test_info_describes_the_checkpoint(chinese_run):
    result = run("info", chinese_run / "run")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "LSTM 1x48" in out and "parameters" in out and f"format {FORMAT_VERSION}" in out
    assert f"vocabulary: {len(set(chinese_poems(600)))} entries" in out and "春" in out
    assert "step 250" in out and "best validation:" in out and "bpc" in out and "poems.txt" in out


def test_fine_tuning_extends_the_vocabulary_and_starts_from_the_trained_weights(chinese_run, tmp_path):
    new_text = chinese_poems(600, seed=2).replace("霜", "雪")  # one new character
    (tmp_path / "new.txt").write_text(new_text, encoding="utf-8")
    tuned = run(
        "train",
        tmp_path / "new.txt",
        *FAST,
        "--max-steps",
        "20",
        "--init-from",
        chinese_run / "run",
        "--out",
        tmp_path / "tuned",
    )
    assert tuned.exit_code == 0, tuned.output
    assert "fine-tuning from" in tuned.stderr and "1 new characters" in tuned.stderr
    old, new = load_checkpoint(chinese_run / "run" / "best.pt"), load_checkpoint(tmp_path / "tuned" / "latest.pt")
    assert new["vocab"][: len(old["vocab"])] == old["vocab"] and new["vocab"][-1] == "雪"
    assert new["step"] == 20 and new["init_from"]["step"] == old["step"]
    scratch = run("train", tmp_path / "new.txt", *FAST, "--max-steps", "20", "--out", tmp_path / "scratch")
    assert scratch.exit_code == 0
    # 20 steps from trained weights beat 20 steps from scratch by far on a text of the same kind
    assert new["best_val_loss"] < 0.6 * load_checkpoint(tmp_path / "scratch" / "latest.pt")["best_val_loss"]


def test_grown_weights_copy_old_rows_and_keep_new_ones_fresh():
    for input_mode in ("embedding", "one-hot"):
        torch.manual_seed(0)
        old = CharRNN(ModelConfig(vocab_size=5, hidden_size=8, input_mode=input_mode))
        grown = CharRNN(ModelConfig(vocab_size=7, hidden_size=8, input_mode=input_mode))
        fresh_head = grown.head.weight[5:].clone()
        load_grown(grown, old.state_dict())
        assert torch.equal(grown.head.weight[:5], old.head.weight) and torch.equal(grown.head.weight[5:], fresh_head)
        assert torch.equal(grown.rnn.weight_hh_l0, old.rnn.weight_hh_l0)
        if input_mode == "one-hot":
            assert torch.equal(grown.rnn.weight_ih_l0[:, :5], old.rnn.weight_ih_l0)


def test_a_resumed_run_reuses_its_encoded_corpus(chinese_run, tmp_path):
    run("train", chinese_run / "poems.txt", *FAST, "--max-steps", "10", "--out", tmp_path / "run")
    resumed = run("train", "--resume", "--max-steps", "20", "--out", tmp_path / "run")
    assert resumed.exit_code == 0, resumed.output
    assert "cached encoding reused" in resumed.stderr

"""The Python API does what the command does: the same text, scores and descriptions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli.commands import main
from charrnn.errors import ConfigError, OptionError
from helpers import PANGRAM


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """An out folder trained through the API (its corpus beside it)."""
    folder = tmp_path_factory.mktemp("api")
    (folder / "corpus.txt").write_text(PANGRAM * 60, encoding="utf-8")
    result = charrnn.train(
        folder / "corpus.txt",
        out=folder / "run",
        progress=False,
        hidden_size=24,
        layers=1,
        seq_len=16,
        batch_size=4,
        max_steps=30,
        eval_every=10,
        save_every=10,
        warmup_steps=2,
    )
    assert result.step == 30 and result.best_val_loss is not None
    return folder


def _cli(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_importing_charrnn_does_not_import_torch():
    code = "import sys, charrnn; assert 'torch' not in sys.modules; print(charrnn.load.__doc__ is not None)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "True", result.stderr


def test_sample_and_stream_give_the_text_the_command_prints(run):
    model = charrnn.load(run / "run")
    text = model.sample(80, prime="the q", temperature=0.8, seed=3)
    assert text.startswith("the q") and len(text) == 85
    assert "".join(model.stream(80, prime="the q", temperature=0.8, seed=3)) == text
    assert (
        _cli("sample", "-c", run / "run", "--length", 80, "--prime", "the q", "--temp", 0.8, "--seed", 3) == text + "\n"
    )


def test_several_samples_beam_and_stop_match_the_command(run):
    model = charrnn.load(run / "run")
    samples = model.samples(3, 40, prime="the", seed=5)
    assert len(samples) == 3 and all(s.startswith("the") for s in samples)
    assert model.sample(30, prime="the", beam=4) + "\n" == _cli(
        "sample", "-c", run / "run", "--length", 30, "--prime", "the", "--beam", 4
    )
    stopped = model.sample(500, prime="the", seed=1, stop="o")  # the continuation, up to its first "o"
    assert stopped.endswith("o") and stopped[len("the") :].count("o") == 1


def test_score_and_describe_match_eval_and_info(run):
    model = charrnn.load(run / "run")
    score = model.score(run / "corpus.txt")
    assert f"bits per character: {score.bits:.4f}" in _cli("eval", run / "corpus.txt", "-c", run / "run")
    assert model.describe() == _cli("info", model.path).splitlines()
    assert model.step == 30


def test_training_resumes_through_the_api_as_through_the_command(run, tmp_path):
    out = tmp_path / "copy"
    result = charrnn.train(
        run / "corpus.txt",
        out=out,
        progress=False,
        **{
            "hidden_size": 24,
            "layers": 1,
            "seq_len": 16,
            "batch_size": 4,
            "max_steps": 20,
            "eval_every": 10,
            "save_every": 10,
            "warmup_steps": 2,
        },
    )
    assert result.step == 20
    assert charrnn.train(out=out, resume=True, max_steps=25, progress=False).step == 25
    assert (
        "is complete" in CliRunner().invoke(main, ["train", "--resume", "--out", str(out), "--max-steps", "25"]).stderr
    )


def test_bad_options_raise_one_clear_error(run, tmp_path):
    with pytest.raises(ConfigError, match="unknown training options: hiden_size"):
        charrnn.train(run / "corpus.txt", out=tmp_path / "x", hiden_size=24, progress=False)
    with pytest.raises(ConfigError, match="hidden_size must be an integer >= 1"):
        charrnn.train(run / "corpus.txt", out=tmp_path / "x", hidden_size=0, progress=False)
    with pytest.raises(OptionError, match="never saw"):
        charrnn.load(run / "run").sample(10, prime="Zoë")
    assert not (tmp_path / "x").exists()


def test_the_command_line_options_and_the_api_accept_the_same_names():
    cli_names = {p.name for p in main.commands["train"].params}
    assert set(charrnn.arguments.TRAINING_OPTIONS) <= cli_names

"""A new user's first steps that used to trip over each other (issue 13): a missing corpus beside
an existing run, __pycache__ in a corpus folder, a short run's learning rate, a checkpoint looked
for in the wrong folder, where plot writes, what eval leaves unscored, a prime from a file."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

import charrnn.store.corpus as corpus_module
from charrnn.cli.commands import main
from charrnn.errors import CorpusError
from charrnn.run.optim import learning_rate
from charrnn.settings.budget import Budget
from charrnn.settings.config import TrainConfig
from charrnn.store.corpus import resolve_corpus
from helpers import PANGRAM, fast_args

FAST = fast_args(quiet=True)
PYC = b"\xa7\r\r\n\x00\x00\x00\x00" + bytes(range(256)) * 4  # how a .pyc file starts: NUL bytes at once


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A folder holding a corpus and a finished run in runs/first."""
    folder = tmp_path_factory.mktemp("first")
    (folder / "corpus.txt").write_text(PANGRAM * 60, encoding="utf-8")
    result = CliRunner().invoke(main, ["train", str(folder / "corpus.txt"), *FAST, "--out", str(folder / "runs/first")])
    assert result.exit_code == 0, result.output
    return folder


def test_a_missing_corpus_is_named_before_the_run_already_in_the_out_folder(run, monkeypatch):
    monkeypatch.chdir(run)
    for extra in ([], ["--resume"], ["--init-from", "runs/first"]):
        result = CliRunner().invoke(main, ["train", "data/tinyshakespeare.txt", "--out", "runs/first", *extra])
        assert result.exit_code == 1
        assert result.output.strip() == "Error: corpus not found: data/tinyshakespeare.txt", extra


def _source_tree(tmp_path):
    src = tmp_path / "src"
    (src / "__pycache__").mkdir(parents=True)
    (src / "a.py").write_text(PANGRAM * 30, encoding="utf-8")
    (src / "b.py").write_text(PANGRAM * 30, encoding="utf-8")
    for name in ("a.cpython-311.pyc", "b.cpython-311.pyc"):
        (src / "__pycache__" / name).write_bytes(PYC)
    return src


def test_binary_files_inside_a_folder_or_pattern_are_skipped_and_counted(tmp_path):
    src = _source_tree(tmp_path)
    for argument in (str(src), str(src / "**" / "*")):
        corpus = resolve_corpus([argument])
        assert [path.name for path in corpus.files] == ["a.py", "b.py"]
        assert corpus.description.endswith("; 2 binary files skipped")
    assert "skipped" not in resolve_corpus([str(src / "a.py")]).description
    with pytest.raises(CorpusError, match="holds no files but 2 binary files"):
        resolve_corpus([str(src / "__pycache__")])
    with pytest.raises(CorpusError, match="looks like a binary file"):  # named on its own: refused
        "".join(resolve_corpus([str(src / "__pycache__" / "a.cpython-311.pyc")]).chunks())


def test_utf16_files_in_a_folder_are_text_not_binary(tmp_path):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text(PANGRAM * 30, encoding="utf-16")  # NUL bytes in every character
    corpus = resolve_corpus([str(tmp_path / "texts")], encoding="utf-16")
    assert len(corpus.files) == 1 and "skipped" not in corpus.description
    assert "".join(corpus.chunks()) == PANGRAM * 30


def test_training_on_a_source_folder_with_pycache_says_what_it_skipped(tmp_path):
    src = _source_tree(tmp_path)
    result = CliRunner().invoke(main, ["train", str(src), *fast_args(), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert f"corpus: 2 files ({src}); 2 binary files skipped (" in result.output


def test_a_short_run_warms_up_to_the_peak_and_ends_on_the_floor():
    config = TrainConfig(lr=0.003, warmup_steps=100, min_lr_ratio=0.1, max_steps=50)
    rates = [learning_rate(step, 0.0, Budget(50, None), config) for step in range(50)]
    assert max(rates) == pytest.approx(0.003) and rates.index(max(rates)) == 4  # warm-up: 5 steps, a tenth
    assert min(rates) == rates[-1] == pytest.approx(0.0003)  # the documented floor, never below it


def test_the_long_run_schedule_keeps_its_warmup_steps():
    config = TrainConfig(lr=1.0, warmup_steps=100, min_lr_ratio=0.1)
    budget = Budget(12_000, None)
    assert learning_rate(49, 0.0, budget, config) == pytest.approx(0.5)
    assert learning_rate(99, 0.0, budget, config) == pytest.approx(1.0)
    assert learning_rate(11_999, 0.0, budget, config) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "command", [["sample", "-l", "5"], ["eval", "corpus.txt"], ["info"]], ids=["sample", "eval", "info"]
)
def test_a_missing_checkpoint_suggests_how_to_name_one_and_the_runs_nearby(run, monkeypatch, command):
    monkeypatch.chdir(run)
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1
    how = "charrnn info PATH" if command == ["info"] else "-c PATH"
    assert result.output.strip() == (
        f"Error: checkpoint not found: checkpoints; give one with {how} (runs here: runs/first)"
    )


def test_with_no_run_nearby_it_says_to_train_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["sample"])
    assert result.exit_code == 1 and "no run in this folder or the two below it; train one" in result.output


def test_plot_writes_into_the_run_folder_by_default(run, monkeypatch):
    monkeypatch.chdir(run)
    result = CliRunner().invoke(main, ["plot", "runs/first"])
    assert result.exit_code == 0, result.output
    assert (run / "runs" / "first" / "bpc.png").stat().st_size > 0 and not (run / "bpc.png").exists()
    assert "wrote runs/first/bpc.png" in result.output


def test_eval_says_why_some_characters_are_not_scored(run):
    result = CliRunner().invoke(main, ["eval", str(run / "corpus.txt"), "-c", str(run / "runs/first")])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("text: "))
    # 2,640 characters in 10 streams of 264: each stream's first is not scored, and none are left over
    assert line.endswith(
        "2,640 characters, 2,630 scored (not scored: the first of each of the 10 streams it is read in, "
        "which has nothing before it to predict it from)"
    )


def test_a_prime_from_a_file_or_standard_input_is_the_prime(run, tmp_path):
    checkpoint = str(run / "runs/first")
    prime = PANGRAM * 200  # 8,800 characters: more than one chunk of the sampler
    (tmp_path / "prime.txt").write_text(prime, encoding="utf-8")
    args = ["sample", "-c", checkpoint, "-l", "10", "--seed", "3"]
    from_file = CliRunner().invoke(main, [*args, "--prime-file", str(tmp_path / "prime.txt")])
    from_stdin = CliRunner().invoke(main, [*args, "--prime-file", "-"], input=prime)
    given = CliRunner().invoke(main, [*args, "--prime", prime])
    assert from_file.exit_code == 0, from_file.output
    assert from_file.stdout == from_stdin.stdout == given.stdout and from_file.stdout.startswith(prime)


@pytest.mark.parametrize(
    "setup, extra, expected",
    [
        (lambda p: p.write_text("x"), ["--prime", "x"], "give --prime or --prime-file, not both"),
        (lambda p: p.write_bytes(b"ab\xffc"), [], "is not UTF-8 text"),
        (lambda p: p.write_text(""), [], "is empty"),
        (lambda p: p.write_text("ab" * 6), [], "holds more than 10 characters; give its end"),
    ],
    ids=["both", "not-utf8", "empty", "too-long"],
)
def test_a_prime_file_that_cannot_be_the_prime_is_refused_in_one_line(
    run, tmp_path, monkeypatch, setup, extra, expected
):
    monkeypatch.setattr("charrnn.cli.commands.PRIME_FILE_MAX", 10)
    setup(tmp_path / "prime.txt")
    result = CliRunner().invoke(
        main, ["sample", "-c", str(run / "runs/first"), "--prime-file", str(tmp_path / "prime.txt"), *extra]
    )
    assert result.exit_code == 2 and expected in result.output
    assert len(result.output.strip().splitlines()) == 1


def _quick_start() -> list[list[str]]:
    """The `charrnn` commands of the README's run command, as their arguments."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    line = re.search(r"<!-- run-command:start -->\n```\n(.+)\n```", readme).group(1)
    return [shlex.split(part)[1:] for part in line.split("&&") if part.split()[0] == "charrnn"]


def test_the_quick_start_run_twice_samples_both_times(tmp_path, monkeypatch):
    """The README's `charrnn train ... && charrnn sample ...`, a second time: train finds its own
    run complete, says so and succeeds, so sample runs again (the built-in corpus cut small and
    the model made tiny by options after the README's, which win)."""
    train_args, sample_args = _quick_start()
    assert train_args[0] == "train" and sample_args[0] == "sample"
    builtin_corpus = corpus_module.builtin_corpus
    monkeypatch.setattr(corpus_module, "builtin_corpus", lambda: builtin_corpus(max_bytes=100_000))
    monkeypatch.chdir(tmp_path)
    models = []
    for _ in range(2):
        trained = CliRunner().invoke(main, [*train_args, *fast_args(max_steps=10)])
        assert trained.exit_code == 0, trained.output
        sampled = CliRunner().invoke(main, [*sample_args, "--length", "200"])
        assert sampled.exit_code == 0, sampled.output
        assert len(sampled.stdout) > 200  # a newline prime, then the 200 characters
        models.append((tmp_path / "checkpoints" / "best.pt").read_bytes())
    assert "checkpoints holds this run (step 10, " in trained.stderr and "is complete" in trained.stderr
    assert models[0] == models[1]  # the same model sampled again, not a new one

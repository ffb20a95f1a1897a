"""The command line, end to end: what a user types and what they see."""

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from charrnn.cli.commands import main
from charrnn.store.checkpoint import load_checkpoint
from charrnn.store.outdir import LATEST
from helpers import PANGRAM, assert_same_training_state, fast_args, trained_pangram_run

FAST = fast_args()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A folder with corpus.txt and a small finished run on it, run/ (helpers.trained_pangram_run)."""
    return trained_pangram_run(tmp_path_factory.mktemp("trained"))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, exit_code, *fragments):
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_train_sample_and_resume_end_to_end(tmp_path, pangram_file):
    out = tmp_path / "run"
    trained = run("train", pangram_file, *FAST, "--out", out, "--quiet")
    assert trained.exit_code == 0, trained.output
    assert "Finished at step 20 after" in trained.stderr and "bpc" in trained.stderr
    assert (out / "best.pt").exists() and (out / "latest.pt").exists()

    sampled = run("sample", "--checkpoint", out, "--length", "50", "--seed", "3", "--prime", "the ")
    assert sampled.exit_code == 0, sampled.output
    assert sampled.stdout.startswith("the ") and len(sampled.stdout) == len("the ") + 50 + 1
    assert (
        sampled.stdout == run("sample", "--checkpoint", out, "--length", "50", "--seed", "3", "--prime", "the ").stdout
    )

    resumed = run("train", pangram_file, *FAST, "--out", out, "--resume", "--max-steps", "30", "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from" in resumed.stderr and "Finished at step 30 after" in resumed.stderr

    complete = run("train", pangram_file, *FAST, "--out", out, "--resume", "--max-steps", "30", "--quiet")
    assert complete.exit_code == 0 and "is complete" in complete.stderr


def test_sample_n_prints_each_sample_under_a_header(tmp_path, pangram_file):
    run("train", pangram_file, *FAST, "--out", tmp_path / "run", "--quiet")
    result = run("sample", "-c", tmp_path / "run", "-n", "3", "--length", "30", "--prime", "the", "--seed", "1")
    assert result.exit_code == 0, result.output
    blocks = result.stdout.split("--- sample ")[1:]
    assert [b.split(" ---")[0] for b in blocks] == ["1 of 3", "2 of 3", "3 of 3"]
    assert all(b.split("---\n", 1)[1].startswith("the") for b in blocks)


def test_training_with_no_corpus_uses_the_built_in_corpus_and_says_so(tmp_path):
    result = run("train", *FAST, "--max-steps", "2", "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.output
    assert "corpus: built-in: " in result.stderr and "standard-library sources" in result.stderr


def test_sample_prints_characters_of_the_models_vocabulary(tmp_path, pangram_file):
    run("train", pangram_file, *FAST, "--out", tmp_path / "run", "--quiet")
    result = run("sample", "--checkpoint", tmp_path / "run" / "latest.pt", "--length", "200", "--temp", "0.8")
    assert result.exit_code == 0
    assert set(result.stdout) <= set(PANGRAM)


@pytest.mark.parametrize(
    "setup, fragment",
    [
        (lambda p: None, "corpus not found"),
        (lambda p: p.write_text("", encoding="utf-8"), "is empty"),
        (lambda p: p.write_text("  \n\t \n", encoding="utf-8"), "only whitespace"),
        (lambda p: p.mkdir(), "holds no files"),
        (lambda p: p.write_bytes(b"caf\xe9 au lait\n" * 100), "not valid UTF-8: byte 0xe9 at offset 3 (line 1)"),
        (lambda p: p.write_bytes(b"\x7fELF\x00\x01" * 100), "binary file"),
        (lambda p: p.write_text("abc\n" * 10, encoding="utf-8"), "too short"),
    ],
    ids=["missing", "empty", "whitespace", "folder", "not-utf8", "binary", "too-short"],
)
def test_bad_corpora_get_one_line_and_exit_1(tmp_path, setup, fragment):
    corpus = tmp_path / "corpus.txt"
    setup(corpus)
    assert_one_line_error(run("train", corpus, *FAST, "--out", tmp_path / "run"), 1, fragment)
    assert not (tmp_path / "run" / LATEST).exists()


def test_unknown_prime_characters_are_a_usage_error_naming_them(tmp_path, pangram_file):
    run("train", pangram_file, *FAST, "--out", tmp_path / "run", "--quiet")
    result = run("sample", "--checkpoint", tmp_path / "run", "--prime", "Zebra?")  # 'Z' is read as 'z'
    assert_one_line_error(result, 2, "--prime", "never saw in training: '?';", "--unknown skip")
    refused = run("sample", "--checkpoint", tmp_path / "run", "--prime", "Zebra?", "--unknown", "refuse")
    assert_one_line_error(refused, 2, "--prime", "'?', 'Z' (the model knows its other case 'z')")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["sample", "--temp", "0"], "--temp"),
        (["sample", "--top-p", "1.5"], "--top-p"),
        (["train", "--seq-len", "0"], "--seq-len"),
        (["train", "--dropout", "1"], "--dropout"),
        (["train", "--cell", "transformer"], "--cell"),
        (["train", "--max-steps", "5", "--epochs", "1"], "not both"),
    ],
)
def test_bad_options_are_usage_errors(args, fragment):
    assert_one_line_error(run(*args), 2, fragment)


def test_sample_has_no_device_option_but_eval_keeps_it(trained):
    """Sampling runs in numpy on the CPU: a --device there would promise what it never did."""
    refused = run("sample", "-c", trained / "run", "--device", "cpu", "--length", "5")
    assert_one_line_error(refused, 2, "No such option", "--device")
    assert "--device" not in run("sample", "--help").stdout
    scored = run("eval", trained / "corpus.txt", "-c", trained / "run", "--device", "cpu")
    assert scored.exit_code == 0 and "bits per character" in scored.stdout, scored.output


def test_info_takes_its_checkpoint_as_the_other_commands_do_or_positionally(trained):
    positional = run("info", trained / "run")
    assert positional.exit_code == 0 and positional.stdout.startswith("checkpoint: "), positional.output
    for flag in ("-c", "--checkpoint"):
        assert run("info", flag, trained / "run").stdout == positional.stdout
    both = run("info", trained / "run", "-c", trained / "run")
    assert_one_line_error(both, 2, "give the checkpoint as CHECKPOINT or with -c, not both")


def test_missing_and_foreign_checkpoints_get_one_line(tmp_path):
    assert_one_line_error(run("sample", "--checkpoint", tmp_path), 1, "no checkpoint in", "train first")
    (tmp_path / "x.pt").write_text("not a checkpoint")
    assert_one_line_error(run("sample", "--checkpoint", tmp_path / "x.pt"), 1, "not a charrnn checkpoint")


def test_resume_given_a_corpus_path_explains_the_argument_order(tmp_path, pangram_file):
    result = run("train", "--resume", pangram_file, "--out", tmp_path / "run")
    assert_one_line_error(result, 2, "not a charrnn checkpoint", "put it before --resume")


def test_help_answers_without_importing_torch():
    code = (
        "import sys; from charrnn.cli.commands import main; sys.argv = ['charrnn', '--help']\n"
        "try: main()\nexcept SystemExit: pass\nassert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "train" in result.stdout


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "charrnn", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "charrnn" in result.stdout


def _charrnn(*args, **popen):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "charrnn", *map(str, args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


@pytest.mark.slow  # fault injection: kills a training process
def test_a_run_killed_with_sigkill_resumes_to_the_same_weights(tmp_path, pangram_file):
    args = ["train", pangram_file, *FAST, "--max-steps", "1000", "--save-every", "25", "--eval-every", "50", "--quiet"]
    whole = _charrnn(*args, "--out", tmp_path / "whole")

    killed = _charrnn(*args, "--out", tmp_path / "killed")
    deadline = time.time() + 120
    # Killed once it has trained past its first save (the second one is written): no sleep
    # whose length would depend on the machine's speed.
    while not (tmp_path / "killed" / "step-00000050.pt").exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, killed.stderr.read()
    saved_step = load_checkpoint(tmp_path / "killed" / LATEST)["step"]
    assert 0 < saved_step < 1000

    resumed = _charrnn(*args, "--out", tmp_path / "killed", "--resume")
    assert resumed.wait() == 0, resumed.stderr.read()
    assert whole.wait() == 0, whole.stderr.read()
    assert_same_training_state(tmp_path / "whole" / LATEST, tmp_path / "killed" / LATEST)

"""Options from a TOML file and the environment, early stopping, stop strings for sampling,
interactive sampling, and what info says of a run."""

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from charrnn.cli.commands import main
from charrnn.settings.config import TrainConfig, options_beyond_defaults
from charrnn.store.checkpoint import load_checkpoint, save_checkpoint
from helpers import PANGRAM, fast_args

FAST = fast_args(hidden_size=32, max_steps=None, eval_every=None, save_every=None, warmup_steps=None, quiet=True)


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def corpus_file(tmp_path):
    path = tmp_path / "pangram.txt"
    path.write_text(PANGRAM * 300, encoding="utf-8")
    return path


def test_a_config_file_sets_options_and_the_command_line_and_environment_win(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text("hidden-size = 24\nlr = 0.005\nmax_steps = 6\nseed = 3\n", encoding="utf-8")
    result = run(
        "train",
        corpus_file(tmp_path),
        "--layers",
        "1",
        "--seq-len",
        "16",
        "--batch-size",
        "4",
        "--quiet",
        "--config",
        config,
        "--lr",
        "0.002",
        "--out",
        tmp_path / "run",
        env={"CHARRNN_TRAIN_SEED": "9"},
    )
    assert result.exit_code == 0, result.output
    state = load_checkpoint(tmp_path / "run" / "latest.pt")
    assert state["model_config"]["hidden_size"] == 24 and state["step"] == 6  # from the file
    assert state["train_config"]["lr"] == 0.002  # the command line wins over the file
    assert state["train_config"]["seed"] == 9  # so does the environment


def test_a_config_file_with_an_unknown_key_is_refused_in_one_line(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text("hiden-size = 24\n", encoding="utf-8")
    result = run("train", corpus_file(tmp_path), "--config", config, "--out", tmp_path / "run")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "has keys that are not options of 'charrnn train': hiden-size" in lines[0]


def test_patience_stops_when_validation_stops_improving_and_keeps_the_best(tmp_path):
    # A learning rate far too high: validation soon stops improving.
    result = run(
        "train",
        corpus_file(tmp_path),
        *FAST,
        "--lr",
        "0.5",
        "--warmup-steps",
        "1",
        "--min-lr-ratio",
        "1",
        "--eval-every",
        "5",
        "--save-every",
        "5",
        "--max-steps",
        "2000",
        "--patience",
        "3",
        "--out",
        tmp_path / "run",
    )
    assert result.exit_code == 0, result.output
    assert "stopping early at step" in result.stderr and "--patience 3" in result.stderr
    latest, best = load_checkpoint(tmp_path / "run" / "latest.pt"), load_checkpoint(tmp_path / "run" / "best.pt")
    assert latest["step"] < 2000 and latest["evals_since_best"] == 3
    assert best["step"] == latest["step"] - 15 and best["val_loss"] == latest["best_val_loss"]
    again = run("train", "--resume", "--out", tmp_path / "run")  # an early-stopped run is complete
    assert again.exit_code == 0 and load_checkpoint(tmp_path / "run" / "latest.pt")["step"] == latest["step"]


def test_sampling_stops_after_a_stop_string_in_every_sample(tmp_path):
    trained = run(
        "train", corpus_file(tmp_path), *FAST, "--lr", "0.01", "--max-steps", "150", "--out", tmp_path / "run"
    )
    assert trained.exit_code == 0, trained.output
    one = run("sample", "-c", tmp_path / "run", "--prime", "the", "--length", "500", "--seed", "0", "--stop", "dog")
    assert one.exit_code == 0, one.output
    text = one.stdout.rstrip("\n")
    assert text.startswith("the") and text.endswith("dog") and text[3:].count("dog") == 1
    many = run(
        "sample", "-c", tmp_path / "run", "-n", "3", "--length", "500", "--seed", "0", "--stop", "fox", "--stop", "dog"
    )
    assert many.exit_code == 0, many.output
    samples = [part.split("\n", 1)[1].rstrip("\n") for part in many.stdout.split("--- sample ")[1:]]
    assert len(samples) == 3 and all(
        s.endswith(("fox", "dog")) and s.count("fox") + s.count("dog") == 1 for s in samples
    )
    empty = run("sample", "-c", tmp_path / "run", "--stop", "")
    assert empty.exit_code == 2 and "--stop" in empty.stderr


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """The out folder of a run that has learned something of the pangram (100 steps)."""
    folder = tmp_path_factory.mktemp("learned")
    trained = run("train", corpus_file(folder), *FAST, "--lr", "0.01", "--max-steps", "100", "--out", folder / "run")
    assert trained.exit_code == 0, trained.output
    return folder / "run"


def _session(run_folder, typed: str, *options: str):
    """`charrnn sample -i` with `typed` piped in as the lines typed."""
    return CliRunner().invoke(main, ["sample", "-c", str(run_folder), "-i", *options], input=typed)


def test_interactive_sampling_continues_each_typed_prime_until_end_of_input(learned):
    result = _session(learned, "the quick\nÆther\nlazy\n", "--length", "40", "--seed", "1")
    assert result.exit_code == 0, result.output
    # Each prime's text (the prime and 40 characters, which may hold newlines), then a blank line.
    first_end = len("the quick") + 40
    first, rest = result.stdout[:first_end], result.stdout[first_end:]
    assert first.startswith("the quick") and rest.startswith("\n\nlazy")
    assert len(rest) == len("\n\n") + len("lazy") + 40 + len("\n\n")  # Æther was refused, asked again
    assert "that prime has characters the model never saw in training: 'Æ'" in result.stderr  # and it went on
    assert result.stderr.count("prime> ") == 4  # asked again after each, until the input ended


def test_interactive_commands_change_the_settings_and_a_bad_one_is_one_line(learned):
    typed = ":length 5\nthe\n:temp 0\n:temp abc\n:length -1\n:top_k off\n:nope\n:help\n::x\n:length 2\nfox\n"
    result = _session(learned, typed, "--seed", "1")
    assert result.exit_code == 0, result.output
    # each prime's text, then a blank line: the first continued by 5 characters, the last by 2
    out = result.stdout
    assert out.startswith("the") and out[8:10] == "\n\n" and out[10:13] == "fox" and len(out) == 10 + 5 + 2
    said = result.stderr
    assert "that prime has characters the model never saw in training: ':'" in said  # '::x' is the prime ':x'
    assert "length 5\n" in said and "top_k off\n" in said
    assert ":temp 0: must be a number > 0; nothing changed" in said
    assert ":temp abc: must be a number > 0; nothing changed" in said
    assert ":length -1: must be an integer >= 0; nothing changed" in said
    assert ":nope is no command; :help lists them" in said
    help_text = said.split("commands (each applies to the primes after it):")[1]
    assert ":temp T" in help_text and "(now 1)" in help_text and "(now 5)" in help_text  # the settings as they are
    assert "Traceback" not in result.output


class _Terminal:
    """`charrnn ARGS` on a pseudo-terminal (stdin and stdout), as a person at a keyboard runs it."""

    def __init__(self, *args: str):
        self._keys, writer = os.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "charrnn", *args],
            stdin=writer,
            stdout=writer,
            stderr=subprocess.PIPE,
            env={**os.environ, "OMP_NUM_THREADS": "1", "TERM": "xterm"},
        )
        os.close(writer)
        self.shown = ""

    def wait_for(self, text: str, count: int) -> None:
        """Read the screen until `text` has appeared `count` times (a hang fails after 120 s)."""
        deadline = time.monotonic() + 120
        while self.shown.count(text) < count:
            assert time.monotonic() < deadline and self.process.poll() is None, self.shown
            if select.select([self._keys], [], [], 1)[0]:  # never a read that blocks past the deadline
                self.shown += os.read(self._keys, 1 << 16).decode("utf-8", "replace")

    def type(self, keys: str) -> None:
        os.write(self._keys, keys.encode("utf-8"))

    def end(self) -> str:
        """Ctrl-D at the prompt; what the process wrote to stderr."""
        self.type("\x04")
        _, stderr = self.process.communicate(timeout=120)
        os.close(self._keys)
        assert self.process.returncode == 0, stderr
        return stderr.decode("utf-8")


UP = "\x1b[A"


def test_on_a_terminal_the_up_arrow_recalls_the_last_prime(learned):
    terminal = _Terminal("sample", "-c", str(learned), "-i", "--length", "0")
    terminal.wait_for("prime> ", 1)
    terminal.type("lazy\r")
    terminal.wait_for("prime> ", 2)
    terminal.type(UP + "\r")  # read as the characters ESC [ A without line editing
    terminal.wait_for("prime> ", 3)
    said = terminal.end()
    assert "never saw" not in said, said
    assert terminal.shown.count("lazy\r\n\r\n") == 2, terminal.shown  # the prime, twice, each then a blank line


def _samples(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return result.stdout.split("\n\n")[:-1]


def test_with_a_seed_each_prime_draws_from_a_stream_of_its_own_the_same_each_session(learned):
    hot = ("--seed", "1", "--temp", "3", "--length", "60")
    first, second = _samples(_session(learned, "the\nthe\n", *hot))
    assert first != second  # the same prime twice: two samples, not one twice
    assert _samples(_session(learned, "the\nthe\n", *hot)) == [first, second]
    assert _samples(_session(learned, "the\n:seed 1\nthe\n", *hot)) == [first, first]  # :seed starts again
    assert _samples(_session(learned, "the\n", "--seed", "2", *hot[2:])) != [first]


@pytest.mark.parametrize(
    "command, headings, a_default",
    [
        (
            "train",
            ["Data:", "Model:", "Optimisation:", "Checkpoints and progress:", "Hardware:"],
            "[default: 16; x>=1]",
        ),
        ("sample", ["Model:", "What to generate:", "How to choose each character:"], "[default: 1000; x>=0]"),
    ],
)
def test_help_groups_every_option_under_a_heading_with_its_default(command, headings, a_default):
    result = run(command, "--help")
    assert result.exit_code == 0
    positions = [result.output.index(f"\n{heading}\n") for heading in headings]
    assert positions == sorted(positions)
    other = result.output.split("\nOther options:\n")[1]
    assert other.split() == ["-h,", "--help", "Show", "this", "message", "and", "exit."]  # nothing left unsorted
    assert a_default in result.output  # --batch-size's, --length's


def test_beam_search_finds_a_continuation_at_least_as_likely_as_greedy_and_sampled_ones(tmp_path):
    import torch

    from charrnn.core.beam import beam_search
    from helpers import load_model

    trained = run("train", corpus_file(tmp_path), *FAST, "--lr", "0.01", "--max-steps", "60", "--out", tmp_path / "run")
    assert trained.exit_code == 0, trained.output
    loaded = load_model(tmp_path / "run", torch.device("cpu"))
    start = [int(i) for i in loaded.vocab.encode("the ")]

    def log_prob(ids):
        inputs = torch.tensor([start + ids])
        with torch.inference_mode():
            logits, _ = loaded.model(inputs, loaded.model.init_hidden(1, torch.device("cpu")))
        log_probs = torch.log_softmax(logits[0, len(start) - 1 : -1], dim=-1)
        return float(log_probs.gather(1, torch.tensor(ids)[:, None]).sum())

    greedy, beam = beam_search(loaded.model, start, 30, 1), beam_search(loaded.model, start, 30, 8)
    generator = torch.Generator().manual_seed(0)
    sampled = [torch.randint(len(loaded.vocab), (30,), generator=generator).tolist() for _ in range(5)]
    assert len(beam) == 30 and log_prob(beam) >= log_prob(greedy) - 1e-4
    assert all(log_prob(beam) > log_prob(ids) for ids in sampled)
    result = run("sample", "-c", tmp_path / "run", "--prime", "the ", "--beam", "8", "--length", "30")
    assert result.exit_code == 0 and result.stdout == "the " + loaded.vocab.decode(beam) + "\n"


def test_info_shows_the_options_a_run_was_given_however_they_came(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text("max-steps = 4\n", encoding="utf-8")
    trained = run("train", corpus_file(tmp_path), *FAST, "--config", config, "--lr", "0.004", "--out", tmp_path / "run")
    assert trained.exit_code == 0, trained.output
    info = run("info", tmp_path / "run")
    line = next(line for line in info.stdout.splitlines() if line.startswith("training options"))
    assert "--lr 0.004" in line and "--max-steps 4" in line and "--seq-len 16" in line and "--batch-size 4" in line


def _info_line(folder, start: str) -> str:
    info = run("info", folder)
    assert info.exit_code == 0, info.output
    return next(line for line in info.stdout.splitlines() if line.startswith(start))


def test_info_shows_a_duration_as_written_and_no_step_limit_that_another_length_lifted(tmp_path):
    assert options_beyond_defaults(TrainConfig(max_steps=None, max_time=180.0)) == ["--max-time 3m"]
    assert options_beyond_defaults(TrainConfig(max_time=5400.0, patience=3)) == ["--max-time 1h30m", "--patience 3"]
    trained = run(
        "train", corpus_file(tmp_path), *FAST, "--epochs", "0.05", "--max-time", "3m", "--out", tmp_path / "r"
    )
    assert trained.exit_code == 0, trained.output
    line = _info_line(tmp_path / "r", "training options")
    assert "--epochs 0.05" in line and "--max-time 3m" in line and "--max-steps" not in line and "180" not in line


def test_info_lists_the_vocabulary_most_frequent_first_and_older_checkpoints_by_code_point(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(PANGRAM * 60 + "zzzzzzzzzzzzzzzzzzzz\n" * 30, encoding="utf-8")
    trained = run("train", corpus, *fast_args(quiet=True), "--out", tmp_path / "run")
    assert trained.exit_code == 0, trained.output
    # 'z' is the rarest letter of the pangram, here the most frequent; then ' ' (8 a line), 'o' (4), 'e' (3),
    # h r t u (2 a line: 120), '\\n' (one a line: 90)
    assert _info_line(tmp_path / "run", "vocabulary: ").endswith(
        "most frequent first: 'z oehrtu\\nabcdfgijklmnpqsvwxy'"
    )
    state = load_checkpoint(tmp_path / "run" / "best.pt")
    del state["corpus"]["entry_counts"]  # as a checkpoint from before charrnn counted them
    save_checkpoint(state, tmp_path / "old.pt")
    assert _info_line(tmp_path / "old.pt", "vocabulary: ").endswith(
        "by code point (the checkpoint holds no counts): '\\n abcdefghijklmnopqrstuvwxyz'"
    )
    old = Path(__file__).parent / "data" / "format1-lstm.pt"
    assert "by code point (the checkpoint holds no counts)" in _info_line(old, "vocabulary: ")

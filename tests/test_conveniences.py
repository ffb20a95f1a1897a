"""Options from a TOML file and the environment, early stopping, stop strings for sampling,
interactive sampling, and what info says of a run."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from charrnn.checkpoint import load_checkpoint, save_checkpoint
from charrnn.cli import main
from charrnn.config import TrainConfig, options_beyond_defaults
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


def test_interactive_sampling_continues_each_typed_prime_until_end_of_input(tmp_path):
    trained = run(
        "train", corpus_file(tmp_path), *FAST, "--lr", "0.01", "--max-steps", "100", "--out", tmp_path / "run"
    )
    assert trained.exit_code == 0, trained.output
    result = CliRunner().invoke(
        main,
        ["sample", "-c", str(tmp_path / "run"), "-i", "--length", "40", "--seed", "1"],
        input="the quick\nÆther\nlazy\n",
    )
    assert result.exit_code == 0, result.output
    # Each prime's text (the prime and 40 characters, which may hold newlines), then a blank line.
    first_end = len("the quick") + 40
    first, rest = result.stdout[:first_end], result.stdout[first_end:]
    assert first.startswith("the quick") and rest.startswith("\n\nlazy")
    assert len(rest) == len("\n\n") + len("lazy") + 40 + len("\n\n")  # Æther was refused, asked again
    assert "that prime has characters the model never saw in training: 'Æ'" in result.stderr  # and it went on
    assert result.stderr.count("prime> ") == 4  # asked again after each, until the input ended


@pytest.mark.parametrize(
    "command, headings",
    [
        ("train", ["Data:", "Model:", "Optimisation:", "Checkpoints and progress:", "Hardware:"]),
        ("sample", ["Model:", "What to generate:", "How to choose each character:"]),
    ],
)
def test_help_groups_every_option_under_a_heading_with_its_default(command, headings):
    result = run(command, "--help")
    assert result.exit_code == 0
    positions = [result.output.index(f"\n{heading}\n") for heading in headings]
    assert positions == sorted(positions)
    other = result.output.split("\nOther options:\n")[1]
    assert other.split() == ["-h,", "--help", "Show", "this", "message", "and", "exit."]  # nothing left unsorted
    assert "[default: 16; x>=1]" in result.output or command == "sample"


def test_beam_search_finds_a_continuation_at_least_as_likely_as_greedy_and_sampled_ones(tmp_path):
    import torch

    from charrnn.sample import beam_search, load_model

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

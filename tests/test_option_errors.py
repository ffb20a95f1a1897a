"""One clear line and the right exit code, wherever a bad value comes from: the command line, a
CHARRNN_<COMMAND>_<OPTION> environment variable or a --config TOML file; and output that cannot
be written (stdout closed, full or ASCII-only) is reported, or escaped, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from charrnn.cli.commands import main, train
from charrnn.cli.failures import _out_of_memory
from charrnn.errors import ConfigError, OptionError
from charrnn.run import distributed
from charrnn.settings.config import MAX_PARAMETERS, ModelConfig, SampleConfig, TrainConfig
from charrnn.settings.option import is_text_encoding
from charrnn.store.checkpoint import load_checkpoint
from helpers import PANGRAM, fast_args

FAST = fast_args(
    hidden_size=16, seq_len=8, batch_size=2, max_steps=4, eval_every=2, save_every=2, warmup_steps=1, quiet=True
)
TEXT = PANGRAM * 40 + "世界\n"


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def assert_one_line_error(result, exit_code, *fragments):
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output and "unexpected" not in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny run on the pangram and two Chinese characters, its corpus beside it."""
    folder = tmp_path_factory.mktemp("trained")
    (folder / "corpus.txt").write_text(TEXT, encoding="utf-8")
    result = invoke("train", folder / "corpus.txt", *FAST, "--out", folder / "run")
    assert result.exit_code == 0, result.output
    return folder


def toml_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --config: each value must have its option's TOML type, and is checked against its range ----------


@pytest.mark.parametrize(
    "line, excerpt",
    [
        ("hidden-size = 16.9", "hidden-size: must be an integer, got 16.9"),  # click's INT would make it 16
        ('hidden-size = "16"', 'hidden-size: must be an integer, got "16"'),
        ("hidden-size = true", "hidden-size: must be an integer, got true"),
        ("hidden-size = [16, 32]", "hidden-size: must be an integer, got [16, 32]"),
        ("[hidden-size]\nwidth = 16", 'hidden-size: must be an integer, got {"width": 16}'),
        ("seed = 1e3", "seed: must be an integer, got 1000.0"),
        ("seed = 2020-01-01", "seed: must be an integer, got"),
        ('lr = "0.01"', 'lr: must be a number, got "0.01"'),
        ("lr = false", "lr: must be a number, got false"),
        ('quiet = "yes"', 'quiet: must be true or false, got "yes"'),
        ("quiet = 1", "quiet: must be true or false, got 1"),
        ("encoding = 8", "encoding: must be a string, got 8"),
        ("out = 5", "out: must be a string, got 5"),
        ("max-time = true", "max-time: must be a number of seconds or a duration"),
        ("hidden-size = 0", "hidden-size: 0 is not in the range x>=1"),
        ("layers = 1000", "layers: 1,000 is too large (at most 64)"),
        ("lr = nan", "lr: nan is not a finite number"),
        ("max-time = -5", "max-time: -5 is not a positive duration"),
        ("max-time = 1e999", "max-time: inf is not a positive duration"),
        ('encoding = "rot13"', "encoding: 'rot13' is not a text encoding"),
        ('cell = "transformer"', "cell: 'transformer' is not one of"),
        ("max-steps = 5\nmax_steps = 6", "gives --max-steps twice"),
    ],
)
def test_a_config_value_of_the_wrong_type_or_range_is_refused_naming_file_and_key(tmp_path, line, excerpt):
    config = toml_file(tmp_path, line + "\n")
    result = invoke("train", tmp_path / "nosuch.txt", "--config", config, "--out", tmp_path / "run")
    assert_one_line_error(result, 2, "Invalid value for '--config'", f"{config}", excerpt)
    assert not (tmp_path / "run").exists()


def test_config_values_of_the_right_types_become_the_options(tmp_path):
    config = toml_file(
        tmp_path,
        'hidden-size = 24\nlr = 1\nepochs = 2\nmax-time = "1h30m"\ninput = "one-hot"\n'
        'quiet = true\nencoding = "latin-1"\nout = "runs/a"\n',
    )
    context = train.make_context("train", ["c.txt", "--config", str(config)])
    params = context.params
    assert (params["hidden_size"], params["lr"], params["epochs"], params["max_time"]) == (24, 1.0, 2.0, 5400.0)
    assert (params["input_mode"], params["quiet"], params["encoding"], params["out"]) == (
        "one-hot",
        True,
        "latin-1",
        Path("runs/a"),
    )
    assert type(params["lr"]) is float


@pytest.mark.parametrize(
    "make, excerpt",
    [
        (lambda tmp: _fifo(tmp / "fifo.toml"), "is not a regular file"),  # reading would block
        (lambda tmp: Path("/dev/zero"), "is not a regular file"),  # reading would never end
        (lambda tmp: toml_file(tmp, "#" * (1 << 21)), "is larger than 1 MiB"),
        (lambda tmp: _bytes(tmp / "bad.toml", b"\xff\xfe"), "is not a readable TOML file"),
    ],
)
def test_a_config_file_that_is_no_options_file_is_refused_at_once(tmp_path, make, excerpt):
    result = invoke("train", tmp_path / "nosuch.txt", "--config", make(tmp_path))
    assert_one_line_error(result, 2, excerpt)


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["train", "c.txt", "--out", ""],
        ["train", ""],
        ["train", "c.txt", "--resume", ""],
        ["train", "c.txt", "--init-from", ""],
        ["train", "c.txt", "--config", ""],
        ["sample", "-c", ""],
        ["eval", "", "-c", "x"],
        ["info", ""],
        ["plot", ""],
        ["plot", "x", "-o", ""],
    ],
)
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(invoke(*args), 2, "must not be empty (is a shell variable unset?)")
    assert list(tmp_path.iterdir()) == []  # nothing was written here


@pytest.mark.parametrize("key", ["out", "init-from"])
def test_a_nul_in_a_path_from_a_config_file_is_refused(tmp_path, key):
    config = toml_file(tmp_path, f'{key} = "a\\u0000b"\n')
    assert_one_line_error(
        invoke("train", tmp_path / "nosuch.txt", "--config", config), 2, f"{key}: must not contain a NUL character"
    )


def test_a_bare_resume_still_means_the_out_folder(tmp_path, trained):
    out = tmp_path / "run"
    assert invoke("train", trained / "corpus.txt", *FAST, "--out", out).exit_code == 0
    resumed = invoke("train", trained / "corpus.txt", *FAST, "--max-steps", "6", "--out", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(out / "latest.pt")["step"] == 6


# The environment ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable, value, excerpt",
    [
        ("CHARRNN_TRAIN_HIDDEN_SIZE", "abc", "'abc' is not a valid integer"),
        ("CHARRNN_TRAIN_HIDDEN_SIZE", "16.9", "'16.9' is not a valid integer"),
        ("CHARRNN_TRAIN_SEED", str(2**64), "is too large (at most 9,223,372,036,854,775,807)"),
        ("CHARRNN_TRAIN_ENCODING", "rot13", "'rot13' is not a text encoding"),
        ("CHARRNN_TRAIN_QUIET", "maybe", "'maybe' is not a valid boolean"),
        ("CHARRNN_TRAIN_LR", "inf", "'inf' is not a finite number"),
        ("CHARRNN_TRAIN_INPUT", "bytes", "'bytes' is not one of"),  # named after the flag, --input ...
        ("CHARRNN_TRAIN_INPUT_MODE", "bytes", "'bytes' is not one of"),  # ... or after its parameter
        ("CHARRNN_TRAIN_COMPILE", "maybe", "'maybe' is not a valid boolean"),
    ],
)
def test_a_bad_value_from_the_environment_exits_2_naming_the_variable(tmp_path, variable, value, excerpt):
    result = invoke("train", tmp_path / "nosuch.txt", "--out", tmp_path / "run", env={variable: value})
    assert_one_line_error(result, 2, excerpt, f"(from the environment variable {variable})")


def test_the_environment_variables_the_readme_shows_are_read(trained):
    too_cold = invoke("sample", "-c", trained / "run", "--length", "5", env={"CHARRNN_SAMPLE_TEMP": "0"})
    assert_one_line_error(too_cold, 2, "(from the environment variable CHARRNN_SAMPLE_TEMP)")
    stopped = invoke(
        "sample", "-c", trained / "run", "--length", "500", "--seed", "1", env={"CHARRNN_SAMPLE_STOP": "o"}
    )
    assert stopped.exit_code == 0 and stopped.stdout.rstrip("\n").endswith("o") and stopped.stdout.count("o") == 1


# Encodings that are codecs but not text encodings ---------------------------------------------------


@pytest.mark.parametrize("name", ["rot13", "base64", "hex", "zlib", "bz2", "uu", "quopri", "undefined"])
def test_codecs_that_are_not_text_encodings_are_refused_as_usage_errors(tmp_path, trained, name):
    assert not is_text_encoding(name)
    assert_one_line_error(
        invoke("train", trained / "corpus.txt", "--encoding", name, "--out", tmp_path / "o"),
        2,
        f"'{name}' is not a text encoding",
    )
    assert_one_line_error(
        invoke("eval", trained / "corpus.txt", "-c", trained / "run", "--encoding", name),
        2,
        f"'{name}' is not a text encoding",
    )
    with pytest.raises(ConfigError, match="--encoding must be a text encoding"):
        TrainConfig(encoding=name)  # a checkpoint's stored encoding meets the same rule


@pytest.mark.parametrize("name", ["utf-8", "latin-1", "gb18030", "utf-16", "UTF8", "cp1252"])
def test_text_encodings_pass(name):
    assert is_text_encoding(name)


@pytest.mark.parametrize("name", [None, 8, "", "utf\0-8", "x" * 10_000])
def test_encoding_names_that_are_no_names_are_not_text_encodings(name):
    assert not is_text_encoding(name)


# Numbers too large for torch, numpy or the machine ------------------------------------------------------

HUGE = str(10**30)


@pytest.mark.parametrize(
    "args, excerpt",
    [
        (
            ["train", "--seed", str(2**64)],
            "'--seed': 18,446,744,073,709,551,616 is too large (at most 9,223,372,036,854,775,807)",
        ),
        (["train", "--max-steps", HUGE], "'--max-steps': 1,000,000,000,000,000,000,000,000,000,000 is too large"),
        (["train", "--hidden-size", str(10**12)], "'--hidden-size': 1,000,000,000,000 is too large (at most 16,384)"),
        (["train", "--embed-dim", str(10**12)], "'--embed-dim': 1,000,000,000,000 is too large (at most 16,384)"),
        (["train", "--layers", str(10**6)], "'--layers': 1,000,000 is too large (at most 64)"),
        (["train", "--batch-size", HUGE], "'--batch-size'"),
        (["train", "--seq-len", HUGE], "'--seq-len'"),
        (["train", "--eval-chars", HUGE], "'--eval-chars'"),
        (["train", "--warmup-steps", HUGE], "'--warmup-steps'"),
        (["train", "--lr", "1e300"], "'--lr': 1e+300 is too large (at most 3.4e+38)"),
        (["train", "--epochs", "1e308"], "'--epochs'"),
        (["sample", "--seed", str(2**64)], "'--seed'"),
        (["sample", "--length", HUGE], "'--length' / '-l'"),
        (["sample", "--top-k", HUGE], "'--top-k'"),
        (["sample", "-n", str(10**9)], "'--num-samples' / '-n': 1,000,000,000 is too large (at most 65,536)"),
        (["sample", "--beam", str(10**9)], "'--beam': 1,000,000,000 is too large (at most 65,536)"),
    ],
)
def test_integers_too_large_for_torch_or_the_machine_are_refused_with_their_bound(args, excerpt):
    assert_one_line_error(invoke(*args), 2, excerpt, "is too large")


def test_the_largest_seed_trains_and_samples(tmp_path, trained):
    seed = str(2**63 - 1)
    result = invoke("train", trained / "corpus.txt", *FAST, "--seed", seed, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert invoke("sample", "-c", tmp_path / "run", "--seed", seed, "--length", "5").exit_code == 0


def test_a_model_too_large_to_build_is_refused_before_anything_is_allocated(tmp_path, trained):
    with pytest.raises(ConfigError, match="parameters is more than charrnn builds"):
        ModelConfig(vocab_size=100, hidden_size=16_384, layers=64)
    assert ModelConfig(vocab_size=100, hidden_size=4096, layers=4).parameter_count < MAX_PARAMETERS
    result = invoke(
        "train", trained / "corpus.txt", "--hidden-size", "16384", "--layers", "64", "--out", tmp_path / "run"
    )
    assert_one_line_error(result, 1, "parameters is more than charrnn builds")


def test_stored_configs_meet_the_same_bounds():
    with pytest.raises(ConfigError, match="--layers must be at most 64, got 1000000"):
        ModelConfig(vocab_size=10, layers=10**6)
    with pytest.raises(ConfigError, match="--seed must be at most"):
        TrainConfig(seed=2**64)
    with pytest.raises(ConfigError, match="--top-k must be at most"):
        SampleConfig(top_k=10**30)


def test_running_out_of_memory_is_one_line_with_the_size_asked_for(monkeypatch, trained):
    torch_message = (
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
        "you tried to allocate 96000000000 bytes. Error code 12 (Cannot allocate memory)"
    )
    assert _out_of_memory(RuntimeError(torch_message)).startswith("out of memory: 89.4 GiB asked for")
    assert _out_of_memory(MemoryError()).startswith("out of memory; ")
    assert _out_of_memory(RuntimeError("shape mismatch")) is None

    def allocate(*args, **kwargs):
        raise RuntimeError(torch_message + "\nException raised from ... (most recent call first):\nframe #0: ...")

    monkeypatch.setattr("charrnn.api.load_for_sampling", allocate)
    assert_one_line_error(invoke("sample", "-c", trained / "run"), 1, "out of memory: 89.4 GiB asked for")


def test_the_largest_learning_rate_ends_in_one_line_not_a_crash(tmp_path, trained):
    # AdamW's first step divides the rate by 0.1 (bias correction): past float32 for 3.4e38
    result = invoke(
        "train",
        trained / "corpus.txt",
        *FAST,
        "--lr",
        "3.4e38",
        "--warmup-steps",
        "0",
        "--min-lr-ratio",
        "1",
        "--out",
        tmp_path / "run",
    )
    lines = result.stderr.strip().splitlines()  # what it said while starting, then the error
    assert result.exit_code == 1 and sum(line.startswith("Error: ") for line in lines) == 1, result.output
    assert lines[-1].startswith("Error: ") and ("float32" in lines[-1] or "diverged" in lines[-1]), lines


def test_an_unexpected_error_spanning_lines_is_still_one_line(monkeypatch, trained):
    def fail(*args, **kwargs):
        raise ValueError("first line\nException raised from c10::...\nframe #0: ...")

    monkeypatch.setattr("charrnn.api.load_for_sampling", fail)
    result = invoke("sample", "-c", trained / "run")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: unexpected ValueError: first line (rerun with --debug for the traceback)"
    ]


# torchrun's environment set by hand ------------------------------------------------------------------


@pytest.mark.parametrize(
    "env, excerpt",
    [
        ({"WORLD_SIZE": "2"}, "'RANK': is not set, but WORLD_SIZE asks for distributed training"),
        ({"WORLD_SIZE": "two"}, "'WORLD_SIZE': 'two' is not an integer"),
        ({"WORLD_SIZE": "0"}, "'WORLD_SIZE': 0 is not in the range 1 to"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "'RANK': 2 is not in the range 0 to 1"),
        ({"WORLD_SIZE": "2", "RANK": "-1"}, "'RANK': -1 is not in the range 0 to 1"),
        ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "x"}, "'LOCAL_RANK': 'x' is not an integer"),
        ({"WORLD_SIZE": "2", "RANK": "1"}, "'MASTER_ADDR': is not set"),
        (
            {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "localhost", "MASTER_PORT": "99999"},
            "'MASTER_PORT': 99999 is not in the range 1 to 65,535",
        ),
        ({"WORLD_SIZE": str(10**20), "RANK": "0"}, "'WORLD_SIZE'"),
    ],
)
def test_a_wrong_distributed_environment_is_one_line_before_anything_is_written(
    tmp_path, trained, monkeypatch, env, excerpt
):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    result = invoke("train", trained / "corpus.txt", *FAST, "--out", tmp_path / "run", env=env)
    assert_one_line_error(result, 2, excerpt)
    assert not (tmp_path / "run").exists()


def test_a_world_of_one_is_a_plain_run(monkeypatch):
    import torch

    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "junk")  # not read: one process needs no rank
    assert distributed.join(torch.device("cpu")) == (distributed.SINGLE, torch.device("cpu"))


def test_distributed_values_are_checked_one_by_one(monkeypatch):
    monkeypatch.setenv("RANK", " 3 ")
    assert distributed._environment_int("RANK", 0, 7) == 3
    monkeypatch.setenv("RANK", "\x1b[31m")
    with pytest.raises(OptionError, match=r"'\\x1b\[31m' is not an integer"):  # shown escaped, never raw
        distributed._environment_int("RANK", 0, 7)


# Output that cannot be written, in real processes ---------------------------------------------------


def charrnn(*args, env=None, **kwargs) -> subprocess.CompletedProcess:
    """`python -m charrnn ARGS` in a subprocess, its stderr decoded."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "charrnn", *map(str, args)], env=full_env, stderr=subprocess.PIPE, timeout=300, **kwargs
    )


def assert_process_error(process, exit_code, excerpt):
    lines = process.stderr.decode("utf-8", "replace").strip().splitlines()
    assert process.returncode == exit_code, lines
    assert lines[-1].startswith("Error: ") and excerpt in lines[-1], lines
    assert not any(line.startswith("Error: ") for line in lines[:-1]) and "Traceback" not in process.stderr.decode()
    assert "Exception ignored" not in process.stderr.decode()


def test_sampling_to_a_closed_stdout_is_one_line_and_exit_1(trained):
    process = charrnn(
        "sample", "-c", trained / "run", "--length", "20", stdout=subprocess.DEVNULL, preexec_fn=lambda: os.close(1)
    )
    assert_process_error(process, 1, "cannot write to standard output: it is closed")


@pytest.mark.slow  # fault injection: a process writing to /dev/full
@pytest.mark.parametrize("command", [["sample", "--length", "20"], ["info"], ["eval", "TEXT"]])
def test_writing_to_a_full_disk_is_one_line_and_exit_1(trained, command):
    args = [trained / "corpus.txt" if a == "TEXT" else a for a in command]
    checkpoint = [trained / "run"] if command[0] == "info" else ["-c", trained / "run"]
    with open("/dev/full", "wb") as full:
        process = charrnn(*args, *checkpoint, stdout=full)
    assert_process_error(process, 1, "cannot write to standard output: No space left on device")


def test_characters_an_ascii_terminal_cannot_show_are_written_escaped(trained):
    process = charrnn(
        "sample",
        "-c",
        trained / "run",
        "--prime",
        "世界",
        "--length",
        "10",
        "--seed",
        "1",
        env={"PYTHONIOENCODING": "ascii"},
        stdout=subprocess.PIPE,
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.startswith(b"\\u4e16\\u754c") and process.stdout.isascii()


def test_a_c_locale_without_utf8_mode_does_not_crash_on_chinese_output(trained):
    process = charrnn(
        "sample",
        "-c",
        trained / "run",
        "--length",
        "300",
        "--seed",
        "3",
        "--temp",
        "10",
        stdout=subprocess.PIPE,
        env={"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"},
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.isascii() and (b"\\u4e16" in process.stdout or b"\\u754c" in process.stdout)


def test_chinese_file_names_in_messages_to_an_ascii_stderr(tmp_path):
    process = charrnn("sample", "-c", tmp_path / "世界.pt", env={"PYTHONIOENCODING": "ascii"})
    assert_process_error(process, 1, "checkpoint not found")


@pytest.mark.slow  # fault injection: a process with a broken stderr
@pytest.mark.parametrize("stderr", ["closed", "full"])
def test_training_goes_on_when_stderr_cannot_be_written(tmp_path, trained, stderr):
    out = tmp_path / "run"
    args = ["train", trained / "corpus.txt", *FAST, "--out", out]
    if stderr == "closed":
        process = charrnn(*args, stdout=subprocess.PIPE, preexec_fn=lambda: os.close(2))
    else:
        with open("/dev/full", "wb") as full:
            process = subprocess.run(
                [sys.executable, "-m", "charrnn", *map(str, args)], stdout=subprocess.PIPE, stderr=full, timeout=300
            )
    assert process.returncode == 0
    assert process.stdout == b""  # messages never leak onto stdout
    assert (out / "latest.pt").exists() and (out / "best.pt").exists()


@pytest.mark.slow  # fault injection: a process with a closed stdout
def test_stdout_closed_does_not_stop_training_which_writes_nothing_there(tmp_path, trained):
    process = charrnn(
        "train",
        trained / "corpus.txt",
        *FAST,
        "--out",
        tmp_path / "run",
        stdout=subprocess.DEVNULL,
        preexec_fn=lambda: os.close(1),
    )
    assert process.returncode == 0, process.stderr
    assert (tmp_path / "run" / "latest.pt").exists()


# Fuzzing: random values for every option, from the command line, the environment or a TOML file ----
#
# The oracle below is written from each option's documented type and range (its --help), not from
# charrnn's code. Any invalid value must end in exit 2 and one `Error:` line; values that are all
# valid must pass the options and reach the next check (a corpus or checkpoint that is not there),
# which proves the command line and the config classes agree about what is valid.

import codecs  # noqa: E402 - the fuzz tests' own imports
import json  # noqa: E402
import math  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from charrnn.settings.budget import parse_duration  # noqa: E402
from charrnn.settings.option import MAX_HELD  # noqa: E402

COUNT = 10**15  # the far bound of counts (steps, characters, streams)
TRAIN_OPTIONS = {  # flag -> (kind, bounds or choices); the environment variable is CHARRNN_TRAIN_<PARAM>
    "seq-len": ("int", 1, COUNT),
    "batch-size": ("int", 1, COUNT),
    "min-count": ("int", 1, COUNT),
    "max-vocab": ("int", 1, COUNT),
    "eval-chars": ("int", 1, COUNT),
    "max-steps": ("int", 1, COUNT),
    "patience": ("int", 1, COUNT),
    "eval-every": ("int", 1, COUNT),
    "save-every": ("int", 1, COUNT),
    "keep": ("int", 1, COUNT),
    "log-every": ("int", 1, COUNT),
    "preview-chars": ("int", 0, 100_000),
    "warmup-steps": ("int", 0, COUNT),
    "layers": ("int", 1, 64),
    "hidden-size": ("int", 1, 16_384),
    "embed-dim": ("int", 1, 16_384),
    "seed": ("int", 0, 2**63 - 1),
    "val-fraction": ("float", 0, 1, "[)"),
    "dropout": ("float", 0, 1, "[)"),
    "min-lr-ratio": ("float", 0, 1, "[]"),
    "weight-decay": ("float", 0, math.inf, "[)"),
    "clip": ("float", 0, math.inf, "[)"),
    "lr": ("float", 0, 3.4e38, "(]"),
    "epochs": ("float", 0, COUNT, "(]"),
    "max-time": ("duration",),
    "encoding": ("encoding",),
    "cell": ("choice", "rnn", "lstm", "gru"),
    "input": ("choice", "one-hot", "embedding"),
    "errors": ("choice", "strict", "replace", "ignore"),
    "dtype": ("choice", "float32", "bfloat16"),
    "quiet": ("flag",),
    "compile": ("flag",),
}
PARAM_NAMES = {"input": "input_mode", "compile": "compile_model", "temp": "temperature", "num-samples": "num_samples"}
SAMPLE_OPTIONS = {
    "temp": ("float", 0, math.inf, "()"),
    "top-k": ("int", 1, COUNT),
    "top-p": ("float", 0, 1, "(]"),
    "seed": ("int", 0, 2**63 - 1),
    "length": ("int", 0, COUNT),
    "num-samples": ("int", 1, 65_536),
    "beam": ("int", 1, 65_536),
    "greedy": ("flag",),
}
CLICK_BOOLEANS = {"1", "true", "t", "yes", "y", "on", "0", "false", "f", "no", "n", "off"}

_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"), max_size=12)
_words = st.sampled_from(
    [
        "utf-8",
        "latin-1",
        "rot13",
        "base64",
        "undefined",
        "lstm",
        "gru",
        "one-hot",
        "float32",
        "strict",
        "5m",
        "1h30m",
        "90",
        "1.5h",
        "nan",
        "inf",
        "-inf",
        "1e3",
        " 12 ",
        "1_000",
        "+3",
        "0x10",
        "-1",
        "0",
        "true",
        "yes",
        "maybe",
        "",
        "１２",
    ]
)
_ints = st.one_of(
    st.integers(-3, 70),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**63 - 1, 2**63, 2**64, COUNT, COUNT + 1, 16_384, 16_385, 65_536, 65_537]),
)
_floats = st.one_of(st.floats(), st.sampled_from([0.0, 0.5, 1.0, 1e-300, 10.0, 10.000001, 1e300, -0.0]))
VALUES = st.one_of(_ints, _floats, _text, _words, st.booleans(), st.lists(st.integers(0, 9), max_size=3))


def _as_text(value) -> str:
    """A value as it would be typed on a command line or set in the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")  # TOML wants DEL escaped
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def _number(kind: str, value, typed: bool):
    """The number a value means for an int or float option, or None if it is not one. From TOML
    the type must match; typed text is read as Python reads numbers (what click documents)."""
    if typed:
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind == "float" else int):
            return None
        return value
    try:
        return (int if kind == "int" else float)(value)
    except (ValueError, OverflowError):
        return None


def _valid(spec: tuple, value, typed: bool) -> bool:
    """Whether `value` (typed: from TOML; else text) is valid for an option of `spec`."""
    kind = spec[0]
    if kind in ("int", "float"):
        number = _number(kind, value, typed)
        if number is None or (kind == "float" and not math.isfinite(number)):
            return False
        low, high = spec[1], spec[2]
        bounds = spec[3] if kind == "float" else "[]"
        return (low < number if bounds[0] == "(" else low <= number) and (
            number < high if bounds[1] == ")" else number <= high
        )
    if kind == "flag":
        return isinstance(value, bool) if typed else value.strip().lower() in CLICK_BOOLEANS
    if typed and not (
        isinstance(value, str)
        or (kind == "duration" and isinstance(value, (int, float)) and not isinstance(value, bool))
    ):
        return False
    if kind == "choice":
        return value in spec[1:]
    if kind == "encoding":
        try:
            info = codecs.lookup(value)
        except (LookupError, ValueError):
            return False
        return info._is_text_encoding and info.name != "undefined"
    try:  # duration
        seconds = float(value) if not isinstance(value, str) else parse_duration(value)
    except ValueError:
        return False
    return 0 < seconds < math.inf


def _valid_values(spec: tuple):
    """Values an option of `spec` documents as valid, its bounds included."""
    kind = spec[0]
    if kind == "int":
        return st.one_of(
            st.integers(spec[1], min(spec[2], spec[1] + 100)), st.integers(spec[1], spec[2]), st.just(spec[2])
        )
    if kind == "float":
        open_low, open_high = spec[3][0] == "(", spec[3][1] == ")"
        return st.floats(spec[1], spec[2], exclude_min=open_low, exclude_max=open_high, allow_infinity=False)
    if kind == "flag":
        return st.booleans()
    if kind == "choice":
        return st.sampled_from(spec[1:])
    if kind == "encoding":
        return st.sampled_from(
            ["utf-8", "UTF8", "latin-1", "gb18030", "utf-16", "utf-32-le", "cp1252", "idna", "utf-7"]
        )
    return st.one_of(st.sampled_from(["90", "90s", "5m", "1h30m", "1.5h", ".5s"]), st.floats(1e-9, 1e300))


def _settings(options: dict, command: str, sources: tuple[str, ...]):
    """A strategy of {flag: (source, value)} for one to three of `options`, values valid or not."""

    def setting(flag):
        return st.tuples(
            st.just(flag), st.tuples(st.sampled_from(sources), st.one_of(VALUES, _valid_values(options[flag])))
        )

    settings_list = st.lists(st.sampled_from(sorted(options)).flatmap(setting), min_size=1, max_size=3)
    return settings_list.map(dict)


def _invocation(command: str, chosen: dict, options: dict, tmp: Path) -> tuple[list[str], dict[str, str], bool]:
    """The arguments and environment that give `chosen`, and whether every value is valid."""
    args, env, toml, valid = [], {}, [], True
    for flag, (source, value) in chosen.items():
        spec = options[flag]
        if source == "toml":
            toml.append(f"{flag} = {_as_toml(value)}")
            valid &= _valid(spec, value, typed=True)
            continue
        text = _as_text(value)
        if source == "env":
            if text == "":  # an empty variable counts as unset
                continue
            env[f"CHARRNN_{command.upper()}_{PARAM_NAMES.get(flag, flag.replace('-', '_')).upper()}"] = text
        elif spec[0] == "flag":
            if not _valid(spec, text, typed=False) or text.strip().lower() in ("0", "false", "f", "no", "n", "off"):
                continue  # a flag takes no value on the command line: given or not
            args.append(f"--{flag}")
            continue
        else:
            args += [f"--{flag}", text]
        valid &= _valid(spec, text, typed=False)
    if toml:
        config = tmp / "fuzz.toml"
        config.write_text("\n".join(toml) + "\n", encoding="utf-8")
        args += ["--config", str(config)]
    return args, env, valid


def _clean_env(monkeypatch):
    for name in [name for name in os.environ if name.startswith("CHARRNN_") and name != "CHARRNN_CACHE"]:
        monkeypatch.delenv(name)


def assert_refused_or_passed(result, valid: bool, passed_excerpt: str):
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.output and not any("unexpected" in line for line in lines), result.output
    if not valid:
        assert result.exit_code == 2, result.output
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    else:
        assert result.exit_code in (0, 1, 2), result.output
        if result.exit_code:
            assert (
                len(lines) >= 1
                and lines[-1].startswith("Error: ")
                and sum(line.startswith("Error: ") for line in lines) == 1
            )
        if passed_excerpt:
            assert result.exit_code == 1 and passed_excerpt in lines[-1], result.output


FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(chosen=_settings(TRAIN_OPTIONS, "train", ("cli", "env", "toml")))
def test_fuzzed_train_options_are_refused_with_exit_2_or_passed_on(tmp_path, monkeypatch, chosen):
    _clean_env(monkeypatch)
    args, env, valid = _invocation("train", chosen, TRAIN_OPTIONS, tmp_path)
    result = invoke("train", tmp_path / "nosuch.txt", *args, "--out", tmp_path / "run", env=env)
    both_lengths = {"max-steps", "epochs"} <= set(chosen)  # documented: give one of them, not both
    if valid and both_lengths:
        assert_one_line_error(result, 2, "give --max-steps or --epochs, not both")
    else:
        assert_refused_or_passed(result, valid, "corpus not found")
    assert not (tmp_path / "run").exists()


@FUZZ
@given(chosen=_settings(SAMPLE_OPTIONS, "sample", ("cli", "env")))
def test_fuzzed_sample_options_are_refused_with_exit_2_or_passed_on(tmp_path, monkeypatch, chosen):
    _clean_env(monkeypatch)
    args, env, valid = _invocation("sample", chosen, SAMPLE_OPTIONS, tmp_path)
    result = invoke("sample", "-c", tmp_path, *args, env=env)
    beam, samples = chosen.get("beam"), chosen.get("num-samples")
    several = samples is not None and _number("int", _as_text(samples[1]), False) not in (None, 1)
    if valid and beam is not None and _as_text(beam[1]) and several:
        assert_one_line_error(result, 2, "--beam finds the one most likely continuation")
    elif valid and _held(chosen) > MAX_HELD:  # documented: batched streams hold at most MAX_HELD characters
        assert_one_line_error(result, 2, "characters at once (the limit is")
    else:
        assert_refused_or_passed(result, valid, "no checkpoint in")


def _given(chosen: dict, flag: str, default):
    """The whole number a valid `chosen` gives `flag`, else `default` (an empty variable is unset)."""
    if flag not in chosen or (chosen[flag][0] == "env" and _as_text(chosen[flag][1]) == ""):
        return default
    return _number("int", _as_text(chosen[flag][1]), False)


def _held(chosen: dict) -> int:
    """The characters that a valid `chosen`'s samples or beam hold at once (0 for one sample, streamed)."""
    length, beam, samples = (
        _given(chosen, "length", 1000),
        _given(chosen, "beam", None),
        _given(chosen, "num-samples", 1),
    )
    return (beam or samples) * length if beam or samples > 1 else 0


SMALL_SAMPLE_OPTIONS = {**SAMPLE_OPTIONS, "length": ("int", 0, 40), "num-samples": ("int", 1, 3), "beam": ("int", 1, 3)}


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    chosen=_settings(
        {k: v for k, v in SAMPLE_OPTIONS.items() if k not in ("length", "num-samples", "beam")},
        "sample",
        ("cli", "env"),
    ),
    length=st.integers(0, 40),
    prime=st.one_of(st.none(), st.text(st.sampled_from(sorted(set(TEXT)) + ["Z", "é"]), max_size=6)),
)
def test_fuzzed_sampling_from_a_real_model_writes_text_or_refuses_in_one_line(
    tmp_path, monkeypatch, trained, chosen, length, prime
):
    _clean_env(monkeypatch)
    args, env, valid = _invocation("sample", chosen, SAMPLE_OPTIONS, tmp_path)
    args += ["--length", str(length)] + ([] if prime is None else ["--prime", prime])
    result = invoke("sample", "-c", trained / "run", *args, env=env)
    if valid and prime is not None and "é" in prime:  # nothing near it in TEXT ('Z' is read as 'z')
        assert_one_line_error(result, 2, "has characters the model never saw")
        return
    assert_refused_or_passed(result, valid, "")
    if valid and prime != "":
        assert result.exit_code == 0, result.output
        written = set(TEXT) | {"\n"} | set(prime or "")  # the prime as given, then the model's characters
        assert len(result.stdout) == len(prime or "") + length + 1 and set(result.stdout) <= written


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    encoding=st.one_of(
        _text,
        _words,
        st.sampled_from(
            sorted(
                codecs.__dict__.get("_cache", {})
                or ["utf-16", "utf-32", "punycode", "idna", "unicode_escape", "utf-7", "cp037"]
            )
        ),
    ),
    errors=st.sampled_from(["strict", "replace", "ignore", "surrogateescape", ""]),
    source=st.sampled_from(["cli", "env"]),
)
def test_fuzzed_eval_encodings_are_refused_with_exit_2_or_scored(monkeypatch, trained, encoding, errors, source):
    _clean_env(monkeypatch)
    valid = _valid(("encoding",), encoding, typed=False) and errors in ("strict", "replace", "ignore")
    if source == "cli":
        result = invoke(
            "eval", trained / "corpus.txt", "-c", trained / "run", "--encoding", encoding, "--errors", errors
        )
    else:
        env = {"CHARRNN_EVAL_ENCODING": encoding, "CHARRNN_EVAL_ERRORS": errors}
        valid = (encoding == "" or _valid(("encoding",), encoding, typed=False)) and errors in (
            "strict",
            "replace",
            "ignore",
            "",
        )
        result = invoke("eval", trained / "corpus.txt", "-c", trained / "run", env=env)
    assert_refused_or_passed(result, valid, "")

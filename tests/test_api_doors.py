"""The doors of the program: every argument of the Python API, every option value on the command
line and in a --config file, checked once as it comes in. Whatever a caller gives, the API raises
CharRNNError with one line, never a raw ValueError, TypeError, LookupError or MemoryError; the
command line exits 2 with one line for a value that is wrong on its face. And the extremes the
sampling options admit give sound arithmetic: no numpy warning on stderr."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import warnings
from datetime import date, datetime
from datetime import time as clock
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import charrnn
import charrnn.run.training
from charrnn.cli.commands import main
from charrnn.core.sampling import filter_logits
from charrnn.errors import CharRNNError
from charrnn.settings.option import MAX_HELD
from helpers import PANGRAM


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny out folder trained through the API, its corpus beside it."""
    folder = tmp_path_factory.mktemp("doors")
    (folder / "corpus.txt").write_text(PANGRAM * 60, encoding="utf-8")
    charrnn.train(
        folder / "corpus.txt",
        out=folder / "run",
        device="cpu",
        progress=False,
        hidden_size=16,
        layers=1,
        seq_len=16,
        batch_size=4,
        max_steps=10,
        eval_every=10,
        save_every=10,
        warmup_steps=1,
        preview_chars=0,
    )
    return folder


@pytest.fixture(scope="module")
def model(run):
    return charrnn.load(run / "run")


def _refused(call, *fragments: str) -> str:
    with pytest.raises(CharRNNError) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message
    assert "--" not in message, message  # the Python argument's name, never the command's flag
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- each argument, by the rule of its command-line option ------------------------------------------

SAMPLING_CASES = {
    "seed-negative": (lambda m, r: m.sample(10, seed=-1), "seed must be an integer >= 0 and at most"),
    "seed-text": (lambda m, r: m.sample(10, seed="1"), "seed must be an integer"),
    "seed-too-long-to-show": (lambda m, r: m.sample(10, seed=10**5000), "an integer too long to show"),
    "prime-number": (lambda m, r: m.sample(10, prime=5), "prime must be a string, got 5"),
    "stop-number": (lambda m, r: m.sample(10, stop=5), "stop must be a non-empty string or a sequence of them"),
    "stop-empty": (lambda m, r: m.sample(10, stop=["the", ""]), "stop must be a non-empty string"),
    "length-text": (lambda m, r: m.sample("10"), "length must be an integer >= 0"),
    "length-float": (lambda m, r: m.stream(10.0), "length must be an integer >= 0"),
    "length-true": (lambda m, r: m.samples(2, True), "length must be an integer >= 0"),
    "temperature-text": (lambda m, r: m.sample(10, temperature="hot"), "temperature must be a number > 0"),
    "temperature-nan": (lambda m, r: m.sample(10, temperature=math.nan), "temperature must be"),
    "top-k-zero": (lambda m, r: m.sample(10, top_k=0), "top_k must be an integer >= 1 and at most"),
    "top-p-above-one": (lambda m, r: m.sample(10, top_p=1.5), "top_p must be in (0, 1]"),
    "greedy-text": (lambda m, r: m.sample(10, greedy="yes"), "greedy must be True or False"),
    "beam-zero": (lambda m, r: m.sample(10, beam=0), "beam must be an integer >= 1 and at most 65,536"),
    "beam-huge-length": (lambda m, r: m.sample(10**13, beam=4), "would hold 40,000,000,000,000 characters at once"),
    "samples-huge-length": (lambda m, r: m.samples(3, 10**12), "with count=3 would hold"),
    "sample-huge-length": (lambda m, r: m.sample(10**12), "stream() makes a text of any length"),
    "count-list": (lambda m, r: m.samples([3], 10), "count must be an integer >= 1"),
    "count-too-many": (lambda m, r: m.samples(10**6, 1), "count must be an integer >= 1 and at most 65,536"),
    "unknown-number": (lambda m, r: m.stream(10, unknown=1), "unknown must be one of map, skip, refuse, got 1"),
    "unseen-not-text": (lambda m, r: m.unseen(b"abc"), "text must be a string"),
    "score-encoding-bogus": (
        lambda m, r: m.score(r / "corpus.txt", encoding="bogus"),
        "encoding must be a text encoding Python knows",
    ),
    "score-encoding-number": (lambda m, r: m.score(r / "corpus.txt", encoding=8), "encoding must be"),
    "score-errors-other": (lambda m, r: m.score(r / "corpus.txt", errors="surrogateescape"), "errors must be one of"),
    "score-windows-text": (lambda m, r: m.score(r / "corpus.txt", windows="256"), "windows must be an integer >= 1"),
    "score-text-number": (lambda m, r: m.score(5), "text must be a file or folder name"),
    "score-progress-other": (lambda m, r: m.score(r / "corpus.txt", progress=print), "progress must be None or"),
    "generate-n-zero": (lambda m, r: m.generate(0), "n must be an integer >= 1"),
    "generate-temperature-list": (lambda m, r: m.generate(temperature=[0.5, "hot"]), "temperature must be a number"),
    "generate-huge-length": (lambda m, r: m.generate(2, 10**12), "with n=2 would hold"),
    "generate-to-file-n": (lambda m, r: m.generate_to_file(r / "s.txt", n=-1), "n must be an integer >= 1"),
    "generate-to-file-overwrite": (lambda m, r: m.generate_to_file(r / "s.txt", overwrite="yes"), "overwrite must be"),
    "generate-to-file-path": (lambda m, r: m.generate_to_file(None), "path must be a file or folder name"),
    "export-path": (lambda m, r: m.export(None), "path must be a file or folder name"),
    "export-half": (lambda m, r: m.export(r / "m.model", half="yes"), "half must be True or False"),
    "export-over-a-file": (lambda m, r: m.export(r / "corpus.txt"), "corpus.txt already exists"),
    "load-none": (
        lambda m, r: charrnn.load(None),
        "location must be a file or folder name (a non-empty str or Path, without NUL), got None",
    ),
    "load-nul": (lambda m, r: charrnn.load("a\0b"), "location must be a file or folder name"),
    "load-device": (lambda m, r: charrnn.load(r / "run", device="gpu"), "device must be one of auto, cpu, cuda, mps"),
    "load-threads": (lambda m, r: charrnn.load(r / "run", threads="many"), 'threads must be "auto" or an integer'),
}


@pytest.mark.parametrize("case", list(SAMPLING_CASES))
def test_each_sampling_loading_and_scoring_argument_is_checked_at_the_door(case, model, run):
    call, fragment = SAMPLING_CASES[case]
    _refused(lambda: call(model, run), fragment)


TRAINING_CASES = {
    "compile-text": ({"compile": "no"}, "compile must be True or False, got 'no'"),
    "device-other": ({"device": "tpu"}, "device must be one of auto, cpu, cuda, mps"),
    "dtype-other": ({"dtype": "float16"}, "dtype must be one of float32, bfloat16"),
    "threads-zero": ({"threads": 0}, 'threads must be "auto" or an integer >= 1 and at most 1,024'),
    "progress-text": ({"progress": "quiet"}, "progress must be True, False or a charrnn.run.progress.Reporter"),
    "out-number": ({"out": 3}, "out must be a file or folder name"),
    "out-empty": ({"out": ""}, "out must be a file or folder name"),
    "resume-number": ({"resume": 3}, "resume must be True, False, None or a checkpoint file or out folder"),
    "init-from-list": ({"init_from": ["a"]}, "init_from must be a file or folder name"),
    "option-wrong-type": ({"hidden_size": "big"}, "hidden_size must be an integer >= 1 and at most 16,384"),
    "option-too-large": ({"max_steps": 10**16}, "max_steps must be an integer >= 1 and at most"),
    "max-time-text": ({"max_time": "5m"}, "max_time must be a number of seconds > 0"),
    "encoding-bogus": ({"encoding": "bogus"}, "encoding must be a text encoding Python knows"),
    "texts-string": ({"texts": "abc"}, "texts must be a non-empty list or tuple of non-empty strings"),
}


@pytest.mark.parametrize("case", list(TRAINING_CASES))
def test_each_training_argument_is_checked_before_any_work(case, run, tmp_path, monkeypatch):
    arguments, fragment = TRAINING_CASES[case]

    def no_work(*args, **kwargs):  # compile="no" used to compile for a minute, then train
        raise AssertionError("training began before its arguments were checked")

    monkeypatch.setattr(charrnn.run.training, "run_training", no_work)
    corpus = run / "corpus.txt"
    _refused(lambda: charrnn.train(corpus, **{"out": tmp_path / "o", "progress": False, **arguments}), fragment)
    assert not (tmp_path / "o").exists()


def test_a_corpus_that_is_no_name_is_refused(tmp_path):
    _refused(lambda: charrnn.train(None, out=tmp_path / "o", progress=False), "corpus must be a file or folder name")


def test_the_command_line_refuses_a_beam_or_samples_too_long_to_hold_before_loading(tmp_path):
    for args in (["--beam", "4", "-l", "10000000000000"], ["-n", "32", "-l", str(MAX_HELD)]):
        result = CliRunner().invoke(main, ["sample", "-c", str(tmp_path / "nosuch"), *args])
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert "Invalid value for '--length'" in lines[0] and "characters at once (the limit is" in lines[0]


def test_values_the_api_accepts_still_work(model, run):
    assert model.sample(5, prime=None, seed=0, stop=("zz",), top_k=None, top_p=None) != ""
    assert len(model.samples(2, 5, prime="the", seed=1, stop=[])) == 2
    assert model.sample(5, prime="the", beam=2, stop="x").startswith("the")
    assert model.score(str(run / "corpus.txt"), encoding="UTF8", errors="replace", windows=None).chars > 0
    assert charrnn.load(str(run / "run"), device="cpu", threads=None).step == 10


# --- random values of the wrong types: only CharRNNError comes out --------------------------------

WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 2**63, 10**16, 65_537]),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.lists(st.integers(-2, 2), max_size=3),
    st.tuples(st.text(max_size=3)),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.sampled_from([object(), Path("nosuch"), "auto", "cpu", "map", "utf-8", "\0", "", math.nan, 1e-300, 1e300]),
)
SMALL = 30  # the largest count or length a fuzzed call may really run with


def _runs_long(name: str, value) -> bool:
    """Whether a valid `value` of `name` would make the call generate for long (not what is tested)."""
    sized = name in ("length", "count", "beam", "windows", "top_k")
    return sized and isinstance(value, int) and not isinstance(value, bool) and value > SMALL


FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SAMPLE_ARGUMENTS = ("length", "prime", "seed", "stop", "unknown", "temperature", "top_k", "top_p", "greedy")


def _only_charrnn_errors(call) -> None:
    try:
        result = call()
        if hasattr(result, "__next__"):  # a stream: its first pieces
            list(zip(range(3), result))
    except CharRNNError as error:
        assert "\n" not in str(error), str(error)


@FUZZ
@given(
    method=st.sampled_from(["stream", "sample", "samples", "beam"]),
    values=st.dictionaries(st.sampled_from(SAMPLE_ARGUMENTS + ("beam", "count")), WRONG, min_size=1, max_size=3),
)
def test_random_sampling_arguments_raise_only_charrnn_errors(model, method, values):
    assume(not any(_runs_long(name, value) for name, value in values.items()))
    arguments = {"length": 5, **values}
    if method == "samples":
        count = arguments.pop("count", 2)
        arguments.pop("beam", None)
        _only_charrnn_errors(lambda: model.samples(count, **arguments))
        return
    arguments.pop("count", None)
    if method == "beam":
        arguments.setdefault("beam", 2)
    elif method == "stream":
        arguments.pop("beam", None)
    _only_charrnn_errors(lambda: getattr(model, "sample" if method == "beam" else method)(**arguments))


@FUZZ
@given(
    values=st.dictionaries(
        st.sampled_from(["text", "encoding", "errors", "windows", "unknown", "progress"]), WRONG, min_size=1, max_size=2
    ),
    location=WRONG,
    device=st.one_of(st.just("cpu"), WRONG),
    threads=WRONG,
)
def test_random_scoring_and_loading_arguments_raise_only_charrnn_errors(
    model, run, monkeypatch, values, location, device, threads
):
    assume(not any(_runs_long(name, value) for name, value in values.items()))
    monkeypatch.chdir(run)  # a random name is looked for, never found, here
    text = values.pop("text", run / "corpus.txt")
    _only_charrnn_errors(lambda: model.score(text, **values))
    _only_charrnn_errors(lambda: model.unseen(text, values.get("unknown", "map")))
    _only_charrnn_errors(lambda: charrnn.load(location, device=device, threads=threads))


TRAIN_ARGUMENTS = ("out", "resume", "init_from", "device", "dtype", "compile", "threads", "progress")
TRAIN_OPTIONS = ("hidden_size", "layers", "lr", "dropout", "max_time", "encoding", "cell", "seed", "fold_variants")


@FUZZ
@given(
    values=st.dictionaries(st.sampled_from(TRAIN_ARGUMENTS + TRAIN_OPTIONS), WRONG, min_size=1, max_size=3),
    corpus=st.one_of(st.just("nosuch.txt"), WRONG),
)
def test_random_training_arguments_raise_only_charrnn_errors(monkeypatch, values, corpus):
    """Valid values meet a corpus that is not there (or a resume with nothing to resume): refused at once."""
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as folder:  # each example's own: nothing an earlier one made
        monkeypatch.chdir(folder)
        try:
            _only_charrnn_errors(lambda: charrnn.train(corpus, **{"progress": False, "device": "cpu", **values}))
        finally:
            torch.set_num_threads(threads)  # a valid count would stay for the next example
            monkeypatch.undo()


# --- the command line and --config files: exit 2, one line --------------------------------------


def _one_line_usage_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "unexpected" not in lines[0], result.stderr
    return lines[0]


def test_a_config_file_nested_thousands_deep_is_a_usage_error_naming_it(tmp_path):
    for depth in (500, 5000):
        for value in ("[" * depth + "]" * depth, "{a = " * depth + "1" + "}" * depth):
            config = tmp_path / "deep.toml"
            config.write_text(f"lr = {value}\n", encoding="utf-8")
            result = CliRunner().invoke(main, ["train", str(tmp_path / "nosuch.txt"), "--config", str(config)])
            line = _one_line_usage_error(result)
            assert "deep.toml" in line and "nested too deeply" in line, line


_KEYS = st.sampled_from(["lr", "hidden-size", "layers", "max-time", "encoding", "cell", "quiet", "threads", "out"])


def _toml_value(depth: int):
    """TOML values of kinds no option takes: arrays of arrays, tables, dates; at most `depth` deep."""
    leaves = st.one_of(
        st.dates().map(date.isoformat),
        st.datetimes(min_value=datetime(1, 1, 1)).map(lambda d: d.isoformat()),
        st.times().map(clock.isoformat),
        st.just("{}"),
        st.just("[[1], [2]]"),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=2).map(lambda items: "[" + ", ".join(items) + "]"),
            st.tuples(st.sampled_from(["a", "b"]), inner).map(lambda kv: "{" + f"{kv[0]} = {kv[1]}" + "}"),
        ),
        max_leaves=depth,
    )


@FUZZ
@given(
    lines=st.lists(st.tuples(_KEYS, _toml_value(6)), min_size=1, max_size=3, unique_by=lambda kv: kv[0]),
    depth=st.one_of(st.just(0), st.integers(1, 6000)),
)
def test_config_values_of_types_no_option_takes_exit_2_in_one_line(tmp_path, lines, depth):
    text = "\n".join(f"{key} = {value}" for key, value in lines) + "\n"
    if depth:
        text += "seq-len = " + "[" * depth + "]" * depth + "\n"
    config = tmp_path / "fuzz.toml"
    config.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["train", str(tmp_path / "nosuch.txt"), "--config", str(config)])
    assert "fuzz.toml" in _one_line_usage_error(result)


@FUZZ
@given(text=st.text(st.characters(exclude_categories=("Cs",)), max_size=60))
def test_any_config_text_is_options_or_one_line(tmp_path, text):
    config = tmp_path / "fuzz.toml"
    config.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["train", str(tmp_path / "nosuch.txt"), "--config", str(config)])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code in (1, 2) and len(lines) == 1 and "unexpected" not in lines[0], result.output
    if result.exit_code == 1:  # a file of no options, or of valid ones: on to the corpus
        assert "corpus not found" in lines[0], lines[0]


# --- extreme sampling options: sound arithmetic, no warnings ------------------------------------

EXTREMES = [
    ["--top-p", "1e-300"],
    ["--top-p", "5e-324"],
    ["--temperature", "1e-300"],
    ["--temperature", "1e300"],
    ["--temperature", "5e-324", "--top-p", "5e-324"],
    ["--temperature", "1.7e308", "--top-p", "1e-300"],
    ["--temperature", "1e-300", "--top-k", "2"],
    ["--top-p", "1e-300", "-n", "3"],
]


@pytest.mark.parametrize("extreme", EXTREMES, ids=" ".join)
def test_extreme_sampling_options_give_text_and_no_warning(run, extreme):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(
            main, ["sample", "-c", str(run / "run"), "--length", "30", "--prime", "the ", "--seed", "1", *extreme]
        )
    assert result.exit_code == 0, result.output
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    assert "Warning" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout.startswith(("the ", "--- sample 1 of 3 ---\nthe ")), result.stdout


def test_a_nucleus_below_float32s_range_keeps_the_likeliest_character():
    logits = np.array([[0.5, 3.0, -1.0, 3.0 - 1e-6]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for top_p in (5e-324, 1e-300, 1e-46):
            kept = np.isfinite(filter_logits(logits, None, top_p))
            assert kept.tolist() == [[False, True, False, False]], top_p


def test_a_tiny_top_p_in_a_process_of_its_own_writes_no_warning(run):
    done = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "charrnn", "sample", "-c", str(run / "run")]
        + ["--top-p", "1e-300", "--length", "20", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0 and "Warning" not in done.stderr, done.stderr
    assert done.stderr.strip().startswith("(sampling from"), done.stderr


def test_a_refusal_names_the_python_argument_and_its_whole_rule(model):
    message = _refused(lambda: model.sample(10, seed=-1))
    assert message == "seed must be an integer >= 0 and at most 9,223,372,036,854,775,807, got -1"

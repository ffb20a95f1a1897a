"""What a run shows while it trains: a steady estimate of the time left (evaluations and saves
are not slow steps), and a sample preview under each evaluation, kept in samples.txt; and how
far eval and viz are in their long passes."""

import io
import re
import sys
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from charrnn.cli.commands import main
from charrnn.core.model import CharRNN
from charrnn.core.vocab import UNKNOWN, UNKNOWN_SHOWN, Vocab
from charrnn.errors import ConfigError
from charrnn.run import progress
from charrnn.run.preview import NAME, PreviewLog, preview_text
from charrnn.run.progress import LINE_EVERY, LogLines, MessagesOnly, ProgressBar, Reporter, TimeLeft
from charrnn.settings.budget import Budget
from charrnn.settings.config import ModelConfig
from charrnn.store import metrics
from charrnn.store.files import own_opener
from charrnn.store.outdir import LATEST
from helpers import (
    PANGRAM,
    TINY_OPTIONS,
    Crash,
    CrashAtStep,
    assert_same_training_state,
    fast_args,
    read_metrics,
    train,
)

# --- the time left, with a clock of the test's own: elapsed seconds are given, never read ---


def _run_steps(time_left: TimeLeft, steps: range, elapsed: float, seconds_per_step: float = 1.0) -> float:
    for step in steps:
        elapsed += seconds_per_step
        time_left.advance(step, elapsed)
    return elapsed


def test_an_evaluation_does_not_make_the_steps_look_slow():
    time_left = TimeLeft(Budget(2000, None), 0, 0.0)
    elapsed = _run_steps(time_left, range(1, 501), 0.0)
    before = time_left.seconds()
    assert before == pytest.approx(1500.0)  # 1,500 steps of 1 s left
    time_left.pause(60.0)  # an evaluation and a save of a minute
    estimates = []
    for step in range(501, 521):  # the steps after it: tqdm's own estimate jumped ~8x here
        elapsed = _run_steps(time_left, range(step, step + 1), elapsed + (60.0 if step == 501 else 0.0))
        estimates.append(time_left.seconds())
    assert time_left.step_seconds == pytest.approx(1.0)  # the pause counts as none of the steps
    # The estimate now includes the evaluations' share (60 s per 500 steps), once: no jump, then steady.
    assert all(1 <= estimate / (1500 - i - 1) <= 1.13 for i, estimate in enumerate(estimates))
    assert estimates[-1] == pytest.approx((2000 - 520) * (1 + 60 / 500))


def test_later_evaluations_leave_the_estimate_where_it_was():
    time_left = TimeLeft(Budget(3000, None), 0, 0.0)
    elapsed, per_step = 0.0, []
    for interval in range(4):
        elapsed = _run_steps(time_left, range(interval * 500 + 1, interval * 500 + 501), elapsed)
        time_left.pause(60.0)
        elapsed += 60.0
        per_step.append(time_left.seconds() / (3000 - time_left.step))
    assert max(per_step) / min(per_step) < 1.01


def test_the_first_step_pays_one_time_costs_and_does_not_set_the_pace():
    time_left = TimeLeft(Budget(10_000, None), 0, 0.0)
    assert time_left.seconds() is None  # unknown, not a guess from nothing
    time_left.advance(1, 45.0)  # allocation, kernel choice, compilation
    assert time_left.seconds() is None
    _run_steps(time_left, range(2, 6), 45.0, seconds_per_step=0.5)
    assert time_left.seconds() == pytest.approx((10_000 - 5) * 0.5)


def test_the_estimate_follows_a_change_of_speed():
    time_left = TimeLeft(Budget(10_000, None), 0, 0.0)
    elapsed = _run_steps(time_left, range(1, 501), 0.0)
    _run_steps(time_left, range(501, 1101), elapsed, seconds_per_step=2.0)  # another program takes a core
    assert time_left.step_seconds == pytest.approx(2.0, rel=0.05)


def test_with_a_time_budget_the_time_left_is_what_remains_of_it():
    time_left = TimeLeft(Budget(None, 600.0), 0, 0.0)
    _run_steps(time_left, range(1, 101), 0.0)
    assert time_left.seconds() == pytest.approx(500.0)
    both = TimeLeft(Budget(150, 600.0), 0, 0.0)  # whichever ends first
    _run_steps(both, range(1, 101), 0.0)
    assert both.seconds() == pytest.approx(50.0)


def test_log_lines_and_the_bar_show_the_steady_estimate():
    stream = io.StringIO()
    lines = LogLines(stream)
    lines.start(0, Budget(1000, None), 0.0)
    bar = ProgressBar(io.StringIO())
    bar.start(0, Budget(1000, None), 0.0)
    for reporter in (lines, bar):
        _run_steps(reporter, range(1, 101), 0.0)
        reporter.paused(60.0)
        _run_steps(reporter, range(101, 104), 160.0)
    lines.log(103, 163.0, 2.0, 1e-3, 1000.0)
    # 897 steps of 1 s, plus the evaluation's share (60 s per 100 steps): 23:55
    assert "elapsed 2:43, remaining 23:55" in stream.getvalue()
    assert "2:43<23:55" in str(bar.bar)
    bar.close()


# --- previews -------------------------------------------------------------------------


class Recorder(Reporter):
    def __init__(self):
        self.events = []

    def evaluated(self, step, val_loss, is_best):
        self.events.append(("evaluated", step))

    def previewed(self, step, text):
        self.events.append(("previewed", step, text))

    def paused(self, seconds):
        self.events.append(("paused", seconds))


def _entries(out):
    """(step, validation figure or None, text) of each entry of samples.txt."""
    text = (out / NAME).read_text(encoding="utf-8")
    parts = re.split(r"^--- step (\d+)(?: \(validation ([\d.]+) bpc\))? ---\n", text, flags=re.M)
    assert re.fullmatch(r"--- charrnn previews of run [0-9a-f]{32} ---\n\n", parts[0])  # the line naming the run
    return [(int(step), bpc and float(bpc), body) for step, bpc, body in zip(parts[1::3], parts[2::3], parts[3::3])]


def test_each_evaluation_previews_a_sample_after_its_line_and_keeps_it_in_samples_txt(tmp_path, pangram_file):
    recorder = Recorder()
    train(pangram_file, tmp_path / "run", {**TINY_OPTIONS, "preview_chars": 50}, reporter=recorder)
    kinds = [(e[0], e[1]) for e in recorder.events if e[0] != "paused"]
    assert kinds == [("evaluated", 10), ("previewed", 10), ("evaluated", 20), ("previewed", 20)] + [
        ("evaluated", 30),
        ("previewed", 30),
    ]
    texts = [e[2] for e in recorder.events if e[0] == "previewed"]
    assert all(len(text) == 50 and set(text) <= set(PANGRAM) for text in texts)
    # The file: each step once, with its validation figure as metrics.jsonl has it, and the same text.
    validations = {r["step"]: r["val_bpc"] for r in read_metrics(tmp_path / "run")[0] if r["kind"] == "validation"}
    entries = _entries(tmp_path / "run")
    assert [step for step, _, _ in entries] == [10, 20, 30]
    assert [bpc for _, bpc, _ in entries] == [round(validations[step], 4) for step in (10, 20, 30)]
    assert [body for _, _, body in entries] == [text + "\n\n" for text in texts]
    # Training pauses for each evaluation, preview and save, and says so after each.
    paused_after = [recorder.events[i - 1][:2] for i, e in enumerate(recorder.events) if e[0] == "paused"]
    assert paused_after == [("previewed", 10), ("previewed", 20), ("previewed", 30)]


def test_previews_print_under_the_evaluation_line_in_log_lines(tmp_path, pangram_file):
    stream = io.StringIO()
    train(pangram_file, tmp_path / "run", {**TINY_OPTIONS, "preview_chars": 120}, reporter=LogLines(stream))
    lines = stream.getvalue().splitlines()
    evaluation = next(line for line in lines if line.startswith("step 10: ") and "validation" in line)
    text = _entries(tmp_path / "run")[0][2][:-2]
    preview = "\n".join("  | " + line for line in text.split("\n"))
    assert f"{evaluation}\n{preview}\nstep 15/30: " in stream.getvalue()


def test_without_validation_previews_come_at_the_evaluation_steps_under_a_heading_of_their_own(tmp_path, pangram_file):
    stream = io.StringIO()
    options = {**TINY_OPTIONS, "val_fraction": 0, "preview_chars": 30}
    train(pangram_file, tmp_path / "run", options, reporter=LogLines(stream))
    assert [(step, bpc) for step, bpc, _ in _entries(tmp_path / "run")] == [(10, None), (20, None), (30, None)]
    assert "step 20: sample\n  | " in stream.getvalue()


def test_zero_preview_chars_turns_previews_off(tmp_path, pangram_file):
    recorder = Recorder()
    train(pangram_file, tmp_path / "run", {**TINY_OPTIONS, "preview_chars": 0}, reporter=recorder)
    assert not any(e[0] == "previewed" for e in recorder.events)
    assert not (tmp_path / "run" / NAME).exists()


def test_previews_leave_training_bit_identical(tmp_path, pangram_file):
    options = {**TINY_OPTIONS, "dropout": 0.3}  # dropout: the random generator's state matters
    train(pangram_file, tmp_path / "on", {**options, "preview_chars": 300})
    train(pangram_file, tmp_path / "off", {**options, "preview_chars": 0})
    assert (tmp_path / "on" / NAME).exists()
    assert_same_training_state(tmp_path / "on" / LATEST, tmp_path / "off" / LATEST)


def test_a_resumed_run_keeps_each_step_once_in_samples_txt(tmp_path, pangram_file):
    options = {**TINY_OPTIONS, "max_steps": 40, "save_every": 20, "preview_chars": 40}
    train(pangram_file, tmp_path / "whole", options)
    with pytest.raises(Crash):  # previews of steps 10, 20 and 30 written; the checkpoint holds step 20
        train(pangram_file, tmp_path / "run", options, reporter=CrashAtStep(35))
    assert [step for step, _, _ in _entries(tmp_path / "run")] == [10, 20, 30]
    train(pangram_file, tmp_path / "run", options, resume=str(tmp_path / "run"))
    assert _entries(tmp_path / "run") == _entries(tmp_path / "whole")  # step 30 redone once, as in an unbroken run
    # --preview-chars changes on resume: 0 adds nothing more
    train(pangram_file, tmp_path / "run", {"max_steps": 50, "preview_chars": 0}, resume=str(tmp_path / "run"))
    assert [step for step, _, _ in _entries(tmp_path / "run")] == [10, 20, 30, 40]


def test_forget_after_cuts_at_the_first_later_entry_and_reads_past_lookalikes_and_long_lines(tmp_path):
    log = PreviewLog(tmp_path)
    log.append(10, "abc --- step 99 ---")  # a header's words, not at a line start
    log.append(20, "x" * 100_000 + "--- step 99 ---\n", 2.5)  # past the length read at once
    log.append(30, "late")
    kept = (tmp_path / NAME).read_bytes().split(b"--- step 30")[0]
    log.forget_after(25)
    assert (tmp_path / NAME).read_bytes() == kept
    log.forget_after(25)  # nothing later: the file stays as it is
    assert (tmp_path / NAME).read_bytes() == kept


def test_a_samples_txt_that_cannot_be_written_while_training_costs_a_warning_not_the_run(
    tmp_path, pangram_file, monkeypatch
):
    def refuse(path, flags):  # as a read-only file or a full disk would (root may write anything)
        if Path(path).name == NAME:
            raise PermissionError(13, "Permission denied")
        return own_opener(path, flags)

    monkeypatch.setattr(metrics, "own_opener", refuse)
    stream = io.StringIO()
    result = train(pangram_file, tmp_path / "run", {**TINY_OPTIONS, "preview_chars": 20}, reporter=LogLines(stream))
    assert result.step == TINY_OPTIONS["max_steps"]
    assert stream.getvalue().count(f"warning: cannot write {tmp_path / 'run' / NAME} (Permission denied)") == 1


def test_a_folder_in_place_of_samples_txt_is_refused_before_training(tmp_path, pangram_file):
    (tmp_path / "run" / NAME).mkdir(parents=True)
    with pytest.raises(ConfigError, match="samples.txt is a folder, not a regular file, so charrnn will not write"):
        train(pangram_file, tmp_path / "run", TINY_OPTIONS)
    assert (tmp_path / "run" / NAME).is_dir() and not (tmp_path / "run" / LATEST).exists()


# --- the preview itself ---------------------------------------------------------------


@pytest.fixture
def small_model():
    torch.manual_seed(0)
    vocab = Vocab(list("abc \n") + [UNKNOWN])
    model = CharRNN(ModelConfig(vocab_size=len(vocab), hidden_size=16, dropout=0.5, layers=2))
    with torch.no_grad():  # make the unknown character the likeliest: it must still never be drawn
        model.head.bias[vocab.unknown_id] = 5.0
    return model.train(), vocab


def test_a_preview_is_reproducible_never_unknown_and_leaves_the_random_state_and_mode_alone(small_model):
    model, vocab = small_model
    torch.manual_seed(123)
    state = torch.get_rng_state()
    text = preview_text(model, vocab, 300, seed=7)
    assert torch.equal(torch.get_rng_state(), state)  # dropout's draws go on as if no preview was made
    assert model.training
    assert len(text) == 300 and UNKNOWN_SHOWN not in text  # the likeliest character, never drawn
    assert preview_text(model, vocab, 300, seed=7) == text


def test_a_vocabulary_of_the_unknown_character_alone_gives_no_preview():
    vocab = Vocab([UNKNOWN])
    assert preview_text(CharRNN(ModelConfig(vocab_size=1, hidden_size=8)), vocab, 20, seed=0) is None


# --- the command line ----------------------------------------------------------------------


def test_quiet_keeps_previews_out_of_the_output_but_in_samples_txt(tmp_path, pangram_file):
    out = tmp_path / "run"
    args = ["train", str(pangram_file), *fast_args(preview_chars=30), "--out", str(out)]
    quiet = CliRunner().invoke(main, [*args, "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    assert "  | " not in quiet.output
    assert [step for step, _, _ in _entries(out)] == [10, 20]
    shown = CliRunner().invoke(main, ["train", "--resume", "--out", str(out), "--max-steps", "30"])
    assert shown.exit_code == 0, shown.output
    assert "\n  | " in shown.output  # not a terminal: log lines, previews under the evaluations
    assert [step for step, _, _ in _entries(out)] == [10, 20, 30]


def test_a_bad_preview_length_is_one_error_line(tmp_path, pangram_file):
    result = CliRunner().invoke(main, ["train", str(pangram_file), "--preview-chars", "-1", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--preview-chars" in result.output and "Traceback" not in result.output


# --- long passes of eval and viz: a bar on a terminal, else a line when the log has been quiet ---


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_long_pass_says_how_far_it_is_whenever_the_log_has_been_quiet_and_a_short_one_nothing():
    stream, clock = io.StringIO(), Clock()
    reporter = MessagesOnly(stream, clock)
    short = reporter.progress("scoring", 300, unit="characters")
    for _ in range(3):
        clock.now += 1.0
        short(100)
    short(None)
    assert stream.getvalue() == ""  # done within LINE_EVERY seconds: nothing to say
    advance = reporter.progress("scoring", 300, unit="characters")
    clock.now += LINE_EVERY
    advance(100)
    advance(100)  # the log has just spoken
    reporter.message("a line of the command's own")
    clock.now += LINE_EVERY - 1
    advance(50)  # quiet, but not for long enough
    clock.now += 1
    advance(50)
    advance(None)
    assert stream.getvalue().splitlines() == [
        "scoring: 100 of 300 characters (33%), 0:10",
        "a line of the command's own",
        "scoring: 300 of 300 characters (100%), 0:20",
        "scoring: done in 0:20",
    ]


def test_a_pass_of_bytes_is_still_reported_by_its_size():
    stream = io.StringIO()
    advance = MessagesOnly(stream, Clock()).progress("encoding corpus.txt", progress.LONG_PASS_BYTES)
    advance(progress.LONG_PASS_BYTES)
    advance(None)
    assert stream.getvalue().startswith("encoding corpus.txt: 64 MiB\ndone in 0:00")


def test_on_a_terminal_a_long_pass_is_a_bar_that_goes_away():
    stream = io.StringIO()
    advance = ProgressBar(stream).progress("memory curve", 600, unit="characters")
    for _ in range(6):
        advance(100)
    advance(None)  # the bar (shown only after a second) is closed and leaves nothing behind


@pytest.fixture
def every_line(monkeypatch):
    """Long passes report at every piece, as if each piece took LINE_EVERY seconds."""
    monkeypatch.setattr(progress, "LINE_EVERY", 0.0)


def test_eval_says_how_far_its_scoring_is_in_log_lines(tmp_path, pangram_file, every_line):
    out = tmp_path / "run"
    assert CliRunner().invoke(main, ["train", str(pangram_file), *fast_args(), "--out", str(out), "-q"]).exit_code == 0
    result = CliRunner().invoke(main, ["eval", str(pangram_file), "-c", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    total = re.fullmatch(r"scoring: [\d,]+ of ([\d,]+) characters \(\d+%\), 0:00", lines[0])[1]
    assert lines[-2] == f"scoring: {total} of {total} characters (100%), 0:00" and lines[-1] == "scoring: done in 0:00"
    assert "scoring" not in result.stdout and "bits per character: " in result.stdout


def test_viz_says_how_far_each_long_part_is_in_log_lines(tmp_path, pangram_file, every_line):
    out = tmp_path / "run"
    assert CliRunner().invoke(main, ["train", str(pangram_file), *fast_args(), "--out", str(out), "-q"]).exit_code == 0
    args = ["viz", str(pangram_file), "-c", str(out), "-o", str(tmp_path / "page.html"), "--chars", "600"]
    result = CliRunner().invoke(main, [*args, "--sample-length", "50"])
    assert result.exit_code == 0, result.output
    done = [line for line in result.stderr.splitlines() if line.endswith(": done in 0:00")]
    assert done == ["reading the text: done in 0:00", "memory curve: done in 0:00", "samples: done in 0:00"]
    assert "reading the text: 600 of 600 characters (100%), 0:00" in result.stderr  # one layer
    assert re.search(r"memory curve: 200 of [\d,]+ characters", result.stderr)
    assert "samples: 200 of 200 characters (100%), 0:00" in result.stderr  # 4 temperatures x 50


def test_on_a_busy_machine_the_estimate_stays_steady():
    """Steps of about 1 s that another program jostles: each off by up to half, every 37th
    stalled for 10 s, and bursts of five steps at 4 s. The last step's time swings tenfold (an
    estimate from it would say 12, then 57, then 21 minutes); the smoothed seconds per step
    stay within a tenth of their mean."""
    import random

    rng = random.Random(0)
    time_left = TimeLeft(Budget(20_000, None), 0, 0.0)
    elapsed, estimates, raw = 0.0, [], []
    for step in range(1, 4001):
        seconds = 10.0 if step % 37 == 0 else 4.0 if step % 200 < 5 else rng.uniform(0.5, 1.5)
        elapsed += seconds
        time_left.advance(step, elapsed)
        if step > 200:
            estimates.append(time_left.step_seconds)
            raw.append(seconds)
    mean = sum(estimates) / len(estimates)
    assert max(raw) / min(raw) > 10  # what an unsmoothed estimate would follow
    assert all(abs(estimate - mean) / mean < 0.1 for estimate in estimates), (min(estimates), max(estimates))


# --- in a notebook ------------------------------------------------------------------------------


class _Kernel:
    kernel = object()  # what IPython's shell has inside a Jupyter kernel


def _in_a_kernel(monkeypatch, widgets: bool):
    import types

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: _Kernel()
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    if widgets:
        monkeypatch.setitem(sys.modules, "ipywidgets", types.ModuleType("ipywidgets"))
    else:
        monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails, as where it is not installed


def test_a_notebook_kernel_is_told_from_a_plain_interpreter_and_a_terminal_ipython(monkeypatch):
    import types

    assert not progress.in_notebook()  # pytest is no kernel
    terminal = types.ModuleType("IPython")
    terminal.get_ipython = lambda: object()  # IPython in a terminal: a shell without a kernel
    monkeypatch.setitem(sys.modules, "IPython", terminal)
    assert not progress.in_notebook()
    _in_a_kernel(monkeypatch, widgets=False)
    assert progress.in_notebook()


def test_in_a_notebook_the_widget_bar_is_used_only_where_ipywidgets_imports(monkeypatch):
    from tqdm import tqdm as text_bar
    from tqdm.notebook import tqdm as widget_bar

    assert progress.bar_class() is text_bar
    _in_a_kernel(monkeypatch, widgets=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "IProgress not found" warning, as tqdm.auto gives
        assert progress.bar_class() is text_bar
    _in_a_kernel(monkeypatch, widgets=True)
    assert progress.bar_class() is widget_bar


def test_in_a_notebook_without_ipywidgets_training_shows_a_text_bar_not_log_lines(monkeypatch):
    _in_a_kernel(monkeypatch, widgets=False)
    stream = io.StringIO()  # a kernel's stderr is no terminal
    reporter = progress.console_reporter(quiet=False, stream=stream)
    assert isinstance(reporter, ProgressBar)
    reporter.start(0, Budget(1000, None), 0.0)
    _run_steps(reporter, range(1, 101), 0.0)
    reporter.log(100, 100.0, 2.0, 1e-3, 1000.0)
    reporter.close()
    shown = stream.getvalue()
    assert "training:  10%" in shown and "step 100/1,000" in shown and "remaining" not in shown
    assert max(len(line) for line in shown.replace("\r", "\n").split("\n")) <= progress.NOTEBOOK_COLUMNS
    assert isinstance(progress.console_reporter(quiet=False, stream=io.StringIO()), ProgressBar)
    monkeypatch.delitem(sys.modules, "IPython")
    assert isinstance(progress.console_reporter(quiet=False, stream=io.StringIO()), LogLines)  # a log file

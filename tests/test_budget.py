import pytest

from charrnn.settings.budget import Budget, Validation, format_duration, parse_duration
from charrnn.settings.config import TrainConfig, with_run_length


@pytest.mark.parametrize(
    "text, seconds", [("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("1.5h", 5400), (" 2m 30s ", 150)]
)
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "1h 30", "5m-2s", "ten minutes"])
def test_malformed_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_durations_format_with_hours_only_when_needed():
    assert format_duration(75) == "1:15" and format_duration(3725) == "1:02:05"


def test_progress_is_the_further_along_of_steps_and_time():
    budget = Budget(max_steps=100, max_time=60.0)
    assert budget.progress(50, 15.0) == 0.5
    assert budget.progress(10, 45.0) == 0.75
    assert not budget.spent(99, 59.0) and budget.spent(100, 1.0) and budget.spent(1, 60.0)
    assert Budget(None, 60.0).progress(10**9, 30.0) == 0.5


def test_epochs_become_steps_and_the_shorter_limit_wins():
    assert Budget.of(None, 2.5, None, windows_per_epoch=12).max_steps == 30
    assert Budget.of(20, 2.5, None, windows_per_epoch=12).max_steps == 20


def test_length_options_given_replace_those_not_given():
    assert with_run_length({"max_time": 300.0}) == {"max_steps": None, "epochs": None, "max_time": 300.0}
    assert with_run_length({"lr": 0.1}) == {"lr": 0.1}
    assert TrainConfig(**with_run_length({"max_time": 300.0})).max_steps is None


def test_validation_tracks_the_best_and_runs_out_of_patience():
    validation = Validation(patience=2)
    assert [validation.record(loss) for loss in (3.0, 2.0, 2.5, 2.0)] == [True, True, False, False]
    assert validation.best == 2.0 and validation.last == 2.0 and validation.since_best == 2
    assert validation.out_of_patience
    assert validation.record(1.5) and not validation.out_of_patience  # a new best resets the count


def test_validation_without_patience_never_runs_out():
    validation = Validation(patience=None, best=1.0, since_best=100)
    assert not validation.record(2.0) and not validation.out_of_patience

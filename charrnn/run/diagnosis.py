"""What a finished run needs, read from its own curves: a finding, and the run to try next.

Users of every char-rnn tool ask "what settings should I use, is my loss good?". The answer is
in the run's curves (metrics.jsonl): validation and training losses in bits per character,
and the learning rate at each report. `diagnose` is pure: curves and a few facts of the run
in, a `Diagnosis` out; the rules are checked in order and the first that fits speaks:

- divergence: a loss that became NaN or rose far above its best (a learning rate too high);
- a stall: training that hardly moved from its first report;
- overfitting: validation rising from its best while training falls, or training far below a
  validation that no longer improves (the model learns its text by heart);
- still learning: the loss fell steeply while the learning rate was high. The cosine schedule
  flattens the end of every run as the rate decays, so a flat end says nothing about the
  model: the steep middle says that a longer run would go further;
- saturated: a loss flat even at a high rate, with validation as good as training: the model
  has no room left, and a larger one would do better.

A finding names what to change as option values (`NextRun`); `next_command` writes it as the
command to run, for the shell or for Python.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from charrnn.settings.options import by_name
from charrnn.settings.spelling import for_python
from charrnn.settings.train_options import TRAIN

Curve = Sequence[tuple[int, float]]  # (step, value), in step order

# Divergence: a loss this far above its best (a quarter) is no slow drift. Overfitting raises
# validation a few percent over many evaluations; a learning rate too high for the model
# throws the training loss (or validation, with training no better) well above its best.
DIVERGED_RISE = 0.25
# ... and by a quarter of a bit per character at least: a model that has learned its text by
# heart wobbles between 0.0004 and 0.0006 bpc, a rise of half, which is nothing.
DIVERGED_MIN_BITS = 0.25
# Overfitting: validation at least 1 % above its best, which is well beyond the wobble of one
# evaluation of the same text (deterministic, dropout off), after at least this many evaluations.
OVERFIT_RISE = 0.01
OVERFIT_EVALS_AFTER_BEST = 2
# ... or training this much below validation (a fraction of validation) while validation is
# flat: the training loss is measured with dropout on, so a gap this wide is memorising.
MEMORISING_GAP = 0.15
# Still learning: the training loss fell by this fraction or more over the high-rate part of
# the run (past its first fifth, while the rate was at least half its peak), or validation
# still fell this much over the run's second half.
LEARNING_DROP = 0.03
HIGH_RATE = 0.5
FIRST_PART = 0.2
# Saturated: less than this over the high-rate part, and validation within this of training.
FLAT_DROP = 0.01
NO_GAP = 0.05
SETTLED_EVALS = 3  # evaluations it takes to call validation flat
# Worse than guessing: a training loss this far above log2(vocabulary), what a uniform guess
# scores, is a learning rate throwing the model about (a run starts at that loss, and falls).
WORSE_THAN_GUESSING = 0.1
# Frequencies only: a model that beats the characters' frequencies (the unigram entropy of the
# training text) by less than this fraction has learned nothing of their order; every real
# text has some, and a model at a typical learning rate finds it within a few hundred steps.
BEYOND_FREQUENCIES = 0.05
TYPICAL_LR = by_name(TRAIN)["lr"].default
# Stalled: after this many steps, the training loss fell by less than 5 % from its first report:
# a learning rate that moves nothing (too low) or that keeps the model at its first guess
# (too high, with clipping holding it back). Short runs are too short to say.
STALL_MIN_STEPS = 200
STALL_MIN_REPORTS = 4
STALL_DROP = 0.05
# The next run's values.
LONGER = 2  # a run that was still learning: this many times its length
MOST_DROPOUT = 0.7
DROPOUT_STEP = 0.2
LARGER = 2  # a saturated model: this many times the hidden size
MOST_POINTS = 4096  # points kept per curve: a run's log of any length is read in bounded memory


@dataclass(frozen=True)
class Curves:
    validation: Curve = ()  # (step, validation bpc)
    training: Curve = ()  # (step, training bpc, dropout on)
    lr: Curve = ()  # (step, learning rate at that report)


@dataclass(frozen=True)
class RunFacts:
    """What the rules need to know of a run besides its curves."""

    steps: int  # steps trained
    max_steps: int | None  # the run's length in steps (None: by time alone)
    max_time: float | None  # ... and in seconds of training
    elapsed: float  # seconds trained
    hidden_size: int
    dropout: float
    lr: float
    vocab_size: int
    unigram_bits: float | None = None  # what the characters' frequencies alone score on the training text
    stopped_early: bool = False  # --patience ended it


@dataclass(frozen=True)
class NextRun:
    """The run to try next: this run continued (`resume`) or a new one, with these options
    changed (their Python names: `max_steps`, `dropout`, `hidden_size`, `lr`)."""

    resume: bool
    options: Mapping[str, Any]


@dataclass(frozen=True)
class Diagnosis:
    finding: str  # a sentence or two, starting "Diagnosis:"
    next_run: NextRun | None = None

    def lines(self, command: str | None = None) -> list[str]:
        return [self.finding] + ([f"Next: {command}"] if command else [])


def curves(records: Iterable[Mapping[str, Any]]) -> Curves:
    """The curves of metrics.jsonl's records, in step order, each thinned to at most
    2 x MOST_POINTS evenly spaced points (and its last), so that a log of any length is read
    in bounded memory."""
    picks = {("validation", "val_bpc"): _Thinned(), ("train", "train_bpc"): _Thinned(), ("train", "lr"): _Thinned()}
    for record in records:
        for (kind, figure), curve in picks.items():
            value = record.get(figure)
            if record.get("kind") == kind and isinstance(value, (int, float)) and not isinstance(value, bool):
                curve.add(record["step"], float(value))
    return Curves(*(curve.points() for curve in picks.values()))


class _Thinned:
    """Points kept one in `stride`; when there are 2 x MOST_POINTS, every other one goes and the stride doubles."""

    def __init__(self) -> None:
        self.kept: list[tuple[int, float]] = []
        self.last: tuple[int, float] | None = None
        self.stride, self.seen = 1, 0

    def add(self, step: int, value: float) -> None:
        self.last = (step, value)
        if self.seen % self.stride == 0:
            self.kept.append(self.last)
            if len(self.kept) >= 2 * MOST_POINTS:
                self.kept, self.stride = self.kept[::2], self.stride * 2
        self.seen += 1

    def points(self) -> list[tuple[int, float]]:
        tail = [self.last] if self.last is not None and (not self.kept or self.kept[-1] != self.last) else []
        return sorted(self.kept + tail)


def diagnose(curves: Curves, facts: RunFacts) -> Diagnosis | None:
    """What the run needs, or None when nothing stands out."""
    for rule in (_diverged, _only_frequencies, _stalled, _overfitting, _still_learning, _saturated, _memorising):
        found = rule(curves, facts)
        if found is not None:
            return found
    return None


def _diverged(curves: Curves, facts: RunFacts) -> Diagnosis | None:
    validation, training = curves.validation, curves.training
    lower = NextRun(False, {"lr": _rounded(facts.lr / 3)})
    if any(not math.isfinite(loss) for _, loss in (*validation, *training)):
        return Diagnosis(
            "Diagnosis: the loss diverged (it became infinite or NaN): the learning rate is too high.", lower
        )
    uniform = math.log2(facts.vocab_size) if facts.vocab_size > 1 else None
    worst_step, worst = max(training, key=lambda point: point[1], default=(0, 0.0))
    if uniform is not None and worst > uniform * (1 + WORSE_THAN_GUESSING):
        return Diagnosis(
            f"Diagnosis: the loss went above a uniform guess ({worst:.4f} bpc at step {worst_step:,}; guessing among "
            f"{facts.vocab_size:,} characters scores {uniform:.4f}): the learning rate is too high.",
            lower,
        )
    if len(training) >= 2:
        low = min(loss for _, loss in training)
        if _far_above(training[-1][1], low):
            return Diagnosis(
                f"Diagnosis: the training loss exploded, from {low:.4f} bpc at its lowest to {training[-1][1]:.4f}: "
                "the learning rate is too high.",
                lower,
            )
    best_step, best = _best(validation)
    if best is not None and _far_above(validation[-1][1], best) and not _training_fell_after(training, best_step):
        return Diagnosis(
            f"Diagnosis: the run diverged: validation rose from {best:.4f} bpc (step {best_step:,}; best.pt holds it) "
            f"to {validation[-1][1]:.4f}, and training got no better: the learning rate is too high.",
            lower,
        )
    return None


def _only_frequencies(curves: Curves, facts: RunFacts) -> Diagnosis | None:
    """A model that scores no better than the characters' frequencies alone has learned nothing
    of their order: a learning rate far from a good one, or a text with no order to learn."""
    curve = curves.validation or curves.training
    if facts.unigram_bits is None or not curve or curve[-1][0] < STALL_MIN_STEPS:
        return None
    best = min(loss for _, loss in curve)
    if best < facts.unigram_bits * (1 - BEYOND_FREQUENCIES):
        return None
    finding = (
        f"Diagnosis: the model learned only which characters are common: its best is {best:.4f} bpc, and the "
        f"characters' frequencies alone score {facts.unigram_bits:.4f}."
    )
    if facts.lr >= TYPICAL_LR * 3:
        return Diagnosis(f"{finding} The learning rate is too high.", NextRun(False, {"lr": _rounded(facts.lr / 10)}))
    if facts.lr <= TYPICAL_LR / 3:
        return Diagnosis(f"{finding} The learning rate is too low.", NextRun(False, {"lr": _rounded(facts.lr * 10)}))
    return Diagnosis(f"{finding} Either the text has little order to learn, or the run was far too short.")


def _stalled(curves: Curves, facts: RunFacts) -> Diagnosis | None:
    training = curves.training
    if len(training) < STALL_MIN_REPORTS or training[-1][0] < STALL_MIN_STEPS:
        return None
    first, last = training[0][1], training[-1][1]
    if last <= first * (1 - STALL_DROP):
        return None
    # A rate that moves nothing is raised; one that holds the model at its first guess is lowered.
    jumpy = max(loss for _, loss in training) > first * (1 + STALL_DROP)
    lr = facts.lr / 10 if jumpy else facts.lr * 10
    return Diagnosis(
        f"Diagnosis: the loss stalled: training went only from {first:.4f} to {last:.4f} bpc in "
        f"{training[-1][0]:,} steps ({'it jumps about: the learning rate is too high' if jumpy else 'the learning rate may be too low'}).",
        NextRun(False, {"lr": _rounded(lr)}),
    )


def _overfitting(curves: Curves, facts: RunFacts) -> Diagnosis | None:
    validation, training = curves.validation, curves.training
    best_step, best = _best(validation)
    after = [loss for step, loss in validation if step > best_step]
    if best is None or len(after) < OVERFIT_EVALS_AFTER_BEST or after[-1] < best * (1 + OVERFIT_RISE):
        return None
    if not _training_fell_after(training, best_step):
        return None
    return Diagnosis(
        f"Diagnosis: overfitting. Validation was best at step {best_step:,} ({best:.4f} bpc; best.pt holds it) and "
        f"rose to {after[-1]:.4f} since, while the training loss kept falling: the model learns its text by heart.",
        _regularised(facts),
    )


def _still_learning(curves: Curves, facts: RunFacts) -> Diagnosis | None:
    if facts.stopped_early or _validation_worse_than_best(curves.validation):
        return None
    drop, late = _high_rate_drop(curves), _late_drop(curves.validation)
    if not ((drop is not None and drop >= LEARNING_DROP) or (late is not None and late >= LEARNING_DROP)):
        return None
    which = "validation" if curves.validation else "training"
    figure = (curves.validation or curves.training)[-1][1]
    return Diagnosis(
        f"Diagnosis: still learning: the loss fell {max(drop or 0, late or 0):.0%} while the learning rate was high, "
        f"and {which} reached {figure:.4f} bpc when the run ended; its flat end is the learning rate's decay, "
        "not the model running out of room. A longer run would go further.",
        NextRun(True, _longer(facts)),
    )


def _saturated(curves: Curves, facts: RunFacts) -> Diagnosis | None:
    drop, gap = _high_rate_drop(curves), _gap(curves)
    if len(curves.validation) < SETTLED_EVALS or drop is None or drop >= FLAT_DROP or gap is None or gap > NO_GAP:
        return None
    return Diagnosis(
        f"Diagnosis: the model has no room left: the loss hardly moved even while the learning rate was high, and it "
        f"predicts new text as well as its training text ({curves.validation[-1][1]:.4f} bpc). A larger model would do better.",
        NextRun(False, {"hidden_size": facts.hidden_size * LARGER}),
    )


def _memorising(curves: Curves, facts: RunFacts) -> Diagnosis | None:
    gap = _gap(curves)
    if len(curves.validation) < SETTLED_EVALS or gap is None or gap < MEMORISING_GAP:
        return None
    return Diagnosis(
        f"Diagnosis: memorising: validation stopped improving at {_best(curves.validation)[1]:.4f} bpc while training, "
        f"measured with dropout on, is {gap:.0%} lower ({curves.training[-1][1]:.4f}).",
        _regularised(facts),
    )


def _regularised(facts: RunFacts) -> NextRun:
    """More dropout; past MOST_DROPOUT, a smaller model."""
    if facts.dropout + DROPOUT_STEP <= MOST_DROPOUT + 1e-9:
        return NextRun(False, {"dropout": round(facts.dropout + DROPOUT_STEP, 2)})
    return NextRun(False, {"hidden_size": max(facts.hidden_size // 2, 16)})


def _longer(facts: RunFacts) -> dict[str, Any]:
    """The run's length, LONGER times over: steps, time, or both, as it was measured."""
    options: dict[str, Any] = {}
    if facts.max_steps is not None:
        options["max_steps"] = LONGER * facts.steps
    if facts.max_time is not None and (facts.max_steps is None or facts.steps < facts.max_steps):
        options["max_time"] = LONGER * facts.max_time
    return options or {"max_steps": LONGER * facts.steps}


def _high_rate_drop(curves: Curves) -> float | None:
    """How much the loss fell (a fraction) over the high-rate part of the run: past its first
    fifth, while the learning rate was at least half its peak. Validation's, where it has two
    points there (training may fall while it memorises), else training's; None with too few."""
    rates = dict(curves.lr)
    if not rates or not curves.training:
        return None
    peak, start = max(rates.values()), curves.training[-1][0] * FIRST_PART
    for curve in (curves.validation, curves.training):
        high = [loss for step, loss in curve if step >= start and _rate_at(rates, step) >= HIGH_RATE * peak]
        if len(high) >= 2:
            return (high[0] - high[-1]) / high[0] if high[0] > 0 else None
    return None


def _rate_at(rates: Mapping[int, float], step: int) -> float:
    """The learning rate at `step`: at its report, else at the report before it."""
    if step in rates:
        return rates[step]
    before = [s for s in rates if s <= step]
    return rates[max(before)] if before else max(rates.values())


def _gap(curves: Curves) -> float | None:
    """How far below the last validation the last training loss is, as a fraction of it."""
    if not curves.validation or not curves.training or curves.validation[-1][1] <= 0:
        return None
    return (curves.validation[-1][1] - curves.training[-1][1]) / curves.validation[-1][1]


def _validation_worse_than_best(validation: Curve) -> bool:
    return bool(validation) and validation[-1][1] > _best(validation)[1]


def _far_above(loss: float, best: float) -> bool:
    return loss >= best * (1 + DIVERGED_RISE) and loss - best >= DIVERGED_MIN_BITS


def _best(validation: Curve) -> tuple[int, float | None]:
    """The step and loss of the best (lowest, first if tied) validation; (0, None) without any."""
    if not validation:
        return 0, None
    return min(validation, key=lambda point: point[1])


def _training_fell_after(training: Curve, step: int) -> bool:
    """Whether the training loss at the end is below what it was around `step`."""
    before = [loss for s, loss in training if s <= step]
    return bool(before) and training[-1][0] > step and training[-1][1] < before[-1]


def _late_drop(curve: Curve) -> float | None:
    """How much lower (a fraction) the loss is at the end than at the run's midpoint (its first
    point there or after); None with fewer than three points."""
    if len(curve) < 3:
        return None
    middle = next(loss for step, loss in curve if step >= curve[-1][0] / 2)
    return (middle - curve[-1][1]) / middle if middle > 0 else None


def _rounded(value: float) -> float:
    """Two significant digits: a learning rate a person would type."""
    return float(f"{value:.2g}")


# The next command, as a person would type it.


@dataclass(frozen=True)
class Command:
    """What the run was started with, to write the next one from."""

    corpus: Sequence[str]  # as given (none: the built-in corpus, or the checkpoint's)
    out: str  # the run's out folder
    options: Mapping[str, Any] = field(default_factory=dict)  # the options given (Python names)
    default_out: str = "checkpoints"
    texts: bool = False  # the corpus was strings in memory (charrnn.train(texts=...)): a call gives them again


_FLAGS = {option.name: option.flags[0] for option in TRAIN}


def next_command(next_run: NextRun, command: Command, python: bool | None = None, taken: Any = None) -> str:
    """`next_run` as a command: `charrnn train --resume --max-steps 24000`, or for a new run the
    same command with the changed options and a new out folder (`OUT-2`, or the first free
    `OUT-N`: `taken(path)` says whether one is taken). With `python`, as a call of charrnn.train
    (None: as the reader of messages types options, options.read_by)."""
    if python is None:
        python = for_python()
    if next_run.resume:
        options = {**({"out": command.out} if command.out != command.default_out else {}), "resume": True}
        options.update(next_run.options)
        corpus: Sequence[str] = ["-"] if list(command.corpus) == ["-"] else []
    else:
        options = {**command.options, **next_run.options, "out": _free_folder(command.out, taken)}
        corpus = command.corpus
    if python and command.texts and not next_run.resume:  # a resume reads the cache's copy of the texts
        options = {"texts": _Named("texts"), **options}
    return _as_call(corpus, options) if python else _as_shell(corpus, options)


class _Named(str):
    """A value a call names by a variable of the caller's (`texts=texts`), not as a literal."""

    def __repr__(self) -> str:
        return str(self)


def _free_folder(out: str, taken: Any) -> str:
    number = 2
    while taken is not None and taken(f"{out}-{number}"):
        number += 1
    return f"{out}-{number}"


def _as_shell(corpus: Sequence[str], options: Mapping[str, Any]) -> str:
    words = ["charrnn", "train", *corpus]
    for name, value in options.items():
        flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
        if value is True:
            words.append(flag)
        elif value is not False and value is not None:
            words += [flag, _shown(name, value)]
    return " ".join(shlex.quote(word) for word in words)


def _as_call(corpus: Sequence[str], options: Mapping[str, Any]) -> str:
    arguments = [repr(path) for path in corpus] + [f"{name}={value!r}" for name, value in options.items()]
    return f"charrnn.train({', '.join(arguments)})"


def _shown(name: str, value: Any) -> str:
    if name == "max_time" and isinstance(value, (int, float)):
        return _duration(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _duration(seconds: float) -> str:
    """`90s`, `10m`, `1h30m`: as --max-time takes it."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, seconds_left = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{seconds_left}s" if seconds_left else ""]
    return "".join(parts) or "1s"

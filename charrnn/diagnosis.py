"""What a finished run needs, read from its own curves: one or two lines for the user.

Users of every char-rnn tool ask "what settings should I use, is my loss good?". The answer is
in the run's curves (metrics.jsonl): the validation losses and the training losses, as
(step, bits per character). `diagnose` is pure: curves in, lines out; the rules are checked in
order, and the first that fits speaks. No rule fitting says nothing, or one calm line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Curve = Sequence[tuple[int, float]]  # (step, loss in bits per character), in step order

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
# Underfitting: over the second half of the run, the loss still fell by 3 % or more, even as the
# learning rate decayed towards its end: more steps clearly pay. Between SLOW_DROP and that, it
# is still improving, slowly.
UNDERFIT_DROP = 0.03
SLOW_DROP = 0.005
# Stalled: after this many steps, the training loss fell by less than 5 % from its first report:
# a learning rate that moves nothing (too low) or that keeps the model at its first guess
# (too high, with clipping holding it back). Short runs are too short to say.
STALL_MIN_STEPS = 200
STALL_MIN_REPORTS = 4
STALL_DROP = 0.05

SLOWLY = "Validation is still improving slowly: more steps may help a little."


def curves(records: Iterable[Mapping[str, Any]]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """The validation and training curves, (step, bpc), of metrics.jsonl's records."""
    validation, training = [], []
    for record in records:
        for kind, figure, curve in (("validation", "val_bpc", validation), ("train", "train_bpc", training)):
            value = record.get(figure)
            if record.get("kind") == kind and isinstance(value, (int, float)) and not isinstance(value, bool):
                curve.append((record["step"], float(value)))
    return sorted(validation), sorted(training)


def diagnose(validation: Curve, training: Curve) -> list[str]:
    """One or two lines on what the run needs, or none when nothing stands out."""
    for rule in (_diverged, _stalled, _overfitting, _underfitting):
        lines = rule(validation, training)
        if lines:
            return lines
    return []


def _diverged(validation: Curve, training: Curve) -> list[str]:
    losses = [loss for _, loss in (*validation, *training)]
    advice = "Train again with a lower --lr (a third of this one, say)."
    if any(not math.isfinite(loss) for loss in losses):
        return ["Diagnosis: the loss diverged (it became infinite or NaN).", advice]
    if len(training) >= 2:
        low = min(loss for _, loss in training)
        if _far_above(training[-1][1], low):
            return [
                f"Diagnosis: the training loss exploded, from {low:.4f} bpc at its lowest to {training[-1][1]:.4f}.",
                advice,
            ]
    best_step, best = _best(validation)
    if best is not None and _far_above(validation[-1][1], best) and not _training_fell_after(training, best_step):
        return [
            f"Diagnosis: the run diverged: validation rose from {best:.4f} bpc (step {best_step:,}; best.pt holds it) "
            f"to {validation[-1][1]:.4f}, and training got no better.",
            advice,
        ]
    return []


def _stalled(validation: Curve, training: Curve) -> list[str]:
    if len(training) < STALL_MIN_REPORTS or training[-1][0] < STALL_MIN_STEPS:
        return []
    first, last = training[0][1], training[-1][1]
    if last > first * (1 - STALL_DROP):
        return [
            f"Diagnosis: the loss stalled: training went only from {first:.4f} to {last:.4f} bpc in "
            f"{training[-1][0]:,} steps.",
            "Try another --lr: 10x smaller if the loss jumps about, 10x larger if it barely moves.",
        ]
    return []


def _overfitting(validation: Curve, training: Curve) -> list[str]:
    best_step, best = _best(validation)
    after = [loss for step, loss in validation if step > best_step]
    if best is None or len(after) < OVERFIT_EVALS_AFTER_BEST or after[-1] < best * (1 + OVERFIT_RISE):
        return []
    if not _training_fell_after(training, best_step):
        return []
    return [
        f"Diagnosis: overfitting. Validation was best at step {best_step:,} ({best:.4f} bpc; best.pt holds it) and "
        f"rose to {after[-1]:.4f} since, while the training loss kept falling.",
        "A higher --dropout or a smaller --hidden-size would generalise better.",
    ]


def _underfitting(validation: Curve, training: Curve) -> list[str]:
    drop = _late_drop(validation or training)  # without validation, training speaks alone
    if drop is None or drop < SLOW_DROP or (validation and validation[-1][1] > _best(validation)[1]):
        return []
    if drop < UNDERFIT_DROP or (_late_drop(training) or 0) <= 0:
        return [SLOWLY] if validation else []
    which = "training and validation loss were" if validation else "the training loss was"
    return [
        f"Diagnosis: underfitting: {which} still falling at the end ({drop:.1%} lower over the run's second half).",
        "A longer run (--resume with a larger --max-steps or --max-time) or a larger model (--hidden-size) "
        "would do better.",
    ]


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
    point there or after); None with fewer than two points."""
    if len(curve) < 2:
        return None
    middle = next(loss for step, loss in curve if step >= curve[-1][0] / 2)
    return (middle - curve[-1][1]) / middle if middle > 0 else None

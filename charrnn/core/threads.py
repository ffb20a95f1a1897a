"""`--threads auto`: while a command works, keep whichever CPU thread count runs it faster.

Why at run time: on an idle machine one thread a core (torch's default) trains fastest, but
beside one busy program (a browser, a second run) its threads wait for each other at every
parallel region, and the same setting runs three times slower while one thread is barely
touched (measured, 2 cores: 2 threads 2.49 s / 100 steps alone, 7.83 busy; 1 thread 3.54 and
3.38). No fixed count is good in both cases, and neighbours come and go during a run.

So the training loop times each step (never evaluations or saves) and the tuner keeps the
median of the current count's recent steps. Now and then it tries a neighbouring count (one
fewer or one more, among the candidates) for a few steps and keeps the faster. Probes cost
little: one that is clearly slower ends after 3 steps (one far slower, after its first: beside a
busy program the wrong count can be several times slower), and probes that keep losing come less
and less often (the interval doubles, up to 400 steps), so probing a count 2.3x slower costs
about 1 % of the time. When the current count's step time moves by half (a neighbour came or
went), it probes at once; a neighbour leaving a one-thread run hardly changes its step time,
and the periodic probe finds that within 400 steps. A probe that lost by far (on a crowded
machine two threads were measured 35x slower than one) holds off the next one, periodic or
not, until the steps since have earned its cost fifty times over: probing stays within 2 %.

Only the speed changes: the same kernels compute the same numbers whatever the thread count
(bit-identical on CPU; tests/test_threads.py checks it), so switching keeps resume exact. Not
at every shape, though: oneDNN's LSTM computes a small model's input gradient differently on one
thread and two (hidden 24, or 128 with 24-wide input, measured), and switching would then make a
run depend on timing. So training first computes one step on each candidate count and tunes
only where they agree bit for bit; elsewhere it keeps the count it has.

The other commands' loops are tuned the same way (`running_on`): eval's windows and the memory
curve's warm-up (PyTorch's threads), the steps of batched sampling and beam search (numpy's
BLAS threads, which threadpoolctl changes at run time). Those loops are short, a few dozen to a
thousand pieces, so the first probe comes after FIRST_WINDOW pieces rather than a full WINDOW:
where two threads scored 7.7 times slower than one (eval on a busy machine), eight pieces on the
slow count would make a 136-window evaluation take a third longer. Against so short a baseline only a clear difference decides; a count a few
percent faster is found by the later probes, against full windows. For the same reason a probe
in these loops ends after its first piece when that piece is clearly slower (alone, one thread
scores half as fast as two: three probe pieces of a 14-window evaluation cost a fifth more).
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from statistics import median
from typing import TypeVar

from charrnn.errors import ConfigError
from charrnn.settings.option import AUTO

WINDOW = 8  # recent steps of the current count: their median is its speed
FIRST_WINDOW = 3  # steps timed before the first probe: the median of three is safe from one slow first step
PROBE_STEPS = 6  # steps a probe lasts at most
DECIDE_AFTER = 3  # steps after which a probe that is clearly faster or slower ends
CLEARLY = 1.25  # "clearly": by this factor
FAR_SLOWER = 2.0  # a probe's step slower than the chosen count's median by this factor ends the probe at once
BETTER = 0.95  # a probed count wins when its median step is below this fraction of the current's
# ... or, against the median of a first window shorter than WINDOW (noisier), only when clearly faster
DRIFT = 1.5  # the chosen count's median moving by this factor (a neighbour came or went): probe now
FIRST_INTERVAL, MAX_INTERVAL = 50, 400  # steps between probes, doubling after each lost probe
PROBE_SHARE = 0.02  # after a lost probe, the next waits until its extra time is this share of the steps since


def candidate_counts(most: int) -> list[int]:
    """The thread counts worth trying: 1 to `most`, and with many cores a few of them
    (1, half, all but one, all); a probe tries a neighbour of the current one in this list."""
    if most <= 4:
        return list(range(1, most + 1))
    return sorted({1, most // 2, most - 1, most})


class ThreadTuner:
    """Fed the duration of each step (of training, or another loop of similar pieces), switches
    (through `set_threads`) to the faster thread count. It starts at `most`, the count the
    process runs on now."""

    def __init__(self, set_threads: Callable[[int], None], most: int, give_up: float = FAR_SLOWER):
        self.set_threads = set_threads
        self.give_up = give_up  # a probe's step slower than the chosen count's median by this factor ends it at once
        self.candidates = candidate_counts(most)
        self.chosen = most  # the count kept between probes
        self.probing: int | None = None  # the count being tried, while a probe lasts
        self.recent: deque[float] = deque(maxlen=WINDOW)  # the chosen count's step times
        self.probe_times: list[float] = []
        self.baseline = 0.0  # the chosen count's median when the probe began
        self.baseline_steps = 0  # of how many steps
        self.reference: float | None = None  # the chosen count's median over its first window since the last decision
        self.interval = FIRST_INTERVAL
        self.cooldown = 0.0  # steps before any next probe: what the last lost probe cost, / PROBE_SHARE
        self.since_decision = 0
        self.probes = 0

    @property
    def current(self) -> int:
        """The count the next step runs on."""
        return self.chosen if self.probing is None else self.probing

    def observe(self, seconds: float) -> None:
        """One step took `seconds`; maybe change the count for the next ones."""
        if len(self.candidates) == 1:
            return
        if self.probing is not None:
            self.probe_times.append(seconds)
            self._maybe_decide()
            return
        self.recent.append(seconds)
        self.since_decision += 1
        if len(self.recent) < (WINDOW if self.probes else FIRST_WINDOW):
            return
        if self.reference is None:
            self.reference = median(self.recent)
        if self.probes == 0 or (self._may_probe() and (self.since_decision >= self.interval or self._drifted())):
            self._probe()

    def restore(self) -> None:
        """Leave the process on the count it started with."""
        if self.current != self.candidates[-1]:
            self.set_threads(self.candidates[-1])

    def _may_probe(self) -> bool:
        return self.since_decision >= self.cooldown

    def _drifted(self) -> bool:
        ratio = median(self.recent) / self.reference
        return not 1 / DRIFT < ratio < DRIFT

    def _probe(self) -> None:
        index = self.candidates.index(self.chosen)
        neighbours = [self.candidates[i] for i in (index - 1, index + 1) if 0 <= i < len(self.candidates)]
        self.probing = neighbours[self.probes % len(neighbours)]  # below and above in turn
        self.probes += 1
        self.baseline, self.baseline_steps, self.probe_times = median(self.recent), len(self.recent), []
        self.set_threads(self.probing)

    def _maybe_decide(self) -> None:
        ratio = median(self.probe_times) / self.baseline
        clear = len(self.probe_times) >= DECIDE_AFTER and not 1 / CLEARLY < ratio < CLEARLY or ratio > self.give_up
        if not clear and len(self.probe_times) < PROBE_STEPS:
            return
        if ratio < (BETTER if self.baseline_steps >= WINDOW else 1 / CLEARLY):
            self.chosen, self.interval, self.cooldown = self.probing, FIRST_INTERVAL, 0.0
        else:
            self.set_threads(self.chosen)
            self.interval = min(2 * self.interval, MAX_INTERVAL)
            extra_steps = sum(self.probe_times) / self.baseline - len(self.probe_times)  # the probe's cost, in steps
            self.cooldown = extra_steps / PROBE_SHARE
        self.probing, self.reference, self.since_decision = None, None, 0
        self.recent.clear()


# Other loops than training's ---------------------------------------------------------------

Piece = TypeVar("Piece")


def clock() -> float:
    """The clock pieces are timed by (tests put a fake one here)."""
    return time.perf_counter()


class Tuning:
    """What a loop of similar pieces runs under: with a tuner, each piece is timed and the
    tuner may change the thread count between pieces; without one, the pieces just pass."""

    def __init__(self, tuner: ThreadTuner | None = None):
        self.tuner = tuner

    def timed(self, pieces: Iterable[Piece]) -> Iterator[Piece]:
        """`pieces`, each timed from when it is handed out until the loop asks for the next."""
        if self.tuner is None:
            yield from pieces
            return
        for piece in pieces:
            began = clock()
            yield piece
            self.tuner.observe(clock() - began)


UNTUNED = Tuning()  # a loop run on whatever count the process has


@dataclass(frozen=True)
class Pool:
    """The CPU threads of one library: PyTorch's, or numpy's BLAS."""

    get: Callable[[], int]
    set: Callable[[int], None]


def torch_threads() -> Pool:
    import torch

    return Pool(torch.get_num_threads, torch.set_num_threads)


def blas_threads() -> Pool:
    """numpy's BLAS threads. Its library reads a count from the environment once, when numpy is
    imported; threadpoolctl changes it afterwards (and finds no BLAS to change where numpy has
    none that it knows: then there is nothing to tune)."""
    libraries = _blas_libraries()

    def get() -> int:
        return min((library.get_num_threads() for library in libraries), default=1)

    def set(count: int) -> None:
        for library in libraries:
            library.set_num_threads(count)

    return Pool(get, set)


@functools.cache
def _blas_libraries() -> tuple:
    import numpy  # noqa: F401 - loads the BLAS library that threadpoolctl looks for
    from threadpoolctl import ThreadpoolController

    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)  # scanning takes ~10 ms: once


@contextmanager
def running_on(pool: Pool, threads: int | str | None) -> Iterator[Tuning]:
    """Run the block on `threads` of `pool`: a fixed count; AUTO: from the count it has now, the
    tuner keeps whichever is faster as the block's loop times its pieces (`Tuning.timed`); None:
    as it is. Afterwards the pool has the count it had before."""
    before = pool.get()
    tuner = None
    if threads == AUTO:
        pool.set(before)  # PyTorch passes it on to MKL too, which the environment may have set apart
        # A short loop cannot amortise a losing probe: one clearly slower piece ends it.
        tuner = ThreadTuner(pool.set, before, give_up=CLEARLY) if before > 1 else None
    elif threads is not None:
        pool.set(threads)
    try:
        yield Tuning(tuner)
    finally:
        if threads is not None:
            pool.set(before)


def check_threads(threads: object) -> None:
    """Refuse a `threads` argument that is not AUTO, None or a count >= 1 (a ConfigError)."""
    if threads is None or threads == AUTO:
        return
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ConfigError(f'threads must be "{AUTO}" or an integer >= 1, got {threads!r}')

"""`--threads auto`: while training runs, keep whichever CPU thread count trains faster.

Why at run time: on an idle machine one thread a core (torch's default) trains fastest, but
beside one busy program (a browser, a second run) its threads wait for each other at every
parallel region, and the same setting runs three times slower while one thread is barely
touched (measured, 2 cores: 2 threads 2.49 s / 100 steps alone, 7.83 busy; 1 thread 3.54 and
3.38). No fixed count is good in both cases, and neighbours come and go during a run.

So the training loop times each step (never evaluations or saves) and the tuner keeps the
median of the current count's recent steps. Now and then it tries a neighbouring count (one
fewer or one more, among the candidates) for a few steps and keeps the faster. Probes cost
little: one that is clearly slower ends after 3 steps, and probes that keep losing come less
and less often (the interval doubles, up to 400 steps), so probing a count 2.3x slower costs
about 1 % of the time. When the current count's step time moves by half (a neighbour came or
went), it probes at once; a neighbour leaving a one-thread run hardly changes its step time,
and the periodic probe finds that within 400 steps.

Only the speed changes: the same kernels compute the same numbers whatever the thread count
(bit-identical on CPU; tests/test_threads.py checks it), so switching keeps resume exact.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from statistics import median

WINDOW = 8  # recent steps of the current count: their median is its speed
PROBE_STEPS = 6  # steps a probe lasts at most
DECIDE_AFTER = 3  # steps after which a probe that is clearly faster or slower ends
CLEARLY = 1.25  # "clearly": by this factor
BETTER = 0.95  # a probed count wins when its median step is below this fraction of the current's
DRIFT = 1.5  # the chosen count's median moving by this factor (a neighbour came or went): probe now
FIRST_INTERVAL, MAX_INTERVAL = 50, 400  # steps between probes, doubling after each lost probe


def candidate_counts(most: int) -> list[int]:
    """The thread counts worth trying: 1 to `most`, and with many cores a few of them
    (1, half, all but one, all); a probe tries a neighbour of the current one in this list."""
    if most <= 4:
        return list(range(1, most + 1))
    return sorted({1, most // 2, most - 1, most})


class ThreadTuner:
    """Fed the duration of each training step, switches (through `set_threads`) to the faster
    thread count. It starts at `most`, the count the process runs on now."""

    def __init__(self, set_threads: Callable[[int], None], most: int):
        self.set_threads = set_threads
        self.candidates = candidate_counts(most)
        self.chosen = most  # the count kept between probes
        self.probing: int | None = None  # the count being tried, while a probe lasts
        self.recent: deque[float] = deque(maxlen=WINDOW)  # the chosen count's step times
        self.probe_times: list[float] = []
        self.baseline = 0.0  # the chosen count's median when the probe began
        self.reference: float | None = None  # the chosen count's median over its first window since the last decision
        self.interval = FIRST_INTERVAL
        self.since_decision = 0
        self.probes = 0

    @property
    def current(self) -> int:
        """The count the next step runs on."""
        return self.chosen if self.probing is None else self.probing

    def observe(self, seconds: float) -> None:
        """One training step took `seconds`; maybe change the count for the next ones."""
        if len(self.candidates) == 1:
            return
        if self.probing is not None:
            self.probe_times.append(seconds)
            self._maybe_decide()
            return
        self.recent.append(seconds)
        self.since_decision += 1
        if len(self.recent) < WINDOW:
            return
        if self.reference is None:
            self.reference = median(self.recent)
        if self.probes == 0 or self.since_decision >= self.interval or self._drifted():
            self._probe()

    def restore(self) -> None:
        """Leave the process on the count it started with."""
        if self.current != self.candidates[-1]:
            self.set_threads(self.candidates[-1])

    def _drifted(self) -> bool:
        ratio = median(self.recent) / self.reference
        return not 1 / DRIFT < ratio < DRIFT

    def _probe(self) -> None:
        index = self.candidates.index(self.chosen)
        neighbours = [self.candidates[i] for i in (index - 1, index + 1) if 0 <= i < len(self.candidates)]
        self.probing = neighbours[self.probes % len(neighbours)]  # below and above in turn
        self.probes += 1
        self.baseline, self.probe_times = median(self.recent), []
        self.set_threads(self.probing)

    def _maybe_decide(self) -> None:
        ratio = median(self.probe_times) / self.baseline
        clear = len(self.probe_times) >= DECIDE_AFTER and not 1 / CLEARLY < ratio < CLEARLY
        if not clear and len(self.probe_times) < PROBE_STEPS:
            return
        if ratio < BETTER:
            self.chosen, self.interval = self.probing, FIRST_INTERVAL
        else:
            self.set_threads(self.chosen)
            self.interval = min(2 * self.interval, MAX_INTERVAL)
        self.probing, self.reference, self.since_decision = None, None, 0
        self.recent.clear()

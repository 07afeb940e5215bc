"""Wall-clock timing for the benchmarks (stn/bench.py, stn/bench_train.py): medians after a
warm-up, and interleaved rounds for comparisons.

On a shared machine the speed of memory and caches drifts by up to 2x within minutes. Timing
one contender's repeats, then the next one's, lets such a drift fall on one of them only;
interleaved_medians_ms times every contender in turn, round after round, so that a slow spell
reaches all of them alike and their ratios hold even when the absolute times move. Spells last
tens of milliseconds: a contender whose calls take a millisecond can have a whole round of them
fall in one, where a contender whose calls take 100 ms averages it out; giving each contender a
round of about the same duration (round_ms) evens that out too.
"""

from __future__ import annotations

import time

import numpy as np


def _no_sync():
    pass


def step_times(step, count: int, sync=_no_sync) -> list:
    """Seconds of each of `count` calls of step(); sync() waits for queued (GPU) work."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return times


def median_ms(step, repeats: int, sync=_no_sync) -> float:
    """Median wall time of `repeats` calls of step() after one warm-up call, in ms."""
    step()
    sync()
    return float(np.median(step_times(step, repeats, sync)) * 1e3)


def interleaved_medians_ms(steps: dict, repeats: int, block: int = 1, sync=_no_sync,
                           round_ms: float = 0.0, settle: bool = False) -> dict:
    """{key: median ms per call} of each of `steps` ({key: step}): one warm-up call of each, then
    rounds in which each step runs `block` times in turn, until each has run at least `repeats`
    times. With round_ms, a step whose warm-up call took less runs more often per round: as
    many calls as that time fits into round_ms. Its medians are then taken over more calls,
    so that a slow spell of the machine moves a short step's median no more than a long one's,
    whose single calls average the spell out. With `settle`, each step's turn in a round starts
    with a call that is not timed: what the step before it left behind (its threads still
    spinning on the cores, its data in the caches) then weighs on no timed call."""
    calls = {}
    for key, step in steps.items():
        calls[key] = max(block, calls_in(round_ms, step_times(step, 1, sync)[0]))
    times = {key: [] for key in steps}
    for _ in range(max(1, -(-repeats // block))):
        for key, step in steps.items():
            if settle:
                step()
                sync()
            times[key] += step_times(step, calls[key], sync)
    return {key: float(np.median(t) * 1e3) for key, t in times.items()}


# The most calls a round gives one step (a step of microseconds would otherwise take thousands).
MAX_ROUND_CALLS = 1000


def calls_in(round_ms: float, seconds: float) -> int:
    """Calls of `seconds` each that fill round_ms (at least 1, at most MAX_ROUND_CALLS)."""
    if seconds <= 0:
        return MAX_ROUND_CALLS if round_ms > 0 else 1
    return int(min(MAX_ROUND_CALLS, max(1, round_ms / 1e3 // seconds)))

"""Wall-clock timing for the benchmarks (stn/bench.py, stn/bench_train.py): medians after a
warm-up, and interleaved rounds for comparisons.

On a shared machine the speed of memory and caches drifts by up to 2x within minutes. Timing
one contender's repeats, then the next one's, lets such a drift fall on one of them only;
interleaved_medians_ms times every contender in turn, round after round, so that a slow spell
reaches all of them alike and their ratios hold even when the absolute times move.
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


def interleaved_medians_ms(steps: dict, repeats: int, block: int = 1, sync=_no_sync) -> dict:
    """{key: median ms} of each of `steps` ({key: step}): one warm-up call of each, then rounds
    in which each step runs `block` times in turn, until each has run at least `repeats` times."""
    for step in steps.values():
        step()
        sync()
    times = {key: [] for key in steps}
    for _ in range(max(1, -(-repeats // block))):
        for key, step in steps.items():
            times[key] += step_times(step, block, sync)
    return {key: float(np.median(t) * 1e3) for key, t in times.items()}

"""Timing shared by the benchmarks: the median of repeated wall-clock measurements."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable


def median_seconds(
    call: Callable[[], object], repeats: int, *, warm_up: bool = False, collect: bool = False
) -> float:
    """Median wall time of `repeats` calls; optionally one untimed call first (`warm_up`) and a
    garbage collection before each timed call (`collect`), so earlier garbage is not charged."""
    if warm_up:
        call()
    times = []
    for _ in range(repeats):
        if collect:
            gc.collect()
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)

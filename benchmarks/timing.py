"""Shared by the benchmarks: the median of repeated wall-clock measurements, and a map over
independent simulation tasks on several processes."""

from __future__ import annotations

import gc
import multiprocessing
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")


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


def map_jobs(function: Callable[[_T], _R], tasks: Sequence[_T], jobs: int) -> list[_R]:
    """`[function(t) for t in tasks]`, on `jobs` fresh (spawned) processes when jobs > 1; in order.

    `function` must be importable by name (a module-level function of the benchmark script).
    """
    if jobs <= 1:
        return [function(task) for task in tasks]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        return list(pool.map(function, tasks))

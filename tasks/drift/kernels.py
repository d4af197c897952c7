"""Compiled single passes over a column: the part of drift that touches every value.

A million-row batch with a hundred columns is a hundred million values; numpy would walk each
column once per statistic (finite mask, sum, squares, one comparison per bin edge), a dozen passes.
These numba kernels fuse them into one vectorised pass per column and release the GIL, so the
columns of a batch are summarised on every core at once. They return plain numbers; the typed
summaries are built by `summary.py`, and everything here is checked against numpy and scipy in
`tests/unit/test_drift_kernels.py`.

Compiled on first use and cached beside this file (`cache=True`), so only the first process after
an install pays the compile time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, TypeVar

import numba
import numpy as np

#: Reassociation lets the compiler keep several partial sums (SIMD lanes); no "nnan"/"ninf": the
#: kernels see NaN and infinities and must treat them as data.
_FAST = {"reassoc", "contract", "nsz", "arcp"}
#: Bin edges compared per pass (default 10 bins: 9 edges, one pass), unrolled so that the loop
#: vectorises; more accumulators than this spill out of the vector registers.
_GROUP = 10
_T = TypeVar("_T")
_R = TypeVar("_R")


def on_every_core(function: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """`[function(item) for item in items]` on a thread per core, in order.

    Worth it because the work inside is these kernels and numpy, which release the GIL; the first
    exception is raised as it would be in the loop.
    """
    workers = min(os.cpu_count() or 1, len(items))
    if workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ct-drift") as pool:
        return list(pool.map(function, items))


_INF_KEY = 0x7FF0000000000000  # the order key of +inf (and minus it, of -inf)
_FLIP = 0x7FFFFFFFFFFFFFFF


@numba.njit(nogil=True, cache=True, fastmath=_FAST)
def _moments_and_below(
    x: np.ndarray, bits: np.ndarray, e: np.ndarray, shift: float
) -> tuple[float, float, int, int, np.ndarray, np.int64, np.int64]:
    # the range is tracked on integer order keys of the float bits (sign-magnitude flipped into
    # two's complement): a float min/max must honour NaN and would stop the loop vectorising
    s = 0.0
    ss = 0.0
    finite = 0
    nan = 0
    lo = np.int64(_INF_KEY)
    hi = -np.int64(_INF_KEY)
    e0, e1, e2, e3, e4, e5, e6, e7, e8, e9 = (
        e[0],
        e[1],
        e[2],
        e[3],
        e[4],
        e[5],
        e[6],
        e[7],
        e[8],
        e[9],
    )
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = b8 = b9 = 0
    for i in range(x.size):
        v = x[i]
        f = abs(v) < np.inf
        d = v - shift if f else 0.0
        s += d
        ss += d * d
        finite += f
        nan += v != v
        raw = bits[i]
        key = raw if raw >= 0 else raw ^ np.int64(_FLIP)
        lo = min(lo, key if f else np.int64(_INF_KEY))
        hi = max(hi, key if f else -np.int64(_INF_KEY))
        b0 += v < e0
        b1 += v < e1
        b2 += v < e2
        b3 += v < e3
        b4 += v < e4
        b5 += v < e5
        b6 += v < e6
        b7 += v < e7
        b8 += v < e8
        b9 += v < e9
    return s, ss, finite, nan, np.array([b0, b1, b2, b3, b4, b5, b6, b7, b8, b9]), lo, hi


def _from_key(key: int) -> float:
    raw = key if key >= 0 else key ^ _FLIP
    return float(np.array([raw], dtype=np.int64).view(np.float64)[0])


@numba.njit(nogil=True, cache=True)
def _tally(codes: np.ndarray, size: int) -> np.ndarray:
    # four interleaved tallies, so that consecutive equal codes do not wait on one counter
    counts = np.zeros((4, size + 1), np.int64)
    n = codes.size
    body = n - n % 4
    for i in range(0, body, 4):
        counts[0, codes[i] + 1] += 1
        counts[1, codes[i + 1] + 1] += 1
        counts[2, codes[i + 2] + 1] += 1
        counts[3, codes[i + 3] + 1] += 1
    for i in range(body, n):
        counts[0, codes[i] + 1] += 1
    return counts.sum(axis=0)


@numba.njit(nogil=True, cache=True)
def _ecdf_gap(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """Walk two sorted samples once: the area between the ECDFs and their largest gap, in units
    of 1 / (n1 * n2)."""
    n1, n2 = a.size, b.size
    i = j = 0
    gap_ab = 0
    gap_ba = 0
    area = 0.0
    while i < n1 or j < n2:
        v = a[i] if j >= n2 or (i < n1 and a[i] <= b[j]) else b[j]
        while i < n1 and a[i] == v:
            i += 1
        while j < n2 and b[j] == v:
            j += 1
        if i == n1 and j == n2:
            break
        nxt = a[i] if j >= n2 or (i < n1 and a[i] <= b[j]) else b[j]
        diff = i / n1 - j / n2
        area += abs(diff) * (nxt - v)
        if i * n2 - j * n1 > gap_ab:
            gap_ab = i * n2 - j * n1
        if j * n1 - i * n2 > gap_ba:
            gap_ba = j * n1 - i * n2
    return area, max(gap_ab, gap_ba)


@numba.njit(nogil=True, cache=True)
def _prob_outside_square(n: int, h: int) -> float:
    # scipy.stats._stats_py._compute_prob_outside_square, operation for operation:
    # Pr(D_{n,n} >= h/n) by a Horner-like alternating sum
    p = 0.0
    k = n // h
    while k >= 0:
        p1 = 1.0
        for j in range(h):
            p1 = (n - k * h - j) * p1 / (n + k * h + j + 1)
        p = p1 * (1.0 - p)
        k -= 1
    return 2 * p


class NumericTally(NamedTuple):
    """One column's pass: counts, moments about `shift`, and range of the finite values."""

    finite: int
    nan: int
    pos_inf: int
    neg_inf: int
    #: Finite values below each bin edge (cumulative).
    below: np.ndarray
    #: Sum of (value - shift) and of its square, over the finite values.
    shifted_sum: float
    shifted_squares: float
    minimum: float
    maximum: float


def numeric_tally(values: np.ndarray, edges: np.ndarray, shift: float) -> NumericTally:
    """Tally a float64 column against sorted bin `edges` in one pass (one more per 10 edges beyond the first 10).

    `shift` should be near the mean (the reference's): the squares are summed about it, which keeps
    the variance free of cancellation whatever the column's scale.
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    groups = max(1, math.ceil(edges.size / _GROUP))
    padded = np.full(groups * _GROUP, np.inf)
    padded[: edges.size] = edges
    bits = values.view(np.int64)
    s, ss, finite, nan, below, lo, hi = _moments_and_below(values, bits, padded[:_GROUP], shift)
    parts = [below]
    for g in range(1, groups):  # beyond 10 edges: more passes, only their bin counts kept
        parts.append(
            _moments_and_below(values, bits, padded[g * _GROUP : (g + 1) * _GROUP], 0.0)[4]
        )
    below = np.concatenate(parts)[: edges.size]
    infinite = values.size - finite - nan
    pos_inf = neg_inf = 0
    if infinite:  # rare: count the two signs, and keep -inf out of the bins
        neg_inf = int(np.count_nonzero(values == -np.inf))
        pos_inf = infinite - neg_inf
        below = below - neg_inf
    minimum, maximum = (_from_key(int(lo)), _from_key(int(hi))) if finite else (math.nan, math.nan)
    return NumericTally(
        finite=int(finite),
        nan=int(nan),
        pos_inf=pos_inf,
        neg_inf=neg_inf,
        below=below.astype(np.int64),
        shifted_sum=float(s),
        shifted_squares=float(ss),
        minimum=minimum,
        maximum=maximum,
    )


def category_tally(codes: np.ndarray, categories: int) -> np.ndarray:
    """Counts of pandas category codes: index 0 is missing (code -1), index k+1 is category k."""
    return np.asarray(_tally(np.ascontiguousarray(codes), categories))


class EcdfComparison(NamedTuple):
    """Two samples' empirical CDFs compared: the KS statistic and the Wasserstein-1 distance."""

    statistic: float
    wasserstein: float
    #: The statistic in steps of 1 / lcm(n1, n2): scipy's `h`, exact (no rounding).
    steps: int


def compare_sorted(a: np.ndarray, b: np.ndarray) -> EcdfComparison:
    """KS statistic and Wasserstein distance of two sorted, finite, non-empty samples, in one walk.

    The statistic is steps / lcm(n1, n2), what scipy.stats.ks_2samp reports with its exact method;
    the distance equals scipy.stats.wasserstein_distance's (to rounding of the sum). Neither needs
    their sorting, concatenation and binary searches.
    """
    area, gap = _ecdf_gap(a, b)
    g = math.gcd(a.size, b.size)
    steps = int(gap) // g
    return EcdfComparison(
        statistic=steps / ((a.size // g) * b.size), wasserstein=float(area), steps=steps
    )


def ks_exact_equal_n(n: int, steps: int) -> float:
    """The exact two-sided KS p-value for two samples of size `n` whose ECDFs differ by steps/n.

    scipy.stats.ks_2samp's exact method for equal sizes, the same arithmetic compiled: an O(n)
    sum, against the O(n*m) lattice count scipy needs when the sizes differ.
    """
    if steps == 0:
        return 1.0
    return float(_prob_outside_square(n, steps))


def warm_up() -> None:
    """Load every kernel's compiled code now (from numba's cache beside this file, or compiled):
    the first call in a process costs ~0.5 s. ct's warm process calls this once, so that the
    commands it forks do not each pay it. Single-threaded, as a fork needs."""
    values = np.array([0.0, 1.0])
    numeric_tally(values, np.array([0.5]), 0.0)
    for dtype in (np.int8, np.int16, np.int32, np.int64):  # pandas picks the codes' width
        category_tally(np.zeros(2, dtype=dtype), 1)
    compare_sorted(values, values)
    ks_exact_equal_n(2, 1)

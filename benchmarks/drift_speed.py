"""How fast `compute_drift` judges a large in-memory batch, and how much memory it takes.

For (100k, 20), (1M, 20) and (1M, 100) rows x columns (80 % numeric float64: normal and lognormal,
every fourth column with 2 % NaN; 20 % pandas Categorical with 10 categories, every other one with
1 % missing), a reference of the same shape is drawn and profiled (`build_profile`, timed on its
own), then, in the same run, each timed as the median of `--repeats` (3):

* `compute_drift(profile, current)` with the default `DriftConfig`;
* a read-once floor: every value touched once (`np.add.reduce` over each numeric column and over the
  codes of each categorical), the least any exact summary of the batch can cost;
* the naive per-column scipy loop: `ks_2samp` on the full finite columns (numeric) and
  `chi2_contingency` on the 2 x k table of value counts (categorical).

Peak memory is measured in a separate, untimed call with `tracemalloc` (numpy reports its array
buffers to it, so it sees the arrays numpy and pandas allocate): the peak traced allocation during
`compute_drift` above what was allocated before it, i.e. beyond the input frame, set against the
frame's `memory_usage(deep=True).sum()`. Targets: compute_drift <= 3x the floor at 1M x 100,
>= 5x faster than the scipy loop, peak <= 2x the frame. `--profile` adds a cProfile of one
compute_drift call on the largest shape.

Usage: `.venv/bin/python benchmarks/drift_speed.py` (about 1 minute; `--quick` for 100k x 20 only,
`--repeats N`, `--profile`).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from timing import median_seconds

from tasks.config import DriftConfig
from tasks.drift import ReferenceProfile, build_profile, compute_drift

SHAPES = ((100_000, 20), (1_000_000, 20), (1_000_000, 100))
CATEGORIES = 10
FLOOR_TARGET = 3.0  # compute_drift / read-once floor, at 1M x 100
SCIPY_TARGET = 5.0  # scipy loop / compute_drift
MEMORY_TARGET = 2.0  # peak beyond the frame / frame size


def make_frame(rng: np.random.Generator, rows: int, columns: int) -> pd.DataFrame:
    """A batch with 80 % numeric and 20 % categorical columns, some values missing.

    Parameters
    ----------
    rng : the generator to draw from.
    rows, columns : the shape.
    """
    numeric = columns * 4 // 5
    data: dict[str, object] = {}
    for i in range(numeric):
        values = rng.standard_normal(rows) if i % 2 == 0 else rng.lognormal(0.0, 0.5, rows)
        if i % 4 == 3:
            values[rng.random(rows) < 0.02] = np.nan
        data[f"x{i}"] = values
    shares = 1.0 / np.arange(1, CATEGORIES + 1)
    cdf = np.cumsum(shares / shares.sum())
    names = [f"c{k}" for k in range(CATEGORIES)]
    for j in range(columns - numeric):
        codes = np.minimum(np.searchsorted(cdf, rng.random(rows)), CATEGORIES - 1).astype(np.int8)
        if j % 2 == 1:
            codes[rng.random(rows) < 0.01] = -1
        data[f"k{j}"] = pd.Categorical.from_codes(codes, categories=names)
    return pd.DataFrame(data)


def read_once(frame: pd.DataFrame) -> float:
    """Touch every value once: a sum per numeric column and per categorical's codes."""
    total = 0.0
    for column in frame.columns:
        series = frame[column]
        if isinstance(series.dtype, pd.CategoricalDtype):
            total += float(np.add.reduce(series.cat.codes.to_numpy()))
        else:
            total += float(np.add.reduce(series.to_numpy()))
    return total


def scipy_loop(reference: pd.DataFrame, current: pd.DataFrame) -> list[float]:
    """The naive per-column tests on the full data: KS for numeric, chi-square for categorical."""
    pvalues = []
    for column in current.columns:
        ref, cur = reference[column], current[column]
        if isinstance(cur.dtype, pd.CategoricalDtype):
            table = np.array([ref.value_counts(sort=False), cur.value_counts(sort=False)])
            table = table[:, table.sum(axis=0) > 0]
            pvalues.append(float(stats.chi2_contingency(table).pvalue))
        else:
            a, b = ref.to_numpy(), cur.to_numpy()
            pvalues.append(float(stats.ks_2samp(a[~np.isnan(a)], b[~np.isnan(b)]).pvalue))
    return pvalues


def peak_bytes(profile: ReferenceProfile, current: pd.DataFrame) -> int:
    """Peak traced allocation of one compute_drift call above what was allocated before it."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        compute_drift(profile, current, DriftConfig())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement")
    parser.add_argument("--quick", action="store_true", help="only 100k x 20")
    parser.add_argument("--profile", action="store_true", help="cProfile the largest shape")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # scipy warns when its exact KS p-value underflows and falls back to the asymptotic one.
    warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful")
    shapes = SHAPES[:1] if args.quick else SHAPES
    print(
        f"compute_drift vs a read-once floor and a per-column scipy loop; median of {args.repeats}"
        f" calls; default DriftConfig; 80 % numeric, 20 % categorical ({CATEGORIES} categories)."
    )
    print(
        "Peak: tracemalloc (numpy reports its buffers to it), beyond the input frame. "
        f"Targets: <= {FLOOR_TARGET:g}x floor (at 1M x 100), >= {SCIPY_TARGET:g}x faster than "
        f"scipy, peak <= {MEMORY_TARGET:g}x frame."
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{os.cpu_count()} CPUs; load average at start {load} (timings assume an idle machine).\n"
    )
    head = (
        "| rows x columns  | frame MB | profile s | compute_drift s | floor s | / floor | scipy s "
        "| speed-up | peak MB | peak / frame | floor met? | scipy met? | memory met? |"
    )
    lines = [head, "|" + "|".join("-" * len(p) for p in head.split("|")[1:-1]) + "|"]
    last: tuple[ReferenceProfile, pd.DataFrame] | None = None
    for rows, columns in shapes:
        rng = np.random.default_rng([args.seed, rows, columns])
        reference = make_frame(rng, rows, columns)
        started = time.perf_counter()
        profile = build_profile(reference)
        profile_s = time.perf_counter() - started
        current = make_frame(rng, rows, columns)
        frame_bytes = int(current.memory_usage(deep=True).sum())
        drift_s = median_seconds(
            lambda p=profile, c=current: compute_drift(p, c), args.repeats, collect=True
        )
        floor_s = median_seconds(lambda c=current: read_once(c), args.repeats, collect=True)
        scipy_s = median_seconds(
            lambda r=reference, c=current: scipy_loop(r, c), args.repeats, collect=True
        )
        del reference
        peak = peak_bytes(profile, current)
        ratio, speedup, memory = drift_s / floor_s, scipy_s / drift_s, peak / frame_bytes
        lines.append(
            f"| {f'{rows:,} x {columns}':15} | {frame_bytes / 2**20:8.0f} | {profile_s:9.2f} "
            f"| {drift_s:15.3f} | {floor_s:7.3f} | {ratio:6.1f}x | {scipy_s:7.2f} "
            f"| {speedup:7.1f}x | {peak / 2**20:7.0f} | {memory:11.2f}x "
            f"| {'yes' if ratio <= FLOOR_TARGET else 'no':10} "
            f"| {'yes' if speedup >= SCIPY_TARGET else 'no':10} "
            f"| {'yes' if memory <= MEMORY_TARGET else 'no':11} |"
        )
        print(lines[-1] if len(lines) > 3 else "\n".join(lines), flush=True)
        last = (profile, current)
    print(f"\nLoad average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}.")
    if args.profile and last is not None:
        print("\ncProfile of one compute_drift call on the largest shape (top 20, cumulative):")
        profiler = cProfile.Profile()
        profiler.runcall(compute_drift, *last)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(20)


if __name__ == "__main__":
    main()

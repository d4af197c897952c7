"""How often `compute_drift` raises a false alarm, and how often it catches real drift.

A seeded Monte-Carlo simulation of ct's dataset-level verdict (`compute_drift(...).drifted` with the
default `DriftConfig`: BH-adjusted p < 0.05 *and* an effect floor), beside the naive p-value-only
rule: per column `scipy.stats.ks_2samp` (numeric, finite values) or `chi2_contingency` (categorical
counts) on the FULL data, the dataset drifts when any p < 0.05 (no correction, no effect floor).

The data has 20 features: 16 numeric (6 normal, 4 lognormal, 4 exponential, 1 uniform, 1 Poisson
count with ties; 4 of them with 1-5 % missing values) and 4 categorical (pandas Categorical with 3,
5, 6 and 8 Zipf-distributed categories, one with 2 % missing). In every run the reference and the
current batch are two independent draws of N rows each from the same generator (reference size =
current size, also at 1M); the profile is built on the reference. Scenarios:

* a  no drift: the dataset-level false-alarm rate at N = 1k, 10k, 100k, 1M;
* b  a mean shift of 0.5 population sd in one numeric feature, at N = 1k, 10k, 100k;
* c  one categorical feature whose most frequent category gains 10 percentage points (the other
  categories shrink in proportion), at N = 1k, 10k, 100k;
* d  a mean shift of 0.02 sd in one numeric feature at N = 1M (too small to matter).

The changed feature rotates with the run number over the 16 numeric (b, d) or 4 categorical (c)
features. Runs are paired to save time: b, c and d change one column of the same run's no-drift
batch (a), so the p-only rule re-tests only that column. Each cell's runs are independent, so its
rate and Monte-Carlo standard error sqrt(r (1 - r) / runs) are valid; cells share draws, so they
are correlated with each other. "ct, changed column" is how often ct flagged the changed column
itself. At 1M rows the full-data KS test dominates the time, so the 1M cells have fewer runs
(`--runs-1m`).

Usage: `.venv/bin/python benchmarks/drift_quality.py` (about 7 minutes on an idle 2-core machine;
`--quick` for a smoke run, `--runs N`, `--runs-1m N`, `--jobs N`, `--seed N`).
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from timing import map_jobs

from tasks.config import DriftConfig
from tasks.drift import build_profile, compute_drift

ALPHA = 0.05
NULL_SIZES = (1_000, 10_000, 100_000, 1_000_000)
SHIFT_SIZES = (1_000, 10_000, 100_000)
BIG = 1_000_000
MEAN_SHIFT_SD = 0.5
TINY_SHIFT_SD = 0.02
CATEGORY_POINTS = 0.10


@dataclass(frozen=True)
class Numeric:
    """A numeric feature: distribution, its two parameters, and the share of missing values."""

    name: str
    dist: str
    a: float
    b: float = 0.0
    missing: float = 0.0

    @property
    def sd(self) -> float:
        """Population standard deviation."""
        if self.dist == "normal":
            return self.b
        if self.dist == "lognormal":
            return math.sqrt((math.exp(self.b**2) - 1) * math.exp(2 * self.a + self.b**2))
        if self.dist == "exponential":
            return self.a
        if self.dist == "uniform":
            return (self.b - self.a) / math.sqrt(12)
        return math.sqrt(self.a)  # poisson


@dataclass(frozen=True)
class Categorical:
    """A categorical feature with Zipf shares over `k` categories."""

    name: str
    k: int
    missing: float = 0.0

    @property
    def shares(self) -> np.ndarray:
        weights = 1.0 / np.arange(1, self.k + 1)
        return weights / weights.sum()


NUMERIC = (
    Numeric("normal_0", "normal", 0.0, 1.0),
    Numeric("normal_1", "normal", 50.0, 10.0, missing=0.02),
    Numeric("normal_2", "normal", -3.0, 0.5),
    Numeric("normal_3", "normal", 1000.0, 250.0),
    Numeric("normal_4", "normal", 0.1, 0.01, missing=0.05),
    Numeric("normal_5", "normal", 7.0, 3.0),
    Numeric("lognormal_0", "lognormal", 0.0, 0.25),
    Numeric("lognormal_1", "lognormal", 3.0, 0.5, missing=0.03),
    Numeric("lognormal_2", "lognormal", 1.0, 0.75),
    Numeric("lognormal_3", "lognormal", 0.0, 1.0),
    Numeric("exponential_0", "exponential", 1.0),
    Numeric("exponential_1", "exponential", 0.1),
    Numeric("exponential_2", "exponential", 20.0, missing=0.01),
    Numeric("exponential_3", "exponential", 3.0),
    Numeric("uniform_0", "uniform", -1.0, 1.0),
    Numeric("poisson_0", "poisson", 3.0),
)
CATEGORICAL = (
    Categorical("cat_3", 3),
    Categorical("cat_5", 5, missing=0.02),
    Categorical("cat_6", 6),
    Categorical("cat_8", 8),
)


def numeric_values(rng: np.random.Generator, feature: Numeric, n: int) -> np.ndarray:
    """`n` draws of a numeric feature, NaN where missing."""
    if feature.dist == "normal":
        values = rng.normal(feature.a, feature.b, n)
    elif feature.dist == "lognormal":
        values = rng.lognormal(feature.a, feature.b, n)
    elif feature.dist == "exponential":
        values = rng.exponential(feature.a, n)
    elif feature.dist == "uniform":
        values = rng.uniform(feature.a, feature.b, n)
    else:
        values = rng.poisson(feature.a, n).astype(float)
    if feature.missing:
        values[rng.random(n) < feature.missing] = np.nan
    return values


def categorical_values(
    rng: np.random.Generator, feature: Categorical, n: int, shares: np.ndarray | None = None
) -> pd.Categorical:
    """`n` draws of a categorical feature (code -1 where missing), by inverse CDF of uniforms."""
    cdf = np.cumsum(feature.shares if shares is None else shares)
    codes = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), feature.k - 1)
    if feature.missing:
        codes[rng.random(n) < feature.missing] = -1
    return pd.Categorical.from_codes(codes, categories=[f"c{i}" for i in range(feature.k)])


def draw(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """A table of `n` rows from the generator."""
    columns: dict[str, object] = {f.name: numeric_values(rng, f, n) for f in NUMERIC}
    columns |= {f.name: categorical_values(rng, f, n) for f in CATEGORICAL}
    return pd.DataFrame(columns)


def column_pvalue(reference: pd.Series, current: pd.Series) -> float:
    """The p-only rule's p-value for one column, on the full data."""
    if isinstance(reference.dtype, pd.CategoricalDtype):
        k = len(reference.cat.categories)
        table = np.array(
            [
                np.bincount(codes[codes >= 0], minlength=k)
                for codes in (reference.cat.codes.to_numpy(), current.cat.codes.to_numpy())
            ]
        )
        table = table[:, table.sum(axis=0) > 0]
        return float(stats.chi2_contingency(table).pvalue) if table.shape[1] > 1 else 1.0
    ref, cur = reference.to_numpy(), current.to_numpy()
    return float(stats.ks_2samp(ref[~np.isnan(ref)], cur[~np.isnan(cur)]).pvalue)


def ct_verdict(profile: object, current: pd.DataFrame, changed: str | None) -> tuple[bool, bool]:
    """ct's dataset verdict, and whether it flagged the changed column."""
    report = compute_drift(profile, current, DriftConfig())  # type: ignore[arg-type]
    flagged = changed is not None and changed in report.drifted_columns
    return report.drifted, flagged


@dataclass(frozen=True)
class Task:
    """One run at one size: the no-drift batch and the scenarios derived from it."""

    n: int
    run: int
    seed: int


#: scenario -> (ct flagged dataset, ct flagged the changed column, p-only flagged, changed column)
Outcome = dict[str, tuple[bool, bool, bool, str]]


def run_task(task: Task) -> tuple[Task, Outcome]:
    """Simulate one run: the null batch (a) and, by size, b and c or d."""
    # scipy warns when its exact KS p-value fails on a strong shift and uses the asymptotic one.
    warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful")
    rng = np.random.default_rng([task.seed, task.n, task.run])
    reference = draw(rng, task.n)
    current = draw(rng, task.n)
    profile = build_profile(reference)
    pvalues = {c: column_pvalue(reference[c], current[c]) for c in current.columns}
    out: Outcome = {}
    drifted, _ = ct_verdict(profile, current, None)
    out["a"] = (drifted, False, min(pvalues.values()) < ALPHA, "")

    def judge(scenario: str, changed: pd.DataFrame, column: str) -> None:
        """Both rules on `current` with `column` changed (the other columns' p-values are known)."""
        others = min(p for c, p in pvalues.items() if c != column)
        p = min(others, column_pvalue(reference[column], changed[column]))
        out[scenario] = (*ct_verdict(profile, changed, column), p < ALPHA, column)

    def numeric_shift(scenario: str, size_sd: float) -> None:
        feature = NUMERIC[task.run % len(NUMERIC)]
        shifted = current[feature.name] + size_sd * feature.sd
        judge(scenario, current.assign(**{feature.name: shifted}), feature.name)

    if task.n in SHIFT_SIZES:
        numeric_shift("b", MEAN_SHIFT_SD)
        feature = CATEGORICAL[task.run % len(CATEGORICAL)]
        shares = (
            feature.shares * (1 - feature.shares[0] - CATEGORY_POINTS) / (1 - feature.shares[0])
        )
        shares[0] = feature.shares[0] + CATEGORY_POINTS
        values = categorical_values(rng, feature, task.n, shares)
        judge("c", current.assign(**{feature.name: values}), feature.name)
    if task.n == BIG:
        numeric_shift("d", TINY_SHIFT_SD)
    return task, out


def rate(hits: int, runs: int) -> str:
    """A rate in percent with its Monte-Carlo standard error."""
    r = hits / runs
    return f"{100 * r:5.1f} % ± {100 * math.sqrt(r * (1 - r) / runs):4.1f}"


SCENARIO_TEXT = {
    "a": ("a no drift", "ct false alarms <= 5 %", lambda r: r <= 0.05),
    "b": ("b 0.5 sd mean shift", "ct detects >= 95 %", lambda r: r >= 0.95),
    "c": ("c +10 pt category", "(no requirement)", None),
    "d": ("d 0.02 sd mean shift", "ct does not flag", lambda r: r <= 0.05),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per cell up to 100k rows")
    parser.add_argument("--runs-1m", type=int, default=100, help="runs per cell at 1M rows")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 runs, 4 at 1M")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runs, runs_big = (20, 4) if args.quick else (args.runs, args.runs_1m)
    started = time.perf_counter()
    tasks = [Task(BIG, r, args.seed) for r in range(runs_big)]
    tasks += [Task(n, r, args.seed) for n in reversed(SHIFT_SIZES) for r in range(runs)]
    results = map_jobs(run_task, tasks, args.jobs)

    cells: dict[tuple[str, int], list[tuple[bool, bool, bool, str]]] = {}
    for task, outcome in results:
        for scenario, value in outcome.items():
            cells.setdefault((scenario, task.n), []).append(value)

    print(
        f"Drift quality: {runs} runs per cell at N <= 100k, {runs_big} at N = 1M; alpha {ALPHA}; "
        f"seed {args.seed}; reference rows = current rows; 20 features (16 numeric, 4 categorical)."
    )
    print("Rates are % of runs ± Monte-Carlo standard error.\n")
    head = (
        f"| {'scenario':20} | {'N':>9} | {'runs':>4} | {'ct rate':>14} "
        f"| {'ct, changed column':>18} | {'p-only rate':>14} | {'requirement':22} | {'met?':4} |"
    )
    print(head)
    print("|" + "|".join("-" * (len(part)) for part in head.split("|")[1:-1]) + "|")
    misses: list[str] = []
    for scenario in "abcd":
        label, requirement, check = SCENARIO_TEXT[scenario]
        for n in NULL_SIZES:
            values = cells.get((scenario, n))
            if not values:
                continue
            count = len(values)
            ct_hits = sum(v[0] for v in values)
            column_hits = sum(v[1] for v in values)
            p_hits = sum(v[2] for v in values)
            met = "" if check is None else ("PASS" if check(ct_hits / count) else "FAIL")
            column = "-" if scenario == "a" else rate(column_hits, count)
            print(
                f"| {label:20} | {n:>9,} | {count:>4} | {rate(ct_hits, count)} | {column:>18} "
                f"| {rate(p_hits, count)} | {requirement:22} | {met:4} |"
            )
            if scenario in "bcd":
                wrong = [v[3] for v in values if v[0] != (scenario != "d")]
                if wrong:
                    names = pd.Series(wrong).value_counts()
                    what = "missed" if scenario != "d" else "flagged"
                    misses.append(
                        f"{label} at N = {n:,}: ct {what} {len(wrong)} runs; changed feature: "
                        + ", ".join(f"{k} x{v}" for k, v in names.items())
                    )
    if misses:
        print("\n" + "\n".join(misses))
    print(f"\nElapsed {time.perf_counter() - started:.0f} s with {args.jobs} process(es).")


if __name__ == "__main__":
    main()

"""Paired bootstrap for metrics that are not row means (ROC AUC, F1), vectorised over resamples.

Both models are scored on the *same* resampled rows, so the resampled effect keeps the pairing.
A resample is a weight vector (how often each row was drawn), so every metric is evaluated for a
whole chunk of resamples in a few array operations; nothing is refitted. `block` draws contiguous
(circular) blocks of rows instead of single rows: for time-ordered test sets, whose neighbouring rows
are not independent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy import stats

from tasks.gate.paired_tests import TestResult

EffectFn = Callable[[np.ndarray], np.ndarray]  # weights (resamples x rows) -> effects (resamples,)


def default_block_length(n: int) -> int:
    """n^(1/3), the usual order for block bootstrap of a mean (Hall, Horowitz & Jing 1995)."""
    return max(1, round(n ** (1.0 / 3.0)))


def resample_weights(
    n: int, size: int, rng: np.random.Generator, *, block: int | None
) -> np.ndarray:
    """(size, n) counts of how often each row is drawn in each resample."""
    if block is None or block <= 1:
        draws = rng.integers(0, n, size=(size, n))
    else:
        n_blocks = math.ceil(n / block)
        starts = rng.integers(0, n, size=(size, n_blocks, 1))
        draws = ((starts + np.arange(block)) % n).reshape(size, -1)[:, :n]
    offsets = (np.arange(size) * n)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=size * n)
    return counts.reshape(size, n).astype(np.float64)


def _jackknife_acceleration(effect: EffectFn, n: int, groups: int) -> float:
    """BCa acceleration from a grouped (delete-a-block) jackknife: `groups` evaluations, not n."""
    g = min(groups, n)
    labels = np.arange(n) * g // n
    weights = np.ones((g, n))
    weights[labels, np.arange(n)] = 0.0
    theta = effect(weights)
    deviation = theta.mean() - theta
    denominator = 6.0 * float(np.sum(deviation**2)) ** 1.5
    return float(np.sum(deviation**3)) / denominator if denominator > 0 else 0.0


def paired_bootstrap(
    effect: EffectFn,
    n: int,
    *,
    alpha: float,
    n_resamples: int = 2000,
    method: Literal["percentile", "bca"] = "percentile",
    block: int | None = None,
    rng: np.random.Generator,
    chunk: int = 64,
) -> TestResult:
    """One-sided bootstrap test that the effect is > 0, and a (1 - 2 alpha) interval.

    p = (1 + #{effect* <= 0}) / (B + 1) for the percentile method; for BCa, the level at which the
    BCa lower bound reaches 0. The statistic is the observed effect.
    """
    observed = float(effect(np.ones((1, n)))[0])
    parts = [
        effect(resample_weights(n, min(chunk, n_resamples - i), rng, block=block))
        for i in range(0, n_resamples, chunk)
    ]
    boot = np.concatenate(parts)
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return TestResult(observed, 1.0, math.nan, math.nan)
    b = boot.size
    if method == "percentile":
        p = (1.0 + np.count_nonzero(boot <= 0.0)) / (b + 1.0)
        low, high = np.quantile(boot, [alpha, 1.0 - alpha])
        return TestResult(observed, float(min(p, 1.0)), float(low), float(high))
    # BCa (Efron 1987): bias correction z0 and acceleration a adjust the percentiles.
    share_below = (np.count_nonzero(boot < observed) + 0.5 * np.count_nonzero(boot == observed)) / b
    z0 = float(stats.norm.ppf(np.clip(share_below, 1.0 / (b + 1), b / (b + 1.0))))
    a = _jackknife_acceleration(effect, n, groups=100)

    def level(z: float) -> float:
        return float(stats.norm.cdf(z0 + (z0 + z) / (1.0 - a * (z0 + z))))

    z_alpha = float(stats.norm.ppf(alpha))
    low, high = np.quantile(boot, [level(z_alpha), level(-z_alpha)])
    share_le0 = np.clip(np.count_nonzero(boot <= 0.0) / b, 1.0 / (b + 1), b / (b + 1.0))
    u = float(stats.norm.ppf(share_le0)) - z0
    p = float(stats.norm.cdf(u / (1.0 + a * u) - z0))
    return TestResult(observed, min(max(p, 0.0), 1.0), float(low), float(high))

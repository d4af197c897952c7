"""One-sided paired tests that the candidate is better, on per-row improvements.

`d[i]` is the improvement on row i: the champion's loss minus the candidate's (or the candidate's
score minus the champion's), so H0 is "mean improvement <= 0" and H1 "> 0". Each function returns
the statistic, the one-sided p-value and a two-sided (1 - 2 alpha) interval for the mean improvement,
whose lower end is > 0 exactly when the one-sided test rejects at alpha.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class TestResult:
    """What a paired test found; `ci_*` bound the improvement in the metric's units."""

    statistic: float
    p_value: float
    ci_low: float
    ci_high: float


def mcnemar(
    base_ok: np.ndarray, cand_ok: np.ndarray, *, alpha: float, mid_p: bool = False
) -> TestResult:
    """Exact (or mid-p) one-sided McNemar test on paired correct/incorrect outcomes.

    b rows only the champion got right, c only the candidate: under H0, c ~ Binomial(b + c, 1/2).
    The statistic is c. The interval is Wald's for the difference of paired proportions.
    """
    base = np.asarray(base_ok, dtype=bool)
    cand = np.asarray(cand_ok, dtype=bool)
    n = base.size
    b = int(np.count_nonzero(base & ~cand))
    c = int(np.count_nonzero(~base & cand))
    m = b + c
    if m == 0:
        p = 1.0
    elif mid_p:
        p = float(stats.binom.sf(c, m, 0.5) + 0.5 * stats.binom.pmf(c, m, 0.5))
    else:
        p = float(stats.binom.sf(c - 1, m, 0.5))
    diff = (c - b) / n if n else 0.0
    se = math.sqrt(max(m - (c - b) ** 2 / n, 0.0)) / n if n else 0.0
    z = stats.norm.isf(alpha)
    return TestResult(float(c), min(p, 1.0), diff - z * se, diff + z * se)


def _degenerate(mean: float) -> TestResult:
    """Zero variance: every row improved by the same amount. Certain if > 0, no evidence else."""
    return TestResult(
        math.copysign(math.inf, mean) if mean else 0.0, 0.0 if mean > 0 else 1.0, mean, mean
    )


def paired_t(d: np.ndarray, *, alpha: float) -> TestResult:
    """Paired t-test on the improvements; equals scipy.stats.ttest_rel(base, cand, 'greater')."""
    d = np.asarray(d, dtype=float)
    n = d.size
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return _degenerate(mean)
    se = sd / math.sqrt(n)
    t = mean / se
    q = stats.t.isf(alpha, n - 1)
    return TestResult(t, float(stats.t.sf(t, n - 1)), mean - q * se, mean + q * se)


def wilcoxon(d: np.ndarray, *, alpha: float) -> TestResult:
    """Wilcoxon signed-rank test (zeros dropped): is the improvement's distribution shifted above 0?

    It tests location under symmetry, not the mean: robust to heavy tails, but a skewed difference
    can make it disagree with the t-test. The interval shown is the t interval for the mean.
    """
    d = np.asarray(d, dtype=float)
    t = paired_t(d, alpha=alpha)
    if not np.any(d != 0):  # identical predictions: no evidence (scipy would answer NaN)
        return TestResult(0.0, 1.0, t.ci_low, t.ci_high)
    result = stats.wilcoxon(d, alternative="greater", zero_method="wilcox")
    return TestResult(float(result.statistic), float(result.pvalue), t.ci_low, t.ci_high)


def newey_west_lags(n: int) -> int:
    """Bartlett-kernel bandwidth floor(4 (n / 100)^(2/9)) (Newey & West 1994)."""
    return math.floor(4 * (n / 100.0) ** (2.0 / 9.0))


def long_run_variance(d: np.ndarray, lags: int) -> float:
    """Newey-West (Bartlett kernel) estimate of the long-run variance of d."""
    e = d - d.mean()
    n = e.size
    variance = float(e @ e) / n
    for lag in range(1, min(lags, n - 1) + 1):
        weight = 1.0 - lag / (lags + 1.0)
        variance += 2.0 * weight * float(e[lag:] @ e[:-lag]) / n
    return variance


def andrews_lags(d: np.ndarray) -> int:
    """Andrews (1991) AR(1) plug-in bandwidth for the Bartlett kernel: 1.1447 (a(1) n)^(1/3),
    a(1) = 4 r^2 / ((1 - r)^2 (1 + r)^2), r the lag-1 autocorrelation of d (clipped to +-0.97)."""
    e = d - d.mean()
    denominator = float(e[:-1] @ e[:-1])
    r = float(e[1:] @ e[:-1]) / denominator if denominator > 0 else 0.0
    r = min(max(r, -0.97), 0.97)
    a1 = 4 * r * r / ((1 - r) ** 2 * (1 + r) ** 2)
    return math.ceil(1.1447 * (a1 * d.size) ** (1.0 / 3.0))


def dm_lags(d: np.ndarray) -> int:
    """The larger of the Newey-West rule of thumb and Andrews' data-driven bandwidth: the rule of
    thumb alone is too short when the losses are autocorrelated (measured: benchmarks/gate_quality.py)."""
    return min(max(newey_west_lags(d.size), andrews_lags(d)), d.size - 1)


def prewhitened_long_run_variance(d: np.ndarray) -> float:
    """Andrews & Monahan (1992): fit AR(1) to d, take the HAC variance of its residuals (Andrews'
    bandwidth), and recolour by 1 / (1 - r)^2. Far less biased than plain Newey-West when the
    losses are autocorrelated, which is what makes the test hold its size on short series."""
    e = d - d.mean()
    denominator = float(e[:-1] @ e[:-1])
    r = float(e[1:] @ e[:-1]) / denominator if denominator > 0 else 0.0
    r = min(
        max(r + (1.0 + 3.0 * r) / d.size, -0.97), 0.97
    )  # Kendall's small-sample bias correction
    u = e[1:] - r * e[:-1]
    return long_run_variance(u, min(andrews_lags(u), u.size - 1)) / (1.0 - r) ** 2


def diebold_mariano(d: np.ndarray, *, alpha: float, lags: int | None = None) -> TestResult:
    """Diebold-Mariano test with a Newey-West (HAC) variance, for time-ordered rows.

    Rows of a time-ordered test set are not independent: errors come in runs. The HAC variance
    widens the standard error to account for that; with independent rows it is close to the t-test.
    `d` must be in time order. As Harvey, Leybourne & Newbold (1997) recommend, the statistic is
    scaled by sqrt((n - 1) / n) and compared with Student's t on n - 1 degrees of freedom.
    """
    d = np.asarray(d, dtype=float)
    n = d.size
    mean = float(d.mean())
    lrv = prewhitened_long_run_variance(d) if lags is None else long_run_variance(d, lags)
    if lrv <= 0.0:
        return _degenerate(mean)
    se = math.sqrt(lrv / n)
    statistic = mean / se
    corrected = statistic * math.sqrt((n - 1) / n)
    q = stats.t.isf(alpha, n - 1) / math.sqrt((n - 1) / n)
    return TestResult(statistic, float(stats.t.sf(corrected, n - 1)), mean - q * se, mean + q * se)

"""DeLong's test for two correlated ROC AUCs on the same rows (DeLong, DeLong & Clarke-Pearson 1988).

Uses the fast mid-rank formulation of Sun & Xu (2014): O(n log n), no n_pos x n_neg matrix.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from tasks.gate.paired_tests import TestResult


def _placements(y: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and the structural components V10 (per positive) and V01 (per negative)."""
    positive = y == 1
    x, z = scores[positive], scores[~positive]
    m, n = x.size, z.size
    tx = stats.rankdata(x)
    tz = stats.rankdata(z)
    t_all = stats.rankdata(np.concatenate([x, z]))
    v10 = (t_all[:m] - tx) / n
    v01 = 1.0 - (t_all[m:] - tz) / m
    auc = float(v10.mean())
    return auc, v10, v01


def delong_paired(
    y: np.ndarray, base_scores: np.ndarray, cand_scores: np.ndarray, *, alpha: float
) -> tuple[float, float, TestResult]:
    """(AUC of the champion, AUC of the candidate, one-sided test that the candidate's is higher)."""
    auc_b, v10_b, v01_b = _placements(y, base_scores)
    auc_c, v10_c, v01_c = _placements(y, cand_scores)
    m, n = v10_b.size, v01_b.size
    s10 = np.cov(np.vstack([v10_b, v10_c]))
    s01 = np.cov(np.vstack([v01_b, v01_c]))
    s = s10 / m + s01 / n
    variance = float(s[0, 0] + s[1, 1] - 2 * s[0, 1])
    diff = auc_c - auc_b
    if variance <= 0.0:
        p = 0.0 if diff > 0 else 1.0
        return (
            auc_b,
            auc_c,
            TestResult(math.copysign(math.inf, diff) if diff else 0.0, p, diff, diff),
        )
    se = math.sqrt(variance)
    zq = stats.norm.isf(alpha)
    statistic = diff / se
    return (
        auc_b,
        auc_c,
        TestResult(statistic, float(stats.norm.sf(statistic)), diff - zq * se, diff + zq * se),
    )

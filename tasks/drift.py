"""Drift of a new batch against the champion's reference sample.

Numeric features: two-sample Kolmogorov-Smirnov. Categorical features: chi-square on the 2 x K table
of category counts. P-values are adjusted with Benjamini-Hochberg across features, so testing more
columns does not raise more false alarms. The reference is a bounded sample of the champion's
training data, stored with its registry version: drift is measured against what it learned from.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict
from scipy import stats

from tasks.format import fmt
from tasks.validate import FeatureSpec


class ColumnDrift(BaseModel):
    """The verdict on one feature."""

    model_config = ConfigDict(frozen=True)

    column: str
    kind: str
    test: str
    statistic: float
    p_value: float
    p_adjusted: float
    drifted: bool
    reason: str


class DriftReport(BaseModel):
    """The verdict on a batch: which features drifted, and whether that counts as batch drift."""

    model_config = ConfigDict(frozen=True)

    drifted: bool
    share_drifted: float
    n_drifted: int
    n_columns: int
    alpha: float
    reference_rows: int
    current_rows: int
    columns: list[ColumnDrift]

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]


def reference_sample(
    frame: pd.DataFrame, spec: FeatureSpec, *, rows: int, seed: int
) -> pd.DataFrame:
    """A bounded, seeded sample of the training features: the reference stored with a model."""
    features = frame[spec.features]
    if len(features) <= rows:
        return features.reset_index(drop=True)
    return features.sample(n=rows, random_state=np.random.default_rng(seed)).reset_index(drop=True)


def ks_test(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """KS statistic and two-sided p-value on the non-missing values; (0, 1) when a side is empty."""
    ref = reference.dropna().to_numpy(dtype=float)
    cur = current.dropna().to_numpy(dtype=float)
    if ref.size == 0 or cur.size == 0:
        return 0.0, 1.0
    result = stats.ks_2samp(ref, cur)
    return float(result.statistic), float(result.pvalue)


def chi_square_test(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """Chi-square statistic and p-value on the 2 x K category counts; (0, 1) with < 2 categories."""
    counts = pd.concat(
        [
            reference.dropna().astype(str).value_counts(),
            current.dropna().astype(str).value_counts(),
        ],
        axis=1,
    ).fillna(0)
    counts = counts[counts.sum(axis=1) > 0]
    if len(counts) < 2 or (counts.sum(axis=0) == 0).any():
        return 0.0, 1.0
    result = stats.chi2_contingency(counts.to_numpy().T)
    return float(result.statistic), float(result.pvalue)


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: FeatureSpec,
    *,
    alpha: float = 0.05,
    min_share_drifted: float = 0.0,
) -> DriftReport:
    """Test every feature, adjust with Benjamini-Hochberg, and decide."""
    tests: list[tuple[str, str, str, float, float]] = []
    for column in spec.numeric:
        statistic, p = ks_test(reference[column], current[column])
        tests.append((column, "numeric", "ks", statistic, p))
    for column in spec.categorical:
        statistic, p = chi_square_test(reference[column], current[column])
        tests.append((column, "categorical", "chi2", statistic, p))
    p_values = np.array([t[4] for t in tests], dtype=float)
    adjusted = stats.false_discovery_control(p_values, method="bh") if len(tests) else p_values
    columns = []
    for (column, kind, test, statistic, p), p_adj in zip(tests, adjusted, strict=True):
        drifted = bool(p_adj < alpha)
        verdict = "drifted" if drifted else "no evidence of drift"
        reason = (
            f"{column}: {test} statistic {statistic:.3g}, BH-adjusted p {p_adj:.2g} "
            f"{'<' if drifted else '≥'} {alpha:g}, {verdict}."
        )
        columns.append(
            ColumnDrift(
                column=column,
                kind=kind,
                test=test,
                statistic=statistic,
                p_value=float(p),
                p_adjusted=float(p_adj),
                drifted=drifted,
                reason=reason,
            )
        )
    n_drifted = sum(c.drifted for c in columns)
    share = n_drifted / len(columns) if columns else 0.0
    return DriftReport(
        drifted=n_drifted > 0 and share >= min_share_drifted,
        share_drifted=share,
        n_drifted=n_drifted,
        n_columns=len(columns),
        alpha=alpha,
        reference_rows=len(reference),
        current_rows=len(current),
        columns=columns,
    )


def drift_table(report: DriftReport) -> list[dict[str, object]]:
    """Artifact rows: one per feature, drifted first; NaN-free so the UI renders every cell."""
    rows = sorted(report.columns, key=lambda c: (not c.drifted, c.p_adjusted))
    return [
        {
            "column": c.column,
            "test": c.test,
            "statistic": round(c.statistic, 4),
            "p_value": fmt(c.p_value),
            "p_adjusted": fmt(c.p_adjusted),
            "verdict": "DRIFT" if c.drifted else "ok",
        }
        for c in rows
    ]


# ---------------------------------------------------------------- Prefect tasks
@task(name="detect-drift", cache_policy=NO_CACHE)
def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: FeatureSpec,
    *,
    alpha: float,
    min_share_drifted: float,
    name: str,
) -> DriftReport:
    """Test the batch against the champion's reference; log and publish the verdict."""
    report = drift_report(
        reference, current, spec, alpha=alpha, min_share_drifted=min_share_drifted
    )
    verdict = "DRIFT" if report.drifted else "no drift"
    get_run_logger().info(
        "%s: %d/%d features drifted %s",
        verdict,
        report.n_drifted,
        report.n_columns,
        report.drifted_columns,
    )
    create_table_artifact(
        key="drift-report",
        table=drift_table(report),
        description=(
            f"{name}: {verdict}; {report.n_drifted}/{report.n_columns} features drifted "
            f"(BH-adjusted p < {report.alpha:g}) against the champion's reference sample"
        ),
    )
    return report

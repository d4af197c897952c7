"""Drift of new data against the champion's reference profile.

`build_profile` summarises what a model learned from (stored with its version); `compute_drift`
judges new data against it; `summary` holds the mergeable, chunk-by-chunk summaries that make both
work on files larger than memory. The thin Prefect task that logs and publishes the verdict is below.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.artifacts import publish_markdown, publish_table
from tasks.config import DriftConfig
from tasks.drift.compare import ColumnDrift, DriftReport, compute_drift, psi
from tasks.drift.plot import plot_drift
from tasks.drift.profile import ReferenceProfile, build_profile, quantile_edges
from tasks.drift.summary import DriftInputError, Summary, merge, summarize
from tasks.format import fmt, png_markdown

__all__ = [
    "ColumnDrift",
    "DriftConfig",
    "DriftInputError",
    "DriftReport",
    "ReferenceProfile",
    "Summary",
    "build_profile",
    "compute_drift",
    "detect_drift",
    "drift_table",
    "merge",
    "plot_drift",
    "psi",
    "quantile_edges",
    "summarize",
]


def drift_table(report: DriftReport) -> list[dict[str, object]]:
    """Artifact rows, drifted first; NaN-free strings so the UI renders every cell."""
    rows = sorted(
        report.columns,
        key=lambda c: (not c.drifted, c.p_adjusted if c.p_adjusted is not None else 2),
    )
    return [
        {
            "column": c.column,
            "role": c.role,
            "verdict": "DRIFT" if c.drifted else "ok",
            "test": c.test,
            "p_adjusted": fmt(c.p_adjusted),
            "tested_on": (
                f"{c.sample_size:,}-value samples"
                if c.sample_size is not None
                else ("all counts" if c.p_value is not None else "-")
            ),
            "effect": f"{fmt(c.effect)} {c.effect_name}" if c.effect is not None else "-",
            "psi": fmt(c.psi),
            "missing": f"{fmt(c.missing_rate_reference)} -> {fmt(c.missing_rate_current)}",
            "outside_ref_range": (
                "-"
                if c.outside_range_share is None
                else f"{c.outside_range_share:.1%}" + (" (kept)" if c.outside_range else "")
            ),
            "new_values": (
                f"{c.unseen_categories} ({c.unseen_share:.1%}): {', '.join(c.unseen_values[:3])}"
                if c.unseen_categories
                else "-"
            ),
            "reason": c.reason,
        }
        for c in rows
    ]


@task(name="detect-drift", cache_policy=NO_CACHE)
def detect_drift(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    config: DriftConfig,
    *,
    name: str,
    plot_path: str | None = None,
) -> DriftReport:
    """Judge the batch against the champion's profile; log, and publish a table and a plot."""
    return publish_drift(compute_drift(profile, current, config), profile, current, name, plot_path)


def publish_drift(
    report: DriftReport,
    profile: ReferenceProfile,
    current: pd.DataFrame,
    name: str,
    plot_path: str | None,
) -> DriftReport:
    """Log the verdict and publish its table, and a plot (of `current`'s rows) when it drifted;
    also for a report computed elsewhere (a dataset scanned in record batches)."""
    verdict = "DRIFT" if report.drifted else "no drift"
    logger = get_run_logger()
    logger.info(
        "%s: %d/%d features drifted %s",
        verdict,
        report.n_drifted,
        report.n_columns,
        report.drifted_columns,
    )
    for column in report.columns:
        if column.drifted:
            logger.info(column.reason)
    publish_table(
        key="drift-report",
        table=drift_table(report),
        description=(
            f"{name}: {verdict}; {report.n_drifted}/{report.n_columns} features drifted "
            f"(BH-adjusted p < {report.alpha:g} and effect above its floor)"
        ),
    )
    if plot_path is not None and report.drifted:  # a picture when there is something to see
        path = plot_drift(profile, current, report, Path(plot_path))
        publish_markdown(
            key="drift-plot",
            markdown=png_markdown(path, "reference vs current"),
            description=f"{name}: reference vs current for the most changed columns ({path.name})",
        )
    return report

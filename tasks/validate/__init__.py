"""Validation: the Pandera contract with a quarantine (`contract`, `rows`) and the
great-expectations quality suite (`quality`). The thin Prefect tasks are below.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks import gx_suite
from tasks.artifacts import publish_markdown, publish_table
from tasks.data import BadLine
from tasks.drift.profile import ReferenceProfile
from tasks.errors import CTError, DataValidationError
from tasks.gx_suite import QualityReport
from tasks.validate.contract import FeatureSpec, infer_spec
from tasks.validate.quality import expectation_specs
from tasks.validate.rows import QuarantineRecords, ValidationOutcome, build_schema, validate_rows

__all__ = [
    "FeatureSpec",
    "QualityReport",
    "QuarantineRecords",
    "ValidationOutcome",
    "build_schema",
    "check_quality",
    "infer_spec",
    "start_quality",
    "validate_batch",
    "write_quarantine",
]


class DataQualityError(CTError):
    """The quality suite failed and validation.quality_blocking is on."""


def write_quarantine(records: pd.DataFrame, path: Path) -> Path:
    """Keep rejected rows as Parquet (written to a temporary name, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    records.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


# ---------------------------------------------------------------- Prefect tasks
@task(name="validate-batch", cache_policy=NO_CACHE)
def validate_batch(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    source: str,
    *,
    quarantine_path: str,
    max_bad_fraction: float,
    min_rows: int,
    bad_lines: list[BadLine],
) -> tuple[pd.DataFrame, ValidationOutcome, str | None]:
    """Enforce the contract; quarantine bad rows; stop (quarantining everything) when too many."""
    logger = get_run_logger()
    try:
        valid, records, outcome = validate_rows(
            frame,
            spec,
            source=source,
            max_bad_fraction=max_bad_fraction,
            min_rows=min_rows,
            bad_lines=bad_lines,
        )
    except DataValidationError as exc:
        if exc.quarantine is not None and len(exc.quarantine):
            write_quarantine(QuarantineRecords.validate(exc.quarantine), Path(quarantine_path))
            raise exc.with_path(quarantine_path) from exc
        raise
    kept = None
    if outcome.rows_quarantined:
        kept = str(write_quarantine(records, Path(quarantine_path)))
        logger.warning("%s: %s; kept in %s", source, outcome.summary(), kept)
        publish_table(
            key="quarantine",
            table=[
                {str(k): v for k, v in r.items()}
                for r in records.drop(columns=["raw"]).head(200).to_dict("records")
            ],
            description=f"{source}: {outcome.summary()} (first 200 failures; all in {kept})",
        )
    logger.info(
        "Validated %s: %d valid rows, %d quarantined, schema %s",
        source,
        outcome.rows_valid,
        outcome.rows_quarantined,
        spec.schema_hash()[:12],
    )
    return valid, outcome, kept


def start_quality(
    frame: pd.DataFrame,
    profile: ReferenceProfile,
    *,
    tolerance: float,
    min_rows: int,
    max_rows: int,
) -> Future[QualityReport]:
    """Hand the batch to the great-expectations suite of this champion, in the background
    process (`tasks.gx_suite`); `check_quality` collects the report."""
    specs = expectation_specs(profile, tolerance=tolerance, min_rows=min_rows, max_rows=max_rows)
    categorical = [c for c, kind in profile.kinds.items() if kind == "categorical"]
    return gx_suite.submit(frame, specs, categorical)


@task(name="check-quality", cache_policy=NO_CACHE)
def check_quality(
    pending: Future[QualityReport],
    *,
    report_path: str,
    blocking: bool,
    source: str,
) -> QualityReport:
    """Collect the suite's report; publish and store it; stop the step only if blocking."""
    report = pending.result()
    path = Path(report_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.model_dump_json(indent=2))
    failed = [r for r in report.results if not r.success]
    lines = [
        f"# Data quality: {'passed' if report.success else f'{report.failed} of {report.evaluated} expectations failed'}",
        "",
        "| expectation | column | observed | unexpected % | result |",
        "|---|---|---|---|---|",
        *[
            f"| {r.expectation} | {r.column or '-'} | {r.observed[:40]} | "
            f"{'-' if r.unexpected_percent is None else f'{r.unexpected_percent:.2f}'} | "
            f"{'ok' if r.success else 'FAILED'} |"
            for r in sorted(report.results, key=lambda r: r.success)
        ],
        "",
        f"Full results: `{path.resolve()}`",
    ]
    publish_markdown(
        key="data-quality",
        markdown="\n".join(lines),
        description=f"{source}: great-expectations suite from the champion's profile, "
        f"{report.failed}/{report.evaluated} failed",
    )
    logger = get_run_logger()
    for r in failed:
        logger.warning(
            "Quality: %s on %s failed (observed %s)", r.expectation, r.column, r.observed[:60]
        )
    if failed and blocking:
        raise DataQualityError(
            f"{source}: {len(failed)} quality expectations failed, first {failed[0].expectation} "
            f"on column {failed[0].column!r}; see {path}"
        )
    return report

"""A great-expectations data-quality suite built from the champion's reference profile.

Ranges from the reference's quantiles (0.5 % and 99.5 %) widened by a tolerance, null shares a
little above the reference's, the category sets seen, and bounds on the row count; run in an
ephemeral context (no GX project folder). Quality findings are warnings by default: the Pandera
contract is what stops a batch. great_expectations takes seconds to import, so it is imported here,
inside the functions, only when a suite runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from tasks.drift.profile import ReferenceProfile
from tasks.drift.summary import category_label


class ExpectationResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    expectation: str
    column: str | None
    success: bool
    observed: str
    unexpected_percent: float | None
    arguments: dict[str, Any]


class QualityReport(BaseModel):
    """The suite's results, JSON-serialisable."""

    model_config = ConfigDict(frozen=True)

    success: bool
    evaluated: int
    failed: int
    results: list[ExpectationResult]


def expectation_specs(
    profile: ReferenceProfile, *, tolerance: float, min_rows: int, max_rows: int
) -> list[tuple[str, dict[str, Any]]]:
    """(GX expectation class name, keyword arguments) for every check the profile supports."""
    specs: list[tuple[str, dict[str, Any]]] = [
        ("ExpectTableRowCountToBeBetween", {"min_value": min_rows, "max_value": max_rows})
    ]
    for column, kind in profile.kinds.items():
        summary = profile.columns[column]
        null_share = min(1.0, summary.missing_rate + 0.05)
        specs.append(("ExpectColumnToExist", {"column": column}))
        specs.append(
            (
                "ExpectColumnValuesToNotBeNull",
                {"column": column, "mostly": round(1 - null_share, 4)},
            )
        )
        if kind == "numeric":
            values = profile.finite_sample(column)
            if values.size:
                low, high = np.quantile(values, [0.005, 0.995])
                slack = tolerance * max(float(high - low), 1e-9)
                specs.append(
                    (
                        "ExpectColumnValuesToBeBetween",
                        {
                            "column": column,
                            "min_value": float(low - slack),
                            "max_value": float(high + slack),
                            "mostly": 0.99,
                        },
                    )
                )
        else:
            specs.append(
                (
                    "ExpectColumnValuesToBeInSet",
                    {"column": column, "value_set": sorted(summary.counts), "mostly": 0.99},
                )
            )
    return specs


def run_quality_suite(
    frame: pd.DataFrame,
    profile: ReferenceProfile,
    *,
    tolerance: float,
    min_rows: int,
    max_rows: int,
) -> QualityReport:
    """Run the suite on `frame` in an ephemeral GX context."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("ct")
        .add_dataframe_asset("batch")
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = gx.ExpectationSuite(name="ct-quality")
    for name, kwargs in expectation_specs(
        profile, tolerance=tolerance, min_rows=min_rows, max_rows=max_rows
    ):
        suite.add_expectation(getattr(gx.expectations, name)(**kwargs))
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(data=batch, suite=suite, name="ct-quality")
    )
    frame = frame.copy()
    for column, kind in profile.kinds.items():  # categories are compared as text, as profiled
        if kind == "categorical" and column in frame.columns:
            values = frame[column].astype(object)
            frame[column] = values.where(values.isna(), values.map(category_label))
    result = definition.run(batch_parameters={"dataframe": frame})
    results = []
    for item in result.results:
        config = item.expectation_config
        assert config is not None
        kwargs = {k: v for k, v in config.kwargs.items() if k not in {"batch_id"}}
        observed = item.result.get("observed_value", item.result.get("unexpected_count", ""))
        percent = item.result.get("unexpected_percent")
        results.append(
            ExpectationResult(
                expectation=config.type,
                column=kwargs.get("column"),
                success=bool(item.success),
                observed=str(observed),
                unexpected_percent=None if percent is None else float(percent),
                arguments={k: v for k, v in kwargs.items() if k != "value_set"}
                | ({"value_set": kwargs["value_set"]} if "value_set" in kwargs else {}),
            )
        )
    failed = sum(not r.success for r in results)
    return QualityReport(
        success=failed == 0, evaluated=len(results), failed=failed, results=results
    )

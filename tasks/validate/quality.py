"""The data-quality expectations built from the champion's reference profile.

Ranges from the reference's quantiles (0.5 % and 99.5 %) widened by a tolerance, null shares a
little above the reference's, the category sets seen, and bounds on the row count. They run as a
great-expectations suite in an ephemeral context (no GX project folder), in `tasks.gx_suite`.
Quality findings are warnings by default: the Pandera contract is what stops a batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tasks.drift.profile import ReferenceProfile
from tasks.gx_suite import Specs


def expectation_specs(
    profile: ReferenceProfile, *, tolerance: float, min_rows: int, max_rows: int
) -> Specs:
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

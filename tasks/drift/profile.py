"""The reference profile: what the champion learned from, stored with its registry version.

Per column: kind and role, quantile bin edges (cut on the reference), the additive summary (counts
per bin or category, missing and infinite counts, moments, range), and a bounded row sample for the
exact tests. It is JSON, so it lives in the registry beside the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, PrivateAttr

from tasks.drift.summary import (
    KEY,
    ColumnSummary,
    DriftInputError,
    Kind,
    Role,
    Summary,
    summarize,
)


class ReferenceProfile(BaseModel):
    """A reference table's summary plus its sample, JSON-serialisable."""

    model_config = ConfigDict(frozen=True)

    rows: int
    seed: int
    sample_rows: int
    kinds: dict[str, Kind]
    roles: dict[str, Role]
    edges: dict[str, list[float]]
    columns: dict[str, ColumnSummary]
    sample: dict[str, list[Any]]
    _finite: dict[str, np.ndarray] = PrivateAttr(default_factory=dict)

    def sample_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.sample)

    def finite_sample(self, column: str) -> np.ndarray:
        """A numeric column's finite sample values, in sample (random key) order; read-only, cached
        (every drift check of the champion asks for the same arrays)."""
        if column not in self._finite:
            values = np.array(self.sample.get(column, []), dtype=float)
            values = values[np.isfinite(values)]
            values.flags.writeable = False
            self._finite[column] = values
        return self._finite[column]

    def as_summary(self) -> Summary:
        return Summary(
            rows=self.rows,
            seed=self.seed,
            sample_rows=self.sample_rows,
            edges=self.edges,
            columns=self.columns,
            sample=self.sample_frame(),
        )

    @classmethod
    def from_summary(
        cls, summary: Summary, kinds: dict[str, Kind], roles: dict[str, Role]
    ) -> ReferenceProfile:
        sample = summary.sample.drop(columns=[KEY], errors="ignore")
        records: dict[str, list[Any]] = {}
        for column in sample.columns:
            values = sample[column]
            if kinds.get(str(column)) == "numeric":
                records[str(column)] = [
                    None if np.isnan(v) else float(v)
                    for v in values.to_numpy(float, na_value=np.nan)
                ]
            else:
                records[str(column)] = [None if pd.isna(v) else str(v) for v in values]
        return cls(
            rows=summary.rows,
            seed=summary.seed,
            sample_rows=summary.sample_rows,
            kinds=kinds,
            roles=roles,
            edges=summary.edges,
            columns=summary.columns,
            sample=records,
        )


def quantile_edges(values: np.ndarray, bins: int) -> list[float]:
    """Interior edges at the reference's quantiles 1/bins ... (bins-1)/bins, duplicates removed."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return []
    edges = np.unique(np.quantile(finite, np.arange(1, bins) / bins))
    return [float(e) for e in edges]


def infer_kinds(frame: pd.DataFrame, categorical: list[str] | None) -> dict[str, Kind]:
    """Numeric dtypes are numeric unless listed as categorical; everything else is categorical."""
    forced = set(categorical or ())
    unknown = forced - set(map(str, frame.columns))
    if unknown:
        raise DriftInputError(f"categorical columns not in the data: {sorted(unknown)}")
    return {
        str(c): "numeric"
        if c not in forced
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
        else "categorical"
        for c in frame.columns
    }


def build_profile(
    df: pd.DataFrame,
    *,
    categorical: list[str] | None = None,
    label: str | None = None,
    prediction: str | None = None,
    bins: int = 10,
    sample_rows: int = 5_000,
    seed: int = 0,
) -> ReferenceProfile:
    """Profile a reference table (training features, and optionally its label and predictions)."""
    if df.shape[1] == 0:
        raise DriftInputError("the reference has no columns")
    if len(df) == 0:
        raise DriftInputError("the reference has no rows; a profile needs data")
    kinds = infer_kinds(df, categorical)
    roles: dict[str, Role] = {c: "feature" for c in kinds}
    for column, role in ((label, "label"), (prediction, "prediction")):
        if column is not None:
            if column not in kinds:
                raise DriftInputError(f"{role} column {column!r} is not in the reference")
            roles[column] = role  # type: ignore[assignment]
    edges = {
        c: quantile_edges(df[c].to_numpy(dtype=float, na_value=np.nan), bins)
        for c, k in kinds.items()
        if k == "numeric"
    }
    summary = summarize(
        df, kinds=kinds, edges=edges, roles=roles, sample_rows=sample_rows, seed=seed
    )
    return ReferenceProfile.from_summary(summary, kinds, roles)

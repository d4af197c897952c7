"""The data contract of a batch: which columns, of which types, within which limits.

Declared in the config or inferred from the first training batch, then refined from each champion's
training data (nullability, numeric ranges with a tolerance, categories seen) and stored with its
registry version with a hash, so every later batch is checked against what the champion learned.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pydantic import BaseModel, ConfigDict, Field

from tasks.config import DatasetConfig


class FeatureSpec(BaseModel):
    """Which columns a model uses and how; the contract stored with every model version."""

    model_config = ConfigDict(frozen=True)

    target: str
    time_column: str | None
    numeric: list[str]
    categorical: list[str]
    classes: list[int]
    #: Features that may be missing; None until learned from training data (then all may be).
    nullable: dict[str, bool] | None = None
    #: Allowed [low, high] of numeric features (training range widened by the tolerance).
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    #: Categories seen in training (informational: new categories are drift, not errors).
    categories: dict[str, list[str]] = Field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def columns(self) -> list[str]:
        return [*([self.time_column] if self.time_column else []), *self.features, self.target]

    def schema_hash(self) -> str:
        return hashlib.sha256(
            json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()


def infer_spec(frame: pd.DataFrame, dataset: DatasetConfig) -> FeatureSpec:
    """Use the configured feature lists; infer the ones left empty from the batch's dtypes."""
    special = {dataset.target, dataset.time_column}
    if dataset.numeric is not None and dataset.categorical is not None:
        numeric, categorical = list(dataset.numeric), list(dataset.categorical)
    else:
        rest = [str(c) for c in frame.columns if c not in special]
        inferred_num = [c for c in rest if pd.api.types.is_numeric_dtype(frame[c])]
        inferred_cat = [c for c in rest if c not in inferred_num]
        numeric = list(dataset.numeric) if dataset.numeric is not None else inferred_num
        categorical = list(dataset.categorical) if dataset.categorical is not None else inferred_cat
        categorical = [c for c in categorical if c not in numeric]
    time_column = dataset.time_column if dataset.time_column in frame.columns else None
    return FeatureSpec(
        target=dataset.target,
        time_column=time_column,
        numeric=numeric,
        categorical=categorical,
        classes=list(dataset.classes),
    )


def fit_contract(spec: FeatureSpec, train: pd.DataFrame, *, tolerance: float) -> FeatureSpec:
    """Refine the contract from (valid) training data: nullability, ranges, categories."""
    nullable = {c: bool(train[c].isna().any()) for c in spec.features}
    ranges = {}
    for column in spec.numeric:
        values = train[column].to_numpy(dtype=float, na_value=np.nan)
        values = values[np.isfinite(values)]
        if values.size:
            low, high = float(values.min()), float(values.max())
            slack = tolerance * max(high - low, abs(high), abs(low), 1e-9)
            ranges[column] = (low - slack, high + slack)
    categories = {c: sorted(map(str, train[c].dropna().unique())) for c in spec.categorical}
    return spec.model_copy(
        update={"nullable": nullable, "ranges": ranges, "categories": categories}
    )


def _finite(series: pd.Series) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce").astype(float)
    return pd.Series(~np.isinf(values.to_numpy()), index=series.index)


def build_schema(spec: FeatureSpec) -> pa.DataFrameSchema:
    """Pandera schema of a batch after `coerce`: finiteness, ranges, nullability, known classes.

    The target is checked as float (a missing label is a row-level failure, not a dtype error)
    and becomes int once the failing rows are set aside."""
    nullable = spec.nullable or {}
    columns: dict[str, pa.Column] = {}
    if spec.time_column:
        columns[spec.time_column] = pa.Column(nullable=False)
    for name in spec.numeric:
        checks = [pa.Check(_finite, error="finite (no ±inf)")]
        if name in spec.ranges:
            low, high = spec.ranges[name]
            checks.append(pa.Check.in_range(low, high, error=f"in_range({low:.6g}, {high:.6g})"))
        columns[name] = pa.Column(float, nullable=nullable.get(name, True), checks=checks)
    for (
        name
    ) in spec.categorical:  # text already (coerced before); a dtype check would map per value
        columns[name] = pa.Column(nullable=nullable.get(name, True))
    columns[spec.target] = pa.Column(float, nullable=False, checks=pa.Check.isin(spec.classes))
    return pa.DataFrameSchema(columns, strict="filter", ordered=False)

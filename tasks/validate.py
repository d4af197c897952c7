"""The data contract of a batch: a Pandera schema built from the feature spec.

The spec is declared in the config or inferred from the first training batch, and is then stored
with every model version, so later batches are checked against what the champion was trained on.
Validation is lazy: every failure is collected, and the error names the file, column and rule.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pandera.pandas as pa
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from tasks.config import DatasetConfig
from tasks.errors import DataValidationError


class FeatureSpec(BaseModel):
    """Which columns a model uses and how; the contract stored with every model version."""

    model_config = ConfigDict(frozen=True)

    target: str
    time_column: str | None
    numeric: list[str]
    categorical: list[str]
    classes: list[int]

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def columns(self) -> list[str]:
        return [*([self.time_column] if self.time_column else []), *self.features, self.target]

    def schema_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()


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


def _finite(series: pd.Series) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce").astype(float)
    return pd.Series(~np.isinf(values.to_numpy()), index=series.index)


def build_schema(spec: FeatureSpec) -> pa.DataFrameSchema:
    """Pandera schema of a batch: types, finiteness, known classes; extra columns are dropped."""
    columns: dict[str, pa.Column] = {}
    if spec.time_column:
        columns[spec.time_column] = pa.Column("datetime64[ns]", coerce=True, nullable=False)
    for name in spec.numeric:
        columns[name] = pa.Column(
            float, nullable=True, coerce=True, checks=pa.Check(_finite, error="finite (no ±inf)")
        )
    for name in spec.categorical:
        columns[name] = pa.Column(str, nullable=True, coerce=True)
    columns[spec.target] = pa.Column(
        int, nullable=False, coerce=True, checks=pa.Check.isin(spec.classes)
    )
    return pa.DataFrameSchema(columns, strict="filter", ordered=False)


_PRIORITY = {"column_in_dataframe": 0, "coerce_dtype": 1, "dtype": 2, "not_nullable": 3}


def _failures(exc: pa.errors.SchemaErrors) -> list[dict[str, object]]:
    """One dict per failure, the most fundamental first (a missing column before a bad value)."""
    rows = []
    for case in exc.failure_cases.to_dict("records"):
        check = str(case["check"])
        column = case["column"] if isinstance(case["column"], str) else case["failure_case"]
        if check == "column_in_dataframe":
            value: object = "<column missing>"
        else:
            value = case["failure_case"]
        index = case.get("index")
        rows.append(
            {
                "column": str(column),
                "check": check,
                "failure_case": value,
                "row": None if index is None or pd.isna(index) else int(index),
            }
        )
    rows.sort(key=lambda r: _PRIORITY.get(str(r["check"]).split("(")[0], 9))
    return rows


def validate_frame(frame: pd.DataFrame, spec: FeatureSpec, *, source: str) -> pd.DataFrame:
    """The batch, coerced to the contract, with only the contract's columns, in time order."""
    try:
        valid = build_schema(spec).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        raise DataValidationError(source, _failures(exc)) from exc
    valid = valid[spec.columns]
    if spec.time_column:
        valid = valid.sort_values(spec.time_column, kind="stable", ignore_index=True)
    return valid.reset_index(drop=True)


# ---------------------------------------------------------------- Prefect tasks
@task(name="validate-batch", cache_policy=NO_CACHE)
def validate_batch(frame: pd.DataFrame, spec: FeatureSpec, source: str) -> pd.DataFrame:
    """Enforce the contract; a failure stops the step before anything is trained or stored."""
    valid = validate_frame(frame, spec, source=source)
    get_run_logger().info(
        "Validated %s: %d rows, %d features, schema %s",
        source,
        len(valid),
        len(spec.features),
        spec.schema_hash()[:12],
    )
    return valid

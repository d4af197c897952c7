"""Row-level validation with a quarantine: bad rows are set aside with the reason, never dropped.

Only data that cannot be right is bad: a value that does not parse as its column's type, ±inf, a
missing target or declared non-null feature, a label outside a *closed* class set, a value outside
bounds the user declared, a CSV line that does not split into the header's fields. Values outside
what the champion saw (a wider range, a new category, a new class of an open set) are drift: they
are kept, reported by the drift step and learned by the next candidate.

A batch first passes table-level checks (every contract column present, its values of the right
type at all). Bad rows go to the quarantine with, per failure, the column, the rule and the raw
value; the rest goes on while bad rows are at most `max_bad_fraction` of the batch. Above that, or
on a table-level failure, the batch is refused and quarantined whole.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series
from pydantic import BaseModel, ConfigDict

from tasks.data import BadLine
from tasks.errors import DataValidationError
from tasks.labels import normalize_labels, parse_numbers, typed_number
from tasks.validate.contract import FeatureSpec

RAGGED = "csv_fields"


class QuarantineRecords(pa.DataFrameModel):
    """One row per failure: which input row, which column, which check, which raw value."""

    row: Series[int] = pa.Field(ge=-1)  # -1: a CSV line that could not be split into fields
    column: Series[str]
    check: Series[str]
    value: Series[str] = pa.Field(nullable=True)
    raw: Series[str]  # the whole input row as JSON, so nothing is lost

    class Config:
        strict = True
        coerce = True


class ValidationOutcome(BaseModel):
    """What validation did to a batch."""

    model_config = ConfigDict(frozen=True)

    rows_in: int
    rows_valid: int
    rows_quarantined: int
    failures: dict[str, int]  # "column: check" -> count

    @property
    def bad_fraction(self) -> float:
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0

    def summary(self) -> str:
        top = ", ".join(
            f"{k} ({v})" for k, v in sorted(self.failures.items(), key=lambda kv: -kv[1])[:3]
        )
        return f"{self.rows_quarantined} of {self.rows_in} rows ({self.bad_fraction:.1%}) quarantined: {top}"


def _raw_json(frame: pd.DataFrame, rows: np.ndarray) -> list[str]:
    subset = frame.iloc[rows].astype(object).where(frame.iloc[rows].notna(), None)
    return [json.dumps(r, default=str) for r in subset.to_dict("records")]


NUMBER = "coerce_dtype('float64')"
FINITE = "finite (no ±inf)"


def _finite(series: pd.Series) -> pd.Series:
    return pd.Series(~np.isinf(series.to_numpy(dtype=float, na_value=np.nan)), index=series.index)


def _coerce(frame: pd.DataFrame, spec: FeatureSpec) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    """Coerce each contract column; values that do not parse become missing and a failure record.

    A column already of a numeric (or text) type has nothing to parse: it is converted without
    looking for failures, so a Parquet batch pays one conversion per column, not three passes."""
    out: dict[str, object] = {}
    failures: list[dict[str, object]] = []

    def note(column: str, check: str, bad: pd.Series) -> None:
        for position in np.flatnonzero(bad.to_numpy()):
            failures.append(
                {
                    "row": int(position),
                    "column": column,
                    "check": check,
                    "value": str(frame[column].iloc[position]),
                }
            )

    numbers = [*spec.numeric, *([spec.target] if spec.task == "regression" else [])]
    for column in numbers:
        raw = frame[column]
        values = parse_numbers(raw)
        if not typed_number(raw):
            note(column, NUMBER, values.isna() & raw.notna())
        out[column] = values
    if spec.task == "classification":
        labels, unreadable = normalize_labels(frame[spec.target], spec.label_kind)
        note(spec.target, f"label_type('{spec.label_kind}')", unreadable)
        out[spec.target] = labels
    for column in spec.categorical:
        raw = frame[column]
        if pd.api.types.is_string_dtype(raw) and not pd.api.types.is_object_dtype(raw):
            out[column] = raw.astype(object)  # text already: missing stays missing
        else:
            out[column] = raw.where(raw.isna(), raw.astype(str)).astype(object)
    if spec.time_column:
        raw = frame[spec.time_column]
        times = pd.to_datetime(raw, errors="coerce", utc=True)  # one inferred format: fast
        retry = times.isna() & raw.notna()
        if retry.any():  # then each leftover value on its own format
            times[retry] = pd.to_datetime(raw[retry], errors="coerce", utc=True, format="mixed")
        note(spec.time_column, "coerce_dtype('datetime64[ns]')", times.isna() & raw.notna())
        out[spec.time_column] = times.dt.tz_convert(None).astype("datetime64[ns]")
    return pd.DataFrame(out, index=frame.index, copy=False), failures  # no block consolidation


def bounds_rule(low: float | None, high: float | None) -> str:
    """How a declared bound reads in the quarantine and in error messages."""
    return f"declared bounds [{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"


def build_schema(spec: FeatureSpec) -> pa.DataFrameSchema:
    """Pandera schema of a batch after `_coerce`: only the rules a row cannot break and be right.

    Finite numbers, the declared bounds, the declared non-null features, a present target and,
    for a closed class set, a known label. Nothing learned from training data is checked here.
    """
    unknown = sorted(set(spec.bounds) - {*spec.numeric, spec.target})
    if unknown:
        raise ValueError(
            f"dataset.bounds names {unknown}, which are not numeric columns of the contract "
            f"(numeric: {spec.numeric})"
        )
    columns: dict[str, pa.Column] = {}
    if spec.time_column:
        columns[spec.time_column] = pa.Column(nullable=False)

    def number_checks(name: str) -> list[pa.Check]:
        checks = [pa.Check(_finite, error=FINITE)]
        if name in spec.bounds:
            low, high = spec.bounds[name]
            checks.append(
                pa.Check.in_range(
                    -np.inf if low is None else low,
                    np.inf if high is None else high,
                    error=bounds_rule(low, high),
                )
            )
        return checks

    for name in spec.numeric:
        columns[name] = pa.Column(
            float, nullable=name not in spec.non_null, checks=number_checks(name)
        )
    for name in spec.categorical:  # text already; a dtype check would map per value
        columns[name] = pa.Column(nullable=name not in spec.non_null)
    if spec.task == "regression":
        columns[spec.target] = pa.Column(float, nullable=False, checks=number_checks(spec.target))
    else:
        closed = [pa.Check.isin(spec.classes or [])] if spec.classes_closed else []
        columns[spec.target] = pa.Column(nullable=False, checks=closed)
    return pa.DataFrameSchema(columns, strict="filter", ordered=False)


def suspect_rows(coerced: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """Positions of the rows that may break `build_schema(spec)`: its rules as numpy masks.

    Pandera names every failure with its column and rule, but costs ~20 ms per 100k rows even
    when nothing fails, which a dataset of a thousand record batches feels. So a batch is screened
    first, and only one with suspect rows goes through the schema, which then names them. The screen
    flags exactly the rows the schema fails (tested on generated faults of every rule and label
    kind); a rule added to the schema must be added here too, or that test fails.
    """
    bad = np.zeros(len(coerced), dtype=bool)
    required = {*spec.non_null, spec.target, *([spec.time_column] if spec.time_column else [])}
    for name in (c for c in [spec.time_column, *spec.categorical] if c):
        if name in required:
            bad |= coerced[name].isna().to_numpy()
    for name in [*spec.numeric, *([spec.target] if spec.task == "regression" else [])]:
        values = coerced[name].to_numpy(dtype=float, na_value=np.nan)
        bad |= np.isinf(values)
        if name in required:
            bad |= np.isnan(values)
        low, high = spec.bounds.get(name, (None, None))
        if low is not None:
            bad |= values < low
        if high is not None:
            bad |= values > high
    if spec.task == "classification":
        labels = coerced[spec.target]
        missing = labels.isna().to_numpy()
        bad |= missing
        if spec.classes_closed:
            bad |= ~missing & ~labels.isin(spec.classes or []).to_numpy()
    return np.flatnonzero(bad)


def _typed_target(values: pd.Series, spec: FeatureSpec) -> pd.Series:
    """The target of valid rows in the type its labels keep (int64, bool, str) or float64."""
    if spec.task == "regression":
        return values.astype(np.float64)
    kind = spec.label_kind
    if kind == "int":
        return values.astype(np.int64)
    if kind == "bool":
        return values.astype(bool)
    return values.astype(object)


def _refusal(
    source: str,
    column: object,
    check: object,
    value: object,
    quarantine: pd.DataFrame,
    *,
    row: int | None = None,
    detail: str | None = None,
) -> DataValidationError:
    """The error that refuses a whole batch, naming its first failure (file, column and rule)."""
    failure = {"column": column, "check": check, "failure_case": value, "row": row}
    return DataValidationError(source, [failure], quarantine=quarantine, detail=detail)


def _require_columns(frame: pd.DataFrame, spec: FeatureSpec, source: str) -> None:
    """Table level: every contract column is present, or the batch is refused."""
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise DataValidationError(
            source,
            [
                {
                    "column": c,
                    "check": "column_in_dataframe",
                    "failure_case": "<column missing>",
                    "row": None,
                }
                for c in missing
            ],
            quarantine=_whole(frame, "column_in_dataframe", f"missing columns {missing}"),
        )


def _coerce_columns(
    frame: pd.DataFrame, spec: FeatureSpec, source: str
) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    """`_coerce`, refusing the batch when no value of a number or label column parses: the whole
    column has the wrong type, which is a table-level fault, not one of each row."""
    coerced, failures = _coerce(frame, spec)
    unparsed = {str(f["column"]) for f in failures}
    for column in (c for c in [*spec.numeric, spec.target] if c in unparsed):
        raw = frame[column]
        if raw.notna().any() and coerced[column].isna().all():
            rule = next(str(f["check"]) for f in failures if f["column"] == column)
            what = "a number" if rule == NUMBER else f"a {spec.label_kind} label"
            raise _refusal(
                source,
                column,
                rule,
                raw.dropna().iloc[0],
                _whole(frame, rule, f"no value of {column!r} is {what}"),
                detail=f"no value parses as {what}: the whole column has the wrong type ({raw.dtype})",
            )
    return coerced, failures


def _schema_failures(
    coerced: pd.DataFrame, frame: pd.DataFrame, spec: FeatureSpec, source: str
) -> list[dict[str, object]]:
    """The rows the Pandera schema fails, one record per failure (screened first: only a batch
    with suspect rows pays for the schema). A failure without a row is table level: refused."""
    if not len(suspect_rows(coerced, spec)):
        return []
    try:
        build_schema(spec).validate(coerced, lazy=True)
    except pa.errors.SchemaErrors as exc:
        found: list[dict[str, object]] = []
        for case in exc.failure_cases.to_dict("records"):
            index = case.get("index")
            if index is None or pd.isna(index):
                raise _refusal(
                    source,
                    str(case["column"]),
                    str(case["check"]),
                    case["failure_case"],
                    _whole(frame, str(case["check"]), "table-level failure"),
                ) from exc
            found.append(
                {
                    "row": int(index),
                    "column": str(case["column"]),
                    "check": str(case["check"]),
                    "value": str(case["failure_case"]),
                }
            )
        return found
    return []


def _said_once(failures: list[dict[str, object]]) -> list[dict[str, object]]:
    """A value that did not parse is NaN now: its nullability failure is the same fault, said
    twice; keep the parse failure."""
    parse_failed = {
        (f["row"], f["column"])
        for f in failures
        if str(f["check"]).startswith(("coerce", "label_type"))
    }
    return [
        f
        for f in failures
        if not (f["check"] == "not_nullable" and (f["row"], f["column"]) in parse_failed)
    ]


def _failure_records(
    frame: pd.DataFrame, failures: list[dict[str, object]], bad_lines: list[BadLine]
) -> pd.DataFrame:
    """The quarantine records: each failure with its whole raw row, then each ragged CSV line."""
    records = pd.DataFrame(failures, columns=["row", "column", "check", "value"])
    records["raw"] = _raw_json(frame, records["row"].to_numpy()) if len(records) else []
    if bad_lines:
        ragged = pd.DataFrame(
            {
                "row": -1,
                "column": "<line>",
                "check": RAGGED,
                "value": [f"{b.fields} fields" for b in bad_lines],
                "raw": [b.line for b in bad_lines],
            }
        )
        records = pd.concat([records, ragged], ignore_index=True)
    return records


def _refuse_if_too_bad(
    frame: pd.DataFrame,
    records: pd.DataFrame,
    outcome: ValidationOutcome,
    *,
    source: str,
    max_bad_fraction: float,
    min_rows: int,
) -> None:
    """Refuse the batch (quarantined whole) when more than `max_bad_fraction` of its rows are
    bad, or fewer than `min_rows` valid rows remain; the error names the first failure."""
    too_many = outcome.rows_in and outcome.bad_fraction > max_bad_fraction
    if not outcome.rows_in or not (too_many or outcome.rows_valid < min_rows):
        return
    ordered = records.sort_values("row", kind="stable")
    first = (
        ordered.iloc[0].to_dict()
        if len(ordered)
        else {"column": "-", "check": "-", "value": "-", "row": None}
    )
    reason = (
        f"{outcome.bad_fraction:.1%} of rows failed validation (limit {max_bad_fraction:.0%})"
        if too_many
        else f"only {outcome.rows_valid} valid rows remain (validation.min_rows is {min_rows})"
    )
    raise _refusal(
        source,
        first["column"],
        first["check"],
        first["value"],
        pd.concat([records, _whole(frame, "batch_rejected", reason)], ignore_index=True),
        row=None if first["row"] in (None, -1) else int(first["row"]),
        detail=reason,
    )


def validate_rows(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    *,
    source: str,
    max_bad_fraction: float,
    min_rows: int = 1,
    bad_lines: list[BadLine] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, ValidationOutcome]:
    """(valid rows coerced and in time order, quarantine records, outcome).

    Raises `DataValidationError` (with the whole batch as quarantine records) on a table-level
    failure or when more than `max_bad_fraction` of the rows are bad.
    """
    frame = frame.reset_index(drop=True)
    bad_lines = bad_lines or []
    _require_columns(frame, spec, source)
    coerced, failures = _coerce_columns(frame, spec, source)
    failures = _said_once(failures + _schema_failures(coerced, frame, spec, source))
    bad_rows = np.array(sorted({int(str(f["row"])) for f in failures}), dtype=np.int64)
    records = _failure_records(frame, failures, bad_lines)
    counts = records.groupby(["column", "check"]).size() if len(records) else pd.Series(dtype=int)
    outcome = ValidationOutcome(
        rows_in=len(frame) + len(bad_lines),
        rows_valid=len(frame) - len(bad_rows),
        rows_quarantined=len(bad_rows) + len(bad_lines),
        failures={f"{key[0]}: {key[1]}": int(v) for key, v in counts.items()},  # type: ignore[index]
    )
    _refuse_if_too_bad(
        frame,
        records,
        outcome,
        source=source,
        max_bad_fraction=max_bad_fraction,
        min_rows=min_rows,
    )
    keep = coerced if not len(bad_rows) else coerced.drop(index=pd.Index(bad_rows))
    valid = keep[spec.columns]
    valid[spec.target] = _typed_target(valid[spec.target], spec)
    if spec.time_column:
        valid = valid.sort_values(spec.time_column, kind="stable")
    return valid.reset_index(drop=True), typed_records(records), outcome


@functools.cache
def _no_records() -> pd.DataFrame:
    return QuarantineRecords.validate(
        pd.DataFrame(
            {c: pd.Series(dtype=object) for c in ("row", "column", "check", "value", "raw")}
        )
    )


def typed_records(records: pd.DataFrame) -> pd.DataFrame:
    """The quarantine records as their schema types them; an empty set is typed once, not per
    batch (pandera takes ~16 ms even for no rows, which a dataset's thousands of pieces feel)."""
    if records.empty:
        return _no_records().copy()
    return QuarantineRecords.validate(records)


def _whole(frame: pd.DataFrame, check: str, reason: str) -> pd.DataFrame:
    """Every row of a rejected batch, for the quarantine."""
    rows = np.arange(len(frame))
    return pd.DataFrame(
        {
            "row": rows,
            "column": "<batch>",
            "check": check,
            "value": reason,
            "raw": _raw_json(frame, rows),
        }
    )

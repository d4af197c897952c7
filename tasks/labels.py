"""The target column: which task it is, which labels it holds, and how models see them.

A classification target keeps the type its labels had in the data (integers, strings or booleans)
in the contract, the registry and the events; models are always fitted on codes 0..k-1, the
positions of their training labels in sorted order (some libraries, XGBoost among them, accept
nothing else), and each version records that list so its predictions read back as labels.

A regression target is a finite number.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from tasks.config import Label, Task, label_kind

LabelKind = Literal["bool", "int", "str"]
#: More distinct integer values than this make a numeric target a regression target.
MAX_CLASSES_INFERRED = 50
_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]


def typed_number(series: pd.Series) -> bool:
    """A column whose every present value is a number already (booleans and nullable dtypes
    included), so none can fail to parse."""
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def parse_numbers(series: pd.Series) -> pd.Series:
    """Floats; values that do not parse become NaN (bool and nullable dtypes included)."""
    if typed_number(series):
        return series.astype(float)
    return pd.to_numeric(series, errors="coerce").astype(float)


def mostly_numeric(series: pd.Series, *, max_bad_fraction: float) -> bool:
    """Is this a numeric column with a few bad values, rather than text?

    True when at least `1 - max_bad_fraction` of the non-missing values parse as numbers: a
    column of numbers with a few `abc` in it stays numeric (the `abc` rows are quarantined),
    instead of every number becoming a category.
    """
    if pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_numeric_dtype(series):
        return True
    present = series.dropna()
    if present.empty:
        return False
    parsed = pd.to_numeric(present, errors="coerce")
    return bool(parsed.notna().mean() >= 1 - max_bad_fraction)


def infer_task(series: pd.Series, *, max_bad_fraction: float) -> tuple[Task, str]:
    """Classification or regression from the first batch's target, and why (said to the user)."""
    if pd.api.types.is_bool_dtype(series) or not mostly_numeric(
        series, max_bad_fraction=max_bad_fraction
    ):
        return "classification", "the target holds text or booleans"
    values = parse_numbers(series).to_numpy()
    values = values[np.isfinite(values)]
    if values.size and not np.all(values == np.round(values)):
        return "regression", "the target holds non-integer numbers"
    distinct = np.unique(values).size
    if distinct > MAX_CLASSES_INFERRED:
        return (
            "regression",
            f"the target holds {distinct} distinct integers (more than {MAX_CLASSES_INFERRED})",
        )
    return "classification", f"the target holds {distinct} distinct integers"


def infer_label_kind(series: pd.Series, *, max_bad_fraction: float) -> LabelKind:
    """The type labels keep: booleans, integers (numbers that are all whole) or strings."""
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    present = series.dropna()
    if not present.empty and present.map(lambda v: isinstance(v, bool | np.bool_)).all():
        return "bool"
    if mostly_numeric(series, max_bad_fraction=max_bad_fraction):
        return "int"
    return "str"


def normalize_labels(series: pd.Series, kind: LabelKind) -> tuple[pd.Series, pd.Series]:
    """(labels of `kind`, missing where absent or unreadable: Int64, boolean or object-of-str;
    mask of the values that were present but could not be read as `kind`)."""
    present = series.notna()
    if kind == "int":
        numbers = parse_numbers(series)
        whole = np.isfinite(numbers) & (numbers == np.round(numbers))
        return numbers.where(whole).astype("Int64"), present & ~whole
    if kind == "bool":
        if pd.api.types.is_bool_dtype(series):
            return series.astype("boolean"), pd.Series(False, index=series.index)
        text = series.astype(object).where(present, "").astype(str).str.strip().str.lower()
        out = pd.Series(pd.NA, index=series.index, dtype="boolean")
        out[text.isin(_TRUE)] = True
        out[text.isin(_FALSE)] = False
        out[~present] = pd.NA
        return out, present & out.isna()
    if pd.api.types.is_float_dtype(series) or not pd.api.types.is_string_dtype(series):
        text = series.map(category_label, na_action="ignore")  # 3.0 read as a number stays "3"
    else:
        text = series
    return text.astype(object).where(present, None), pd.Series(False, index=series.index)


def category_label(value: object) -> str:
    """A category (or a string label) as text, the same whether it was read as 3, 3.0 or "3"."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def sorted_labels(values: Iterable[object]) -> list[Label]:
    """Distinct labels as plain Python values, in sorted order (the code of a label is its position)."""
    plain = {_plain(v) for v in values if v is not None and v is not pd.NA and v == v}
    return sorted(plain, key=lambda v: (label_kind(v), str(v) if isinstance(v, str) else v))


def _plain(value: object) -> Label:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    return str(value)


def encode(
    values: Sequence[object] | np.ndarray | pd.Series, labels: Sequence[Label]
) -> np.ndarray:
    """Labels as codes: positions in `labels`; a label not in it is an error (a caller bug)."""
    array = np.asarray(values, dtype=object)
    codes = pd.Categorical(array, categories=list(labels)).codes.astype(np.int64)
    if codes.size and codes.min() < 0:
        unknown = array[codes < 0][0]
        raise ValueError(f"label {unknown!r} is not one of {list(labels)}")
    return codes


def decode(codes: np.ndarray, labels: Sequence[Label]) -> np.ndarray:
    """Codes back to labels (an object array of Python values)."""
    table = np.empty(len(labels), dtype=object)
    table[:] = list(labels)
    return table[np.asarray(codes, dtype=np.int64)]

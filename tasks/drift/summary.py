"""Mergeable summaries of a table: what drift is measured on, built chunk by chunk.

A `Summary` holds, per column, counts that add up across chunks (rows, missing, infinite, sums,
min/max, counts per reference bin or per category) and, for the whole table, a bounded *row sample*
chosen by the smallest pseudo-random keys of the global row numbers (bottom-k sampling). Because a
row's key depends only on its position and the seed, the summary of A ∪ B merged from those of A
and B is exactly the summary of the concatenation, so a Parquet file larger than memory is
summarised row group by row group.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tasks.drift.kernels import category_tally, numeric_tally, on_every_core
from tasks.errors import CTError
from tasks.labels import category_label

Kind = Literal["numeric", "categorical"]
Role = Literal["feature", "label", "prediction"]
KEY = "__ct_sample_key__"
#: Rows from which a summary's columns are tallied on a thread per core.
PARALLEL_ROWS = 1_000_000
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


class DriftInputError(CTError, ValueError):
    """The data cannot be compared with the reference as it is; the message names the column."""


def row_keys(start: int, stop: int, seed: int) -> np.ndarray:
    """splitmix64 of the global row numbers: uniform-looking keys, the same for the same row."""
    with np.errstate(over="ignore"):
        z = (
            np.arange(start, stop, dtype=np.uint64)
            + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        ) & _MASK64
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


class ColumnSummary(BaseModel):
    """Additive statistics of one column. `counts` is per reference bin (numeric: len(edges) + 1
    bins, values equal to an edge fall in the bin to its right) or per category."""

    model_config = ConfigDict(frozen=True)

    kind: Kind
    role: Role = "feature"
    rows: int
    missing: int
    infinite: int = 0
    total: float = 0.0
    #: Sum of squared deviations from the mean (merged with Chan's formula: no cancellation).
    m2: float = 0.0
    minimum: float | None = None
    maximum: float | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    #: Finite values below / above a given reference range (when one was given): drift, not error.
    below_range: int = 0
    above_range: int = 0

    @property
    def present(self) -> int:
        return self.rows - self.missing - self.infinite

    @property
    def missing_rate(self) -> float:
        return self.missing / self.rows if self.rows else 0.0

    @property
    def mean(self) -> float:
        return self.total / self.present if self.present else float("nan")

    @property
    def sd(self) -> float:
        if self.present < 2:
            return float("nan")
        return float(np.sqrt(max(self.m2, 0.0) / (self.present - 1)))


class Summary(BaseModel):
    """Summary of a table against fixed bin edges; merge two with `merge`."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    rows: int
    seed: int
    sample_rows: int
    edges: dict[str, list[float]]
    columns: dict[str, ColumnSummary]
    sample: pd.DataFrame = Field(exclude=True)


def _numeric_values(series: pd.Series, column: str) -> np.ndarray:
    if series.dtype == np.float64:  # the common case: no copy
        return series.to_numpy()
    if pd.api.types.is_numeric_dtype(series):  # bool and nullable dtypes too
        return series.to_numpy(dtype=float, na_value=np.nan)
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() & series.notna()
    if bad.any():
        example = series[bad].iloc[0]
        raise DriftInputError(
            f"column {column!r}: the reference is numeric but this data holds non-numeric values, "
            f"e.g. {example!r} ({int(bad.sum())} rows); fix the dtype or profile it as categorical"
        )
    return values.to_numpy(dtype=float, na_value=np.nan)


def _numeric_summary(
    values: np.ndarray,
    edges: list[float],
    role: Role,
    reference_range: tuple[float, float] | None = None,
) -> ColumnSummary:
    # squares are summed about the middle reference edge (near the mean, known before the pass);
    # if the data sit far from it, the variance is taken again about their own mean
    shift = edges[len(edges) // 2] if edges else 0.0
    tally = numeric_tally(values, np.asarray(edges, dtype=float), shift)
    n = tally.finite
    mean_shift = tally.shifted_sum / n if n else 0.0
    m2 = tally.shifted_squares - tally.shifted_sum * mean_shift
    if n and tally.shifted_squares > 1e4 * max(m2, 0.0):  # cancellation: 4+ digits would be lost
        finite = values[np.isfinite(values)]
        deviations = finite - (mean_shift + shift)
        m2 = float(deviations @ deviations)
    counts = np.diff([0, *tally.below.tolist(), n])
    below = above = 0
    if reference_range is not None and n:
        low, high = reference_range
        # the pass gave the range: only a column that left the reference's pays one more pass
        if tally.minimum < low:
            below = int(np.count_nonzero((values < low) & (values > -np.inf)))
        if tally.maximum > high:
            above = int(np.count_nonzero((values > high) & (values < np.inf)))
    return ColumnSummary(
        kind="numeric",
        role=role,
        rows=values.size,
        missing=tally.nan,
        infinite=tally.pos_inf + tally.neg_inf,
        total=tally.shifted_sum + n * shift if n else 0.0,
        m2=max(m2, 0.0),
        minimum=tally.minimum if n else None,
        maximum=tally.maximum if n else None,
        counts={str(i): int(c) for i, c in enumerate(counts)},
        below_range=below,
        above_range=above,
    )


def _categorical_summary(series: pd.Series, role: Role) -> ColumnSummary:
    if isinstance(series.dtype, pd.CategoricalDtype):  # one pass over the codes
        tally = category_tally(series.cat.codes.to_numpy(), len(series.cat.categories))
        missing = int(tally[0])
        pairs = zip(series.cat.categories, tally[1:], strict=True)
    else:
        counted = series.value_counts(dropna=True, sort=False)
        missing = int(series.isna().sum())
        pairs = zip(counted.index, counted.to_numpy(), strict=True)
    counts: dict[str, int] = {}
    for key, value in pairs:
        if value > 0:
            label = category_label(key)
            counts[label] = counts.get(label, 0) + int(value)
    return ColumnSummary(
        kind="categorical", role=role, rows=len(series), missing=missing, counts=counts
    )


def bottom_k(frame: pd.DataFrame, keys: np.ndarray, k: int) -> pd.DataFrame:
    """The rows with the k smallest keys (distinct: splitmix64 is a bijection), in key order,
    with their keys in column KEY: a uniform sample that merges across chunks (keep the k
    smallest of both), whatever the chunks."""
    if len(frame) > k:
        take = np.argpartition(keys, k - 1)[:k]
        take = take[np.argsort(keys[take])]
    else:
        take = np.argsort(keys)
    sample = frame.iloc[take].reset_index(drop=True)
    sample[KEY] = keys[take]
    return sample


def merge_bottom_k(a: pd.DataFrame, b: pd.DataFrame, k: int) -> pd.DataFrame:
    """The k rows with the smallest keys of two `bottom_k` samples, in key order. A full sample's
    largest key bounds what can still enter, so only the other side's rows below it are sorted
    in: merging a long run of chunks into a large sample stays cheap."""
    bounds = [side[KEY].iloc[k - 1] for side in (a, b) if len(side) >= k]  # the k-th smallest
    if bounds:
        a, b = a[a[KEY] <= min(bounds)], b[b[KEY] <= min(bounds)]
        if b.empty:
            return a.reset_index(drop=True)
    sample = pd.concat([a, b], ignore_index=True)
    return sample.sort_values(KEY, kind="stable").head(k).reset_index(drop=True)


class BottomK:
    """`merge_bottom_k` over a long run of samples, in linear time: candidates are gathered and
    cut back to the k smallest keys (unsorted) only when twice k are held, and anything above the
    k-th smallest key seen so far is left out at once. `result()` is what merging them pairwise
    gives."""

    def __init__(self, k: int):
        self.k = k
        self.parts: list[pd.DataFrame] = []
        self.held = 0
        self.bound: np.uint64 | None = None

    def add(self, sample: pd.DataFrame) -> None:
        if self.bound is not None:
            sample = sample[sample[KEY] <= self.bound]
        if sample.empty:
            return
        self.parts.append(sample)
        self.held += len(sample)
        if self.held >= 2 * self.k:
            self._cut()

    def _cut(self) -> None:
        both = pd.concat(self.parts, ignore_index=True)
        if len(both) > self.k:
            keys = both[KEY].to_numpy()
            both = both.iloc[np.argpartition(keys, self.k - 1)[: self.k]]
            self.bound = both[KEY].max()
        self.parts, self.held = [both], len(both)

    def result(self) -> pd.DataFrame | None:
        if not self.parts:
            return None
        self._cut()
        return self.parts[0].sort_values(KEY, kind="stable").reset_index(drop=True)


def summarize(
    frame: pd.DataFrame,
    *,
    kinds: dict[str, Kind],
    edges: dict[str, list[float]],
    roles: dict[str, Role] | None = None,
    sample_rows: int = 5_000,
    seed: int = 0,
    row_offset: int = 0,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> Summary:
    """Summarise `frame` (rows `row_offset`... of a larger table) against fixed numeric `edges`;
    with `ranges` (the reference's), count the values outside them too."""
    roles = roles or {}
    ranges = ranges or {}
    present = [c for c in kinds if c in frame.columns]

    def column_summary(column: str) -> ColumnSummary:
        role = roles.get(column, "feature")
        if kinds[column] == "numeric":
            values = _numeric_values(frame[column], column)
            return _numeric_summary(values, edges[column], role, ranges.get(column))
        return _categorical_summary(frame[column], role)

    # a thread per core pays off only on long columns: below, their start and the GIL held by
    # pandas' text counting cost more than the compiled passes save (measured: 131k rows x 20)
    each = on_every_core if len(frame) >= PARALLEL_ROWS else lambda f, items: [f(i) for i in items]
    columns = dict(zip(present, each(column_summary, present), strict=True))
    keys = row_keys(row_offset, row_offset + len(frame), seed)
    sample = bottom_k(frame[present], keys, sample_rows)
    return Summary(
        rows=len(frame),
        seed=seed,
        sample_rows=sample_rows,
        edges=edges,
        columns=columns,
        sample=sample,
    )


def _merge_column(a: ColumnSummary, b: ColumnSummary) -> ColumnSummary:
    counts = dict(a.counts)
    for key, value in b.counts.items():
        counts[key] = counts.get(key, 0) + value
    bounds = [v for v in (a.minimum, b.minimum) if v is not None]
    tops = [v for v in (a.maximum, b.maximum) if v is not None]
    n_a, n_b = a.present, b.present
    delta = (b.total / n_b if n_b else 0.0) - (a.total / n_a if n_a else 0.0)
    m2 = a.m2 + b.m2 + (delta * delta * n_a * n_b / (n_a + n_b) if n_a and n_b else 0.0)
    return ColumnSummary(
        kind=a.kind,
        role=a.role,
        rows=a.rows + b.rows,
        missing=a.missing + b.missing,
        infinite=a.infinite + b.infinite,
        total=a.total + b.total,
        m2=m2,
        minimum=min(bounds) if bounds else None,
        maximum=max(tops) if tops else None,
        counts=counts,
        below_range=a.below_range + b.below_range,
        above_range=a.above_range + b.above_range,
    )


def merge(a: Summary, b: Summary) -> Summary:
    """The summary of the two tables together (same edges and seed; disjoint row numbers)."""
    if a.edges != b.edges or a.seed != b.seed or a.sample_rows != b.sample_rows:
        raise DriftInputError("only summaries with the same edges, seed and sample size merge")
    columns = {
        c: _merge_column(a.columns[c], b.columns[c]) if c in b.columns else a.columns[c]
        for c in a.columns
    } | {c: s for c, s in b.columns.items() if c not in a.columns}
    sample = merge_bottom_k(a.sample, b.sample, a.sample_rows)
    return Summary(
        rows=a.rows + b.rows,
        seed=a.seed,
        sample_rows=a.sample_rows,
        edges=a.edges,
        columns=columns,
        sample=sample,
    )


def iter_chunks(
    source: str | Path | pd.DataFrame, *, chunk_rows: int = 250_000
) -> Iterator[pd.DataFrame]:
    """A DataFrame as it is, a Parquet file by record batches, a CSV file in chunks: bounded memory."""
    if isinstance(source, pd.DataFrame):
        yield source
        return
    path = Path(source)
    if not path.is_file():
        raise DriftInputError(f"{path}: no such file")
    if path.suffix.lower() in {".parquet", ".pq"}:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    else:
        yield from pd.read_csv(path, chunksize=chunk_rows)


def summarize_chunks(
    chunks: Iterable[pd.DataFrame],
    *,
    kinds: dict[str, Kind],
    edges: dict[str, list[float]],
    roles: dict[str, Role] | None = None,
    sample_rows: int = 5_000,
    seed: int = 0,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> tuple[Summary, pd.DataFrame]:
    """Merge the summaries of consecutive chunks; also return the data's columns and dtypes (as a
    frame with no rows), for the columns the reference does not know."""
    summary: Summary | None = None
    offset = 0
    schema = pd.DataFrame()
    for chunk in chunks:
        schema = chunk.iloc[:0]
        part = summarize(
            chunk,
            kinds=kinds,
            edges=edges,
            roles=roles,
            sample_rows=sample_rows,
            seed=seed,
            row_offset=offset,
            ranges=ranges,
        )
        summary = part if summary is None else merge(summary, part)
        offset += len(chunk)
    if summary is None or summary.rows == 0:
        raise DriftInputError("the current data has no rows; nothing to compare")
    return summary, schema

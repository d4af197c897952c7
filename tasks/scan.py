"""Data larger than memory: the contract, the quality statistics and drift over a Parquet dataset.

A dataset is a folder or object-storage prefix of Parquet files, hive partitions allowed
(`region=north/part-0.parquet`: `region` becomes a column). It is read one piece at a time and
every piece gives a `PieceScan`: its rows validated against the contract (bad rows written to
the quarantine as a Parquet part of their own, with their dataset row numbers), the mergeable drift
`Summary` of its valid rows, and the counts the quality expectations are judged on. Scans merge
(`merge_scans`), so the same code runs

- on one machine: `scan_dataset` reads record batches through `pyarrow.dataset`, so memory holds
  one batch at a time, whatever the dataset's size;
- on a Dask cluster: `scan_on_dask` makes each file a partition of a `dask.dataframe`
  (`dd.from_map`), scans the partitions where they are, and merges their scans in a tree.

Valid rows are keyed for the drift sample by their position among the dataset's valid rows (files
in path order, rows in file order), so record batches of any size give exactly the summary of the
whole table in memory (tested). Dask's partitions are scanned at once, before the valid rows ahead
of them are known, so there rows are keyed by their position in the dataset: the same summary
when no row was quarantined, otherwise the same counts and an equally uniform, other, sample.
"""

from __future__ import annotations

import hashlib
import math
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tasks.data import Batch, batch_id
from tasks.drift.compare import summary_options
from tasks.drift.profile import ReferenceProfile
from tasks.drift.summary import (
    KEY,
    BottomK,
    Summary,
    bottom_k,
    merge,
    merge_bottom_k,
    row_keys,
    summarize,
)
from tasks.errors import DataLoadError, DataValidationError
from tasks.gx_suite import ExpectationResult, QualityReport, Specs
from tasks.sources import ReadLimits, check_dataset, is_folder
from tasks.validate import write_quarantine
from tasks.validate.contract import FeatureSpec
from tasks.validate.rows import validate_rows

#: The kept rows' position among the dataset's valid rows (their order in the training sample).
ROW = "__ct_row__"

_T = TypeVar("_T")

#: Rows per record batch: ~20 MB for 20 float columns, so a few batches fit in any worker.
BATCH_ROWS = 131_072


class PieceScan(BaseModel):
    """What one piece of a dataset (rows `offset`...`offset + rows_in`) gave; merge with
    `merge_scans` in dataset order."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    offset: int
    rows_in: int
    rows_valid: int
    failures: dict[str, int]
    #: Valid values outside each numeric quality range (the suite's ExpectColumnValuesToBeBetween).
    outside: dict[str, int]
    quarantine_parts: list[str]
    summary: Summary | None
    #: The valid rows with the `keep_rows` smallest keys (every column of the contract, and KEY):
    #: a seeded uniform sample of the dataset's valid rows, for what learns from it.
    keep: pd.DataFrame | None = Field(default=None, exclude=True)
    keep_rows: int = 0


#: The training sample's keys are seeded apart from the drift sample's.
KEEP_SEED_OFFSET = 7


def is_dataset(source: str, limits: ReadLimits | None = None) -> bool:
    """A folder (or object-storage prefix) is a Parquet dataset, not one batch file; it must be
    inside the allowed roots and hold Parquet files."""
    if not is_folder(source):
        return False
    check_dataset(source, limits or ReadLimits())
    return True


def dataset_batch(source: str) -> Batch:
    """The dataset's identity without reading its data: the sha256 of its Parquet files' names,
    sizes and modification stamps (ETags on object storage). The same files give the same id,
    so a CT step on it is recognised when it runs again; any changed file gives a new one."""
    found = dataset(source)
    digest = hashlib.sha256()
    rows = 0
    for fragment in sorted(found.get_fragments(), key=lambda f: f.path):
        info = found.filesystem.get_file_info(fragment.path)
        digest.update(f"{fragment.path}\0{info.size}\0{info.mtime_ns}\n".encode())
        rows += fragment.count_rows()  # from the footers: no data read
    if rows == 0:
        raise DataLoadError(source, "the dataset has no rows")
    hexdigest = digest.hexdigest()
    return Batch(
        source=source, batch_id=batch_id(source.rstrip("/"), hexdigest), sha256=hexdigest, rows=rows
    )


def head(source: str, rows: int) -> pd.DataFrame:
    """The dataset's first rows (files in path order), for inferring a first contract."""
    found = dataset(source)
    frames, taken = [], 0
    for frame in record_frames(found, found.schema.names, min(rows, BATCH_ROWS)):
        frames.append(frame)
        taken += len(frame)
        if taken >= rows:
            break
    return pd.concat(frames, ignore_index=True).head(rows)


def training_sample(scan: PieceScan) -> pd.DataFrame:
    """The kept rows in dataset order (their keys dropped): a frame like a batch's valid rows."""
    if scan.keep is None:
        raise DataLoadError("dataset", "no valid rows to learn from")
    ordered = scan.keep.sort_values(ROW, kind="stable") if ROW in scan.keep else scan.keep
    return ordered.drop(columns=[KEY, ROW], errors="ignore").reset_index(drop=True)


def dataset(source: str, columns: list[str] | None = None) -> Any:
    """The Parquet dataset at `source` (a folder or an fsspec URL), hive partitions allowed."""
    import fsspec
    import pyarrow.dataset as ds

    fs, path = fsspec.core.url_to_fs(source)
    if not fs.exists(path):
        raise DataLoadError(source, "no such dataset folder")
    try:
        found = ds.dataset(path, filesystem=fs, format="parquet", partitioning="hive")
    except (OSError, ValueError) as exc:
        raise DataLoadError(source, f"could not be opened as a Parquet dataset: {exc}") from exc
    if columns is not None:
        missing = [c for c in columns if c not in found.schema.names]
        if missing:
            raise DataLoadError(
                source,
                f"has no column(s) {', '.join(missing)}; it has: {', '.join(found.schema.names)}",
            )
    return found


def quality_ranges(specs: Specs) -> dict[str, tuple[float, float]]:
    """The numeric ranges the quality suite checks, by column."""
    return {
        str(kw["column"]): (float(kw["min_value"]), float(kw["max_value"]))
        for name, kw in specs
        if name == "ExpectColumnValuesToBeBetween"
    }


def scan_piece(
    frame: pd.DataFrame,
    offset: int,
    key_offset: int | None = None,
    *,
    spec: FeatureSpec,
    profile: ReferenceProfile,
    ranges: dict[str, tuple[float, float]],
    source: str,
    quarantine_dir: str | None,
    keep_rows: int = 0,
) -> PieceScan:
    """Validate, summarise and count one piece (rows `offset`... of the dataset); its bad rows go
    to a quarantine part. Its valid rows are keyed for the drift sample from `key_offset` (the
    valid rows before it, when known; else `offset`)."""
    frame = frame.reset_index(drop=True)
    valid, records, outcome = validate_rows(
        frame, spec, source=source, max_bad_fraction=1.0, min_rows=0
    )
    parts: list[str] = []
    if len(records) and quarantine_dir is not None:
        records = records.assign(row=np.where(records["row"] >= 0, records["row"] + offset, -1))
        part = Path(quarantine_dir) / f"part-{offset:012d}.parquet"
        parts.append(str(write_quarantine(records, part)))
    columns = [c for c in profile.kinds if c in valid.columns]
    outside = {}
    for column, (low, high) in ranges.items():
        if column in valid.columns:
            values = pd.to_numeric(valid[column], errors="coerce").to_numpy(dtype=float)
            outside[column] = int(np.count_nonzero((values < low) | (values > high)))
    summary = (
        summarize(
            valid[columns],
            row_offset=offset if key_offset is None else key_offset,
            **summary_options(profile),
        )
        if len(valid)
        else None
    )
    keep = None
    if keep_rows and len(valid):
        start = offset if key_offset is None else key_offset
        keys = row_keys(start, start + len(valid), profile.seed + KEEP_SEED_OFFSET)
        keep = bottom_k(
            valid.assign(**{ROW: np.arange(start, start + len(valid))}), keys, keep_rows
        )
    return PieceScan(
        keep=keep,
        keep_rows=keep_rows,
        offset=offset,
        rows_in=outcome.rows_in,
        rows_valid=outcome.rows_valid,
        failures=outcome.failures,
        outside=outside,
        quarantine_parts=parts,
        summary=summary,
    )


def merge_scans(a: PieceScan, b: PieceScan) -> PieceScan:
    """The scan of piece a followed by piece b."""
    failures = dict(a.failures)
    for key, count in b.failures.items():
        failures[key] = failures.get(key, 0) + count
    outside = {c: a.outside.get(c, 0) + b.outside.get(c, 0) for c in {*a.outside, *b.outside}}
    summary = (
        a.summary
        if b.summary is None
        else b.summary
        if a.summary is None
        else merge(a.summary, b.summary)
    )
    keep_rows = max(a.keep_rows, b.keep_rows)
    return PieceScan(
        keep=a.keep
        if b.keep is None
        else b.keep
        if a.keep is None
        else merge_bottom_k(a.keep, b.keep, keep_rows),
        keep_rows=keep_rows,
        offset=min(a.offset, b.offset),
        rows_in=a.rows_in + b.rows_in,
        rows_valid=a.rows_valid + b.rows_valid,
        failures=failures,
        outside=outside,
        quarantine_parts=[*a.quarantine_parts, *b.quarantine_parts],
        summary=summary,
    )


def record_frames(
    found: Any, columns: list[str], batch_rows: int = BATCH_ROWS
) -> Iterator[pd.DataFrame]:
    """The dataset's rows as frames of at most `batch_rows`, files in path order (bounded memory);
    a hive partition key (`day=3/`) asked for is a column of its file's rows."""
    import pyarrow.dataset as ds

    for fragment in sorted(found.get_fragments(), key=lambda f: f.path):
        keys = ds.get_partition_keys(fragment.partition_expression)
        stored = [c for c in columns if c not in keys]
        for batch in fragment.to_batches(columns=stored, batch_size=batch_rows):
            if batch.num_rows:
                frame = batch.to_pandas(split_blocks=True)  # a column per block: no copy
                for column in (c for c in columns if c in keys):
                    frame[column] = keys[column]
                yield frame[columns]


def prefetched(items: Iterator[_T], depth: int = 2) -> Iterator[_T]:
    """`items`, each made on a thread while the one before is worked on: reading and decoding
    the next record batch (pyarrow releases the GIL) overlaps the checks on this one, about 15 %
    of a scan on 2 cores. At most `depth` items wait; the producer's error is raised here, and
    leaving the loop early stops the producer."""
    slots: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def offer(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
        except BaseException as exc:  # raised again in the consumer
            offer((done, exc))
            return
        offer((done, None))

    thread = threading.Thread(target=produce, name="ct-scan-read", daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join()


def scan_pieces(frames: Iterable[pd.DataFrame], **options: Any) -> PieceScan:
    """Scan consecutive pieces and merge them in order."""
    total: PieceScan | None = None
    offset = valid = 0
    kept = BottomK(options.get("keep_rows") or 1)  # the training sample, gathered in linear time
    for frame in frames:
        piece = scan_piece(frame, offset, valid, **options)
        if piece.keep is not None:
            kept.add(piece.keep)
            piece = piece.model_copy(update={"keep": None})
        total = piece if total is None else merge_scans(total, piece)
        offset, valid = offset + len(frame), valid + piece.rows_valid
    if total is None:
        raise DataLoadError(str(options.get("source")), "the dataset has no rows")
    return total.model_copy(update={"keep": kept.result()})


def scan_dataset(
    source: str,
    *,
    spec: FeatureSpec,
    profile: ReferenceProfile,
    ranges: dict[str, tuple[float, float]],
    quarantine_dir: str | None,
    batch_rows: int = BATCH_ROWS,
    keep_rows: int = 0,
) -> PieceScan:
    """Scan a dataset on this machine, one record batch in memory at a time (and, with
    `keep_rows`, a seeded sample of that many valid rows)."""
    found = dataset(source)
    columns = [c for c in spec.columns if c in found.schema.names]
    return scan_pieces(
        prefetched(record_frames(found, columns, batch_rows)),
        spec=spec,
        profile=profile,
        ranges=ranges,
        source=source,
        quarantine_dir=quarantine_dir,
        keep_rows=keep_rows,
    )


def _read_file(path: str, filesystem: Any, columns: list[str]) -> pd.DataFrame:
    import pyarrow.dataset as ds

    return (
        ds.dataset(path, filesystem=filesystem, format="parquet")
        .to_table(columns=columns)
        .to_pandas()
    )


def scan_on_dask(
    source: str,
    *,
    spec: FeatureSpec,
    profile: ReferenceProfile,
    ranges: dict[str, tuple[float, float]],
    quarantine_dir: str | None,
    client: Any = None,
) -> PieceScan:
    """Scan a dataset as a `dask.dataframe` with one partition per file, on `client`'s cluster (or
    Dask's default scheduler): each partition is scanned where it lives, and the scans are merged
    pairwise in a tree, in dataset order. Files are read whole: keep them to a size a worker holds
    (a few hundred MB), as Dask advises for partitions. Hive partition columns are not added on
    this path; use `scan_dataset` for a hive-partitioned dataset whose partition keys are features."""
    import dask
    import dask.dataframe as dd

    found = dataset(source)
    files = sorted(found.get_fragments(), key=lambda f: f.path)
    if not files:
        raise DataLoadError(source, "the dataset has no files")
    columns = [c for c in spec.columns if c in files[0].physical_schema.names]
    sizes = [f.count_rows() for f in files]  # from the files' footers: no data read
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
    frame = dd.from_map(
        _read_file,
        [f.path for f in files],
        filesystem=found.filesystem,
        columns=columns,
        meta=files[0].physical_schema.empty_table().select(columns).to_pandas(),
        enforce_metadata=False,
    )
    options = {
        "spec": spec,
        "profile": profile,
        "ranges": ranges,
        "source": source,
        "quarantine_dir": quarantine_dir,
    }
    level = [
        dask.delayed(scan_piece)(part, offset, **options)
        for part, offset in zip(frame.to_delayed(), offsets, strict=True)
    ]
    while len(level) > 1:  # a tree: log2(files) rounds of pairwise merges, in order
        level = [
            dask.delayed(merge_scans)(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
    scan: PieceScan = client.compute(level[0]).result() if client else level[0].compute()
    return scan


def check_bad_fraction(scan: PieceScan, source: str, max_bad_fraction: float) -> None:
    """Refuse the dataset, as a batch is refused, when too many of its rows were bad (they are
    all in the quarantine parts already)."""
    bad = scan.rows_in - scan.rows_valid
    if scan.rows_in and bad / scan.rows_in > max_bad_fraction:
        top = sorted(scan.failures.items(), key=lambda kv: -kv[1])
        column, _, rule = top[0][0].partition(": ")
        raise DataValidationError(
            source,
            [{"column": column, "check": rule, "failure_case": f"{top[0][1]} rows", "row": None}],
            detail=f"{bad} of {scan.rows_in} rows ({bad / scan.rows_in:.1%}) broke the contract, "
            f"over validation.max_bad_fraction {max_bad_fraction:.1%}",
            quarantine_path=str(Path(scan.quarantine_parts[0]).parent)
            if scan.quarantine_parts
            else None,
        )


def quality_from_scan(specs: Specs, scan: PieceScan) -> QualityReport:
    """The quality suite's verdicts from the scan's counts, with the suite's own rules (each
    `mostly` is a share of the non-null values; the null check's of all rows), so that a dataset
    no machine can hold is judged as the great-expectations suite judges a batch (tested equal)."""
    summary = scan.summary
    results = []
    for name, kw in specs:
        column = kw.get("column")
        col = None if summary is None or column is None else summary.columns.get(str(column))
        present = 0 if col is None else col.rows - col.missing
        if name == "ExpectTableRowCountToBeBetween":
            rows = scan.rows_valid
            ok = kw["min_value"] <= rows <= kw["max_value"]
            results.append(_result(name, None, ok, str(rows), None, kw))
        elif name == "ExpectColumnToExist":
            results.append(_result(name, column, col is not None, str(col is not None), None, kw))
        elif col is None:
            results.append(_result(name, column, False, "column missing", None, kw))
        elif name == "ExpectColumnValuesToNotBeNull":
            share = col.missing / col.rows if col.rows else 0.0
            ok = 1 - share >= kw.get("mostly", 1.0) - 1e-12
            results.append(_result(name, column, ok, f"{col.missing} null", 100 * share, kw))
        elif name == "ExpectColumnValuesToBeBetween":
            bad = scan.outside.get(str(column), 0)
            share = bad / present if present else 0.0
            ok = 1 - share >= kw.get("mostly", 1.0) - 1e-12
            results.append(_result(name, column, ok, f"{bad} outside", 100 * share, kw))
        elif name == "ExpectColumnValuesToBeInSet":
            allowed = {str(v) for v in kw["value_set"]}
            bad = sum(n for label, n in col.counts.items() if label not in allowed)
            share = bad / present if present else 0.0
            ok = 1 - share >= kw.get("mostly", 1.0) - 1e-12
            results.append(_result(name, column, ok, f"{bad} not in set", 100 * share, kw))
        else:
            raise ValueError(f"no count-based rule for expectation {name}")
    failed = sum(not r.success for r in results)
    return QualityReport(
        success=failed == 0, evaluated=len(results), failed=failed, results=results
    )


def _result(
    name: str, column: Any, ok: bool, observed: str, percent: float | None, kw: dict[str, Any]
) -> ExpectationResult:
    return ExpectationResult(
        expectation=re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower(),  # GX's own name for it
        column=None if column is None else str(column),
        success=bool(ok),
        observed=observed,
        unexpected_percent=None if percent is None or math.isnan(percent) else float(percent),
        arguments={k: v for k, v in kw.items() if k != "value_set"}
        | ({"value_set": kw["value_set"]} if "value_set" in kw else {}),
    )

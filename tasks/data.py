"""Reading batches and keeping the history that retraining windows are cut from.

A batch is one file (CSV or Parquet). It gets an id from its name and a content hash, so the same
file read twice is the same batch, and history appends are idempotent. History is one Parquet file
per batch under `<state_dir>/history/<dataset>/`, named so that name order is arrival order.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from tasks.errors import CTError, DataLoadError
from tasks.sources import PARQUET_SUFFIXES, ReadLimits, check_source


class Batch(BaseModel):
    """Identity of a batch: where it came from and what it held."""

    model_config = ConfigDict(frozen=True)

    source: str
    batch_id: str
    sha256: str
    rows: int


class BadLine(BaseModel):
    """A CSV line that could not be split into the header's fields (kept for the quarantine)."""

    model_config = ConfigDict(frozen=True)

    line: str
    fields: int


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample.split("\n", 1)[0] + "\n", delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _read_csv(raw: bytes, name: str, limits: ReadLimits) -> tuple[pd.DataFrame, list[BadLine]]:
    encoding = limits.encoding or "utf-8"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataLoadError(
            name,
            f"is not valid {encoding} (bad byte {raw[exc.start : exc.start + 1]!r} at offset {exc.start}); "
            "set validation.encoding in the config, e.g. latin-1",
        ) from exc
    except LookupError as exc:
        raise DataLoadError(name, f"unknown encoding {encoding!r} in validation.encoding") from exc
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise DataLoadError(name, "has no columns (empty CSV)")
    delimiter = limits.delimiter or _sniff_delimiter(text[:65536])
    header = next(csv.reader(io.StringIO(text.split("\n", 1)[0]), delimiter=delimiter))
    seen: dict[str, int] = {}
    for position, column in enumerate(header, 1):
        if column in seen:
            raise DataLoadError(
                name,
                f"has duplicated column names: {column!r} (columns {seen[column]} and {position})",
            )
        seen[column] = position
    if limits.delimiter and len(header) == 1:
        other = [d for d in ",;\t|" if d != delimiter and d in header[0]]
        if other:
            raise DataLoadError(
                name,
                f"has one column with the configured delimiter {delimiter!r}, but the header holds "
                f"{other[0]!r}; fix validation.delimiter",
            )
    nrows = None if limits.max_rows is None else limits.max_rows + 1
    try:
        return pd.read_csv(io.StringIO(text), sep=delimiter, nrows=nrows), []
    except pd.errors.ParserError:
        pass
    bad: list[BadLine] = []

    def keep(fields: list[str]) -> None:
        bad.append(BadLine(line=delimiter.join(fields), fields=len(fields)))
        return None

    frame = pd.read_csv(
        io.StringIO(text), sep=delimiter, nrows=nrows, engine="python", on_bad_lines=keep
    )
    return frame, bad


def read_batch(
    source: str | Path, limits: ReadLimits | None = None
) -> tuple[pd.DataFrame, Batch, list[BadLine]]:
    """Read one CSV or Parquet batch (local path or fsspec URL) within `limits`.

    Every failure is a `DataLoadError` naming the file and the problem. CSV lines with the wrong
    number of fields are returned as `BadLine`s for the quarantine instead of failing the batch.
    """
    limits = limits or ReadLimits()
    name = str(source)
    found = check_source(name, limits)
    fs, path, suffix = found.fs, found.path, found.suffix
    try:
        with fs.open(path, "rb") as handle:
            raw = handle.read()
    except PermissionError as exc:
        raise DataLoadError(name, f"cannot be read: permission denied ({exc.strerror})") from exc
    bad: list[BadLine] = []
    try:
        if suffix in PARQUET_SUFFIXES:
            frame = pd.read_parquet(io.BytesIO(raw))
        else:
            frame, bad = _read_csv(raw, name, limits)
    except DataLoadError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise DataLoadError(name, "has no columns (empty CSV)") from exc
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        kind = "Parquet" if suffix in PARQUET_SUFFIXES else "CSV"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataLoadError(name, f"could not be read as {kind}: {first}") from exc
    if frame.empty and not bad:
        raise DataLoadError(name, "has a header but no rows")
    if limits.max_rows is not None and len(frame) > limits.max_rows:
        raise DataLoadError(
            name, f"has more than {limits.max_rows:,} rows (validation.max_rows); split it"
        )
    digest = hashlib.sha256(raw).hexdigest()
    batch = Batch(source=name, batch_id=batch_id(path, digest), sha256=digest, rows=len(frame))
    return frame, batch, bad


def batch_id(path: str, digest: str) -> str:
    """A batch's id: its file's stem and the start of its content's sha256, so the same bytes under
    the same name are the same batch (what makes a re-run recognisable) and a name reused for new
    data is not."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path).stem)[:48] or "batch"
    return f"{stem}-{digest[:12]}"


def require_columns(frame: pd.DataFrame, wanted: list[str], source: str) -> None:
    """Fail early, in one line, when a file shares no column at all with the configuration."""
    if not set(wanted) & set(map(str, frame.columns)):
        found = ", ".join(map(str, frame.columns[:8])) + (" ..." if frame.shape[1] > 8 else "")
        raise DataLoadError(
            source,
            f"has none of the configured columns ({', '.join(wanted)}); it has: {found}. "
            "Check dataset.target and the feature lists in your config.",
        )


def _history_files(history_dir: Path) -> list[Path]:
    return sorted(history_dir.glob("*.parquet")) if history_dir.is_dir() else []


def append_history(frame: pd.DataFrame, batch: Batch, history_dir: Path) -> Path:
    """Store a validated batch in history once; appending the same batch again is a no-op."""
    history_dir.mkdir(parents=True, exist_ok=True)
    for existing in _history_files(history_dir):
        if existing.stem.split("_", 1)[-1] == batch.batch_id:
            return existing
    sequence = len(_history_files(history_dir)) + 1
    while True:
        target = history_dir / f"{sequence:06d}_{batch.batch_id}.parquet"
        tmp = history_dir / f".{target.name}.{os.getpid()}.tmp"
        frame.to_parquet(tmp, index=False)
        try:
            os.link(tmp, target)  # exclusive: two writers never share a sequence number
            return target
        except FileExistsError:
            sequence += 1
        finally:
            tmp.unlink(missing_ok=True)


def read_history(
    history_dir: Path, *, last: int, before: str | None = None
) -> list[tuple[str, pd.DataFrame]]:
    """The `last` batches that arrived before batch `before` (all, if None), oldest first."""
    files = _history_files(history_dir)
    ids = [f.stem.split("_", 1)[-1] for f in files]
    if before is not None and before in ids:
        files, ids = files[: ids.index(before)], ids[: ids.index(before)]
    if last <= 0:
        return []
    return [(i, pd.read_parquet(f)) for i, f in zip(ids[-last:], files[-last:], strict=True)]


def read_history_batch(history_dir: Path, batch_id: str) -> pd.DataFrame:
    """One stored batch, by id."""
    for path in _history_files(history_dir):
        if path.stem.split("_", 1)[-1] == batch_id:
            return pd.read_parquet(path)
    raise DataLoadError(str(history_dir), f"holds no batch {batch_id!r}")


# ---------------------------------------------------------------- Prefect tasks
def retry_unless_ct_error(task: object, task_run: object, state: object) -> bool:
    """Retry storage hiccups, never a failure ct raised on purpose (a bad file stays bad)."""
    return not isinstance(state.result(raise_on_failure=False), CTError)  # type: ignore[attr-defined]


@task(
    name="load-batch",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_unless_ct_error,
    cache_policy=NO_CACHE,
)
def load_batch(
    source: str, *, limits: ReadLimits, wanted: list[str]
) -> tuple[pd.DataFrame, Batch, list[BadLine]]:
    """Read the batch and check that it shares columns with the configuration."""
    frame, batch, bad = read_batch(source, limits)
    require_columns(frame, wanted, source)
    get_run_logger().info(
        "Loaded %s: %d rows x %d columns (batch %s)", source, *frame.shape, batch.batch_id
    )
    if bad:
        get_run_logger().warning(
            "%s: %d CSV lines had the wrong number of fields", source, len(bad)
        )
    return frame, batch, bad


@task(name="append-history", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def store_history(frame: pd.DataFrame, batch: Batch, history_dir: str) -> str:
    """Keep the validated batch for later training windows (idempotent)."""
    return str(append_history(frame, batch, Path(history_dir)))

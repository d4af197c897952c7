"""Reading batches and keeping the history that retraining windows are cut from.

A batch is one file (CSV or Parquet). It gets an id from its name and a content hash, so the same
file read twice is the same batch, and history appends are idempotent. History is one Parquet file
per batch under `<state_dir>/history/<dataset>/`, named so that name order is arrival order.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from tasks.errors import CTError, DataLoadError

PARQUET_SUFFIXES = {".parquet", ".pq"}
CSV_SUFFIXES = {".csv", ".txt", ".tsv"}


class Batch(BaseModel):
    """Identity of a batch: where it came from and what it held."""

    model_config = ConfigDict(frozen=True)

    source: str
    batch_id: str
    sha256: str
    rows: int


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_batch(source: str | Path, *, max_rows: int | None = None) -> tuple[pd.DataFrame, Batch]:
    """Read one CSV or Parquet batch; every failure becomes a `DataLoadError` naming the file."""
    path = Path(source)
    name = str(source)
    if not path.exists():
        raise DataLoadError(
            name, "file not found; check the path (it is relative to the current folder)"
        )
    if path.is_dir():
        raise DataLoadError(name, "is a directory; pass one CSV or Parquet file")
    if path.stat().st_size == 0:
        raise DataLoadError(name, "file is empty (0 bytes)")
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            frame = pd.read_parquet(path)
        elif suffix in CSV_SUFFIXES or suffix == "":
            sep = "\t" if suffix == ".tsv" else ","
            frame = pd.read_csv(path, sep=sep, nrows=None if max_rows is None else max_rows + 1)
        else:
            raise DataLoadError(name, f"unsupported file type {suffix!r}; use .csv or .parquet")
    except DataLoadError:
        raise
    except PermissionError as exc:
        raise DataLoadError(name, f"cannot be read: permission denied ({exc.strerror})") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataLoadError(name, "has no columns (empty CSV)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        kind = "Parquet" if suffix in PARQUET_SUFFIXES else "CSV"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataLoadError(name, f"could not be read as {kind}: {first}") from exc
    if frame.empty:
        raise DataLoadError(name, "has a header but no rows")
    if max_rows is not None and len(frame) > max_rows:
        raise DataLoadError(name, f"has more than {max_rows} rows (validation.max_rows); split it")
    digest = file_sha256(path)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem)[:48] or "batch"
    return frame, Batch(
        source=name, batch_id=f"{stem}-{digest[:12]}", sha256=digest, rows=len(frame)
    )


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
def load_batch(source: str, *, max_rows: int, wanted: list[str]) -> tuple[pd.DataFrame, Batch]:
    """Read the batch and check that it shares columns with the configuration."""
    frame, batch = read_batch(source, max_rows=max_rows)
    require_columns(frame, wanted, source)
    get_run_logger().info(
        "Loaded %s: %d rows x %d columns (batch %s)", source, *frame.shape, batch.batch_id
    )
    return frame, batch


@task(name="append-history", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def store_history(frame: pd.DataFrame, batch: Batch, history_dir: str) -> str:
    """Keep the validated batch for later training windows (idempotent)."""
    return str(append_history(frame, batch, Path(history_dir)))

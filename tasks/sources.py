"""Where a batch may come from and what it may be, checked before anything reads it.

Light on purpose (no pandas, no Prefect): the CLI runs these checks before it starts Prefect, so a
missing file or a path outside the allowed roots is reported in a second, not after a server
start-up; `tasks.data.read_batch` runs the same checks, so the messages are the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tasks.config import ValidationConfig
from tasks.errors import DataLoadError

PARQUET_SUFFIXES = {".parquet", ".pq"}
CSV_SUFFIXES = {".csv", ".txt", ".tsv"}


class ReadLimits(BaseModel):
    """What a batch file may be: where it lives, how big, how it is encoded and delimited."""

    model_config = ConfigDict(frozen=True)

    max_rows: int | None = None
    max_bytes: int | None = None
    #: Local folders or URL prefixes a batch must be under; None allows any.
    allowed_roots: list[str] | None = None
    encoding: str | None = None
    delimiter: str | None = None

    @classmethod
    def of(cls, rules: ValidationConfig) -> ReadLimits:
        """The read limits a configuration sets."""
        return cls(
            max_rows=rules.max_rows,
            max_bytes=rules.max_bytes,
            allowed_roots=rules.allowed_roots,
            encoding=rules.encoding,
            delimiter=rules.delimiter,
        )


def _is_url(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


def check_allowed(source: str, roots: list[str] | None) -> None:
    """Refuse a path outside the allowed roots (resolved, so `..` and symlinks cannot escape)."""
    if roots is None:
        return
    if _is_url(source):
        if any(source.startswith(root.rstrip("/") + "/") for root in roots if "://" in root):
            return
    else:
        resolved = Path(source.removeprefix("file://")).resolve()
        for root in roots:
            if "://" in root:
                continue
            if resolved.is_relative_to(Path(root).resolve()):
                return
    raise DataLoadError(
        source,
        f"is outside the allowed roots ({', '.join(roots)}); move it there or extend validation.allowed_roots",
    )


@dataclass(frozen=True)
class Source:
    """A batch file that passed the checks: its filesystem, path, size and kind."""

    fs: Any
    path: str
    size: int
    suffix: str


def check_source(source: str, limits: ReadLimits) -> Source:
    """Every check that needs no reading: allowed roots, existence, a file not a folder, not
    empty, within max_bytes, a CSV or Parquet name. Raises DataLoadError naming the file."""
    import fsspec

    check_allowed(source, limits.allowed_roots)
    if _is_url(source):
        fs, path = fsspec.core.url_to_fs(source)
        if not fs.exists(path):
            raise DataLoadError(source, "not found at that URL")
        if fs.isdir(path):
            raise DataLoadError(
                source, "is a folder; pass one CSV or Parquet file, or a folder of Parquet files"
            )
        size = int(fs.size(path))
    else:
        local = Path(source.removeprefix("file://"))
        if not local.exists():
            raise DataLoadError(
                source, "file not found; check the path (it is relative to the current folder)"
            )
        if local.is_dir():
            raise DataLoadError(
                source,
                "is a directory; pass one CSV or Parquet file, or a folder of Parquet files",
            )
        fs, path, size = fsspec.filesystem("file"), str(local), local.stat().st_size
    if size == 0:
        raise DataLoadError(source, "file is empty (0 bytes)")
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise DataLoadError(
            source,
            f"is {size:,} bytes, over the limit of {limits.max_bytes:,} bytes (validation.max_bytes)",
        )
    suffix = Path(path).suffix.lower()
    if suffix not in PARQUET_SUFFIXES | CSV_SUFFIXES | {""}:
        raise DataLoadError(source, f"unsupported file type {suffix!r}; use .csv or .parquet")
    if not _is_url(source) and not os.access(path, os.R_OK):
        raise DataLoadError(source, "cannot be read: permission denied")
    return Source(fs=fs, path=path, size=size, suffix=suffix)


def is_folder(source: str) -> bool:
    """A folder or an object-storage prefix (a dataset), not one file."""
    if not _is_url(source):
        return Path(source.removeprefix("file://")).is_dir()
    import fsspec

    fs, path = fsspec.core.url_to_fs(source)
    return bool(fs.isdir(path))


def check_dataset(source: str, limits: ReadLimits) -> None:
    """A dataset folder (a CT step scans it in record batches): inside the allowed roots, with
    Parquet files in it or in its (hive) subfolders. Raises DataLoadError naming it."""
    import fsspec

    check_allowed(source, limits.allowed_roots)
    fs, path = fsspec.core.url_to_fs(source)
    found = [p for p in fs.find(path) if Path(str(p)).suffix.lower() in PARQUET_SUFFIXES]
    if not found:
        raise DataLoadError(
            source,
            "is a directory with no Parquet files; pass one CSV or Parquet file, or a folder of "
            "Parquet files (a dataset; hive subfolders allowed)",
        )

"""The two storage primitives the registry needs, on a local folder and on object storage.

* `put`: replace a file atomically (a reader sees the old or the new bytes, never half).
* `create`: write a file that must not exist yet, atomically; of two writers exactly one wins,
  the other gets `FileExistsError`.

Local folder: `put` writes a temporary file and renames it over the target; `create` writes a
temporary file and hard-links it to the target (`link` fails if the target exists). Object storage
(S3 and compatible, through s3fs): a single PUT is atomic, and `create` is a conditional PUT with
`If-None-Match: *`, which s3fs sends for `pipe_file(..., mode="create")`; the store refuses it with
412 Precondition Failed when the key exists, and s3fs raises `FileExistsError`.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem


class Store:
    """A folder on some fsspec filesystem, with atomic `put` and exclusive `create`."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        self.fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.root = root.rstrip("/")
        self.local = isinstance(self.fs, LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def put(self, path: str, data: bytes) -> None:
        if not self.local:
            self.fs.pipe_file(path, data)
            return
        os.replace(_complete_temporary(path, data, durable=True), path)
        sync_folder(os.path.dirname(path))

    def create(self, path: str, data: bytes, *, durable: bool = True) -> None:
        """`durable=False` skips the fsyncs, for markers whose loss in a power cut is harmless."""
        if not self.local:
            self.fs.pipe_file(path, data, mode="create")
            return
        tmp = _complete_temporary(path, data, durable=durable)
        try:
            os.link(tmp, path)
        finally:
            os.unlink(tmp)
        if durable:
            sync_folder(os.path.dirname(path))

    def sync(self, folder: str) -> None:
        """Make a folder's entries durable (its new files' names); object storage needs nothing."""
        if self.local:
            sync_folder(folder)

    def read(self, path: str) -> bytes:
        return bytes(self.fs.cat_file(path))

    def find(self, path: str) -> list[str]:
        """Every file below `path`, relative to it, sorted; [] when it does not exist. On object
        storage this is one paged listing, not a request per folder."""
        if self.local:
            return sorted(
                os.path.relpath(os.path.join(folder, f), path)
                for folder, _, files in os.walk(path)
                for f in files
            )
        found = self.fs.find(path, withdirs=False)
        self.fs.invalidate_cache(path)  # do not let later listings answer from this snapshot
        prefix = f"{path.rstrip('/')}/"
        return sorted(str(p)[len(prefix) :] for p in found if str(p).startswith(prefix))

    def children(self, path: str) -> list[str]:
        """Names directly under `path` (files and folders); [] when it does not exist."""
        try:
            entries = (
                self.fs.ls(path, detail=False, refresh=True)
                if not self.local
                else self.fs.ls(path, detail=False)
            )
        except FileNotFoundError:
            return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)


def sync_folder(folder: str) -> None:
    """fsync a local folder, so the names of files just linked or renamed into it survive a power
    cut (a file's own fsync does not cover its name on every filesystem)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _complete_temporary(path: str, data: bytes, *, durable: bool) -> str:
    """`data` written in full (and fsync'd if `durable`) to a hidden file beside `path`, whose
    name no listing of the registry matches; the caller renames or links it into place."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{os.path.dirname(path)}/.{os.path.basename(path)}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    return tmp

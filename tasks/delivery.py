"""Copying a champion into a serving folder, atomically, keeping the previous one for rollback.

    <serving>/<name>/v7/model.skops, manifest.json   one folder per delivered version
    <serving>/<name>/current -> v7                   a symlink, switched with one rename
    <serving>/<name>/previous -> v6                  the one before, for a rollback

A version folder is assembled under a temporary name and renamed into place; `current` is replaced
by renaming a new symlink over it, so a server reading `current/` sees the old or the new model,
never a mix. Older versions beyond `previous` are removed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from blocks.registry import ModelRegistry


class Delivery(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    path: str
    sha256: str
    previous: int | None


def _point(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex}")
    os.symlink(target, tmp)
    os.replace(tmp, link)


def deliver_version(
    registry: ModelRegistry, name: str, version: int, serving_dir: Path
) -> Delivery:
    """Put `version` of `name` into service under `serving_dir` and return what was done."""
    mv = registry.get(name, version=version)
    model = registry.read_file(mv, "model.skops")  # checked against this sha256
    sha = mv.files["model.skops"]
    folder = serving_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"v{version}"
    if not target.exists():
        staging = folder / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        (staging / "model.skops").write_bytes(model)
        manifest = {
            "name": name,
            "version": version,
            "sha256": sha,
            "metrics": mv.metadata.get("metrics", {}),
            "decision": mv.metadata.get("decision"),
            "registry": registry.url,
            "delivered_at": datetime.now(UTC).isoformat(),
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        try:
            staging.rename(target)
        except OSError:  # another delivery of the same version won the rename
            shutil.rmtree(staging, ignore_errors=True)
    current = folder / "current"
    before = os.readlink(current) if current.is_symlink() else None
    previous = int(before[1:]) if before and before != f"v{version}" else None
    if previous is not None:
        _point(folder / "previous", f"v{previous}")
    _point(current, f"v{version}")
    keep = {f"v{version}"}
    if (folder / "previous").is_symlink():  # whatever it points at, just set or from before
        keep.add(os.readlink(folder / "previous"))
    for old in folder.glob("v*"):
        if old.is_dir() and old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
    return Delivery(name=name, version=version, path=str(target), sha256=sha, previous=previous)

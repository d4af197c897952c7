"""`ModelRegistry`: a Prefect block that stores model versions and moves the `champion` alias.

It stores and retrieves; it decides nothing (the gate does). Layout under `url`:

    <name>/versions/000001/model.skops        the model, saved with skops (loading runs no code)
    <name>/versions/000001/profile.json       the drift reference profile
    <name>/versions/000001/metadata.json      written last: a version without it does not exist
    <name>/aliases/champion/00000001.json     append-only log; the newest entry is the truth

A version number is claimed by an exclusive `mkdir`, never by writing "max + 1"; every file is
written to a temporary name and renamed into place; metadata.json and alias entries are published
with `os.link`, which fails if the name exists, so of two racers exactly one wins. Each file's
sha256 is recorded in metadata.json and checked on load.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, ClassVar

import skops.io
from prefect.blocks.core import Block
from pydantic import BaseModel, ConfigDict, Field

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PACKAGES = ("prefect", "scikit-learn", "pandas", "numpy", "scipy", "pandera", "skops")

#: Types outside skops' defaults that a stored model may contain; reviewed, never taken from the file.
TRUSTED_TYPES: list[str] = [
    "numpy.dtype",  # OneHotEncoder(dtype=...): builds a dtype, runs no code
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]


class RegistryError(Exception):
    """The registry refused an operation or found a damaged entry."""


class AliasConflictError(RegistryError):
    """A compare-and-swap on an alias lost: the alias moved since it was read."""


class ModelVersion(BaseModel):
    """One complete, immutable version: its number, where it lives, and its metadata."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    path: str
    created_at: datetime
    files: dict[str, str] = Field(description="file name -> sha256")
    metadata: dict[str, Any]


class AliasEntry(BaseModel):
    """One line of an alias's audit log."""

    model_config = ConfigDict(frozen=True)

    sequence: int
    alias: str
    version: int
    previous: int | None
    reason: str
    run_id: str | None
    at: datetime


def _check_name(kind: str, value: str) -> str:
    if not _NAME.match(value) or ".." in value:
        raise RegistryError(
            f"invalid {kind} {value!r}: use 1-64 letters, digits, '_', '.', '-' (no '..' or '/')"
        )
    return value


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _publish_exclusive(path: Path, data: bytes) -> None:
    """Make `path` appear complete, or raise FileExistsError if someone else got there first."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _package_versions() -> dict[str, str]:
    found = {}
    for package in _PACKAGES:
        try:
            found[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


class ModelRegistry(Block):
    """Immutable model versions with lineage, and a `champion` alias moved by compare-and-swap."""

    _block_type_name: ClassVar[str] = "CT Model Registry"
    _block_type_slug: ClassVar[str] = "ct-model-registry"
    _description: ClassVar[str] = (
        "Model versions (skops files, metadata, drift reference) and their champion alias."
    )

    url: str = Field(
        default=".ct/registry", description="Folder that holds the registry (local path)."
    )

    def block_initialization(self) -> None:
        if not self.url.strip():
            raise RegistryError("ModelRegistry.url is empty; give a folder, e.g. '.ct/registry'")

    # ----------------------------------------------------------------- paths
    @property
    def root(self) -> Path:
        return Path(self.url).expanduser()

    def _versions_dir(self, name: str) -> Path:
        return self.root / _check_name("model name", name) / "versions"

    def _alias_dir(self, name: str, alias: str) -> Path:
        return self.root / _check_name("model name", name) / "aliases" / _check_name("alias", alias)

    # ----------------------------------------------------------------- writing
    def register(
        self,
        name: str,
        model: Any,
        *,
        metrics: dict[str, float],
        lineage: dict[str, Any],
        schema: dict[str, Any],
        profile: dict[str, Any] | None = None,
        decision: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Store a new immutable version; it becomes visible only once every file is in place."""
        versions = self._versions_dir(name)
        versions.mkdir(parents=True, exist_ok=True)
        number = len([p for p in versions.iterdir() if p.name.isdigit()]) + 1
        while True:
            folder = versions / f"{number:06d}"
            try:
                folder.mkdir()  # the exclusive claim of this version number
                break
            except FileExistsError:
                number += 1
        files: dict[str, bytes] = {"model.skops": skops.io.dumps(model)}
        if profile is not None:
            files["profile.json"] = json.dumps(profile, allow_nan=False).encode()
        for file_name, data in files.items():
            _write_atomic(folder / file_name, data)
        created = datetime.now(UTC)
        meta = {
            "name": name,
            "version": number,
            "created_at": created.isoformat(),
            "files": {file_name: _sha256(data) for file_name, data in files.items()},
            "metrics": metrics,
            "decision": decision,
            "lineage": {**lineage, "packages": _package_versions()},
            "schema": schema,
        }
        _publish_exclusive(
            folder / "metadata.json", json.dumps(meta, indent=2, default=str).encode()
        )
        return self._read_version(name, number)

    def promote(
        self,
        name: str,
        version: int,
        *,
        expected_champion: int | None,
        reason: str = "",
        run_id: str | None = None,
        alias: str = "champion",
    ) -> AliasEntry:
        """Point `alias` at `version` if it still points at `expected_champion` (compare-and-swap)."""
        self._read_version(name, version)  # only complete versions can be promoted
        folder = self._alias_dir(name, alias)
        folder.mkdir(parents=True, exist_ok=True)
        latest = self._latest_entry(name, alias)
        current = latest.version if latest else None
        if current != expected_champion:
            raise AliasConflictError(
                f"{name}: {alias} is version {current}, not the expected {expected_champion}; "
                "another run moved it. Re-read the champion and decide again."
            )
        entry = AliasEntry(
            sequence=(latest.sequence if latest else 0) + 1,
            alias=alias,
            version=version,
            previous=current,
            reason=reason,
            run_id=run_id,
            at=datetime.now(UTC),
        )
        try:
            _publish_exclusive(
                folder / f"{entry.sequence:08d}.json", entry.model_dump_json().encode()
            )
        except FileExistsError as exc:
            raise AliasConflictError(
                f"{name}: {alias} was moved by another run while this one promoted version {version}"
            ) from exc
        return entry

    # ----------------------------------------------------------------- reading
    def versions(self, name: str) -> list[int]:
        """Numbers of the complete versions, ascending."""
        folder = self._versions_dir(name)
        if not folder.is_dir():
            return []
        return sorted(
            int(p.name)
            for p in folder.iterdir()
            if p.name.isdigit() and (p / "metadata.json").is_file()
        )

    def alias_log(self, name: str, alias: str = "champion") -> list[AliasEntry]:
        folder = self._alias_dir(name, alias)
        if not folder.is_dir():
            return []
        entries = [
            AliasEntry.model_validate_json(p.read_bytes())
            for p in sorted(folder.glob("[0-9]*.json"))
        ]
        return entries

    def _latest_entry(self, name: str, alias: str) -> AliasEntry | None:
        log = self.alias_log(name, alias)
        return log[-1] if log else None

    def aliases(self, name: str) -> dict[str, int]:
        """Current target of each alias; `previous` is the champion before the current one."""
        log = self.alias_log(name, "champion")
        found = {"champion": log[-1].version} if log else {}
        if log and log[-1].previous is not None:
            found["previous"] = log[-1].previous
        return found

    def get(
        self, name: str, *, version: int | None = None, alias: str | None = None
    ) -> ModelVersion:
        """A complete version by number or alias; a missing one is a `RegistryError`."""
        if version is None:
            entry = self._latest_entry(name, alias or "champion")
            if entry is None:
                raise RegistryError(f"{name}: no {alias or 'champion'} yet; run a CT step first")
            version = entry.version
        return self._read_version(name, version)

    def champion(self, name: str) -> ModelVersion | None:
        entry = self._latest_entry(name, "champion")
        return None if entry is None else self._read_version(name, entry.version)

    def _read_version(self, name: str, version: int) -> ModelVersion:
        folder = self._versions_dir(name) / f"{version:06d}"
        meta_path = folder / "metadata.json"
        if not meta_path.is_file():
            raise RegistryError(f"{name}: version {version} does not exist (no {meta_path})")
        try:
            meta = json.loads(meta_path.read_bytes())
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{meta_path}: damaged metadata ({exc})") from exc
        return ModelVersion(
            name=name,
            version=version,
            path=str(folder),
            created_at=datetime.fromisoformat(meta["created_at"]),
            files=meta["files"],
            metadata=meta,
        )

    def read_file(self, mv: ModelVersion, file_name: str) -> bytes:
        """The bytes of one artifact of a version, after checking its sha256."""
        if file_name not in mv.files:
            raise RegistryError(f"{mv.name} v{mv.version} has no {file_name}")
        path = Path(mv.path) / file_name
        data = path.read_bytes()
        if _sha256(data) != mv.files[file_name]:
            raise RegistryError(
                f"{path}: sha256 does not match metadata.json; the file was altered"
            )
        return data

    def load_model(
        self, name: str, *, version: int | None = None, alias: str | None = "champion"
    ) -> Any:
        """The fitted model, loaded by skops with an explicit trusted-type list (no pickle)."""
        mv = self.get(name, version=version, alias=None if version is not None else alias)
        return self.load_model_of(mv)

    def load_model_of(self, mv: ModelVersion) -> Any:
        data = self.read_file(mv, "model.skops")
        try:
            return skops.io.loads(data, trusted=TRUSTED_TYPES)
        except skops.io.exceptions.UntrustedTypesFoundException as exc:
            raise RegistryError(
                f"{mv.path}/model.skops contains types outside the trusted list: {exc}"
            ) from exc

    def load_profile(self, mv: ModelVersion) -> dict[str, Any]:
        """The drift reference profile stored with a version (JSON)."""
        return dict(json.loads(self.read_file(mv, "profile.json")))

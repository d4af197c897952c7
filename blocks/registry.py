"""`ModelRegistry`: a Prefect block that stores model versions and moves their aliases.

It stores and retrieves; it decides nothing (the gate does). Layout under `url` (a local folder or
an object-storage URL such as `s3://bucket/registry`):

    <name>/versions/000007/.claim              exclusive create: version 7 is taken
    <name>/versions/000007/model.skops         the model, saved with skops (loading runs no code)
    <name>/versions/000007/profile.json        the drift reference profile
    <name>/versions/000007/metadata.json       written last, exclusively: the version now exists
    <name>/aliases/champion/00000003.json      append-only log; the newest entry is the truth
    <name>/logs/contract/00000012.json         append-only records (e.g. refused batches)
    <name>/steps/<batch_id>.json               a finished CT step on that batch, created once

A version number is claimed by an exclusive create, never by writing "max + 1"; its files are
complete before `metadata.json` (which holds their sha256) appears, so a crash leaves no visible
partial version. An alias moves by creating the next numbered log entry exclusively: a promotion
that read entry n writes entry n + 1, and of two racers exactly one succeeds (compare-and-swap).
The log is the audit trail: when, from which version to which, why, by which run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from typing import Any, ClassVar

from prefect.blocks.core import Block
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from blocks import model_checks
from blocks.errors import AliasConflictError, RegistryError
from blocks.names import NAME_PATTERN, is_name
from blocks.proof import Proof, check_promotion
from blocks.skops_io import load as _load_skops
from blocks.storage import Store

_load_skops()  # skops.io, its trusted lists cached (blocks/skops_io.py): 1-1.5 s less per process
import skops.io  # noqa: E402

_PACKAGES = ("prefect", "scikit-learn", "pandas", "numpy", "scipy", "pandera", "skops")
_NAME = re.compile(NAME_PATTERN)
MAX_CLAIM_ATTEMPTS = 10_000

#: Types outside skops' defaults that a stored model may contain; reviewed, never taken from the
#: file. Why each is safe is written beside it in blocks/model_checks.py.
TRUSTED_TYPES: list[str] = list(model_checks.TRUSTED_TYPES)

#: Models this process loaded and checked, by their file's sha256 and the trusted types asked
#: for: a backtest loads the same few versions step after step, and skops
#: rebuilds and the checks walk every object of a model each time. The file is still read and its
#: sha256 checked on every load; a loaded model is only used to predict, never refitted.
_LOADED: OrderedDict[tuple[str, tuple[str, ...]], Any] = OrderedDict()
_LOADED_MAX = 8  # a step loads the champion and a challenger, a backtest the first model too
_loaded_lock = threading.Lock()


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
    #: None: the alias was cleared (e.g. no challenger any more); the champion is never cleared.
    version: int | None
    previous: int | None
    reason: str
    run_id: str | None
    at: datetime
    #: The champion alias: the test (or the person) that moved it (blocks/proof.py).
    proof: Proof | None = None


def check_name(kind: str, value: str) -> str:
    """Names become path segments: 1-64 safe characters, no '..', no '/'."""
    if not is_name(value):
        raise RegistryError(
            f"invalid {kind} {value!r}: use 1-64 letters, digits, '_', '.', '-' (no '..' or '/')"
        )
    return value


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@functools.cache  # installed versions do not change within a process; reading them is slow
def _package_versions() -> dict[str, str]:
    found = {}
    for package in _PACKAGES:
        try:
            found[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


class ModelRegistry(Block):
    """Immutable model versions with lineage, and aliases (`champion`) moved by compare-and-swap."""

    _block_type_name: ClassVar[str] = "CT Model Registry"
    _block_type_slug: ClassVar[str] = "ct-model-registry"
    _description: ClassVar[str] = (
        "Model versions (skops files, drift profile, metadata with lineage) and their aliases, "
        "on a local folder or object storage."
    )

    url: str = Field(
        default=".ct/registry",
        description="Where the registry lives: a local folder or an fsspec URL (s3://bucket/path).",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Options for the filesystem, e.g. {'client_kwargs': {'endpoint_url': ...}}.",
    )
    key: SecretStr | None = Field(default=None, description="Access key id for object storage.")
    secret: SecretStr | None = Field(default=None, description="Secret access key.")

    def block_initialization(self) -> None:
        if not self.url.strip():
            raise RegistryError("ModelRegistry.url is empty; give a folder, e.g. '.ct/registry'")

    # ----------------------------------------------------------------- storage
    _store: Store | None = PrivateAttr(default=None)

    @property
    def store(self) -> Store:
        cached = self._store
        if cached is None:
            options = dict(self.storage_options)
            if self.key is not None:
                options["key"] = self.key.get_secret_value()
            if self.secret is not None:
                options["secret"] = self.secret.get_secret_value()
            cached = Store(self.url, options)
            self._store = cached
        return cached

    def _versions_dir(self, name: str) -> str:
        return self.store.path(check_name("model name", name), "versions")

    def _aliases_dir(self, name: str) -> str:
        return self.store.path(check_name("model name", name), "aliases")

    def _alias_dir(self, name: str, alias: str) -> str:
        return f"{self._aliases_dir(name)}/{check_name('alias', alias)}"

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
        trusted: Sequence[str] = (),
    ) -> ModelVersion:
        """Store a new immutable version; it becomes visible only once every file is in place.

        A model that holds types neither ct nor the user (`trusted`) reviewed is refused before
        anything is written: it could never be loaded again.
        """
        model_bytes = skops.io.dumps(model)
        unreviewed = sorted(
            set(skops.io.get_untrusted_types(data=model_bytes)) - set(TRUSTED_TYPES) - set(trusted)
        )
        if unreviewed:
            raise RegistryError(
                f"{name}: the model holds types nobody reviewed, so it could not be loaded again: "
                f"{unreviewed}. If they are your own pipeline's classes, review them and list them "
                "in model.trusted_types"
            )
        store = self.store
        versions = self._versions_dir(name)
        taken = [n for n in store.children(versions) if n.isdigit()]
        number = max((int(n) for n in taken), default=0) + 1  # a first guess; the claim decides
        claim = json.dumps({"at": datetime.now(UTC).isoformat()}).encode()
        for _ in range(MAX_CLAIM_ATTEMPTS):
            try:
                # No fsync: the claim's bytes are never read, and fsyncing them would not make its
                # name durable anyway; the fsyncs of the version's files below carry the claim's
                # link to disk with them (journalled metadata is ordered), before metadata.json.
                store.create(f"{versions}/{number:06d}/.claim", claim, durable=False)
                break
            except FileExistsError:
                number += 1
        else:
            raise RegistryError(
                f"{name}: could not claim a version number after {MAX_CLAIM_ATTEMPTS} tries"
            )
        folder = f"{versions}/{number:06d}"
        files: dict[str, bytes] = {"model.skops": model_bytes}
        if profile is not None:
            files["profile.json"] = json.dumps(profile, allow_nan=False).encode()
        for file_name, data in files.items():
            store.put(f"{folder}/{file_name}", data)
        meta = {
            "name": name,
            "version": number,
            "created_at": datetime.now(UTC).isoformat(),
            "files": {file_name: _sha256(data) for file_name, data in files.items()},
            "metrics": metrics,
            "decision": decision,
            "lineage": {**lineage, "packages": dict(_package_versions())},
            "schema": schema,
        }
        raw = json.dumps(meta, indent=2, default=str).encode()
        store.create(f"{folder}/metadata.json", raw)  # the version exists from here on
        store.sync(versions)  # and so does its folder's name, before register returns
        return self._version_of(name, number, folder, json.loads(raw))  # as stored, not re-read

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int | None,
        *,
        expected: int | None,
        reason: str = "",
        run_id: str | None = None,
    ) -> AliasEntry:
        """Point `alias` at `version` (None clears it) if it still points at `expected`
        (compare-and-swap). The champion moves only through `promote`, with its proof."""
        if alias == "champion":
            raise RegistryError(
                f"{name}: the champion alias moves only through promote(), with the proof of the "
                "test it passed (or rollback(), a person's action)"
            )
        return self._move_alias(
            name, alias, version, expected=expected, reason=reason, run_id=run_id, proof=None
        )

    def _move_alias(
        self,
        name: str,
        alias: str,
        version: int | None,
        *,
        expected: int | None,
        reason: str,
        run_id: str | None,
        proof: Proof | None,
    ) -> AliasEntry:
        if version is not None:
            self._read_version(name, version)  # only complete versions get an alias
        latest = self._latest_entry(name, alias)
        current = latest.version if latest else None
        if current != expected:
            raise AliasConflictError(
                f"{name}: {alias} is version {current}, not the expected {expected}; "
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
            proof=proof,
        )
        try:
            self.store.create(
                f"{self._alias_dir(name, alias)}/{entry.sequence:08d}.json",
                entry.model_dump_json().encode(),
            )
        except FileExistsError as exc:
            raise AliasConflictError(
                f"{name}: {alias} was moved by another run while this one set it to version {version}"
            ) from exc
        return entry

    def alias(self, name: str, alias: str) -> int | None:
        """The version an alias points at now (None: never set, or cleared)."""
        latest = self._latest_entry(name, alias)
        return None if latest is None else latest.version

    def promote(
        self,
        name: str,
        version: int,
        *,
        expected_champion: int | None,
        proof: Proof | None,
        run_id: str | None = None,
    ) -> AliasEntry:
        """Make `version` the champion if the champion is still `expected_champion`, and only
        with a proof: a test it passed, or a person's action (blocks/proof.py). This is the one
        place the champion moves; everything that promotes comes through here."""
        checked = check_promotion(proof, version)
        return self._move_alias(
            name,
            "champion",
            version,
            expected=expected_champion,
            reason=checked.line(),
            run_id=run_id,
            proof=checked,
        )

    def rollback(
        self, name: str, *, reason: str = "rollback", run_id: str | None = None
    ) -> AliasEntry:
        """Make the previous champion the champion again (itself a compare-and-swap). A person's
        action: it carries no test, and says so in its proof."""
        latest = self._latest_entry(name, "champion")
        if latest is None or latest.previous is None:
            raise RegistryError(f"{name}: there is no previous champion to roll back to")
        proof = Proof(by="human", action="rollback", passed=True, reason=reason)
        return self.promote(
            name, latest.previous, expected_champion=latest.version, proof=proof, run_id=run_id
        )

    # ----------------------------------------------------------------- reading
    def versions(self, name: str) -> list[int]:
        """Numbers of the complete versions, ascending: one listing (on S3 one paged LIST, not a
        request per version)."""
        complete = (
            f.split("/")[0]
            for f in self.store.find(self._versions_dir(name))
            if f.count("/") == 1 and f.endswith("/metadata.json")
        )
        return sorted(int(n) for n in complete if n.isdigit())

    def names(self) -> list[str]:
        """Model names that have at least one complete version: one listing of the whole store."""
        complete = {
            f.split("/")[0]
            for f in self.store.find(self.store.root)
            if re.fullmatch(r"[^/]+/versions/\d+/metadata\.json", f)
        }
        return sorted(n for n in complete if _NAME.match(n))

    def _entry_names(self, name: str, alias: str) -> tuple[str, list[str]]:
        """The alias folder and its entry file names, oldest first (names sort by sequence)."""
        folder = self._alias_dir(name, alias)
        return folder, [f for f in self.store.children(folder) if re.fullmatch(r"\d{8}\.json", f)]

    def _read_entry(self, folder: str, file_name: str) -> AliasEntry:
        try:
            return AliasEntry.model_validate_json(self.store.read(f"{folder}/{file_name}"))
        except ValueError as exc:
            raise RegistryError(f"{folder}/{file_name}: damaged alias entry ({exc})") from exc

    # ----------------------------------------------------------------- logs
    def _log_dir(self, name: str, log: str) -> str:
        return self.store.path(check_name("model name", name), "logs", check_name("log", log))

    def append_log(
        self, name: str, log: str, record: dict[str, Any], *, expected: int | None = None
    ) -> int:
        """Append `record` to an append-only log of the model: a new numbered file, created
        exclusively; returns its sequence number. With `expected` (the sequence of the last
        record the caller read; 0 for none) it is a compare-and-swap: the record becomes number
        expected + 1 or the call fails with AliasConflictError; without, a racing writer takes
        the next number."""
        folder = self._log_dir(name, log)
        body = json.dumps({"at": datetime.now(UTC).isoformat(), **record}, default=str).encode()
        if expected is not None:
            try:
                self.store.create(f"{folder}/{expected + 1:08d}.json", body)
            except FileExistsError as exc:
                raise AliasConflictError(
                    f"{name}: log {log!r} moved past record {expected} meanwhile; read it again"
                ) from exc
            return expected + 1
        taken = [f for f in self.store.children(folder) if re.fullmatch(r"\d{8}\.json", f)]
        sequence = int(taken[-1][:8]) + 1 if taken else 1
        for _ in range(MAX_CLAIM_ATTEMPTS):
            try:
                self.store.create(f"{folder}/{sequence:08d}.json", body)
                return sequence
            except FileExistsError:
                sequence += 1
        raise RegistryError(f"{name}: could not append to log {log!r}")

    # ----------------------------------------------------------------- finished steps
    def _step_path(self, name: str, batch_id: str) -> str:
        return self.store.path(
            check_name("model name", name), "steps", f"{check_name('batch id', batch_id)}.json"
        )

    def record_step(self, name: str, batch_id: str, record: dict[str, Any]) -> bool:
        """Record that a CT step on `batch_id` finished, once (exclusive create): False when a
        record was already there (a re-run: Dask may run a finished task again after losing a
        worker, a webhook may be delivered twice); the first record stays."""
        body = json.dumps({"at": datetime.now(UTC).isoformat(), **record}, default=str).encode()
        try:
            self.store.create(self._step_path(name, batch_id), body)
        except FileExistsError:
            return False
        return True

    def step_record(self, name: str, batch_id: str) -> dict[str, Any] | None:
        """What the finished CT step on `batch_id` recorded, or None if no step on it finished."""
        path = self._step_path(name, batch_id)
        try:
            return dict(json.loads(self.store.read(path)))
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise RegistryError(f"{path}: damaged step record ({exc})") from exc

    def read_log(self, name: str, log: str, *, last: int | None = None) -> list[dict[str, Any]]:
        """The log's records, oldest first (only the newest `last` when given); each carries its
        `sequence` number."""
        folder = self._log_dir(name, log)
        files = [f for f in self.store.children(folder) if re.fullmatch(r"\d{8}\.json", f)]
        if last is not None:
            files = files[-last:] if last > 0 else []
        records = []
        for file_name in files:
            try:
                records.append(
                    {
                        "sequence": int(file_name[:8]),
                        **json.loads(self.store.read(f"{folder}/{file_name}")),
                    }
                )
            except (ValueError, FileNotFoundError) as exc:
                raise RegistryError(f"{folder}/{file_name}: damaged log record ({exc})") from exc
        return records

    def alias_log(self, name: str, alias: str = "champion") -> list[AliasEntry]:
        folder, names = self._entry_names(name, alias)
        return [self._read_entry(folder, file_name) for file_name in names]

    def _latest_entry(self, name: str, alias: str) -> AliasEntry | None:
        """Only the newest entry is read: every CT step and promotion asks for it."""
        folder, names = self._entry_names(name, alias)
        return self._read_entry(folder, names[-1]) if names else None

    def aliases(self, name: str) -> dict[str, int]:
        """Current target of each alias; `previous` is the champion before the current one."""
        found: dict[str, int] = {}
        for alias in self.store.children(self._aliases_dir(name)):
            latest = self._latest_entry(name, alias)
            if latest is not None and latest.version is not None:
                found[alias] = latest.version
                if alias == "champion" and latest.previous is not None:
                    found["previous"] = latest.previous
        return found

    def get(
        self, name: str, *, version: int | None = None, alias: str | None = None
    ) -> ModelVersion:
        """A complete version by number or alias; a missing one is a `RegistryError`."""
        if version is None:
            entry = self._latest_entry(name, alias or "champion")
            if entry is None or entry.version is None:
                raise RegistryError(f"{name}: no {alias or 'champion'} now; run a CT step first")
            version = entry.version
        return self._read_version(name, version)

    def champion(self, name: str) -> ModelVersion | None:
        entry = self._latest_entry(name, "champion")
        return (
            None
            if entry is None or entry.version is None
            else self._read_version(name, entry.version)
        )

    def _read_version(self, name: str, version: int) -> ModelVersion:
        if not isinstance(version, int) or version < 1:
            raise RegistryError(f"{name}: invalid version {version!r}; versions are 1, 2, ...")
        folder = f"{self._versions_dir(name)}/{version:06d}"
        meta_path = f"{folder}/metadata.json"
        try:
            raw = self.store.read(meta_path)
        except FileNotFoundError:
            raise RegistryError(
                f"{name}: version {version} does not exist (no {meta_path})"
            ) from None
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{meta_path}: damaged metadata ({exc})") from exc
        return self._version_of(name, version, folder, meta)

    @staticmethod
    def _version_of(name: str, version: int, folder: str, meta: dict[str, Any]) -> ModelVersion:
        return ModelVersion(
            name=name,
            version=version,
            path=folder,
            created_at=datetime.fromisoformat(meta["created_at"]),
            files=meta["files"],
            metadata=meta,
        )

    def read_file(self, mv: ModelVersion, file_name: str) -> bytes:
        """The bytes of one artifact of a version, after checking its sha256."""
        if file_name not in mv.files:
            raise RegistryError(f"{mv.name} v{mv.version} has no {file_name}")
        path = f"{mv.path}/{file_name}"
        try:
            data = self.store.read(path)
        except FileNotFoundError:
            raise RegistryError(f"{path}: missing, though metadata.json lists it") from None
        if _sha256(data) != mv.files[file_name]:
            raise RegistryError(
                f"{path}: sha256 does not match metadata.json; the file was altered"
            )
        return data

    def load_model(
        self,
        name: str,
        *,
        version: int | None = None,
        alias: str | None = "champion",
        trusted: Sequence[str] = (),
    ) -> Any:
        """The fitted model, loaded by skops with an explicit trusted-type list (no pickle)."""
        mv = self.get(name, version=version, alias=None if version is not None else alias)
        return self.load_model_of(mv, trusted=trusted)

    def load_model_of(self, mv: ModelVersion, *, trusted: Sequence[str] = ()) -> Any:
        """Load a version's model so that loading it can neither run code nor crash the process.

        Only reviewed types are built (`TRUSTED_TYPES`, plus `trusted`: types the user reviewed,
        `model.trusted_types`); boosters are checked before their native loaders see them, and
        every tree before the model is returned (blocks/model_checks.py). A file that breaks a
        rule is refused with a RegistryError naming the file and the rule.
        """
        data = self.read_file(mv, "model.skops")
        key = (mv.files["model.skops"], tuple(trusted))
        with _loaded_lock:
            if key in _LOADED:
                _LOADED.move_to_end(key)
                return _LOADED[key]
        source = f"{mv.path}/model.skops"
        try:
            model_checks.check_file(data, source)
            model = skops.io.loads(data, trusted=[*TRUSTED_TYPES, *trusted])
            model_checks.secure_loaded(model, source)
        except skops.io.exceptions.UntrustedTypesFoundException as exc:
            raise RegistryError(
                f"{source} contains types outside the trusted list: {exc}; if you reviewed them "
                "(your own pipeline's classes), list them in model.trusted_types"
            ) from exc
        except model_checks.ModelCheckError as exc:
            raise RegistryError(f"refused: {exc}") from exc
        except Exception as exc:  # a crafted file can make skops or a constructor raise anything
            raise RegistryError(f"{source} cannot be loaded: {type(exc).__name__}: {exc}") from exc
        with _loaded_lock:
            _LOADED[key] = model
            while len(_LOADED) > _LOADED_MAX:
                _LOADED.popitem(last=False)
        return model

    def load_profile(self, mv: ModelVersion) -> dict[str, Any]:
        """The drift reference profile stored with a version (JSON)."""
        return dict(json.loads(self.read_file(mv, "profile.json")))

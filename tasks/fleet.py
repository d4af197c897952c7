"""A fleet of models: which batches wait for which model, and what became of each model.

A fleet is one folder (or object-storage prefix) with a subfolder of batch files per model:
`<landing>/<model>/*.csv|*.parquet`. A batch waits until a CT step on it has finished for that
model: the registry holds a record per finished step, keyed by the batch id (the file's stem and
the start of its sha256), so the same bytes are never stepped twice, whoever runs them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from blocks.names import is_name
from blocks.registry import ModelRegistry
from tasks.config import CTConfig, config_problems
from tasks.data import batch_id
from tasks.errors import ConfigError, CTError
from tasks.sources import CSV_SUFFIXES, PARQUET_SUFFIXES

Status = Literal["ok", "failed", "idle"]


class FleetError(CTError):
    """The fleet cannot be planned (its landing folder is missing, a listed model has no folder)."""


class ModelOutcome(BaseModel):
    """What one fleet run did for one model; a row of the fleet's table."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: Status
    #: CT steps that finished in this run, and batches that had finished before (a re-run).
    steps: int = 0
    already: int = 0
    champion_after: int | None = None
    outcome: str = ""
    seconds: float = 0.0


def landing_of(config: CTConfig) -> str:
    return config.fleet.landing or str(Path(config.state_dir) / "landing")


def _fs(url: str) -> tuple[object, str]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    return fs, root.rstrip("/")


def batch_files(landing: str, models: list[str] | None) -> dict[str, list[str]]:
    """Every model's batch files, oldest first (by name: name them so that this is time order,
    e.g. `2026-12-03T10.parquet`). `models` None: every subfolder that is a valid model name."""
    fs, root = _fs(landing)
    if not fs.isdir(root):  # type: ignore[attr-defined]
        raise FleetError(
            f"{landing}: the fleet's landing folder does not exist; create it with one subfolder "
            "of batches per model, or set fleet.landing"
        )
    found = {
        Path(str(p)).name: str(p)
        for p in fs.ls(root, detail=False)  # type: ignore[attr-defined]
        if fs.isdir(p)  # type: ignore[attr-defined]
    }
    if models is None:
        names = sorted(n for n in found if is_name(n))
    else:
        missing = [m for m in models if m not in found]
        if missing:
            raise FleetError(
                f"{landing}: no folder for model(s) {', '.join(missing)}; each model of "
                "fleet.models needs <landing>/<model>/ with its batches"
            )
        names = list(models)
    suffixes = PARQUET_SUFFIXES | CSV_SUFFIXES
    protocol = "" if "://" not in landing else landing.split("://", 1)[0] + "://"
    files: dict[str, list[str]] = {}
    for name in names:
        listed = fs.ls(found[name], detail=False)  # type: ignore[attr-defined]
        files[name] = sorted(
            protocol + str(p)
            for p in listed
            if Path(str(p)).suffix.lower() in suffixes and not Path(str(p)).name.startswith(".")
        )
    return files


#: A model's own settings, beside its batches: `<landing>/<model>/ct.yaml`.
MODEL_CONFIG = "ct.yaml"


def _deep_update(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged


def model_config(config: CTConfig, landing: str, name: str) -> CTConfig:
    """The model's configuration: the fleet's, with what `<landing>/<name>/ct.yaml` sets on top
    (its target, features, estimator, gate; a fleet may mix tasks and shapes of data). The
    model's name is its folder's; where state lives stays the fleet's."""
    fs, root = _fs(landing)
    path = f"{root}/{name}/{MODEL_CONFIG}"
    shared = config.for_dataset(name)
    if not fs.exists(path):  # type: ignore[attr-defined]
        return shared
    where = f"{landing.rstrip('/')}/{name}/{MODEL_CONFIG}"
    try:
        own = yaml.safe_load(fs.cat_file(path)) or {}  # type: ignore[attr-defined]
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(own, dict):
        raise ConfigError(f"{where}: expected a mapping at the top")
    for kept in ("state_dir", "registry", "fleet"):
        if kept in own:
            raise ConfigError(f"{where}: {kept} is the fleet's; set it in the fleet's config")
    merged = _deep_update(shared.model_dump(mode="json"), own)
    merged["dataset"]["name"] = name
    try:
        return CTConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {config_problems(exc)}") from exc


def file_batch_id(path: str) -> str:
    """The batch id `read_batch` gives the file, from its bytes, without parsing it."""
    fs, local = _fs(path)
    digest = hashlib.sha256()
    with fs.open(local, "rb") as handle:  # type: ignore[attr-defined]
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return batch_id(local, digest.hexdigest())


def waiting(registry: ModelRegistry, name: str, files: list[str]) -> tuple[list[str], int]:
    """The files no CT step has finished on for this model, oldest first, and how many had."""
    todo = [path for path in files if registry.step_record(name, file_batch_id(path)) is None]
    return todo, len(files) - len(todo)


def fleet_rows(outcomes: list[ModelOutcome]) -> list[dict[str, object]]:
    """The fleet's table artifact: failed models first, then by name."""
    order = {"failed": 0, "ok": 1, "idle": 2}
    return [
        {  # the short columns first: the outcome may be a long error
            "model": o.name,
            "status": o.status,
            "champion": "none" if o.champion_after is None else f"v{o.champion_after}",
            "steps": o.steps,
            "already done": o.already,
            "seconds": round(o.seconds, 1),
            "outcome": o.outcome if len(o.outcome) <= 160 else o.outcome[:157] + "...",
        }
        for o in sorted(outcomes, key=lambda o: (order[o.status], o.name))
    ]


def failure_summary(outcomes: list[ModelOutcome]) -> str | None:
    """One line naming every failed model and why, or None when none failed."""
    failed = [o for o in outcomes if o.status == "failed"]
    if not failed:
        return None
    parts = [f"{o.name} ({o.outcome})" for o in failed]
    return f"{len(failed)} of {len(outcomes)} models failed: " + "; ".join(parts)


#: HTTP answers of a busy server (SQLite's "database is locked" is a 503), not of a bad request.
BUSY = frozenset({429, 502, 503, 504})


def server_unavailable(error: BaseException) -> bool:
    """Did the step fail because the Prefect API was busy or unreachable (a 503 after the client's
    own retries, a dropped connection), rather than on its data or code? Such a step is worth
    running again: a CT step is idempotent. The error's causes are looked at too."""
    import httpx

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, httpx.HTTPStatusError) and current.response.status_code in BUSY:
            return True
        if isinstance(current, httpx.TransportError):
            return True
        current = current.__cause__ or current.__context__
    return False


#: A CT step that failed on a busy or unreachable server runs again, up to this many attempts in
#: all, after 5 s, then 10 s (the client's own retries of a 503 span ~10 s): a step on a batch is
#: done once, however often it runs.
STEP_ATTEMPTS = 3
RETRY_SECONDS = 5


def wait_before_retry(error: BaseException | None, attempt: int) -> int | None:
    """Seconds to wait before running a step again after its attempt number `attempt` ended with
    `error`; None when it should not run again (it succeeded, failed on its data or code, or has
    had its attempts). The fleet and the backtest both use it."""
    if error is None or attempt >= STEP_ATTEMPTS or not server_unavailable(error):
        return None
    return RETRY_SECONDS * attempt

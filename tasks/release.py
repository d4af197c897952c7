"""Registering a gated candidate, moving the champion alias, and announcing it as Prefect events.

Events are named `ct.model.registered`, `ct.model.promoted` and `ct.gate.rejected`, for the resource
`ct.model.<name>`; the payload carries the decision so a delivery deployment can trigger on it.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from blocks.proof import Proof
from blocks.registry import AliasEntry, ModelRegistry, ModelVersion
from tasks.config import CTConfig
from tasks.gate import GateDecision
from tasks.train import Fitted
from tasks.validate import FeatureSpec

_V = TypeVar("_V")


def unwalked(value: _V) -> _V:
    """`value` as a task argument that Prefect hands over without walking it: it visits every
    element of a parameter's lists, dicts and models looking for futures, which for a drift
    profile (its sample is thousands of values) or a registry card cost 0.3 s a CT step each
    (measured). `prefect.utilities.annotations.quote`, typed as what it wraps."""
    return cast(_V, quote(value))


def run_id() -> str | None:
    """The flow run this code runs in, for lineage and the alias log (None outside a run)."""
    return None if flow_run.id is None else str(flow_run.id)


@functools.cache  # the code does not change under a running process
def code_revision() -> str:
    """The git commit of the code that trains, for lineage; 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def open_registry(config: CTConfig) -> ModelRegistry:
    """The configured registry: a saved block by name, else the URL or `<state_dir>/registry`."""
    if config.registry.block:
        return ModelRegistry.load(config.registry.block)  # type: ignore[return-value]
    return ModelRegistry(url=config.registry_url)


@dataclass(frozen=True)
class Champion:
    """The serving model: its registry version, the fitted model and the contract it keeps."""

    version: ModelVersion
    model: Fitted
    spec: FeatureSpec


def champion_of(registry: ModelRegistry, mv: ModelVersion, trusted: list[str]) -> Champion:
    """A version as a Champion: its model (loaded with ct's reviewed types plus `trusted`), the
    labels its codes stand for, and its contract."""
    spec = FeatureSpec.model_validate(mv.metadata["schema"]["spec"])
    lineage = mv.metadata.get("lineage", {})
    labels = lineage.get("labels", spec.classes) if spec.task == "classification" else None
    estimator = registry.load_model_of(mv, trusted=trusted)
    return Champion(version=mv, model=Fitted(estimator, labels), spec=spec)


def decision_summary(decision: GateDecision) -> dict[str, Any]:
    """The part of a gate decision that travels in event payloads."""
    return {
        "promote": decision.promote,
        "baseline": decision.baseline,
        "test": decision.test,
        "metric": decision.metric,
        "p_value": decision.p_value,
        "effect": decision.effect,
        "n": decision.n,
    }


def model_resource(name: str, origin: str = "ct-step") -> dict[str, str]:
    """The event resource; `ct.origin` tells a CT step's events from the monitor's, so a trigger
    can react to production drift without re-triggering on the drift a CT step reports."""
    return {
        "prefect.resource.id": f"ct.model.{name}",
        "prefect.resource.name": name,
        "ct.origin": origin,
    }


def find_events(name: str, resource_id: str, *, since: str | None = None) -> list[dict[str, Any]]:
    """Events `name` of one resource from Prefect's event log, oldest first, every page (the
    server returns at most 50 per page), as JSON-ready dicts."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventOrder,
        EventResourceFilter,
    )

    query = EventFilter(
        event=EventNameFilter(name=[name]),
        resource=EventResourceFilter(id=[resource_id]),
        order=EventOrder.ASC,
    )
    if since is not None:
        query.occurred = EventOccurredFilter(since=since)
    events: list[dict[str, Any]] = []
    with get_client(sync_client=True) as client:
        page = client.read_events(query, limit=50)
        events += [e.model_dump(mode="json") for e in page.events]
        while page.next_page:
            page = client.read_events_page(str(page.next_page))
            events += [e.model_dump(mode="json") for e in page.events]
    return events


def announce(event: str, name: str, payload: dict[str, Any], origin: str = "ct-step") -> str | None:
    """Emit one ct event; a failure to emit is logged, never fatal (the registry is the truth).

    Not a task: emitting only queues the event for Prefect's events worker, and a task run would
    add three state events of its own to each ct event, all written by the server."""
    emitted = emit_event(
        event=event, resource=model_resource(name, origin), payload={"name": name, **payload}
    )
    get_run_logger().info("Event %s for ct.model.%s", event, name)
    return None if emitted is None else str(emitted.id)


# ---------------------------------------------------------------- Prefect tasks
@task(name="register-candidate", cache_policy=NO_CACHE)
def register_candidate(registry: ModelRegistry, name: str, model: Any, **card: Any) -> ModelVersion:
    """Write an immutable version (not yet champion); a crash leaves no visible partial version."""
    version = registry.register(name, model, **card)
    get_run_logger().info("Registered %s version %d at %s", name, version.version, version.path)
    return version


@task(name="promote-champion", cache_policy=NO_CACHE)
def promote_champion(
    registry: ModelRegistry,
    name: str,
    version: int,
    *,
    expected_champion: int | None,
    proof: Proof,
    run_id: str | None,
) -> AliasEntry:
    """Compare-and-swap the champion alias, with its proof. Never retried: a lost race must be
    decided again."""
    entry = registry.promote(
        name, version, expected_champion=expected_champion, proof=proof, run_id=run_id
    )
    get_run_logger().info("Champion of %s: version %s -> %d", name, expected_champion, version)
    return entry


def crown(
    version: ModelVersion,
    *,
    registry: ModelRegistry,
    name: str,
    previous: int | None,
    proof: Proof,
    payload: dict[str, Any],
) -> int:
    """Make a registered version the champion (compare-and-swap, with the proof the registry
    checks) and announce it: `ct.model.promoted` carries the proof."""
    promote_champion(
        registry, name, version.version, expected_champion=previous, proof=proof, run_id=run_id()
    )
    lineage = version.metadata.get("lineage", {})
    announce(
        "ct.model.promoted",
        name,
        {
            "version": version.version,
            "previous_champion": previous,
            "path": version.path,
            "task": lineage.get("task"),
            "labels": lineage.get("labels"),
            "proof": proof.model_dump(mode="json"),
            **payload,
        },
    )
    return version.version

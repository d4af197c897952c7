"""Registering a gated candidate, moving the champion alias, and announcing it as Prefect events.

Events are named `ct.model.registered`, `ct.model.promoted` and `ct.gate.rejected`, for the resource
`ct.model.<name>`; the payload carries the decision so a delivery deployment can trigger on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from blocks.registry import AliasEntry, ModelRegistry, ModelVersion
from tasks.config import CTConfig
from tasks.gate import GateDecision
from tasks.train import Fitted
from tasks.validate import FeatureSpec


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
    reason: str,
    run_id: str | None,
) -> AliasEntry:
    """Compare-and-swap the champion alias. Never retried: a lost race must be decided again."""
    entry = registry.promote(
        name, version, expected_champion=expected_champion, reason=reason, run_id=run_id
    )
    get_run_logger().info("Champion of %s: version %s -> %d", name, expected_champion, version)
    return entry

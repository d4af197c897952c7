"""Refused batches, counted per model, so that a contract can never block CT silently.

Every refused batch is a record in the model's `contract` log in the registry (shared by every
worker, like the champion alias); the first batch that passes after refusals adds a `passed`
record, which ends the streak. When `validation.max_refused_in_a_row` different batches in a row
have been refused, the step emits `ct.contract.blocked` with the failing rule and tells the user
how to accept a new contract. Accepting one (`python flows/ct.py contract accept`) is recorded in
the same log and in the champion's audit log.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.registry import ModelRegistry
from tasks.errors import DataValidationError
from tasks.release import announce

LOG = "contract"


def refusal_streak(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The refusals since the last batch that passed (or the last accepted contract), one per
    batch (the same batch refused twice counts once), oldest first."""
    streak: list[dict[str, Any]] = []
    for record in reversed(records):
        if record.get("outcome") != "refused":
            break
        if all(r.get("batch_id") != record.get("batch_id") for r in streak):
            streak.append(record)
    return streak[::-1]


def accept_hint(source: str) -> str:
    return (
        "If the data changed for good, accept a new contract from a batch that shows it: "
        f"python flows/ct.py contract accept --data {source} --reason '...'"
    )


def note_passed(registry: ModelRegistry, name: str, batch_id: str) -> None:
    """End a refusal streak (only written when one is open: a step that passes adds nothing).
    Not a task: it reads one log line, and a task run would cost the server three events per
    step to say so."""
    last = registry.read_log(name, LOG, last=1)
    if last and last[0].get("outcome") == "refused":
        registry.append_log(name, LOG, {"outcome": "passed", "batch_id": batch_id})


# ---------------------------------------------------------------- Prefect tasks
@task(name="note-refusal", cache_policy=NO_CACHE)
def note_refusal(
    registry: ModelRegistry,
    name: str,
    batch_id: str,
    error: DataValidationError,
    *,
    limit: int,
    champion_version: int | None,
) -> DataValidationError:
    """Record the refusal; at `limit` refusals in a row, emit ct.contract.blocked. Returns the
    error to raise, its message extended with the streak and the way out."""
    first = error.failures[0]
    registry.append_log(
        name,
        LOG,
        {
            "outcome": "refused",
            "batch_id": batch_id,
            "source": error.source,
            "column": str(first.get("column")),
            "rule": str(first.get("check")),
            "detail": error.detail,
        },
    )
    streak = refusal_streak(registry.read_log(name, LOG, last=4 * limit + 4))
    if len(streak) < limit:
        return error
    rules = sorted({f"{r['column']}: {r['rule']}" for r in streak})
    announce(
        "ct.contract.blocked",
        name,
        {
            "refused_in_a_row": len(streak),
            "limit": limit,
            "rule": f"{first.get('column')}: {first.get('check')}",
            "rules": rules,
            "batches": [r["batch_id"] for r in streak],
            "champion_version": champion_version,
            "how_to_recover": accept_hint(error.source),
        },
    )
    note = (
        f"{len(streak)} batches in a row have been refused for model {name!r} "
        f"(validation.max_refused_in_a_row is {limit}): ct.contract.blocked was emitted. "
        + accept_hint(error.source)
    )
    get_run_logger().error(note)
    return error.with_note(note)

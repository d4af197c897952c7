"""Heartbeats only where they tell the server something (flows/heartbeats.py): a subflow run in
its parent's process, and a fleet's CT steps, start no heartbeat thread (each cost up to 1 s to
join when its flow ended); the flow around them keeps its own."""

from __future__ import annotations

from prefect import flow
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings

from flows.heartbeats import without_heartbeats


@flow
def inner() -> int | None:
    # what Prefect's flow engine reads when it starts a run's heartbeat thread (None: no thread)
    return get_current_settings().flows.heartbeat_frequency


@flow
def outer() -> tuple[int | None, int | None, int | None]:
    before = inner()
    with without_heartbeats():
        quiet = inner()
    return before, quiet, get_current_settings().flows.heartbeat_frequency


def test_a_subflow_in_the_block_has_no_heartbeat_and_the_parent_keeps_its_own():
    assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is not None  # Prefect's default: 180 s
    before, quiet, after = outer()
    assert quiet is None
    assert before == after == PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value()
    with without_heartbeats():  # the settings are built once and reused, not read again
        first = get_current_settings()
    with without_heartbeats():
        assert get_current_settings() is first

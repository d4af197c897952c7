"""Flow tests run on a real Prefect backend: one `prefect_test_harness` server for the session."""

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session", autouse=True)
def prefect_backend():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def events_until():
    """Poll Prefect's event log: `events_until(name, resource_id, enough)` returns the events once
    `enough(events)` holds, or the last ones seen after `timeout` s (the caller asserts on them)."""
    from tasks.release import find_events

    def poll(
        name: str,
        resource_id: str,
        enough: Callable[[list[dict]], bool] = bool,
        *,
        timeout: float = 30,
    ) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            events = find_events(name, resource_id)
            if enough(events) or time.monotonic() > deadline:
                return events
            time.sleep(0.5)

    return poll


@pytest.fixture
def registry_snapshot():
    """`registry_snapshot(root)`: every version and alias file of the registry under `root/state`,
    by relative path, to show that a refused run changed no model and no champion. The models'
    `logs/` and `steps/` are left out: counting refused batches and recording that a step
    finished (so that a re-run changes nothing) is bookkeeping, not a model."""

    def snapshot(root: Path) -> dict[str, bytes]:
        registry = root / "state" / "registry"
        return {
            str(p.relative_to(registry)): p.read_bytes()
            for p in sorted(registry.rglob("*"))
            if p.is_file() and p.relative_to(registry).parts[1:2] not in {("logs",), ("steps",)}
        }

    return snapshot

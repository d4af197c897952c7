"""Flow-run heartbeats only where they tell the server something.

Prefect 3 gives every flow run, subflows included, a heartbeat thread (every
`PREFECT_FLOWS_HEARTBEAT_FREQUENCY`, default 180 s) so that a run whose process died can be marked
crashed. When the run ends, the engine joins that thread, which sleeps in 1-second steps
(PrefectHQ/prefect#19641): up to a second of idle time per flow run. A subflow running in its
parent's process and thread gains nothing from its own heartbeat, since the parent's already says
the process is alive; measured, the retraining subflow's join was 1.0 s of a 2-3 s CT step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def without_heartbeats() -> Iterator[None]:
    """Flows run in this block send no heartbeats: a subflow in its parent's process and thread
    (the parent's heartbeat covers it), or a fleet's CT steps on a Dask worker, where a lost
    worker's runs are found by the fleet itself (`flows.fleet.crash_orphans`), not by heartbeats
    and an automation the user would have to add."""
    from prefect.context import SettingsContext, get_settings_context

    current = get_settings_context()
    with SettingsContext(profile=current.profile, settings=_quiet(current.settings)):
        yield


_last: tuple[Any, Any] | None = None


def _quiet(settings: Any) -> Any:
    """`settings` without heartbeats, built once per settings object: Prefect's
    `temporary_settings` builds them anew each time, 30-60 ms (it reads the profiles again)."""
    global _last
    last = _last
    if last is not None and last[0] is settings:
        return last[1]
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    quiet = settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
    _last = (settings, quiet)
    return quiet

"""New data arrived: one CT step over every batch that arrived, however many events announced it.

Deployed as `ct-on-new-data`, triggered by `ct.data.arrived` (the webhook receiver emits it). A burst
of arrivals must give one CT step over all of them, not one per event, and lose nothing. So the run
reads the pending arrivals of its dataset from Prefect's event log (those not yet marked done under
`<state_dir>/arrivals/<dataset>/done/`), waits until none has come for `settle_seconds`, joins their
files into one batch, runs one CT step on it, marks those events done, and looks again. The
deployment's concurrency limit (1, ENQUEUE) runs one of these at a time; the runs queued by the
other events of a burst find nothing pending and end at once.

A run can start before the event that triggered it is in the event log: automations act on the
event as it arrives, while the server writes events in batches, up to 5 s later
(flows/cli/prefect_server.py), or later still after a failed write. So the trigger passes the event's
id (`arrival`), and the run first waits until the log has it (or an earlier run marked it done);
without that wait, such a run found nothing pending and ended, and the batch waited for the next
arrival or the daily run.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger

from flows.ct import continuous_training
from tasks.config import CTConfig
from tasks.data import read_batch
from tasks.errors import CTError
from tasks.release import find_events
from tasks.report import StepResult
from tasks.sources import ReadLimits

LOOKBACK = timedelta(days=7)
#: Seconds a triggered run waits for its event to reach the event log before going on without it.
LOGGED_WITHIN = 60.0


def logged_arrivals(dataset: str) -> list[dict[str, Any]]:
    """`ct.data.arrived` events for the dataset in the last week, oldest first."""
    since = (datetime.now(UTC) - LOOKBACK).isoformat()
    return find_events("ct.data.arrived", f"ct.dataset.{dataset}", since=since)


def pending_arrivals(dataset: str, done_dir: Path) -> list[dict[str, Any]]:
    """The logged arrivals not marked done. Arrivals for a fleet's model (labelled `ct.fleet`)
    are ct-fleet's, not this flow's."""
    return [
        e
        for e in logged_arrivals(dataset)
        if not (done_dir / e["id"]).exists() and "ct.fleet" not in e.get("resource", {})
    ]


def wait_until_logged(
    dataset: str, arrival: str, done_dir: Path, timeout: float = LOGGED_WITHIN
) -> bool:
    """Whether the `ct.data.arrived` event `arrival` reached the event log (or was marked done by
    an earlier run) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if (done_dir / arrival).exists() or any(
            e["id"] == arrival for e in logged_arrivals(dataset)
        ):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(1.0)


def mark_done(events: list[dict[str, Any]], done_dir: Path, outcome: str) -> None:
    done_dir.mkdir(parents=True, exist_ok=True)
    for event in events:
        (done_dir / event["id"]).write_text(outcome)


@flow(name="process-arrivals")
def process_arrivals(
    dataset: str,
    settle_seconds: float = 10.0,
    config: CTConfig | None = None,
    arrival: str | None = None,
) -> list[StepResult]:
    """Run one CT step per settled burst of arrivals for `dataset`, until none is pending.

    `arrival`: the id of the `ct.data.arrived` event that started this run (the trigger passes
    it); the run first waits until the event log has it."""
    logger = get_run_logger()
    config = (config or CTConfig()).for_dataset(dataset)
    folder = Path(config.state_dir) / "arrivals" / dataset
    done_dir = folder / "done"
    results: list[StepResult] = []
    if arrival and not wait_until_logged(dataset, arrival, done_dir):
        logger.warning(
            "Arrival %s is not in the event log after %.0f s; going on with what is there",
            arrival,
            LOGGED_WITHIN,
        )
    while True:
        pending = pending_arrivals(dataset, done_dir)
        if not pending:
            logger.info("No pending arrivals for %s", dataset)
            return results
        while True:  # settle: wait until the burst is over
            newest = max(datetime.fromisoformat(e["occurred"]) for e in pending)
            quiet = (datetime.now(UTC) - newest).total_seconds()
            if quiet >= settle_seconds:
                break
            time.sleep(min(settle_seconds - quiet + 0.1, settle_seconds))
            pending = pending_arrivals(dataset, done_dir)
        paths = list(dict.fromkeys(e["payload"]["path"] for e in pending))
        logger.info("%d arrivals for %s: %d files", len(pending), dataset, len(paths))
        limits = ReadLimits.of(config.validation)
        frames = []
        for path in paths:
            try:
                frames.append(read_batch(path, limits)[0])
            except CTError as exc:
                logger.error("Skipping %s: %s", path, exc)
        if not frames:
            mark_done(pending, done_dir, "unreadable")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        combined = folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{len(paths)}-files.parquet"
        pd.concat(frames, ignore_index=True).to_parquet(combined, index=False)
        state = continuous_training(str(combined), config, return_state=True)
        mark_done(pending, done_dir, "ok" if state.is_completed() else f"failed: {state.message}")
        if state.is_completed():
            results.append(state.result())

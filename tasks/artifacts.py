"""Prefect artifacts that do not hold up a CT step.

Each artifact is an HTTP round trip to the Prefect server: about 25 ms on an idle local server,
several times that while it records the step's task runs, and a step in `gate.mode auto` writes
five. Inside
`deferred()` (a CT step's whole body), `publish_markdown` and `publish_table` build the artifact
in the caller, where the run context says which flow and task run it belongs to, and one
background thread sends it with the run's own client while the step goes on; leaving `deferred()`
waits for every artifact sent, so a step's artifacts exist when its flow run ends. Outside
`deferred()` they are sent at once, as Prefect's functions send them.

An artifact that cannot be sent fails nothing: the step's decision is already in the registry
(and the champion moved) when the artifact would arrive, so a failure is logged as a warning.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from prefect.artifacts import MarkdownArtifact, TableArtifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.exceptions import MissingContextError
from prefect.logging import get_logger, get_run_logger
from prefect.utilities.context import get_task_and_flow_run_ids

#: The artifacts sent in the background within the current deferred() block, or None outside.
_pending: contextvars.ContextVar[list[tuple[str, Future[None]]] | None] = contextvars.ContextVar(
    "ct_pending_artifacts", default=None
)
_lock = threading.Lock()
#: One sender thread, made afresh in each process (a warm process's fork inherits no thread).
_sender: tuple[int, ThreadPoolExecutor] | None = None


def _executor() -> ThreadPoolExecutor:
    global _sender
    with _lock:
        if _sender is None or _sender[0] != os.getpid():
            _sender = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="ct-artifacts"))
        return _sender[1]


def _send(artifact: ArtifactCreate) -> None:
    """Run in the publishing run's context: its API client, as Prefect's own artifacts use it
    (httpx clients may be shared between threads; the run outlives the send, see deferred())."""
    get_client(sync_client=True).create_artifact(artifact=artifact)


def _publish(kind: str, key: str, data: Any, description: str | None) -> None:
    task_run_id, flow_run_id = get_task_and_flow_run_ids()
    artifact = ArtifactCreate(
        type=kind,
        key=key,
        description=description,
        data=data,
        task_run_id=task_run_id,
        flow_run_id=flow_run_id,
    )
    pending = _pending.get()
    if pending is None:
        _send(artifact)
        return
    context = contextvars.copy_context()
    pending.append((key, _executor().submit(context.run, _send, artifact)))


def publish_markdown(markdown: str, *, key: str, description: str | None = None) -> None:
    """A markdown artifact, as `prefect.artifacts.create_markdown_artifact` makes it."""
    data = MarkdownArtifact(key=key, markdown=markdown, description=description).format(
        _sync=True  # type: ignore[call-arg]
    )
    _publish("markdown", key, data, description)


def publish_table(table: list[dict[str, Any]], *, key: str, description: str | None = None) -> None:
    """A table artifact, as `prefect.artifacts.create_table_artifact` makes it."""
    data = TableArtifact(key=key, table=table, description=description).format(
        _sync=True  # type: ignore[call-arg]
    )
    _publish("table", key, data, description)


@contextlib.contextmanager
def deferred(timeout: float = 60.0) -> Iterator[None]:
    """Send the artifacts published within in the background; wait for them all on the way out
    (a failure is logged, not raised)."""
    if _pending.get() is not None:  # nested: the outer block waits
        yield
        return
    pending: list[tuple[str, Future[None]]] = []
    token = _pending.set(pending)
    try:
        yield
    finally:
        _pending.reset(token)
        for key, future in pending:
            try:
                future.result(timeout=timeout)
            except Exception as exc:  # an artifact never fails a step that decided
                _logger().warning("The %r artifact was not written: %s", key, exc)


def _logger() -> Any:
    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("ct.artifacts")

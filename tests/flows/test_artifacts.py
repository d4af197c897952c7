"""Artifacts sent in the background (tasks/artifacts.py) land on the real server, attached to the
run that published them, by the time the block that deferred them ends; one that cannot be sent
is a warning, not a failed step."""

import logging
import math
import uuid

from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.runtime import flow_run, task_run
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from tasks.artifacts import deferred, publish_markdown, publish_table


@task
def publish_from_a_task(key: str) -> str:
    publish_markdown("# from a task", key=f"{key}-md", description="markdown from a task")
    publish_table([{"a": 1, "b": math.nan}], key=f"{key}-table", description="a table")
    return str(task_run.id)


@flow
def publishing(key: str) -> tuple[str, str]:
    with deferred():
        task_id = publish_from_a_task(key)
        publish_markdown("from the flow", key=f"{key}-flow")
    return str(flow_run.id), task_id


def read(key: str):
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert len(found) == 1, key
    return found[0]


def test_deferred_artifacts_exist_when_the_run_ends_attached_to_their_runs():
    key = f"t-{uuid.uuid4().hex[:8]}"
    flow_id, task_id = publishing(key)
    md, table, top = read(f"{key}-md"), read(f"{key}-table"), read(f"{key}-flow")
    assert md.data == "# from a task" and md.description == "markdown from a task"
    assert str(md.flow_run_id) == flow_id and str(md.task_run_id) == task_id
    assert table.type == "table" and '"b": null' in table.data  # NaN made JSON, as Prefect does
    assert str(top.flow_run_id) == flow_id and top.task_run_id is None


def test_an_artifact_that_cannot_be_sent_is_a_warning_not_a_failure(caplog):
    key = f"t-{uuid.uuid4().hex[:8]}"
    settings = {PREFECT_API_URL: "http://127.0.0.1:9/api", PREFECT_CLIENT_MAX_RETRIES: 0}
    with caplog.at_level(logging.WARNING), temporary_settings(settings), deferred():
        publish_markdown("lost", key=key)  # nothing listens on port 9
    assert any(
        f"'{key}' artifact was not written" in r.getMessage() and "onnect" in r.getMessage()
        for r in caplog.records
    ), caplog.text

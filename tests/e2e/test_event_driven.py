"""Event-driven ct for real: server, work pool, `prefect deploy --all`, a worker and the webhook
receiver, all started here on 127.0.0.1 and stopped by PID at the end (issue 8).

A burst of signed webhooks for three new batches must give exactly one CT step over all three
files; the first champion is registered and promoted, and `ct-deliver` puts it into service.
Forged, replayed, oversized and out-of-root requests must start nothing.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tasks.demo import demo_batch
from tests.support.devstack import LocalStack, signed_headers, wait_for

SECRET = "whsec_" + base64.b64encode(b"an e2e secret, 32 bytes long!!!!").decode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp("e2e"), secret=SECRET) as running:
        yield running
    assert not running.leftovers(), "a process started for the stack outlived it"


def signed_post(
    hooks: str,
    body: bytes,
    *,
    message_id: str | None = None,
    secret: str = SECRET,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = signed_headers(secret, body, message_id=message_id) | (headers or {})
    return httpx.post(f"{hooks}/hooks/data", content=body, headers=sent, timeout=10)


def flow_runs(api: str) -> list[dict[str, Any]]:
    runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 200}, timeout=10).json()
    flows = {
        f["id"]: f["name"] for f in httpx.post(f"{api}/flows/filter", json={}, timeout=10).json()
    }
    # leave out the daily schedule's future runs; keep runs queued behind the concurrency limit
    return [r | {"flow": flows.get(r["flow_id"])} for r in runs if r["state_name"] != "Scheduled"]


def test_a_burst_of_webhooks_gives_one_ct_step_then_delivery(stack):
    api, hooks, landing = stack.api, stack.hooks, stack.landing
    paths = []
    for batch in (1, 2, 3):
        path = landing / f"batch-{batch}.csv"
        demo_batch(batch, rows=400).to_csv(path, index=False)
        paths.append(path)
    for path in paths:
        body = json.dumps({"dataset": "demo", "path": str(path)}).encode()
        response = signed_post(hooks, body)
        assert response.status_code == 202 and response.json()["event_id"], response.text

    def settled() -> bool:
        runs = flow_runs(api)
        delivered = any(r["flow"] == "deliver" and r["state_type"] == "COMPLETED" for r in runs)
        arrivals = [r for r in runs if r["flow"] == "process-arrivals"]
        return (
            delivered
            and len(arrivals) == 3
            and all(r["state_type"] == "COMPLETED" for r in arrivals)
        )

    wait_for(settled, 300, "the arrivals runs and ct-deliver to complete", every=2)
    runs = flow_runs(api)
    steps = [r for r in runs if r["flow"] == "continuous-training"]
    assert len(steps) == 1 and steps[0]["state_type"] == "COMPLETED", [
        (r["flow"], r["state_name"]) for r in runs
    ]
    arrivals = [r for r in runs if r["flow"] == "process-arrivals"]
    assert len(arrivals) == 3 and all(r["state_type"] == "COMPLETED" for r in arrivals)
    combined = Path(steps[0]["parameters"]["data"])
    assert len(pd.read_parquet(combined)) == 1200  # all three files, one CT step
    state = stack.state_dir / "registry" / "demo"
    assert sorted(p.name for p in (state / "versions").iterdir()) == ["000001"]
    serving = stack.serving_dir / "demo"
    assert os.readlink(serving / "current") == "v1"
    manifest = json.loads((serving / "current" / "manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["decision"]["promote"] is True


def test_forged_replayed_oversized_and_out_of_root_requests_start_nothing(stack):
    api, hooks, landing = stack.api, stack.hooks, stack.landing
    before = {r["id"] for r in flow_runs(api)}
    good = json.dumps({"dataset": "demo", "path": str(landing / "batch-1.csv")}).encode()
    forged = signed_post(hooks, good, secret="whsec_" + base64.b64encode(b"f" * 32).decode())
    first = signed_post(
        hooks,
        json.dumps({"dataset": "other", "path": str(landing / "x.csv")}).encode(),
        message_id="msg_replay",
    )
    assert first.status_code == 202  # the original delivery of the id is fine ...
    replayed = signed_post(hooks, good, message_id="msg_replay")
    oversized = signed_post(hooks, b'{"dataset": "demo", "path": "' + b"a" * (1024 * 1024) + b'"}')
    outside = signed_post(hooks, json.dumps({"dataset": "demo", "path": "/etc/passwd"}).encode())
    assert [r.status_code for r in (forged, replayed, oversized, outside)] == [401, 401, 413, 422]
    # a valid request after the refused ones: the server turns events into runs in order, so
    # once its run exists, any run the refused requests could have caused would exist too
    sentinel = signed_post(
        hooks, json.dumps({"dataset": "sentinel", "path": str(landing / "y.csv")}).encode()
    )
    assert sentinel.status_code == 202, sentinel.text

    def started() -> list[dict]:
        return [r for r in flow_runs(api) if r["id"] not in before]

    wait_for(
        lambda: {"other", "sentinel"} <= {r["parameters"].get("dataset") for r in started()},
        120,
        "the arrivals runs of the two valid requests to start",
        every=1,
    )
    # ... each valid request started one arrivals run (its file is missing: it ends), and the
    # forged, replayed, oversized and out-of-root ones started nothing
    datasets = sorted(r["parameters"].get("dataset") for r in started())
    assert datasets == ["other", "sentinel"], started()


def test_an_outside_drift_alert_starts_ct_on_drift(stack):
    """Issue 12: a drift alert posted to /hooks/drift carries the resource and origin that the
    ct-on-drift trigger accepts, so it starts a CT step on the drifted (labelled) batch."""
    api, hooks, landing = stack.api, stack.hooks, stack.landing
    drifted = landing / "drifted.csv"
    demo_batch(6, rows=400).to_csv(drifted, index=False)  # the demo's abrupt drift
    body = json.dumps({"dataset": "demo", "path": str(drifted), "note": "from our monitor"})
    response = httpx.post(
        f"{hooks}/hooks/drift",
        content=body.encode(),
        headers=signed_headers(SECRET, body.encode()),
        timeout=10,
    )
    assert response.status_code == 202, response.text

    def started() -> list[dict[str, Any]]:
        runs = flow_runs(api)
        on_drift = [r for r in runs if r["flow"] == "on-drift" and r["state_type"] == "COMPLETED"]
        steps = [
            r
            for r in runs
            if r["flow"] == "continuous-training"
            and r["parameters"].get("data") == str(drifted)
            and r["state_type"] == "COMPLETED"
        ]
        return on_drift + steps if on_drift and steps else []

    runs = wait_for(started, 240, "ct-on-drift and its CT step to complete", every=2)
    on_drift = next(r for r in runs if r["flow"] == "on-drift")
    assert on_drift["parameters"]["source"] == str(drifted)
    assert on_drift["parameters"]["labelled"] is None  # the alert did not say: the file has labels

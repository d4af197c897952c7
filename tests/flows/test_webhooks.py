"""The webhook receiver in-process (FastAPI TestClient), emitting real events to the test server."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.support.devstack import signed_headers
from webhooks.receiver import ReceiverSettings, create_app

SECRET = "whsec_" + base64.b64encode(b"a test secret of 32 bytes long!!").decode()


@pytest.fixture
def landing(tmp_path):
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


@pytest.fixture
def client(landing):
    settings = ReceiverSettings(secret=SecretStr(SECRET), allowed_roots=[str(landing)])
    return TestClient(create_app(settings))


def signed(
    body: bytes,
    *,
    when: datetime | None = None,
    message_id: str | None = None,
    secret: str = SECRET,
):
    return signed_headers(secret, body, message_id=message_id, when=when)


def arrival(path, dataset="wh-test") -> bytes:
    return json.dumps({"dataset": dataset, "path": str(path)}).encode()


def test_a_signed_arrival_becomes_a_prefect_event(client, landing, events_until):
    body = arrival(landing / "b1.csv")
    response = client.post("/hooks/data", content=body, headers=signed(body))
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    events = events_until(
        "ct.data.arrived", "ct.dataset.wh-test", lambda es: any(e["id"] == event_id for e in es)
    )
    found = [e for e in events if e["id"] == event_id]
    assert found and found[0]["payload"]["path"] == str(landing / "b1.csv")


@pytest.mark.parametrize(
    ("make", "status", "detail"),
    [
        (lambda b, h: (b, {**h, "webhook-signature": "v1,AAAA"}), 401, "signature"),
        (
            lambda b, h: (b, signed(b, secret="whsec_" + base64.b64encode(b"x" * 32).decode())),
            401,
            "signature",
        ),
        (
            lambda b, h: (b, signed(b, when=datetime.now(UTC) - timedelta(minutes=6))),
            401,
            "signature",
        ),
        (lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-id"}), 401, "signature"),
        (lambda b, h: (b"x" * (1024 * 1024 + 1), h), 413, "body over"),
        (lambda b, h: (b"{not json", signed(b"{not json")), 400, "not valid JSON"),
        (lambda b, h: (b'{"dataset": "x"}', signed(b'{"dataset": "x"}')), 422, "unexpected body"),
        (lambda b, h: ((o := arrival("/etc/passwd")), signed(o)), 422, "outside the allowed roots"),
        (lambda b, h: ((o := arrival("../../x.csv")), signed(o)), 422, "outside the allowed roots"),
    ],
)
def test_bad_requests_are_refused_and_emit_nothing(client, landing, make, status, detail):
    body = arrival(landing / "ok.csv")
    content, headers = make(body, signed(body))
    response = client.post("/hooks/data", content=content, headers=headers)
    assert response.status_code == status and detail in response.json()["detail"]
    assert "event_id" not in response.json()


def test_a_replayed_webhook_is_refused(client, landing):
    body = arrival(landing / "b2.csv")
    headers = signed(body)
    assert client.post("/hooks/data", content=body, headers=headers).status_code == 202
    again = client.post("/hooks/data", content=body, headers=headers)
    assert again.status_code == 401 and "replayed" in again.json()["detail"]


def test_unknown_source_and_health(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.post("/hooks/nope", content=b"{}").status_code == 404

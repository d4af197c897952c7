"""A webhook receiver: verified HTTP callbacks become Prefect events that deployments trigger on.

Prefect's open-source server has no webhook endpoint (Prefect Cloud has), and its event API takes
events without authentication, so outside callers are authenticated here. Signatures follow the
Standard Webhooks scheme (headers `webhook-id`, `webhook-timestamp`, `webhook-signature`: HMAC-SHA256
over "id.timestamp.body", verified by the `standardwebhooks` package), so senders that already sign
that way work unchanged. A request is accepted only if, in this order: the source is known, the body
is at most 1 MiB, the signature is valid and the timestamp within 5 minutes, the id was not seen
before (replay), the body is JSON of the expected shape, and any data path lies under an allowed
root. Then the mapped event is emitted and the answer is 202 with its id. Every decision is logged;
the secret never is.

Run: `python -m webhooks.receiver` (settings from the environment, see `ReceiverSettings`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from blocks.names import NAME_PATTERN
from tasks.errors import DataLoadError
from tasks.sources import check_allowed

logger = logging.getLogger("ct.webhooks")
MIB = 1024 * 1024


class ReceiverSettings(BaseModel):
    """Receiver settings; `from_env` reads them from CT_WEBHOOK_* variables."""

    model_config = ConfigDict(frozen=True)

    secret: SecretStr
    allowed_roots: list[str] = Field(min_length=1)
    max_body: int = MIB
    replay_window_seconds: int = 600
    #: URL source -> event name.
    sources: dict[str, str] = Field(
        default_factory=lambda: {"data": "ct.data.arrived", "drift": "ct.drift.detected"}
    )

    @classmethod
    def from_env(cls) -> ReceiverSettings:
        """CT_WEBHOOK_SECRET (or CT_WEBHOOK_SECRET_BLOCK, a Prefect Secret block's name),
        CT_WEBHOOK_ALLOWED_ROOTS (separated by os.pathsep), CT_WEBHOOK_MAX_BODY."""
        secret = os.environ.get("CT_WEBHOOK_SECRET")
        block = os.environ.get("CT_WEBHOOK_SECRET_BLOCK")
        if not secret and block:
            from prefect.blocks.system import Secret

            secret = str(Secret.load(block, _sync=True).get())  # type: ignore[union-attr,call-arg]
        if not secret:
            raise SystemExit(
                "no webhook secret: set CT_WEBHOOK_SECRET (whsec_<base64>) or CT_WEBHOOK_SECRET_BLOCK"
            )
        roots = [r for r in os.environ.get("CT_WEBHOOK_ALLOWED_ROOTS", "").split(os.pathsep) if r]
        if not roots:
            raise SystemExit(
                "set CT_WEBHOOK_ALLOWED_ROOTS: the folders/URL prefixes data may come from"
            )
        return cls(
            secret=SecretStr(secret),
            allowed_roots=roots,
            max_body=int(os.environ.get("CT_WEBHOOK_MAX_BODY", MIB)),
        )


class Arrival(BaseModel):
    """The body of a webhook: which dataset (model), and where its data is."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(pattern=NAME_PATTERN)
    path: str = Field(min_length=1, max_length=4096)
    rows: int | None = Field(default=None, ge=0)
    note: str | None = Field(default=None, max_length=1000)
    #: The batch is for a model of a fleet (the file is in its landing folder): the event gets
    #: the label `ct.fleet`, which ct-fleet's trigger matches and ct-on-new-data leaves alone.
    fleet: str | None = Field(default=None, pattern=NAME_PATTERN)


class DriftAlert(Arrival):
    """An outside drift alert (e.g. from a monitoring tool): the drifted batch, and whether it
    holds labels (null: ct-on-drift looks at the file)."""

    labelled: bool | None = None


def event_for(hook: str, body: Arrival, message_id: str) -> tuple[dict[str, str], dict[str, Any]]:
    """(resource, payload) of the event a verified webhook becomes.

    New data is about a dataset (`ct.dataset.<name>`, what ct-on-new-data matches). A drift alert
    is about the model that serves that data: resource `ct.model.<name>` with `ct.origin:
    webhook` and the batch as `source`, the shape of the monitor's own drift events, so the same
    ct-on-drift trigger (which accepts origins monitor and webhook) starts a CT step on it.
    """
    common = {"hook": hook, "webhook_id": message_id}
    if isinstance(body, DriftAlert):
        resource = {
            "prefect.resource.id": f"ct.model.{body.dataset}",
            "prefect.resource.name": body.dataset,
            "ct.origin": "webhook",
        }
        payload = {
            "name": body.dataset,
            "source": body.path,
            "labelled": body.labelled,
            "rows": body.rows,
            "note": body.note,
            **common,
        }
        return resource, payload
    resource = {
        "prefect.resource.id": f"ct.dataset.{body.dataset}",
        "prefect.resource.name": body.dataset,
    }
    if body.fleet is not None:
        resource["ct.fleet"] = body.fleet
    return resource, {**body.model_dump(), **common}


class ReplayGuard:
    """Webhook ids seen within the window; a second delivery of the same id is refused."""

    def __init__(self, window_seconds: int):
        self.window = window_seconds
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, message_id: str) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now - self.window:
                self._seen.popitem(last=False)
            if message_id in self._seen:
                return False
            self._seen[message_id] = now
            return True


Emit = Callable[..., Any]


def create_app(settings: ReceiverSettings, *, emit: Emit | None = None) -> FastAPI:
    """The FastAPI app; `emit` defaults to Prefect's `emit_event`."""
    if emit is None:
        from prefect.events import emit_event

        emit = emit_event
    verifier = Webhook(settings.secret.get_secret_value())
    replays = ReplayGuard(settings.replay_window_seconds)
    app = FastAPI(title="ct webhook receiver", docs_url=None, redoc_url=None)

    def decide(
        status: int, reason: str, source: str, message_id: str | None, **extra: Any
    ) -> JSONResponse:
        level = logging.INFO if status < 400 else logging.WARNING
        logger.log(level, "webhook %s id=%s -> %d %s", source, message_id or "-", status, reason)
        return JSONResponse({"status": status, "detail": reason, **extra}, status_code=status)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/hooks/{source}")
    async def hook(source: str, request: Request) -> JSONResponse:
        message_id = request.headers.get("webhook-id")
        if source not in settings.sources:
            return decide(404, f"unknown source {source!r}", source, message_id)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body:
            return decide(413, f"body over {settings.max_body} bytes", source, message_id)
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > settings.max_body:
                return decide(413, f"body over {settings.max_body} bytes", source, message_id)
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return decide(400, "body is not UTF-8", source, message_id)
        try:
            verifier.verify(text, dict(request.headers), json_parse=False)
        except (WebhookVerificationError, ValueError, TypeError) as exc:
            return decide(401, f"signature not verified: {exc}", source, message_id)
        assert message_id is not None  # verify() requires it
        if not replays.first_time(message_id):
            return decide(401, "replayed webhook id", source, message_id)
        shape = DriftAlert if settings.sources[source] == "ct.drift.detected" else Arrival
        try:
            arrival = shape.model_validate_json(text)
        except ValidationError as exc:
            kind = exc.errors()[0]["type"] if exc.errors() else ""
            if kind == "json_invalid":
                return decide(400, "body is not valid JSON", source, message_id)
            return decide(422, f"unexpected body: {exc.errors()[0]['msg']}", source, message_id)
        try:
            check_allowed(arrival.path, settings.allowed_roots)
        except DataLoadError as exc:
            return decide(422, str(exc), source, message_id)
        resource, payload = event_for(source, arrival, message_id)
        event = emit(event=settings.sources[source], resource=resource, payload=payload)
        event_id = None if event is None else str(event.id)
        return decide(
            202, f"emitted {settings.sources[source]}", source, message_id, event_id=event_id
        )

    return app


def main() -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = ReceiverSettings.from_env()
    host = os.environ.get("CT_WEBHOOK_HOST", "127.0.0.1")
    port = int(os.environ.get("CT_WEBHOOK_PORT", "8787"))
    logger.info(
        "ct webhook receiver on http://%s:%d (roots: %s)", host, port, settings.allowed_roots
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main()

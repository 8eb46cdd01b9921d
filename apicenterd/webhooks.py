"""Webhooks as triggers: the general hook a connector implements, and a receiver that runs flows.

A connector that takes webhooks implements :meth:`~apicenterd.Connector.webhook_events`: it
verifies the delivery (signature, timestamp) and parses it into :class:`WebhookEvent` objects,
or raises :class:`WebhookRejected` naming what is wrong. :class:`WebhookReceiver` calls it for
a delivery to one connection, counts the outcome in metrics and starts every flow that reads
the events' entities from that connection (the flow re-reads the changes through the API, so a
webhook never carries data into a target by itself). :func:`webhook_app` mounts it as
``POST {prefix}/{connection}`` for the daemon's HTTP endpoint (issue 17 mounts it in the admin API).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import Counter

from .model import Entity

__all__ = ["WebhookEvent", "WebhookRejected", "WebhookReceiver", "webhook_app", "webhooks_received"]

webhooks_received = Counter(
    "apicenterd_webhooks",
    "Webhook deliveries, by connection and outcome (accepted; rejected: bad signature, old timestamp, malformed body, unknown connection)",
    ["connection", "outcome"],
)


@dataclasses.dataclass(frozen=True)
class WebhookEvent:
    """One verified event of a delivery: which entity changed, the vendor's id, what happened."""

    entity: Entity
    object_id: str
    kind: str = "change"
    occurred_at: int | None = None
    """Unix milliseconds, when the vendor says."""


class WebhookRejected(Exception):
    """A delivery that is not accepted: ``status`` (401 bad signature or stale, 400 malformed,
    404 no such connection or no webhooks) and the reason, given back to the sender."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclasses.dataclass(frozen=True)
class WebhookResult:
    """What a delivery did: its events and the flows it started."""

    events: tuple[WebhookEvent, ...]
    flows: tuple[str, ...]


class WebhookReceiver:
    """Verifies deliveries with the connection's connector and starts the flows they concern.

    ``engine``: an opened :class:`~apicenterd.engine.Engine` (its ``connectors`` and ``resolved``
    flows). ``start(flow)``: how a flow is started (default: ``engine.run_flow(flow, trigger="webhook")``
    awaited; a daemon passes one that queues it)."""

    def __init__(self, engine: Any, start: Callable[[str], Awaitable[Any]] | None = None):
        self.engine = engine
        self.start = start or (lambda flow: engine.run_flow(flow, trigger="webhook"))

    def verify(self, connection: str, method: str, url: str, headers: Mapping[str, str], body: bytes) -> WebhookResult:
        """The delivery's events and the flows to start; :class:`WebhookRejected` (counted) when refused."""
        try:
            connector = self.engine.connectors.get(connection)
            if connector is None:
                raise WebhookRejected(404, f"no open connection named {connection!r}")
            events = tuple(connector.webhook_events(method, url, headers, body))
        except WebhookRejected:
            webhooks_received.labels(connection, "rejected").inc()
            raise
        webhooks_received.labels(connection, "accepted").inc()
        entities = {e.entity for e in events}
        flows = tuple(
            name
            for name, flow in self.engine.resolved.flows.items()
            if flow.source == connection and (flow.read_entity or flow.entity) in entities
        )
        return WebhookResult(events, flows)

    async def receive(self, connection: str, method: str, url: str, headers: Mapping[str, str], body: bytes) -> WebhookResult:
        """Verify, then start the flows (awaited)."""
        result = self.verify(connection, method, url, headers, body)
        for flow in result.flows:
            await self.start(flow)
        return result


def webhook_app(receiver: WebhookReceiver, *, prefix: str = "/webhooks") -> Any:
    """A Starlette app: ``POST {prefix}/{connection}`` verifies at once (401/400/404 with the reason
    as JSON) and answers 200 before the flows run (in the background)."""
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def endpoint(request: Request) -> JSONResponse:
        connection = request.path_params["connection"]
        body = await request.body()
        try:
            result = receiver.verify(connection, request.method, str(request.url), request.headers, body)
        except WebhookRejected as exc:
            return JSONResponse({"error": exc.reason}, status_code=exc.status)

        async def run() -> None:
            for flow in result.flows:
                await receiver.start(flow)

        return JSONResponse({"events": len(result.events), "flows": list(result.flows)}, background=BackgroundTask(run))

    return Starlette(routes=[Route(prefix.rstrip("/") + "/{connection}", endpoint, methods=["POST"])])

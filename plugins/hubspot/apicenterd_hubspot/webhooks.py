"""HubSpot webhooks (v3 signatures) as triggers: verify a delivery, parse its events (the
connector's :meth:`~apicenterd.Connector.webhook` hook; the daemon receives them on
``/webhooks/<connection>``).

[doc] developers.hubspot.com "Validating requests" / changelog "Introducing version 3 of webhook
signatures": ``X-HubSpot-Signature-v3`` is base64(HMAC-SHA256(client secret, method + URI + body +
timestamp)), ``X-HubSpot-Request-Timestamp`` in Unix milliseconds; deliveries older than five
minutes are rejected. A delivery is a JSON array of events with ``objectId``,
``subscriptionType`` (``contact.creation``, ``product.propertyChange``, ...) and ``occurredAt``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from apicenterd import Entity, WebhookEvent, WebhookRejected

__all__ = ["MAX_AGE_MS", "OBJECT_ENTITIES", "sign_v3", "verify_v3", "parse_events"]

MAX_AGE_MS = 5 * 60 * 1000
"""A delivery whose timestamp is older than this is refused (a replay)."""
OBJECT_ENTITIES: Mapping[str, Entity] = {
    "contact": Entity.CUSTOMERS,
    "company": Entity.CUSTOMERS,
    "product": Entity.PRODUCTS,
    "deal": Entity.ORDERS,
    "line_item": Entity.ORDERS,
}
"""The object of a ``subscriptionType`` -> the entity whose flows it triggers."""


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """The v3 signature of a delivery: base64 of HMAC-SHA256 over method + URI + body + timestamp."""
    message = method.upper().encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def verify_v3(
    secret: str | None,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    clock: Callable[[], float] = time.time,
    public_urls: Sequence[str] = (),
) -> None:
    """Raise :class:`WebhookRejected` (answered 401) unless the delivery carries a valid v3
    signature made less than five minutes ago. The URI is ``url`` as received, or one of
    ``public_urls`` (the target URL configured in HubSpot, which a reverse proxy in front of the
    daemon changes), each also URL-decoded (HubSpot signs the decoded form of some characters)."""
    if not secret:
        raise WebhookRejected("no webhook secret is configured for this connection (webhook_secret or client_secret)")
    signature = _header(headers, "X-HubSpot-Signature-v3")
    stamp = _header(headers, "X-HubSpot-Request-Timestamp")
    if not signature:
        raise WebhookRejected("the delivery has no X-HubSpot-Signature-v3 header")
    if not stamp or not stamp.strip().isdigit():
        raise WebhookRejected(f"X-HubSpot-Request-Timestamp {stamp!r} is not a Unix time in milliseconds")
    age = clock() * 1000 - int(stamp)
    if age > MAX_AGE_MS:
        raise WebhookRejected(f"the delivery is {age / 1000:.0f} s old (X-HubSpot-Request-Timestamp); more than 5 minutes is refused")
    candidates = {form for uri in (url, *public_urls) for form in (uri, urllib.parse.unquote(uri))}
    if not any(hmac.compare_digest(sign_v3(secret, method, uri, body, stamp.strip()), signature.strip()) for uri in candidates):
        raise WebhookRejected("X-HubSpot-Signature-v3 does not match the delivery (wrong secret, or the body or URL was changed)")


def parse_events(body: bytes) -> list[WebhookEvent]:
    """The events of a delivery; :class:`WebhookRejected` (``malformed``, answered 400) naming the first thing wrong.
    Events of objects no flow reads (e.g. ``ticket.creation``) are left out."""
    try:
        data: Any = json.loads(body)
    except ValueError as exc:
        raise WebhookRejected(f"the delivery is not JSON ({exc})", malformed=True) from None
    if not isinstance(data, list):
        raise WebhookRejected(f"the delivery is not a JSON array of events (got {type(data).__name__})", malformed=True)
    events = []
    for n, item in enumerate(data):
        if not isinstance(item, dict):
            raise WebhookRejected(f"event {n} is not an object", malformed=True)
        kind = item.get("subscriptionType")
        if not isinstance(kind, str) or "." not in kind:
            raise WebhookRejected(f"event {n}: subscriptionType {kind!r} is not like 'contact.creation'", malformed=True)
        object_id = item.get("objectId")
        if isinstance(object_id, bool) or not isinstance(object_id, (int, str)) or not str(object_id).strip():
            raise WebhookRejected(f"event {n}: objectId {object_id!r} is missing or not an id", malformed=True)
        occurred = item.get("occurredAt")
        if occurred is not None and (isinstance(occurred, bool) or not isinstance(occurred, int)):
            raise WebhookRejected(f"event {n}: occurredAt {occurred!r} is not Unix milliseconds", malformed=True)
        obj = kind.partition(".")[0]
        entity = OBJECT_ENTITIES.get(obj)
        if entity is not None:
            events.append(WebhookEvent(entity, str(object_id), kind))
    return events

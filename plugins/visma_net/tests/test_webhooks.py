"""Visma.net webhooks as a trigger only: the URL's token (Visma.net signs nothing), the entities to
re-read from the URL or the body's event names, and what is refused."""

from __future__ import annotations

import json

import pytest
from apicenterd_visma_net import VismaNetConnector

from apicenterd import Entity, WebhookRejected, WebhookRequest
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio

URL = "https://sync.example.com/webhooks/vismanet"


def delivery(query: str = "token=s3cret", body: object = None) -> WebhookRequest:
    raw = json.dumps(body).encode() if body is not None else b""
    return WebhookRequest("POST", f"{URL}?{query}" if query else URL, {"content-type": "application/json"}, raw)


async def events(app, settings, request: WebhookRequest, token: str | None = "s3cret") -> list:
    async with connect(VismaNetConnector, {**settings, **({"webhook_token": token} if token else {})}, app=app) as conn:
        return list(await conn.webhook(request))


async def test_the_url_entity_names_what_is_re_read(app, settings):
    got = await events(app, settings, delivery("token=s3cret&entity=products"))
    assert [e.entity for e in got] == [Entity.PRODUCTS, Entity.STOCK]
    assert [e.entity for e in await events(app, settings, delivery("entity=orders&token=s3cret"))] == [Entity.ORDERS]


async def test_event_names_in_the_body_name_the_entities(app, settings):
    got = await events(app, settings, delivery(body={"event": {"entity": "Sales Order", "type": "Status Changed"}, "id": "SO-1"}))
    assert [(e.entity, e.kind) for e in got] == [(Entity.ORDERS, "Sales Order")]
    got = await events(app, settings, delivery(body=[{"eventType": "InventoryItem.Changed"}, {"eventType": "Customer Updated"}]))
    assert {e.entity for e in got} == {Entity.PRODUCTS, Entity.STOCK, Entity.CUSTOMERS}


async def test_an_unrecognised_body_re_reads_everything_read_here(app, settings):
    got = await events(app, settings, delivery(body={"something": "new"}))
    assert {e.entity for e in got} == {Entity.CUSTOMERS, Entity.PRODUCTS, Entity.STOCK, Entity.ORDERS}
    assert {e.entity for e in await events(app, settings, delivery())} == {e.entity for e in got}  # an empty body too


@pytest.mark.parametrize(
    ("request_", "token", "reason", "malformed"),
    [
        (delivery("token=wrong"), "s3cret", "does not match", False),
        (delivery(""), "s3cret", "has no token", False),
        (delivery(), None, "no webhook_token is configured", False),
        (delivery("token=s3cret&entity=invoices"), "s3cret", "entity='invoices'", True),
        (WebhookRequest("POST", f"{URL}?token=s3cret", {}, b"{not json"), "s3cret", "not JSON", True),
    ],
)
async def test_what_is_refused(app, settings, request_, token, reason, malformed):
    with pytest.raises(WebhookRejected, match=reason) as info:
        await events(app, settings, request_, token)
    assert info.value.malformed is malformed

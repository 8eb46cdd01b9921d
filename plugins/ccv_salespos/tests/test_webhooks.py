"""CCV webhooks: the connector subscribes to the configured events (idempotently) and takes a webhook
as a trigger only (CCV's signature is undocumented): its event from the subscribed URL, the id from
the body, the flows re-read through the signed API."""

from __future__ import annotations

import json

import httpx
import pytest
from apicenterd_ccv_salespos import CCVSalesPOSConnector
from pydantic import ValidationError

from apicenterd import Entity, WebhookRejected, WebhookRequest
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio
BASE = "http://myshop.test"
HOOK = "https://apicenterd.example.com/webhooks/salespos"

# a captured orders.updated.status payload (CCV-SHOP-API.md §8, from a production app)
STATUS_PAYLOAD = {
    "triggered_at": "2022-11-09T16:17:30Z",
    "href": f"{BASE}/api/rest/v1/orders/339493812",
    "id": 339493812,
    "order_number": 3,
    "ordernumber_prefix": None,
    "ordernumber_full": "3",
    "total_price": 1175,
    "previous_status": 1,
    "status": 5,
    "customer_email": "jan@example.com",
    "customer_mobile": "",
}


def settings(**overrides):
    return {**CCVSalesPOSConnector.demo_settings(BASE), **overrides}


def request(event: str | None, body: bytes) -> WebhookRequest:
    url = HOOK + (f"?event={event}" if event is not None else "")
    return WebhookRequest("POST", url, {"content-type": "application/json"}, body)


async def test_subscribes_to_the_configured_events_once():
    app = CCVSalesPOSConnector.simulator(seed=1)
    hooks = settings(webhook_url=HOOK, webhook_events=["orders.created", "orders.updated.*", "products.updated"])
    async with connect(CCVSalesPOSConnector, hooks, app=app):
        pass
    subscribed = sorted((w["event"], w["address"], w["is_active"]) for w in app.state.sim.webhooks.values())
    assert subscribed == sorted(
        (e, f"{HOOK}?event={e}", True)
        for e in ("orders.created", "orders.updated.status", "orders.updated.ispaid", "orders.updated.trackandtrace", "products.updated")
    )
    assert all(len(w["key"]) > 0 and w["createdate"].endswith("Z") for w in app.state.sim.webhooks.values())
    # opened again (a restart, a reload): nothing new; an inactive subscription is turned back on
    first = next(iter(app.state.sim.webhooks.values()))
    first["is_active"] = False
    async with connect(CCVSalesPOSConnector, hooks, app=app) as connector:
        assert await connector.subscribe_webhooks() == []
    assert len(app.state.sim.webhooks) == 5 and first["is_active"] is True


async def test_events_removed_from_the_config_are_unsubscribed_and_others_apps_left_alone():
    app = CCVSalesPOSConnector.simulator(seed=1)
    sim = app.state.sim
    async with connect(CCVSalesPOSConnector, settings(webhook_url=HOOK, webhook_events=["orders.created", "products.updated"]), app=app):
        pass
    # another app's subscription on the same shop
    sim.webhooks[1] = {"href": "x", "id": 1, "createdate": "2026-01-01T00:00:00Z", "event": "products.updated",
                       "address": "https://other.example/hook", "key": "k", "is_active": True}  # fmt: skip
    async with connect(CCVSalesPOSConnector, settings(webhook_url=HOOK, webhook_events=["orders.created"]), app=app) as connector:
        assert await connector.subscribe_webhooks() == []
    assert sorted((w["event"], w["address"]) for w in sim.webhooks.values()) == [
        ("orders.created", f"{HOOK}?event=orders.created"),
        ("products.updated", "https://other.example/hook"),
    ]
    # no events left (webhook_url still set): ours are all gone, the other app's stays
    async with connect(CCVSalesPOSConnector, settings(webhook_url=HOOK, webhook_events=[]), app=app):
        pass
    assert [w["address"] for w in sim.webhooks.values()] == ["https://other.example/hook"]


async def test_no_events_configured_costs_no_call():
    app = CCVSalesPOSConnector.simulator(seed=1)
    async with connect(CCVSalesPOSConnector, settings(), app=app):
        pass
    assert app.state.sim.request_count == 0 and app.state.sim.webhooks == {}


async def test_a_webhook_is_a_trigger_for_the_entities_its_event_changes():
    async with connect(CCVSalesPOSConnector, settings(), app=CCVSalesPOSConnector.simulator(seed=1)) as connector:
        events = await connector.webhook(request("orders.updated.status", json.dumps(STATUS_PAYLOAD).encode()))
        assert [(e.entity, e.source_id, e.kind) for e in events] == [
            (Entity.ORDERS, "339493812", "orders.updated.status"),
            (Entity.CUSTOMERS, "339493812", "orders.updated.status"),
            (Entity.STOCK, "339493812", "orders.updated.status"),
        ]
        events = await connector.webhook(request("products.updated", b'{"id": 1001}'))
        assert {e.entity for e in events} == {Entity.PRODUCTS, Entity.STOCK}


@pytest.mark.parametrize(
    ("event", "body", "malformed", "reason"),
    [
        (None, b"{}", True, "event '' in the URL is not one"),
        ("orders.exploded", b"{}", True, "event 'orders.exploded'"),
        ("orders.created", b"<xml/>", True, "the body is not JSON"),
        ("orders.created", b"[1, 2]", True, "not a JSON object (list)"),
        ("orders.created", json.dumps({**STATUS_PAYLOAD, "href": "https://evil.test/api/rest/v1/orders/1"}).encode(), False,
         "the body's href is on evil.test, not this connection's shop myshop.test"),
    ],
)  # fmt: skip
async def test_bad_webhooks_are_rejected_with_the_reason(event, body, malformed, reason):
    async with connect(CCVSalesPOSConnector, settings(), app=CCVSalesPOSConnector.simulator(seed=1)) as connector:
        with pytest.raises(WebhookRejected) as err:
            await connector.webhook(request(event, body))
    assert reason in err.value.reason and err.value.malformed is malformed


def test_webhook_settings_are_checked():
    model = CCVSalesPOSConnector.Settings.model_validate(settings(webhook_url=HOOK, webhook_events=["orders.updated.*", "orders.updated.status"]))
    assert model.webhook_events == ["orders.updated.status", "orders.updated.ispaid", "orders.updated.trackandtrace"]
    with pytest.raises(ValidationError, match="unknown CCV webhook event 'orders.deleted'"):
        CCVSalesPOSConnector.Settings.model_validate(settings(webhook_url=HOOK, webhook_events=["orders.deleted"]))
    with pytest.raises(ValidationError, match="webhook_events needs webhook_url"):
        CCVSalesPOSConnector.Settings.model_validate(settings(webhook_events=["orders.created"]))
    with pytest.raises(ValidationError, match="webhook_url"):
        CCVSalesPOSConnector.Settings.model_validate(settings(webhook_url="ftp://x", webhook_events=["orders.created"]))
    assert CCVSalesPOSConnector.takes_webhooks()


async def test_simulator_webhooks_resource_as_documented(doc_auth):
    """POST returns {href,id,createdate,event,address,key,is_active}; PATCH allows only address and is_active."""
    public, private = "pub-key", "priv-key"
    app = CCVSalesPOSConnector.simulator(seed=1, public_key=public, private_key=private)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, auth=doc_auth(public, private)) as client:
        created = await client.post("/api/rest/v1/webhooks/", json={"event": "orders.created", "address": HOOK, "is_active": True})
        assert created.status_code == 201
        assert set(created.json()) == {"href", "id", "createdate", "event", "address", "key", "is_active"}
        wid = created.json()["id"]
        refused = await client.patch(f"/api/rest/v1/webhooks/{wid}/", json={"event": "products.updated"})
        assert refused.status_code == 400 and "'event' is not allowed" in refused.json()["developermessage"]
        assert (await client.patch(f"/api/rest/v1/webhooks/{wid}/", json={"is_active": False})).status_code == 204
        listed = (await client.get("/api/rest/v1/webhooks/")).json()["items"]
        assert [(w["id"], w["is_active"]) for w in listed] == [(wid, False)]
        assert (await client.delete(f"/api/rest/v1/webhooks/{wid}/")).status_code == 204
        assert (await client.get(f"/api/rest/v1/webhooks/{wid}/")).status_code == 404

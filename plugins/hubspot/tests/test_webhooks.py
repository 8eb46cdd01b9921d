"""Webhooks v3: the signature, the five-minute window, malformed bodies, and the trigger through
the daemon's ``/webhooks/<connection>`` (the connector's ``webhook`` hook)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import httpx
import pytest
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_hubspot import HubSpotConnector
from apicenterd_hubspot.simulator import CLIENT_SECRET
from apicenterd_hubspot.webhooks import parse_events, sign_v3, verify_v3
from prometheus_client import REGISTRY

from apicenterd import Entity, WebhookEvent, WebhookRejected, WebhookRequest
from apicenterd.config import Config, resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio

URL = "https://sync.example.com/webhooks/hubspot?portal=1"
NOW = 1_800_000_000.0
EVENTS = [
    {
        "eventId": 1,
        "subscriptionId": 9,
        "portalId": 1,
        "appId": 2,
        "occurredAt": 1_799_999_999_000,
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
        "objectId": 123,
        "propertyName": "email",
        "propertyValue": "a@b.c",
        "changeSource": "CRM",
    },
    {
        "eventId": 2,
        "subscriptionId": 9,
        "portalId": 1,
        "appId": 2,
        "occurredAt": 1_799_999_999_500,
        "subscriptionType": "product.creation",
        "attemptNumber": 0,
        "objectId": 456,
    },
    {
        "eventId": 3,
        "subscriptionId": 9,
        "portalId": 1,
        "appId": 2,
        "occurredAt": 1_799_999_999_500,
        "subscriptionType": "ticket.creation",
        "attemptNumber": 0,
        "objectId": 7,
    },
]


def delivery(body: bytes, *, stamp: int = int(NOW * 1000) - 1000, secret: str = CLIENT_SECRET, url: str = URL) -> dict[str, str]:
    return {"X-HubSpot-Request-Timestamp": str(stamp), "X-HubSpot-Signature-v3": sign_v3(secret, "POST", url, body, str(stamp))}


def test_the_signature_is_base64_hmac_sha256_of_method_uri_body_timestamp():
    # computed independently of sign_v3: the documented recipe, byte by byte
    body = b'[{"objectId":1}]'
    expected = base64.b64encode(hmac.new(b"secret", b"POST" + URL.encode() + body + b"1700000000000", hashlib.sha256).digest()).decode()
    assert sign_v3("secret", "POST", URL, body, "1700000000000") == expected


def test_a_valid_delivery_passes():
    body = json.dumps(EVENTS).encode()
    verify_v3(CLIENT_SECRET, "POST", URL, delivery(body), body, clock=lambda: NOW)


@pytest.mark.parametrize(
    "change, reason",
    [
        (
            lambda h, b: ({**h, "X-HubSpot-Signature-v3": sign_v3("other", "POST", URL, b, h["X-HubSpot-Request-Timestamp"])}, b),
            "does not match",
        ),
        (lambda h, b: (h, b + b" "), "does not match"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-HubSpot-Signature-v3"}, b), "no X-HubSpot-Signature-v3"),
        (lambda h, b: ({**h, "X-HubSpot-Request-Timestamp": "yesterday"}, b), "not a Unix time"),
        (lambda h, b: (delivery(b, stamp=int(NOW * 1000) - 301_000), b), "more than 5 minutes is refused"),
    ],
)
def test_bad_signatures_and_old_timestamps_are_refused(change, reason):
    body = json.dumps(EVENTS).encode()
    headers, sent = change(delivery(body), body)
    with pytest.raises(WebhookRejected, match=reason) as info:
        verify_v3(CLIENT_SECRET, "POST", URL, headers, sent, clock=lambda: NOW)
    assert info.value.malformed is False  # answered 401: not proven to come from HubSpot


def test_events_are_parsed_and_objects_no_flow_reads_left_out():
    events = parse_events(json.dumps(EVENTS).encode())
    assert events == [
        WebhookEvent(Entity.CUSTOMERS, "123", "contact.propertyChange"),
        WebhookEvent(Entity.PRODUCTS, "456", "product.creation"),
    ]


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"not json", "not JSON"),
        (b'{"objectId": 1}', "not a JSON array"),
        (b"[1]", "event 0 is not an object"),
        (b'[{"objectId": 1, "subscriptionType": "creation"}]', "subscriptionType 'creation'"),
        (b'[{"subscriptionType": "contact.creation"}]', "objectId None"),
        (b'[{"objectId": 1, "subscriptionType": "contact.creation", "occurredAt": "noon"}]', "occurredAt 'noon'"),
    ],
)
def test_malformed_bodies_are_refused_naming_what_is_wrong(body, reason):
    with pytest.raises(WebhookRejected, match=reason) as info:
        parse_events(body)
    assert info.value.malformed is True  # answered 400


def test_a_public_url_behind_a_proxy_is_verified_too():
    """HubSpot signs the target URL set in the app; behind a TLS proxy the daemon sees another one."""
    body = json.dumps(EVENTS).encode()
    headers = delivery(body)  # signed over URL, the public one
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_v3(CLIENT_SECRET, "POST", "http://127.0.0.1:9465/webhooks/hubspot?portal=1", headers, body, clock=lambda: NOW)
    verify_v3(CLIENT_SECRET, "POST", "http://127.0.0.1:9465/webhooks/hubspot?portal=1", headers, body, clock=lambda: NOW, public_urls=[URL])


def counted(connection: str, result: str) -> float:
    return REGISTRY.get_sample_value("apicenterd_webhooks_total", {"connection": connection, "result": result}) or 0.0


def resolved_config(tmp_path, admin_table, hubspot_settings):
    """hubspot and eaccounting connections; flows reading HubSpot customers and deals, and one reading eAccounting."""
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "admin": admin_table,
        "connections": {
            "hubspot": {"connector": "hubspot", **hubspot_settings},
            "eaccounting": {"connector": "eaccounting", **EAccountingConnector.demo_settings("http://eaccounting.test")},
        },
        "flows": {
            "hubspot-customers": {"source": "hubspot", "target": "eaccounting", "entity": "customers", "interval": "1h"},
            "hubspot-deals": {
                "source": "hubspot",
                "target": "eaccounting",
                "entity": "orders",
                "interval": "1h",
                "options": {"statuses": ["closedwon"], "document": "order"},
            },
            "eaccounting-customers": {"source": "eaccounting", "target": "hubspot", "entity": "customers", "interval": "1h"},
        },
    }
    return resolve(Config(**raw), load_registry(), tmp_path / "apicenterd.toml")


async def test_a_verified_delivery_runs_the_flows_reading_its_entities_and_bad_ones_are_counted(
    tmp_path, app, settings, daemon, gate, admin_table
):
    public = "https://sync.example.com/webhooks/hubspot"  # the target URL set in HubSpot; the daemon sits behind a proxy
    resolved = resolved_config(tmp_path, admin_table, {**settings, "webhook_secret": CLIENT_SECRET, "webhook_url": public})
    eaccounting = EAccountingConnector.simulator(seed=4)
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    transports = {"hubspot": httpx.ASGITransport(app=app), "eaccounting": httpx.ASGITransport(app=eaccounting)}
    engine = Engine(resolved, store, transports=transports, rate_limits=False, retry_base_delay=0)
    try:
        await engine.open(["hubspot"])
        engine.connectors["hubspot"].webhook_clock = lambda: NOW
        async with daemon(resolved, engine, store, sleep=gate.sleep) as (client, backend):
            body = json.dumps(EVENTS).encode()
            accepted, unverified, malformed = counted("hubspot", "accepted"), counted("hubspot", "unverified"), counted("hubspot", "malformed")
            ok = await client.post("/webhooks/hubspot", content=body, headers=delivery(body, url=public))
            assert ok.status_code == 202 and ok.json() == {"accepted": 2, "flows": ["hubspot-customers"]}
            for headers, reason in (
                (delivery(body, url=public, secret="wrong"), "does not match"),
                (delivery(body, url=public, stamp=int(NOW * 1000) - 600_000), "more than 5 minutes is refused"),
                (delivery(body, url="https://elsewhere.example.com/webhooks/hubspot"), "does not match"),
                ({}, "no X-HubSpot-Signature-v3"),
            ):
                bad = await client.post("/webhooks/hubspot", content=body, headers=headers)
                assert bad.status_code == 401 and reason in bad.json()["error"], bad.json()
            broken = b'[{"objectId": 1, "subscriptionType": "creation"}]'
            bad = await client.post("/webhooks/hubspot", content=broken, headers=delivery(broken, url=public))
            assert bad.status_code == 400 and "subscriptionType 'creation'" in bad.json()["error"]
            assert counted("hubspot", "accepted") == accepted + 1
            assert counted("hubspot", "unverified") == unverified + 4 and counted("hubspot", "malformed") == malformed + 1
            assert backend.debouncer.scheduled == 1 and backend.debouncer.started == 0  # answered first; nothing ran yet
            ran = backend.ran
            gate.open()
            await ran.wait()
            runs = (await client.get("/api/v1/runs")).json()["runs"]
            assert [(r["flow"], r["trigger"], r["status"]) for r in runs] == [("hubspot-customers", "webhook", "ok")]
    finally:
        await engine.aclose()
        await store.close()


async def test_a_connection_without_a_secret_refuses_every_delivery(app, settings):
    async with connect(HubSpotConnector, settings, app=app) as hs:
        body = b"[]"
        with pytest.raises(WebhookRejected, match="no webhook secret is configured") as info:
            await hs.webhook(WebhookRequest("POST", URL, delivery(body), body))
        assert info.value.malformed is False


async def test_the_simulator_signs_deliveries_the_connector_accepts(app, sim, settings):
    settings = {**settings, "webhook_secret": CLIENT_SECRET}
    async with connect(HubSpotConnector, settings, app=app) as hs:
        hs.webhook_clock = lambda: NOW
        body, headers = sim.webhook_request(URL, EVENTS[:1], timestamp_ms=int(NOW * 1000))
        lowered = {k.lower(): v for k, v in headers.items()}  # as the daemon hands them on
        assert [e.source_id for e in await hs.webhook(WebhookRequest("POST", URL, lowered, body))] == ["123"]


def test_a_webhook_url_that_is_no_url_is_refused(settings):
    with pytest.raises(ValueError, match=r"webhook_url\n.*is not an absolute http"):
        HubSpotConnector.Settings.model_validate({**settings, "webhook_url": "sync.example.com/webhooks/hubspot"})

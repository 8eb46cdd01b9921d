"""Webhooks v3: the signature, the five-minute window, malformed bodies, and the trigger through the core's receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from types import SimpleNamespace

import httpx
import pytest
from apicenterd_hubspot import HubSpotConnector
from apicenterd_hubspot.simulator import CLIENT_SECRET
from apicenterd_hubspot.webhooks import parse_events, sign_v3, verify_v3

from apicenterd import Entity, WebhookEvent, WebhookRejected
from apicenterd.testing import connect
from apicenterd.webhooks import WebhookReceiver, webhook_app, webhooks_received

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
    assert info.value.status == 401


def test_events_are_parsed_and_objects_no_flow_reads_left_out():
    events = parse_events(json.dumps(EVENTS).encode())
    assert events == [
        WebhookEvent(Entity.CUSTOMERS, "123", "propertyChange", 1_799_999_999_000),
        WebhookEvent(Entity.PRODUCTS, "456", "creation", 1_799_999_999_500),
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
    assert info.value.status == 400


class FakeEngine:
    """What the receiver needs of an engine: open connectors, the resolved flows, run_flow."""

    def __init__(self, connectors):
        self.connectors = connectors
        flow = lambda source, entity: SimpleNamespace(source=source, entity=entity, read_entity=None)  # noqa: E731
        self.resolved = SimpleNamespace(
            flows={
                "hubspot-customers": flow("hubspot", Entity.CUSTOMERS),
                "hubspot-deals": flow("hubspot", Entity.ORDERS),
                "eaccounting-customers": flow("eaccounting", Entity.CUSTOMERS),
            }
        )
        self.runs: list[tuple[str, str]] = []

    async def run_flow(self, name, *, trigger):
        self.runs.append((name, trigger))


def counted(connection: str, outcome: str) -> float:
    return webhooks_received.labels(connection, outcome)._value.get()


async def test_a_verified_delivery_runs_the_flows_reading_its_entities_and_bad_ones_are_counted(app, settings):
    settings = {**settings, "webhook_secret": CLIENT_SECRET}
    async with connect(HubSpotConnector, settings, app=app) as hs:
        hs.webhook_clock = lambda: NOW
        engine = FakeEngine({"hubspot": hs})
        receiver = WebhookReceiver(engine)
        body = json.dumps(EVENTS).encode()
        accepted, rejected = counted("hubspot", "accepted"), counted("hubspot", "rejected")
        result = await receiver.receive("hubspot", "POST", URL, delivery(body), body)
        assert engine.runs == [("hubspot-customers", "webhook")] and result.flows == ("hubspot-customers",)
        for headers in (delivery(body, secret="wrong"), delivery(body, stamp=int(NOW * 1000) - 600_000)):
            with pytest.raises(WebhookRejected):
                await receiver.receive("hubspot", "POST", URL, headers, body)
        assert engine.runs == [("hubspot-customers", "webhook")]  # nothing more ran
        assert counted("hubspot", "accepted") == accepted + 1 and counted("hubspot", "rejected") == rejected + 2


async def test_the_http_endpoint_answers_the_reason_and_runs_after_answering(app, settings):
    settings = {**settings, "webhook_secret": CLIENT_SECRET}
    async with connect(HubSpotConnector, settings, app=app) as hs:
        hs.webhook_clock = lambda: NOW
        engine = FakeEngine({"hubspot": hs})
        endpoint = webhook_app(WebhookReceiver(engine))
        url = "http://daemon.test/webhooks/hubspot"
        body = json.dumps(EVENTS[1:2]).encode()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=endpoint), base_url="http://daemon.test") as client:
            ok = await client.post("/webhooks/hubspot", content=body, headers=delivery(body, url=url))
            bad = await client.post("/webhooks/hubspot", content=body, headers=delivery(body, url=url, secret="x"))
            nobody = await client.post("/webhooks/nobody", content=body, headers=delivery(body, url=url))
    assert ok.status_code == 200 and ok.json() == {"events": 1, "flows": []}
    assert bad.status_code == 401 and "does not match" in bad.json()["error"]
    assert nobody.status_code == 404 and "no open connection named 'nobody'" in nobody.json()["error"]


async def test_a_connection_without_a_secret_refuses_every_delivery(app, settings):
    async with connect(HubSpotConnector, settings, app=app) as hs:
        body = b"[]"
        with pytest.raises(WebhookRejected, match="no webhook secret is configured"):
            hs.webhook_events("POST", URL, delivery(body), body)


async def test_the_simulator_signs_deliveries_the_connector_accepts(app, sim, settings):
    settings = {**settings, "webhook_secret": CLIENT_SECRET}
    async with connect(HubSpotConnector, settings, app=app) as hs:
        hs.webhook_clock = lambda: NOW
        body, headers = sim.webhook_request(URL, EVENTS[:1], timestamp_ms=int(NOW * 1000))
        assert [e.object_id for e in hs.webhook_events("POST", URL, headers, body)] == ["123"]

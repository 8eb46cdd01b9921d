"""The core's webhook hook: a connector without webhooks refuses; the receiver names an unknown connection."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from apicenterd import Connector, Entity, WebhookEvent, WebhookRejected
from apicenterd.webhooks import WebhookReceiver


class Plain(Connector):
    name = "plain"


class Hooked(Connector):
    name = "hooked"

    def webhook_events(self, method, url, headers, body):
        if headers.get("X-Ok") != "yes":
            raise WebhookRejected(401, "no X-Ok")
        return [WebhookEvent(Entity.PRODUCTS, body.decode())]


def engine(connectors):
    flows = {
        "products": SimpleNamespace(source="hooked", entity=Entity.STOCK, read_entity=Entity.PRODUCTS),
        "customers": SimpleNamespace(source="hooked", entity=Entity.CUSTOMERS, read_entity=None),
        "elsewhere": SimpleNamespace(source="plain", entity=Entity.PRODUCTS, read_entity=None),
    }
    return SimpleNamespace(connectors=connectors, resolved=SimpleNamespace(flows=flows))


def test_a_connector_takes_no_webhooks_by_default():
    with pytest.raises(WebhookRejected, match="connector 'plain' takes no webhooks") as info:
        Plain.__new__(Plain).webhook_events("POST", "http://x/", {}, b"")
    assert info.value.status == 404


def test_the_receiver_finds_the_flows_by_source_and_read_entity():
    receiver = WebhookReceiver(engine({"hooked": Hooked.__new__(Hooked)}))
    result = receiver.verify("hooked", "POST", "http://x/", {"X-Ok": "yes"}, b"42")
    assert result.events == (WebhookEvent(Entity.PRODUCTS, "42"),) and result.flows == ("products",)
    with pytest.raises(WebhookRejected, match="no X-Ok"):
        receiver.verify("hooked", "POST", "http://x/", {}, b"42")
    with pytest.raises(WebhookRejected, match="no open connection named 'nope'"):
        receiver.verify("nope", "POST", "http://x/", {}, b"")

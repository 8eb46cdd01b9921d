"""The connector makes the WebhookSubscriptions its webhook_topics need, at its webhook_url, once."""

from __future__ import annotations

import pytest
from apicenterd_exact_online import ExactOnlineConnector
from apicenterd_exact_online.simulator import DIVISION
from pydantic import ValidationError

from apicenterd.testing import connect

pytestmark = pytest.mark.anyio

URL = "https://apicenterd.example.com/webhooks/exact"
PATH = f"/api/v1/{DIVISION}/webhooks/WebhookSubscriptions"


class MemoryTokens:
    """One token store for the connections of a test: the refresh token rotates."""

    def __init__(self):
        self.tokens = None

    async def load(self):
        return self.tokens

    async def save(self, tokens):
        self.tokens = dict(tokens)


def _subscriptions(sim) -> list[tuple[str, str]]:
    return sorted((w["Topic"], w["CallbackURL"]) for w in sim.data["webhooks/WebhookSubscriptions"].values())


def _writes(sim) -> list[str]:
    return [m for m, t in sim.requests if t.startswith(PATH) and m != "GET"]


async def test_topics_are_subscribed_at_open_once(app, sim, settings):
    tokens = MemoryTokens()
    other = {"CallbackURL": "https://other.example/hook", "Topic": "Items"}  # another app's: left alone
    sim.data["webhooks/WebhookSubscriptions"].add(dict(other), id_field="ID")
    configured = {**settings, "webhook_url": URL, "webhook_topics": ["SalesOrders", "Items"], "webhook_secret": "s"}
    async with connect(ExactOnlineConnector, configured, app=app, tokens=tokens):
        pass
    assert _subscriptions(sim) == [("Items", URL), ("Items", other["CallbackURL"]), ("SalesOrders", URL)]
    assert _writes(sim) == ["POST", "POST"]

    sim.requests.clear()
    async with connect(ExactOnlineConnector, configured, app=app, tokens=tokens) as conn:  # a restart: nothing new
        assert await conn.subscribe_webhooks() == []
    assert _writes(sim) == [] and len(_subscriptions(sim)) == 3


async def test_a_topic_no_longer_configured_is_unsubscribed(app, sim, settings):
    tokens = MemoryTokens()
    base = {**settings, "webhook_url": URL, "webhook_secret": "s"}
    async with connect(ExactOnlineConnector, {**base, "webhook_topics": ["SalesOrders", "StockPositions"]}, app=app, tokens=tokens):
        pass
    async with connect(
        ExactOnlineConnector, {**base, "webhook_topics": ["StockPositions", "GoodsDeliveries"]}, app=app, tokens=tokens
    ) as conn:
        assert await conn.subscribe_webhooks() == []
    assert _subscriptions(sim) == [("GoodsDeliveries", URL), ("StockPositions", URL)]
    async with connect(ExactOnlineConnector, {**base, "webhook_topics": []}, app=app, tokens=tokens):
        pass
    assert _subscriptions(sim) == []


async def test_a_refused_subscription_does_not_stop_the_connection(app, sim, settings):
    tokens = MemoryTokens()
    sim.fail_next(400, {"error": {"code": "", "message": {"lang": "", "value": "Webhooks are not enabled for this app"}}}, path_prefix=PATH)
    configured = {**settings, "webhook_url": URL, "webhook_topics": ["Items"], "webhook_secret": "s"}
    async with connect(ExactOnlineConnector, configured, app=app, tokens=tokens) as conn:
        await conn.check()  # the flows still poll
        assert await conn.subscribe_webhooks() == ["Items"]  # a later try (start, check) makes it
    assert _subscriptions(sim) == [("Items", URL)]


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"webhook_topics": ["Invoices"], "webhook_url": URL, "webhook_secret": "s"}, "unknown Exact webhook topic 'Invoices'"),
        ({"webhook_topics": ["Items"], "webhook_secret": "s"}, "webhook_topics needs webhook_url"),
        ({"webhook_topics": ["Items"], "webhook_url": URL}, "webhook_topics needs webhook_secret"),
    ],
)
def test_bad_webhook_settings_are_named(settings, extra, error):
    with pytest.raises(ValidationError, match=error):
        ExactOnlineConnector.Settings.model_validate({**settings, **extra})

"""Webhook messages verified as Exact signs them (HMAC-SHA256 of the raw Content, upper-case hex)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from apicenterd_exact_online.webhooks import WebhookError, sign, verify

CONTENT = b'{"Topic":"Items","ClientId":"c1","Division":1234567,"Action":"Update","Key":"00000000-0000-0000-0000-000000000001"}'


def _message(content: bytes, hash_code: str) -> bytes:
    return b'{"Content":' + content + b',"HashCode":"' + hash_code.encode() + b'"}'


def test_a_signed_message_is_verified():
    expected = hmac.new(b"s3cret", CONTENT, hashlib.sha256).hexdigest().upper()
    assert sign(CONTENT, "s3cret") == expected
    content = verify(_message(CONTENT, expected), "s3cret")
    assert content["Topic"] == "Items" and content["Action"] == "Update"


def test_the_raw_text_is_signed_not_a_re_serialisation():
    spaced = CONTENT.replace(b",", b", ")
    assert verify(_message(spaced, sign(spaced, "k")), "k")["Division"] == 1234567
    with pytest.raises(WebhookError, match="does not match"):
        verify(_message(spaced, sign(CONTENT, "k")), "k")


@pytest.mark.parametrize(
    ("raw", "secret", "error"),
    [
        (_message(CONTENT, "0" * 64), "k", "does not match"),
        (b'{"HashCode":"' + b"0" * 64 + b'"}', "k", "not an Exact Online webhook"),
        (b"not json", "k", "not an Exact Online webhook"),
        (_message(CONTENT, sign(CONTENT, "k")), "", "no webhook secret"),
    ],
)
def test_bad_messages_name_the_problem(raw, secret, error):
    with pytest.raises(WebhookError, match=error):
        verify(raw, secret)


async def _connector(settings: dict):
    from apicenterd_exact_online import ExactOnlineConnector

    from apicenterd.testing import make_context

    return ExactOnlineConnector(ExactOnlineConnector.Settings(**settings), make_context(ExactOnlineConnector, name="exact"))


def _request(body: bytes):
    from apicenterd import WebhookRequest

    return WebhookRequest("POST", "https://daemon.example/webhooks/exact", {"content-type": "application/json"}, body)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_verified_webhook_triggers_the_flows_of_its_topic(settings, anyio_backend):
    from apicenterd import Entity, WebhookRejected

    conn = await _connector({**settings, "webhook_secret": "s3cret", "division": 1234567})
    content = CONTENT.replace(b'"Items"', b'"SalesOrders"')
    events = await conn.webhook(_request(_message(content, sign(content, "s3cret"))))
    assert [(e.entity, e.source_id, e.kind) for e in events] == [
        (Entity.ORDERS, "00000000-0000-0000-0000-000000000001", "SalesOrders Update")
    ]
    items = await conn.webhook(_request(_message(CONTENT, sign(CONTENT, "s3cret"))))
    assert [e.entity for e in items] == [Entity.PRODUCTS]
    other = CONTENT.replace(b"1234567", b"7654321")  # another division: not ours
    assert await conn.webhook(_request(_message(other, sign(other, "s3cret")))) == []
    unknown = CONTENT.replace(b'"Items"', b'"Documents"')
    assert await conn.webhook(_request(_message(unknown, sign(unknown, "s3cret")))) == []
    with pytest.raises(WebhookRejected, match="does not match") as wrong:
        await conn.webhook(_request(_message(CONTENT, sign(CONTENT, "other"))))
    assert not wrong.value.malformed
    with pytest.raises(WebhookRejected, match="not an Exact Online webhook") as bad:
        await conn.webhook(_request(b'{"HashCode": "x"}'))
    assert bad.value.malformed
    unsigned = await _connector(settings)
    with pytest.raises(WebhookRejected, match="no webhook_secret"):
        await unsigned.webhook(_request(_message(CONTENT, sign(CONTENT, "s3cret"))))

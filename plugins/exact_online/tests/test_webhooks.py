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

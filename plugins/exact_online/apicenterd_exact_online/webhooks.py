"""Exact Online webhook messages: ``{"Content": {...}, "HashCode": "..."}``, verified by HMAC-SHA256.

``HashCode`` is the upper-case hex HMAC-SHA256, keyed with the webhook secret of the app, of the
raw JSON text of ``Content`` as it stands in the body [3rd: picqer exact-php-client
``Webhook/Authenticatable.php``; shared/api-specs README §2]. The core has no webhook endpoint
yet; this is what it will call (and what a proxy can use today).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

__all__ = ["WebhookError", "content_text", "sign", "verify"]

_MESSAGE = re.compile(rb'^\s*\{\s*"Content"\s*:\s*(\{.*\})\s*,\s*"HashCode"\s*:\s*"([0-9A-Fa-f]{64})"\s*\}\s*$', re.DOTALL)


class WebhookError(ValueError):
    """A webhook message that is not Exact's shape or whose HashCode does not match."""


def content_text(raw: bytes) -> tuple[bytes, str]:
    """The raw ``Content`` JSON text and the ``HashCode`` of a message; WebhookError otherwise."""
    match = _MESSAGE.match(raw)
    if not match:
        raise WebhookError('not an Exact Online webhook message: expected {"Content": {...}, "HashCode": "<64 hex>"}')
    return match.group(1), match.group(2).decode()


def sign(content: bytes, secret: str) -> str:
    """The HashCode of ``content`` (the raw Content text) for the webhook ``secret``."""
    return hmac.new(secret.encode(), content, hashlib.sha256).hexdigest().upper()


def verify(raw: bytes, secret: str) -> dict[str, Any]:
    """The ``Content`` of a message whose HashCode matches; WebhookError naming what is wrong otherwise."""
    if not secret:
        raise WebhookError("no webhook secret configured: a message cannot be verified")
    content, hash_code = content_text(raw)
    if not hmac.compare_digest(sign(content, secret), hash_code.upper()):
        raise WebhookError("HashCode does not match the message's Content (wrong secret, or the body was changed)")
    try:
        parsed = json.loads(content)
    except ValueError as exc:
        raise WebhookError(f"Content is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise WebhookError("Content is not a JSON object")
    return parsed

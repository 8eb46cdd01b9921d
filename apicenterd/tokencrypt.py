"""Encryption of stored OAuth tokens at rest (``[state] token_key``).

A connection's tokens are kept in the state store as JSON. With a ``token_key`` configured,
that JSON is replaced by ``{"encrypted": "fernet", "key_id": ..., "data": ...}``: the token
set encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key
derived from the configured secret. ``key_id`` (a short hash of the derived key) tells a
wrong key apart from a damaged row, so the operator gets the right advice.

Rows written before a key was configured are plaintext; they are read as they are and
written back encrypted at once (see :class:`apicenterd.engine.StateTokenStore`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from .errors import AuthError

__all__ = ["TokenCipher", "MIN_KEY_LENGTH", "is_encrypted"]

MIN_KEY_LENGTH = 16
"""Characters a ``token_key`` must have at least (use a random one: ``openssl rand -base64 32``)."""

_CONTEXT = b"apicenterd token_key v1\x00"


def is_encrypted(stored: Mapping[str, Any] | None) -> bool:
    """Whether a stored token row is an encrypted envelope (else plaintext tokens, or nothing)."""
    return stored is not None and stored.get("encrypted") == "fernet"


class TokenCipher:
    """Encrypts and decrypts one connection's token set with the configured ``token_key``."""

    def __init__(self, secret: str):
        if len(secret) < MIN_KEY_LENGTH:
            raise ValueError(
                f"is {len(secret)} characters; it needs at least {MIN_KEY_LENGTH} (a random value, e.g. `openssl rand -base64 32`)"
            )
        from cryptography.fernet import Fernet  # only needed when a key is configured

        derived = hashlib.sha256(_CONTEXT + secret.encode("utf-8")).digest()
        self.key_id = hashlib.sha256(b"key id\x00" + derived).hexdigest()[:12]
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, tokens: Mapping[str, Any]) -> dict[str, Any]:
        """The envelope to store for ``tokens``."""
        data = self._fernet.encrypt(json.dumps(dict(tokens)).encode("utf-8")).decode("ascii")
        return {"encrypted": "fernet", "key_id": self.key_id, "data": data}

    def open(self, stored: Mapping[str, Any], *, connection: str, where: str) -> dict[str, Any]:
        """The token set in an envelope; :class:`AuthError` (the connection pauses, the operator is
        told what to do) when it was sealed with another key or is damaged."""
        from cryptography.fernet import InvalidToken

        again = f"re-authorise with `apicenterd auth {connection}` to store new tokens under the current key"
        if stored.get("key_id") != self.key_id:
            raise AuthError(
                f"connection {connection!r}: the tokens in {where} were encrypted with another key "
                f"(key id {stored.get('key_id')!r}, [state] token_key gives {self.key_id!r}): "
                f"set [state] token_key to the key they were written with, or {again}"
            )
        try:
            tokens = json.loads(self._fernet.decrypt(str(stored.get("data", "")).encode("ascii")))
        except (InvalidToken, ValueError, UnicodeError):
            tokens = None
        if not isinstance(tokens, dict):
            raise AuthError(f"connection {connection!r}: the encrypted tokens in {where} are damaged and cannot be read; {again}")
        return tokens

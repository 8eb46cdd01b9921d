"""A connection's durable state in the state store: its OAuth tokens and a vendor's pause."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from .errors import AuthError
from .observe.logs import get_logger, redactor
from .state import StateStore
from .tokencrypt import TokenCipher, is_encrypted

__all__ = ["StatePauseStore", "StateTokenStore"]


class StateTokenStore:
    """A connection's TokenStore backed by the state store. Every token that passes through it
    is registered with the log redactor (whatever auth the connector uses). With a ``cipher``
    (``[state] token_key``) tokens are stored encrypted; a plaintext row from before the key
    was configured is encrypted the first time it is loaded."""

    def __init__(self, store: StateStore, connection: str, cipher: TokenCipher | None = None):
        self._store = store
        self._connection = connection
        self._cipher = cipher
        self._group = f"tokens:{connection}"

    @property
    def _where(self) -> str:
        return str(getattr(self._store, "path", "the state store"))

    async def load(self) -> dict[str, Any] | None:
        """The saved tokens (decrypted); AuthError when they were encrypted with another key."""
        stored = await self._store.load_tokens(self._connection)
        if stored is None:
            return None
        if is_encrypted(stored):
            if self._cipher is None:
                raise AuthError(
                    f"connection {self._connection!r}: the tokens in {self._where} are encrypted, but [state] token_key "
                    f"is not set: set it to the key they were written with, or re-authorise with "
                    f"`apicenterd auth {self._connection}`"
                )
            tokens = self._cipher.open(stored, connection=self._connection, where=self._where)
            redactor.learn_tokens(self._group, tokens)
            return tokens
        redactor.learn_tokens(self._group, stored)
        if self._cipher is not None:  # written before the key was configured: encrypt it now
            await self._store.save_tokens(self._connection, self._cipher.seal(stored))
            get_logger().info("stored tokens encrypted with [state] token_key", connection=self._connection)
        return stored

    @property
    def shared(self) -> bool:
        """Whether other processes may refresh these tokens too (several daemons on PostgreSQL state):
        then a refresh takes :meth:`exclusive` and reads the stored set first (another daemon's is newer)."""
        return hasattr(self._store, "token_lock")

    def exclusive(self) -> AbstractAsyncContextManager[None]:
        """Hold this connection's token refresh across processes (a no-op for a store of one process)."""
        lock = getattr(self._store, "token_lock", None)
        return lock(self._connection) if lock is not None else contextlib.nullcontext()

    async def save(self, tokens: Mapping[str, Any]) -> None:
        """Save tokens durably (encrypted when a cipher is set)."""
        redactor.learn_tokens(self._group, tokens)
        await self._store.save_tokens(self._connection, self._cipher.seal(tokens) if self._cipher else tokens)


class StatePauseStore:
    """A connection's PauseStore backed by the state store: until when the vendor paused it (a 429)."""

    def __init__(self, store: StateStore, connection: str):
        self._store = store
        self._connection = connection

    async def load(self) -> float | None:
        """The saved paused-until time (Unix), if any."""
        return await self._store.load_pause(self._connection)

    async def save(self, until: float) -> None:
        """Keep the paused-until time (Unix)."""
        await self._store.save_pause(self._connection, until)

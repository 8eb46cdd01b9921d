"""OAuth2 with refresh tokens that rotate: the newest refresh token is durable before it is used."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any, NoReturn

import anyio
import httpx

from .errors import AuthError, FatalError, RecordError, RetryableError
from .http import error_for_status
from .observe.logs import redactor
from .plugin import TokenStore

__all__ = ["OAuth2RefreshAuth"]

EXPIRY_MARGIN = 60.0
"""Refresh at most this many seconds before the access token's stated expiry."""
EXPIRY_SHARE = 0.2
"""... and at most this share of the token's lifetime before it: a 30 s token is used for 24 s,
not refreshed before every call. A token set whose lifetime is unknown uses EXPIRY_MARGIN."""


def expiry_margin(tokens: dict[str, Any]) -> float:
    """Seconds before ``tokens`` expire that they are refreshed: EXPIRY_MARGIN, or less for a
    short-lived token (EXPIRY_SHARE of its lifetime, ``expires_in``)."""
    try:
        lifetime = float(tokens.get("expires_in") or 0)
    except (TypeError, ValueError):
        lifetime = 0.0
    if not 0 < lifetime < float("inf"):
        return EXPIRY_MARGIN
    return min(EXPIRY_MARGIN, EXPIRY_SHARE * lifetime)


def _access_token(tokens: dict[str, Any] | None) -> str:
    """The access token of a token set that ``OAuth2RefreshAuth._valid`` accepted."""
    assert tokens is not None
    token: str = tokens["access_token"]
    return token


class OAuth2RefreshAuth(httpx.Auth):
    """An httpx ``Auth`` that keeps a bearer access token fresh with the refresh-token grant.

    * Tokens live in the connection's :class:`TokenStore`; the configured refresh token
      only bootstraps an empty store.
    * A refresh saves the new token set to the store *before* the new access token is
      used, so a crash never leaves only a refresh token the vendor already retired. When
      the save fails the request fails with :class:`RetryableError`; the next request
      retries the save of that same set instead of spending the retired token again.
    * Concurrent requests share one refresh (single flight).
    * A refresh the vendor rejects (400/401 ``invalid_grant``) raises :class:`AuthError`
      telling the operator to re-authorise.
    * Every token it learns (bootstrap, loaded from the store, issued by a refresh) is
      registered with the log redactor before it is used, so a vendor error that echoes
      the request's headers never puts a live token into a log, a run's error or an alert.
    """

    requires_response_body = True

    def __init__(
        self,
        *,
        token_client: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        tokens: TokenStore,
        initial_refresh_token: str | None = None,
        connection: str = "",
        clock: Callable[[], float] = time.time,
        refresh_on_401: bool = True,
        client_auth: str = "basic",
        margin: float | None = None,
    ):
        if client_auth not in ("basic", "post"):
            raise ValueError(f"client_auth must be 'basic' or 'post', got {client_auth!r}")
        if margin is not None and not 0 <= margin < float("inf"):
            raise ValueError(f"margin must be a number of seconds, 0 or more, got {margin!r}")
        self._client = token_client
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._store = tokens
        self._initial_refresh = initial_refresh_token
        self._redaction_group = f"oauth:{connection or id(self)}"
        redactor.learn(self._redaction_group, [initial_refresh_token or ""])
        self._connection = connection
        self._clock = clock
        self._refresh_on_401 = refresh_on_401
        self._client_auth = client_auth  # "post": client_id/client_secret in the form (Exact Online)
        self._margin = margin  # seconds before expiry to refresh; None: expiry_margin()
        self._tokens: dict[str, Any] | None = None
        self._unsaved: dict[str, Any] | None = None  # refreshed, but the store failed to keep it
        self._lock = anyio.Lock()

    def _valid(self, tokens: dict[str, Any] | None) -> bool:
        return bool(
            tokens
            and tokens.get("access_token")
            and tokens.get("expires_at", 0) - (expiry_margin(tokens) if self._margin is None else self._margin) > self._clock()
        )

    async def access_token(self, *, force: bool = False, stale: str | None = None) -> str:
        """A valid access token, refreshing (once, whoever asks) when needed."""
        if not force and self._valid(self._tokens):
            return _access_token(self._tokens)
        async with self._lock:
            if self._tokens is None:
                self._tokens = await self._store.load()
                redactor.learn_tokens(self._redaction_group, self._tokens)
            current = self._tokens or {}
            # another caller refreshed while we waited for the lock
            if self._valid(self._tokens) and (not force or current.get("access_token") != stale):
                return _access_token(current)
            if self._unsaved is not None:
                # the vendor has already retired the refresh token we hold durably; keep
                # trying to persist the new set rather than spend the old one again
                await self._save(self._unsaved)
                self._tokens, self._unsaved = self._unsaved, None
                if self._valid(self._tokens):
                    return _access_token(self._tokens)
                current = self._tokens
            async with self._exclusive():
                if self._shared:
                    # several daemons share the tokens: one refreshes at a time, and one that finds a
                    # newer set (refreshed by another) uses it instead of spending a retired refresh token
                    stored = await self._store.load()
                    if stored:
                        redactor.learn_tokens(self._redaction_group, stored)
                        if self._valid(stored) and (not force or stored.get("access_token") != stale):
                            self._tokens = stored
                            return _access_token(stored)
                        current = stored
                refresh_token = current.get("refresh_token") or self._initial_refresh
                if not refresh_token:
                    raise AuthError(
                        f"connection {self._connection!r} has no refresh token: authorise it with "
                        f"`apicenterd auth {self._connection}`"
                    )
                self._tokens = await self._refresh(refresh_token)
                return _access_token(self._tokens)

    @property
    def _shared(self) -> bool:
        """Whether the token store is shared with other processes (``shared`` on the store)."""
        return bool(getattr(self._store, "shared", False))

    def _exclusive(self) -> contextlib.AbstractAsyncContextManager[None]:
        """The store's cross-process refresh lock (``exclusive()``), or none."""
        exclusive: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = getattr(self._store, "exclusive", None)
        return exclusive() if exclusive is not None and self._shared else contextlib.nullcontext()

    async def _save(self, tokens: dict[str, Any]) -> None:
        try:
            await self._store.save(tokens)
        except Exception as exc:  # the new refresh token must be durable before anything else happens
            self._unsaved = tokens
            raise RetryableError(f"connection {self._connection!r}: could not persist rotated tokens: {exc}") from exc

    async def _refresh(self, refresh_token: str) -> dict[str, Any]:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if self._client_auth == "post":
            form.update(client_id=self._client_id, client_secret=self._client_secret)
        response = await self._client.post(
            self._token_url,
            data=form,
            auth=(self._client_id, self._client_secret) if self._client_auth == "basic" else httpx.Auth(),
            headers={"Accept": "application/json"},
        )
        if response.status_code in (400, 401):
            try:
                body = response.json()
                reason = str(body.get("error", "")) if isinstance(body, dict) else ""
            except ValueError:
                reason = response.text[:80]
            raise AuthError(
                f"connection {self._connection!r}: the refresh token was rejected ({reason or response.status_code}); "
                f"re-authorise with `apicenterd auth {self._connection}`",
                status=response.status_code,
                vendor_code=reason or None,
            )
        if response.status_code != 200:
            error = error_for_status(response, f"connection {self._connection!r}: token refresh failed")
            if isinstance(error, RecordError):  # 404, 405, ...: no record is at fault, the token endpoint is wrong
                raise FatalError(
                    f"connection {self._connection!r}: token refresh failed: POST {self._token_url} answered "
                    f"HTTP {response.status_code}, not a token endpoint; check the connection's token_url",
                    status=response.status_code,
                )
            raise error
        try:
            body = response.json()
            access = body["access_token"]
            expires_in = float(body.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise FatalError(
                f"connection {self._connection!r}: token response has no access_token or a bad expires_in"
            ) from None
        if not isinstance(access, str) or not access:
            raise FatalError(f"connection {self._connection!r}: token response has no access_token")
        redactor.learn(self._redaction_group, [access, body.get("refresh_token") or ""])
        tokens = {
            "access_token": access,
            # some vendors rotate, some don't: keep the old one when no new one comes
            "refresh_token": body.get("refresh_token") or refresh_token,
            "expires_at": self._clock() + expires_in,
            "expires_in": expires_in,  # the lifetime: a short one is refreshed closer to its end
            "token_type": body.get("token_type", "Bearer"),
        }
        await self._save(tokens)
        return tokens

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401 and self._refresh_on_401:
            token = await self.access_token(force=True, stale=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    def sync_auth_flow(self, request: httpx.Request) -> NoReturn:  # pragma: no cover - connectors are async
        raise RuntimeError("OAuth2RefreshAuth is async-only")

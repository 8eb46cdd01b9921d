"""OAuth2 for connectors: settings, the authorization-code flow, rotating refresh tokens.

``apicenterd auth CONNECTION`` uses :func:`authorize_url` for the consent URL and
:func:`exchange_code` for the code it gets back; the daemon keeps the access token fresh
with :class:`OAuth2RefreshAuth` (re-exported from :mod:`apicenterd.oauth`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import Field, SecretStr

from ..errors import AuthError, FatalError, RetryableError
from ..oauth import OAuth2RefreshAuth
from ..observe.logs import redactor
from ..plugin import ConnectionContext, ConnectorSettings

__all__ = ["OAuth2RefreshAuth", "OAuth2Settings", "authorize_url", "exchange_code", "DEFAULT_EXPIRES_IN"]

DEFAULT_EXPIRES_IN = 3600.0
"""Seconds an access token is taken to live when the token answer does not say."""


class OAuth2Settings(ConnectorSettings):
    """Settings of a connection that signs in with OAuth2 (authorization code + refresh token).

    A connector's settings subclass this and may give ``token_url``/``authorize_url`` a default.
    """

    token_url: str = Field(description="OAuth2 token endpoint")
    authorize_url: str | None = Field(
        default=None, description="OAuth2 consent (authorize) page; unset: the one the connector declares"
    )
    client_id: str = Field(min_length=1, description="OAuth2 client id")
    client_secret: SecretStr = Field(description="OAuth2 client secret")
    refresh_token: SecretStr | None = Field(
        default=None, description="Bootstraps an empty token store; rotated tokens are kept in the state store"
    )
    scopes: list[str] | None = Field(default=None, description="Scopes to ask consent for; unset: the connector's")

    def refresh_auth(self, context: ConnectionContext, token_client: httpx.AsyncClient, **options: Any) -> OAuth2RefreshAuth:
        """The :class:`OAuth2RefreshAuth` for these settings: tokens in the connection's store,
        ``refresh_token`` bootstrapping an empty one. ``token_client`` sends the token requests
        (a client without this auth); ``options`` go to OAuth2RefreshAuth (``refresh_on_401``, ``clock``)."""
        return OAuth2RefreshAuth(
            token_client=token_client,
            token_url=self.token_url,
            client_id=self.client_id,
            client_secret=self.client_secret.get_secret_value(),
            tokens=context.tokens,
            initial_refresh_token=self.refresh_token.get_secret_value() if self.refresh_token else None,
            connection=context.name,
            **options,
        )


def authorize_url(
    base: str,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Sequence[str],
    state: str,
    extra: Mapping[str, str] | None = None,
) -> str:
    """The consent URL (``response_type=code``) a person opens to authorise the connection;
    ``extra`` adds vendor parameters (e.g. ``{"prompt": "consent"}``)."""
    query = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": " ".join(scopes),
        "state": state,
        **(extra or {}),
    }
    return f"{base}{'&' if '?' in base else '?'}{urlencode(query)}"


def _secret(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


async def exchange_code(
    token_url: str,
    *,
    client_id: str,
    client_secret: str | SecretStr,
    code: str,
    redirect_uri: str,
    client: httpx.AsyncClient | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109 - the HTTP client's timeout when it makes its own
    clock: Callable[[], float] | None = None,
    client_auth: str = "basic",
) -> dict[str, Any]:
    """Trade an authorization ``code`` for tokens (client credentials by HTTP Basic auth);
    ``redirect_uri`` must be the one the consent URL named. ``client_auth="post"`` sends the
    client credentials as form fields instead of HTTP Basic (the connector's ``oauth_client_auth``).

    Returns the token set :class:`OAuth2RefreshAuth` keeps (``access_token``, ``refresh_token``,
    ``expires_at``, ``expires_in``, ``token_type``), its tokens registered with the log
    redactor. Raises :class:`AuthError` when the vendor refuses the code,
    :class:`RetryableError` when the token endpoint cannot be reached, and
    :class:`FatalError` for an answer without a refresh token.
    """
    secret = _secret(client_secret)
    redactor.learn(f"oauth-code:{client_id}", [code, secret])
    own = client is None
    http = client or httpx.AsyncClient(timeout=timeout)
    try:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if client_auth == "post":
            data |= {"client_id": client_id, "client_secret": secret}
            response = await http.post(token_url, data=data, headers={"Accept": "application/json"})
        else:
            response = await http.post(token_url, data=data, auth=(client_id, secret), headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise RetryableError(f"token request to {token_url} failed: {redactor.scrub(str(exc)) or type(exc).__name__}") from None
    finally:
        if own:
            await http.aclose()
    if response.status_code != 200:
        raise AuthError(
            f"the vendor refused the code: HTTP {response.status_code} {redactor.scrub(response.text[:200])}",
            status=response.status_code,
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not body.get("refresh_token") or not isinstance(body["refresh_token"], str):
        raise FatalError("the token response has no refresh_token (was offline access requested?)")
    try:
        expires_in = float(body.get("expires_in") or DEFAULT_EXPIRES_IN)
    except (TypeError, ValueError):
        expires_in = DEFAULT_EXPIRES_IN
    if not 0 < expires_in < float("inf"):
        expires_in = DEFAULT_EXPIRES_IN
    tokens = {
        "access_token": body.get("access_token") or "",
        "refresh_token": body["refresh_token"],
        "expires_at": (clock or time.time)() + expires_in,
        "expires_in": expires_in,
        "token_type": body.get("token_type", "Bearer"),
    }
    redactor.learn_tokens(f"oauth-code:{client_id}", tokens)
    return tokens

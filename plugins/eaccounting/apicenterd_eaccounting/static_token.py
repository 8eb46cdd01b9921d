"""A static access token: sent as it is, never refreshed; its rejection is an AuthError that says so."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import NoReturn

import httpx

from apicenterd import AuthError

from .client import error_from


class StaticTokenAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` on every request. A 401 raises :class:`AuthError` at once
    (no refresh, no retry): the engine fails the run and pauses the connection until a reload
    brings a new token, instead of asking the vendor again and again with a dead one."""

    def __init__(self, token: str, *, connection: str):
        if not token.strip():
            raise ValueError("the static access token is empty")
        self._header = f"Bearer {token.strip()}"
        self.connection = connection

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = self._header
        response = yield request
        if response.status_code == 401:
            vendor = error_from(response, "eAccounting")
            raise AuthError(
                f"connection {self.connection!r}: eAccounting rejected the static access_token ({vendor}); "
                f"it has expired or was revoked, and a static token is never refreshed: put a new one in "
                f"[connections.{self.connection}] access_token (then systemctl reload apicenterd), or configure "
                "client_id, client_secret and refresh_token instead",
                status=401,
                vendor_code=vendor.vendor_code,
            )

    def sync_auth_flow(self, request: httpx.Request) -> NoReturn:  # pragma: no cover - connectors are async
        raise RuntimeError("StaticTokenAuth is async-only")

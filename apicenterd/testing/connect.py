"""Build a connector the way the daemon does, pointed at a simulator or a mocked transport."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from ..context import Context
from ..plugin import Connector, TokenStore

__all__ = ["make_context", "connect"]


def make_context(
    connector: type[Connector],
    *,
    name: str = "test",
    app: Any = None,
    tokens: TokenStore | None = None,
    rate_limits: bool = True,
) -> Context:
    """A Context for ``connector``; with ``app`` (an ASGI simulator) requests go to it in-process."""
    transport = httpx.ASGITransport(app=app) if app is not None else None
    return Context(name, tokens=tokens, rate_limits=connector.rate_limits if rate_limits else (), transport=transport)


@contextlib.asynccontextmanager
async def connect(
    connector: type[Connector],
    settings: Mapping[str, Any],
    *,
    app: Any = None,
    name: str = "test",
    tokens: TokenStore | None = None,
    rate_limits: bool = True,
) -> AsyncIterator[Connector]:
    """An opened connector instance (closed on exit) with ``settings`` validated by its Settings model."""
    instance = connector(
        connector.Settings.model_validate(dict(settings)),
        make_context(connector, name=name, app=app, tokens=tokens, rate_limits=rate_limits),
    )
    await instance.open()
    try:
        yield instance
    finally:
        await instance.aclose()

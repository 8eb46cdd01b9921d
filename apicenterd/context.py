"""The ConnectionContext the daemon hands each connector."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from .circuit import CircuitBreaker
from .errors import RETRY_AFTER_CAP
from .http import PauseStore, RateLimiterSet, make_client
from .observe.logs import get_logger
from .plugin import DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_REQUEST_DEADLINE, RateLimit, TokenStore

__all__ = ["Context", "MemoryTokenStore"]


class MemoryTokenStore:
    """A TokenStore that keeps tokens in memory (tests, and `check` before a state store exists)."""

    def __init__(self, tokens: Mapping[str, Any] | None = None):
        self.tokens = dict(tokens) if tokens else None
        self.saves = 0

    async def load(self) -> dict[str, Any] | None:
        """The saved tokens, if any."""
        return dict(self.tokens) if self.tokens else None

    async def save(self, tokens: Mapping[str, Any]) -> None:
        """Keep ``tokens``."""
        self.tokens = dict(tokens)
        self.saves += 1


class Context:
    """One connection's context: name, token store, logger, and rate-limited HTTP clients.

    Every client made from one context shares its rate limiters, so every flow that
    uses the connection shares its budget, and its circuit breaker: ``breaker=True`` (the
    default) makes one with the default thresholds, a :class:`CircuitBreaker` is used as
    given, and ``None`` or ``False`` means none.

    The connection's bounds apply to every client: ``max_response_bytes`` per answer,
    ``request_deadline`` seconds per request, ``retry_after_cap`` seconds per vendor pause
    (see :class:`~apicenterd.ConnectorSettings`); ``pauses`` keeps a vendor's pause across
    restarts. ``clock`` (monotonic) and ``wall_clock`` (Unix time) are the rate limiters' (a seam
    for tests and time-compressed benchmarks).
    """

    def __init__(
        self,
        name: str,
        *,
        tokens: TokenStore | None = None,
        rate_limits: Sequence[RateLimit] = (),
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | bool | None = True,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        request_deadline: float = DEFAULT_REQUEST_DEADLINE,
        retry_after_cap: float = RETRY_AFTER_CAP,
        pauses: PauseStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.name = name
        self.tokens = tokens if tokens is not None else MemoryTokenStore()
        self.log = get_logger(connection=name)
        self.limiters = RateLimiterSet(
            name, rate_limits, retry_after_cap=retry_after_cap, pauses=pauses, log=self.log, clock=clock, wall_clock=wall_clock
        )
        self.max_response_bytes = max_response_bytes
        self.request_deadline = request_deadline
        if breaker is True:
            breaker = CircuitBreaker(name, log=self.log)
        self.breaker: CircuitBreaker | None = breaker or None
        self._transport = transport

    @property
    def retry_after_cap(self) -> float:
        """The longest pause in seconds a vendor may put on this connection."""
        return self.limiters.retry_after_cap

    async def pause(self, seconds: float, *, reason: str) -> None:
        """Hold every request of this connection for ``seconds`` (capped), and keep the pause
        across restarts (see ConnectionContext.pause)."""
        self.limiters.pause_all(seconds, reason=reason)
        await self.limiters.save_pause()

    def circuit(self) -> tuple[bool, str]:
        """(open, last error) of this connection's circuit breaker; (False, "") without one."""
        if self.breaker is None:
            return False, ""
        return self.breaker.state != "closed", self.breaker.last_error

    def http_client(
        self,
        *,
        base_url: str,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> httpx.AsyncClient:
        """A client for this connection (see ConnectionContext.http_client)."""
        return make_client(
            self.name,
            self.limiters,
            base_url=base_url,
            auth=auth,
            headers=headers,
            timeout=timeout,
            inner=self._transport,
            breaker=self.breaker,
            max_response_bytes=self.max_response_bytes,
            deadline=self.request_deadline,
        )

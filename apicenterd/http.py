"""The HTTP client connectors use: rate limited, measured, with transport errors classified."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import httpx

from .errors import AuthError, ConnectorError, FatalError, RateLimited, RecordError, RetryableError
from .observe import metrics
from .plugin import RateLimit
from .ratelimit import SlidingWindowLimiter

__all__ = ["parse_retry_after", "error_for_status", "InstrumentedTransport", "RateLimiterSet", "json_body"]

RETRY_AFTER_CAP = 3600.0
"""No vendor gets to park a connection for more than an hour with one header."""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), capped;
    None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def error_for_status(
    response: httpx.Response, message: str, *, vendor_code: str | None = None
) -> ConnectorError:
    """The error class the runner needs for a failed response: 429 → RateLimited,
    401/403 → AuthError, other 4xx → RecordError, 5xx → RetryableError."""
    status = response.status_code
    text = f"{message} (HTTP {status} {response.request.method} {response.request.url.path})"
    if status == 429:
        return RateLimited(
            text, retry_after=parse_retry_after(response.headers.get("Retry-After")), status=status, vendor_code=vendor_code
        )
    if status in (401, 403):
        return AuthError(text, status=status, vendor_code=vendor_code)
    if status in (408, 425) or status >= 500:
        return RetryableError(text, status=status, vendor_code=vendor_code)
    if 400 <= status < 500:
        return RecordError(text, status=status, vendor_code=vendor_code)
    return FatalError(f"unexpected {text}", status=status, vendor_code=vendor_code)


def json_body(response: httpx.Response, what: str, *, parse_float: Callable[[str], Any] | None = Decimal):
    """The response's JSON (numbers with a fraction as Decimal, so money never passes through
    float; ``parse_float=None`` for floats), or FatalError naming what was expected."""
    try:
        return json.loads(response.content, parse_float=parse_float)
    except ValueError as exc:
        snippet = response.text[:120]
        raise FatalError(
            f"{what}: response is not JSON ({exc}); body starts {snippet!r}", status=response.status_code
        ) from None


class RateLimiterSet:
    """The limiters of one connection: one per declared :class:`RateLimit` and key."""

    def __init__(self, connection: str, limits: Sequence[RateLimit], **limiter_options: Any):
        self.connection = connection
        self.limits = tuple(limits)
        self._options = limiter_options  # clock= and sleep= for SlidingWindowLimiter (tests)
        self._buckets: dict[tuple[str, str], SlidingWindowLimiter] = {}

    def _buckets_for(self, request: httpx.Request) -> list[SlidingWindowLimiter]:
        buckets = []
        for limit in self.limits:
            key = limit.key(request) if limit.key else ""
            if key is None:  # this limit does not govern this request
                continue
            bucket = self._buckets.get((limit.name, key))
            if bucket is None:
                bucket = self._buckets[(limit.name, key)] = SlidingWindowLimiter(
                    limit.requests, limit.period, **self._options
                )
            buckets.append(bucket)
        return buckets

    async def acquire(self, request: httpx.Request) -> float:
        """Wait until every limit that applies to ``request`` allows it; the seconds waited."""
        waited = 0.0
        for bucket in self._buckets_for(request):
            waited += await bucket.acquire()
        return waited

    def pause_all(self, seconds: float) -> None:
        """Hold every bucket of the connection for ``seconds`` (a 429 whose wait came in the body)."""
        for bucket in self._buckets.values():
            bucket.pause(seconds)  # on the bucket's own clock, like pause()

    def pause(self, request: httpx.Request, seconds: float) -> None:
        """Hold every bucket ``request`` falls in for ``seconds`` (after a 429)."""
        for bucket in self._buckets_for(request):
            bucket.pause(seconds)


class InstrumentedTransport(httpx.AsyncBaseTransport):
    """Wraps a transport: waits for the rate limiter, counts and times every call, and turns
    timeouts and connection failures into :class:`RetryableError`."""

    def __init__(self, connection: str, limiters: RateLimiterSet, inner: httpx.AsyncBaseTransport | None = None):
        self.connection = connection
        self.limiters = limiters
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        waited = await self.limiters.acquire(request)
        if waited:
            metrics.rate_limit_wait.labels(self.connection).inc(waited)
        started = time.perf_counter()
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TimeoutException as exc:
            metrics.api_requests.labels(self.connection, request.method, "timeout").inc()
            raise RetryableError(f"{request.method} {request.url.path}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            metrics.api_requests.labels(self.connection, request.method, "error").inc()
            raise RetryableError(f"{request.method} {request.url.path}: {type(exc).__name__}: {exc}") from None
        metrics.api_requests.labels(self.connection, request.method, str(response.status_code)).inc()
        metrics.api_duration.labels(self.connection, request.method).observe(time.perf_counter() - started)
        if response.status_code == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after:
                self.limiters.pause(request, retry_after)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def make_client(
    connection: str,
    limiters: RateLimiterSet,
    *,
    base_url: str,
    auth: httpx.Auth | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    inner: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An :class:`httpx.AsyncClient` whose every request goes through ``InstrumentedTransport``."""
    return httpx.AsyncClient(
        base_url=base_url,
        auth=auth,
        headers=dict(headers or {}),
        timeout=timeout,
        transport=InstrumentedTransport(connection, limiters, inner),
        follow_redirects=False,
    )

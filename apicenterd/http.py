"""The HTTP client connectors use: rate limited, measured, with transport errors classified."""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import anyio
import httpx

from .circuit import CircuitBreaker
from .errors import (
    RETRY_AFTER_CAP,
    AuthError,
    ConnectorError,
    FatalError,
    RateLimited,
    RecordError,
    RetryableError,
)
from .observe import metrics
from .plugin import RateLimit
from .ratelimit import SlidingWindowLimiter

__all__ = [
    "RETRY_AFTER_CAP",
    "InstrumentedTransport",
    "RateLimiterSet",
    "error_for_status",
    "json_body",
    "make_client",
    "parse_retry_after",
]

# RETRY_AFTER_CAP (from .errors): no vendor gets to park a connection for more than an hour with one header.

SAFETY_MARGIN = 0.002
"""A slot is reused at least this share of its period after its call left the window, and
up to MAX_MARGIN of it while answers are slow (see SlidingWindowLimiter.margin): the vendor
counts a call when it arrives, and arrival times jitter."""
MAX_MARGIN = 0.05
EPOCH_THRESHOLD = 10 * 365 * 86400.0
"""A reset "in seconds" larger than this (ten years) is a Unix time."""
CLOCK_SKEW_TOLERANCE = 2.0
"""Seconds our clock may differ from the vendor's ``Date`` before epoch resets are read against it."""


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
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
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


class Ticket(NamedTuple):
    """One bucket's slot for one request: which limit, its count after this call, when counted."""

    limit: RateLimit
    bucket: SlidingWindowLimiter
    seq: int
    stamp: float


class RateLimiterSet:
    """The limiters of one connection: one per declared :class:`RateLimit` and key.

    Besides the buckets, the connection as a whole can be paused (a 429 on a request no
    declared limit governs, or :meth:`pause_all`): every request waits that out.
    """

    def __init__(
        self,
        connection: str,
        limits: Sequence[RateLimit],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        wall_clock: Callable[[], float] = time.time,
        margin: float = SAFETY_MARGIN,
    ):
        self.connection = connection
        self.limits = tuple(limits)
        self._clock = clock
        self._sleep = sleep  # with clock and wall_clock, a seam for tests
        self._wall_clock = wall_clock  # for vendors that give their reset as Unix time
        self._margin = margin
        self._buckets: dict[tuple[str, str], SlidingWindowLimiter] = {}
        self._paused_until = 0.0

    def _buckets_for(self, request: httpx.Request) -> list[tuple[RateLimit, SlidingWindowLimiter]]:
        buckets = []
        for limit in self.limits:
            key = limit.key(request) if limit.key else ""
            if key is None:  # this limit does not govern this request
                continue
            bucket = self._buckets.get((limit.name, key))
            if bucket is None:
                bucket = self._buckets[(limit.name, key)] = SlidingWindowLimiter(
                    limit.requests,
                    limit.period,
                    clock=self._clock,
                    sleep=self._sleep,
                    margin=self._margin * limit.period,
                    max_margin=MAX_MARGIN * limit.period,
                )
            buckets.append((limit, bucket))
        return buckets

    async def _wait_for_pause(self) -> float:
        waited = 0.0
        while (wait := self._paused_until - self._clock()) > 0:
            await self._sleep(wait)
            waited += wait
        return waited

    async def admit(self, request: httpx.Request) -> tuple[float, list[Ticket]]:
        """Wait until every limit that applies to ``request`` allows it and count it there;
        the seconds waited, and tickets for :meth:`observe`."""
        waited = await self._wait_for_pause()
        buckets = self._buckets_for(request)
        # Wait for the slowest bucket before taking a slot in any, so no slot is taken
        # long before the call is really sent.
        while len(buckets) > 1 and (wait := max(b.delay() for _, b in buckets)) > 0:
            await self._sleep(wait)
            waited += wait
        tickets: list[Ticket] = []
        try:
            for i, (limit, bucket) in enumerate(buckets):
                wait, stamp, seq = await bucket.acquire_slot()
                waited += wait
                if wait and i:  # the slots taken before this wait were taken too early
                    tickets = [Ticket(t.limit, t.bucket, t.seq, t.bucket.restamp(t.stamp)) for t in tickets]
                tickets.append(Ticket(limit, bucket, seq, stamp))
        except BaseException:  # cancelled while waiting: the slots taken stay used, nothing is in flight
            self.done(tickets)
            raise
        return waited, tickets

    async def acquire(self, request: httpx.Request) -> float:
        """Wait until every limit that applies to ``request`` allows it; the seconds waited."""
        waited, tickets = await self.admit(request)
        self.done(tickets)  # no answer will be observed for this one
        return waited

    def observe(self, tickets: Sequence[Ticket], response: httpx.Response) -> None:
        """Narrow the buckets of an answered request by what the vendor's rate-limit headers say."""
        for limit, bucket, seq, _ in tickets:
            policy = limit.headers
            if policy is None:
                continue
            headers = response.headers
            if policy.limit:
                reported = _number(headers.get(policy.limit))
                window = _number(headers.get(policy.window_ms)) if policy.window_ms else None
                same_window = window is None or abs(window / 1000 - limit.period) <= 0.01 * limit.period
                if reported is not None and reported >= 1 and same_window:
                    bucket.adopt_limit(int(reported))
            remaining = _number(headers.get(policy.remaining))
            if remaining is None:
                continue
            remaining_calls = max(0, int(remaining))
            metrics.rate_limit_remaining.labels(self.connection, limit.name).set(remaining_calls)
            sent_since = bucket.acquired - seq  # calls this bucket let go after this one
            reset_in = self._reset_in(limit, headers)
            if reset_in is None:
                bucket.vendor_remaining(remaining_calls, sent_since, seq=seq)
            else:
                bucket.vendor_budget(remaining_calls, bucket.now() + reset_in, sent_since, seq=seq)

    def done(self, tickets: Sequence[Ticket], *, answered: bool = False) -> None:
        """The requests of ``tickets`` are answered (``answered``: their round trip counts for
        the margin) or failed: no longer in flight."""
        for ticket in tickets:
            ticket.bucket.answered(ticket.seq)
            if answered:
                ticket.bucket.note_latency(ticket.bucket.now() - ticket.stamp)

    def _reset_in(self, limit: RateLimit, headers: httpx.Headers) -> float | None:
        """Seconds until the window of ``limit`` resets by the response's headers; at most one period."""
        policy = limit.headers
        assert policy is not None
        raw = _number(headers.get(policy.reset)) if policy.reset else None
        if raw is None:
            return None
        unit = policy.reset_unit
        per_second = 1000.0 if unit in ("milliseconds", "epoch_ms") else 1.0
        seconds = raw / per_second
        if unit in ("seconds", "milliseconds") and seconds > EPOCH_THRESHOLD:
            unit = "epoch"  # a "delta" of decades is a Unix time
        if unit.startswith("epoch"):
            now = self._wall_clock()
            vendor_now = _http_date(headers.get("Date"))
            if vendor_now is not None and abs(vendor_now - now) > CLOCK_SKEW_TOLERANCE:
                # our clock disagrees with the vendor's: measure from the vendor's Date
                # (whole seconds, rounded down, so the wait comes out a little long, never short)
                now = vendor_now
            seconds -= now
        return min(max(seconds, 0.0), limit.period)

    def pause_all(self, seconds: float) -> None:
        """Hold every request of the connection for ``seconds`` (capped at RETRY_AFTER_CAP),
        e.g. after a 429 whose wait came in the body."""
        seconds = min(max(seconds, 0.0), RETRY_AFTER_CAP)
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        for bucket in self._buckets.values():
            bucket.pause(seconds)  # on the bucket's own clock, like pause()

    def pause(self, request: httpx.Request, seconds: float) -> None:
        """Hold every bucket ``request`` falls in for ``seconds`` (after a 429, capped); a request
        no declared limit governs holds the whole connection instead."""
        seconds = min(max(seconds, 0.0), RETRY_AFTER_CAP)
        buckets = self._buckets_for(request)
        if not buckets:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
        for _, bucket in buckets:
            bucket.pause(seconds)


def _number(value: str | None) -> float | None:
    """A header's number, or None when absent or unreadable (a vendor's header never breaks a call)."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _http_date(value: str | None) -> float | None:
    """Unix time of an HTTP ``Date`` header, or None."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


class InstrumentedTransport(httpx.AsyncBaseTransport):
    """Wraps a transport: waits for the rate limiter, counts and times every call, turns
    timeouts and connection failures into :class:`RetryableError`, feeds the vendor's
    rate-limit headers back to the limiter, and (with a ``breaker``) fails fast while the
    connection's circuit is open."""

    def __init__(
        self,
        connection: str,
        limiters: RateLimiterSet,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        breaker: CircuitBreaker | None = None,
    ):
        self.connection = connection
        self.limiters = limiters
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.breaker = breaker

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        breaker = self.breaker
        if breaker is not None:
            breaker.check()  # fail fast, before waiting for a slot
        waited, tickets = await self.limiters.admit(request)
        if waited:
            metrics.rate_limit_wait.labels(self.connection).inc(waited)
        try:
            return await self._send(request, tickets)
        finally:
            self.limiters.done(tickets)

    async def _send(self, request: httpx.Request, tickets: list[Ticket]) -> httpx.Response:
        breaker = self.breaker
        probe = breaker.admit() if breaker is not None else False
        started = time.perf_counter()
        try:
            response = await self.inner.handle_async_request(request)
            # read the body here, so a connection that breaks mid-body is classified (and counted
            # by the breaker) like one that broke before the headers
            await response.aread()
        except httpx.TimeoutException as exc:
            metrics.api_requests.labels(self.connection, request.method, "timeout").inc()
            if breaker is not None:
                breaker.failure(f"timeout ({type(exc).__name__})")
            raise RetryableError(f"{request.method} {request.url.path}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            metrics.api_requests.labels(self.connection, request.method, "error").inc()
            if breaker is not None:
                breaker.failure(type(exc).__name__)
            raise RetryableError(f"{request.method} {request.url.path}: {type(exc).__name__}: {exc}") from None
        except BaseException:  # cancelled, or a bug below: no outcome for the breaker
            if probe:
                breaker.abandon()  # type: ignore[union-attr]
            raise
        metrics.api_requests.labels(self.connection, request.method, str(response.status_code)).inc()
        metrics.api_duration.labels(self.connection, request.method).observe(time.perf_counter() - started)
        if breaker is not None:
            if response.status_code >= 500:
                breaker.failure(f"HTTP {response.status_code} {request.method} {request.url.path}")
            else:
                breaker.success()
        self.limiters.observe(tickets, response)
        self.limiters.done(tickets, answered=True)
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
    breaker: CircuitBreaker | None = None,
) -> httpx.AsyncClient:
    """An :class:`httpx.AsyncClient` whose every request goes through ``InstrumentedTransport``."""
    return httpx.AsyncClient(
        base_url=base_url,
        auth=auth,
        headers=dict(headers or {}),
        timeout=timeout,
        transport=InstrumentedTransport(connection, limiters, inner, breaker=breaker),
        follow_redirects=False,
    )

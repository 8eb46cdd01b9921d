"""The HTTP client connectors use: rate limited, measured, with transport errors classified."""

from __future__ import annotations

import email.utils
import functools
import json
import math
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, NamedTuple, Protocol

import anyio
import anyio.abc
import httpcore
import httpx
from httpcore._backends.anyio import AnyIOStream
from httpcore._backends.auto import AutoBackend
from httpcore._utils import is_socket_readable

from .circuit import CircuitBreaker
from .errors import (
    RETRY_AFTER_CAP,
    AuthError,
    ConnectorError,
    FatalError,
    RateLimited,
    RecordError,
    ResponseTooLarge,
    RetryableError,
)
from .observe import metrics
from .observe.logs import get_logger
from .plugin import DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_REQUEST_DEADLINE, RateLimit
from .ratelimit import SlidingWindowLimiter
from .scheduler import current_flow

__all__ = [
    "RETRY_AFTER_CAP",
    "InstrumentedTransport",
    "NotFound",
    "PauseStore",
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


def parse_retry_after(value: str | None, *, now: datetime | None = None, cap: float = RETRY_AFTER_CAP) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), at most
    ``cap``; None when absent or unreadable."""
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
    return min(max(seconds, 0.0), cap)


NotFound = Literal["record", "config"]
"""What a 404 means: ``"record"`` (the item asked for does not exist: that record's failure)
or ``"config"`` (a collection, a singleton or any path that must exist: the configuration,
usually ``base_url``, is wrong, so the run fails with :class:`FatalError`)."""


def error_for_status(
    response: httpx.Response, message: str, *, vendor_code: str | None = None, not_found: NotFound = "record"
) -> ConnectorError:
    """The error class the runner needs for a failed response: 429 → RateLimited,
    401/403 → AuthError, 408/425/5xx → RetryableError, 404 → RecordError or, with
    ``not_found="config"``, FatalError naming the URL; other 4xx → RecordError."""
    status = response.status_code
    text = f"{message} (HTTP {status} {response.request.method} {response.request.url.path})"
    if status == 404 and not_found == "config":
        url = response.request.url.copy_with(query=None, fragment=None)
        return FatalError(
            f"{message}: {response.request.method} {url} answered 404 Not Found, a path that must exist: "
            "the configuration is wrong, not the record; check the connection's base_url",
            status=status,
            vendor_code=vendor_code,
        )
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


def json_body(response: httpx.Response, what: str, *, parse_float: Callable[[str], Any] | None = Decimal) -> Any:
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


class PauseStore(Protocol):
    """Durable storage of the time (Unix) until which the vendor paused a connection, so a
    restart does not call a vendor that said to wait (backed by the state store)."""

    async def load(self) -> float | None:
        """The saved paused-until time, or None."""

    async def save(self, until: float) -> None:
        """Persist ``until`` (Unix time)."""


DAY_PERIOD = 86400.0
"""A declared limit of this period or longer is a day budget (see :mod:`apicenterd.budget`)."""

PAUSE_LOG_STEP = 1.0
"""A 429 that moves a pause's end by less than this many seconds is not logged again."""


class RateLimiterSet:
    """The limiters of one connection: one per declared :class:`RateLimit` and key.

    Besides the buckets, the connection as a whole can be paused (a 429 on a request no
    declared limit governs, or :meth:`pause_all`): every request waits that out.

    Every pause a vendor asks for is capped at ``retry_after_cap``, logged when it starts
    and when it is over, shown by the gauge ``apicenterd_rate_limit_pause_seconds{connection}``
    (seconds left) and, with ``pauses``, kept in the state store: after a restart the first
    request restores a pause that is not over yet and waits for it (the whole connection).
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
        retry_after_cap: float = RETRY_AFTER_CAP,
        pauses: PauseStore | None = None,
        log: Any = None,
    ):
        if not (0 < retry_after_cap <= RETRY_AFTER_CAP):
            raise ValueError(f"retry_after_cap must be more than 0 and at most {RETRY_AFTER_CAP:g} seconds, got {retry_after_cap}")
        self.connection = connection
        self.limits = tuple(limits)
        self.retry_after_cap = float(retry_after_cap)
        self._clock = clock
        self._sleep = sleep  # with clock and wall_clock, a seam for tests
        self._wall_clock = wall_clock  # for vendors that give their reset as Unix time
        self._margin = margin
        self._buckets: dict[tuple[str, str], SlidingWindowLimiter] = {}
        self._paused_until = 0.0
        self._pause_end = 0.0  # end (on ``clock``) of the latest vendor pause, 0 when none holds
        self._pauses = pauses
        self._restored = pauses is None
        self._unsaved = False  # a pause not yet in ``pauses``
        self._log = log if log is not None else get_logger(connection=connection)
        self._waiting: dict[object, float] = {}  # calls in admit() now: when (on ``clock``) each began waiting
        self.budget: Any = None
        """The connection's :class:`~apicenterd.budget.DayBudget` (set by the engine when a limit is a
        day's): every call is checked against the share of the flow making it, and counted for it."""
        self.shared: Callable[[str, float], Awaitable[float]] | None = None
        """Several daemons (PostgreSQL state): ``shared(bucket, spacing)`` takes the bucket's next call
        slot in the shared schedule (calls ``spacing`` seconds apart, whichever daemon makes them) and
        returns the seconds to wait for it; every daemon's calls together stay within the limit."""
        metrics.rate_limit_pause.labels(connection).set_function(self.pause_remaining)
        metrics.rate_limit_waiting.labels(connection).set_function(self.waiting_calls)
        metrics.rate_limit_waiting_seconds.labels(connection).set_function(self.longest_wait)

    def waiting_calls(self) -> int:
        """Calls waiting now for a slot or a pause (the gauge ``apicenterd_rate_limit_waiting``)."""
        return len(self._waiting)

    def longest_wait(self) -> float:
        """Seconds the call waiting longest now has waited, 0 when none waits (the gauge
        ``apicenterd_rate_limit_waiting_seconds``: a wait is seen while it lasts, not only after)."""
        if not self._waiting:
            return 0.0
        return max(0.0, self._clock() - min(self._waiting.values()))

    def buckets_of(self, limits: Sequence[RateLimit]) -> list[SlidingWindowLimiter]:
        """The buckets made so far for ``limits`` (a limit's bucket is made with its first call)."""
        names = {limit.name for limit in limits}
        return [bucket for (name, _key), bucket in self._buckets.items() if name in names]

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
                    # a day's budget resets when the vendor says (its midnight), not a day after each call
                    vendor_window=limit.period >= DAY_PERIOD and limit.headers is not None and limit.headers.reset is not None,
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
        me = object()
        self._waiting[me] = self._clock()
        try:
            return await self._admit(request)
        finally:
            del self._waiting[me]

    async def _admit(self, request: httpx.Request) -> tuple[float, list[Ticket]]:
        if not self._restored:
            await self.restore()
        budget = self.budget
        flow = current_flow.get() if budget is not None else None
        if budget is not None:
            budget.check(flow)  # BudgetSpent before any wait: the flow's share of the day is spent
        waited = await self._wait_for_pause()
        buckets = self._buckets_for(request)
        # Wait for the slowest bucket before taking a slot in any, so no slot is taken
        # long before the call is really sent.
        while len(buckets) > 1 and (wait := max(b.delay() for _, b in buckets)) > 0:
            await self._sleep(wait)
            waited += wait
        if self.shared is not None and buckets:
            waited += await self._shared_slots(buckets)
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
        if budget is not None:
            budget.spent(flow)
        if self._pause_end and self._clock() >= self._pause_end:
            self._pause_end = 0.0
            self._log.info("rate-limit pause over: calls to the connection resume", rate_limit_pause=0)
        return waited, tickets

    async def _shared_slots(self, buckets: list[tuple[RateLimit, SlidingWindowLimiter]]) -> float:
        """Take a slot in the shared schedule of each bucket (several daemons) and wait for the latest."""
        assert self.shared is not None
        names = {id(b): f"{name}:{key}" for (name, key), b in self._buckets.items()}
        wait = 0.0
        for _limit, bucket in buckets:
            wait = max(wait, await self.shared(names[id(bucket)], bucket.period / max(1, bucket.requests)))
        if wait > 0:
            await self._sleep(wait)
        return wait

    async def acquire(self, request: httpx.Request) -> float:
        """Wait until every limit that applies to ``request`` allows it; the seconds waited."""
        waited, tickets = await self.admit(request)
        self.done(tickets)  # no answer will be observed for this one
        return waited

    def observe(self, tickets: Sequence[Ticket], response: httpx.Response) -> None:
        """Narrow the buckets of an answered request by what the vendor's rate-limit headers say."""
        for limit, bucket, seq, stamp in tickets:
            policy = limit.headers
            if response.status_code == 429 and (policy is None or _number(response.headers.get(policy.remaining)) is None):
                # no word on the budget: learn it from the refusal itself
                bucket.rejected(stamp, seq, parse_retry_after(response.headers.get("Retry-After"), cap=limit.period))
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
        unit: str = policy.reset_unit
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

    def _cap(self, seconds: float) -> float:
        return min(max(seconds, 0.0), self.retry_after_cap) if seconds == seconds else 0.0

    def pause_all(self, seconds: float, *, reason: str = "Retry-After") -> None:
        """Hold every request of the connection for ``seconds`` (capped at ``retry_after_cap``),
        e.g. after a 429 whose wait came in the body."""
        asked = seconds
        seconds = self._cap(seconds)
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        for bucket in self._buckets.values():
            bucket.pause(seconds)  # on the bucket's own clock, like pause()
        self._announce(asked, seconds, reason)

    def pause(self, request: httpx.Request, seconds: float, *, reason: str = "Retry-After") -> None:
        """Hold every bucket ``request`` falls in for ``seconds`` (after a 429, capped at
        ``retry_after_cap``); a request no declared limit governs holds the whole connection instead."""
        asked = seconds
        seconds = self._cap(seconds)
        buckets = self._buckets_for(request)
        if not buckets:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
        for _, bucket in buckets:
            bucket.pause(seconds)
        self._announce(asked, seconds, reason)

    def pause_remaining(self) -> float:
        """Seconds left of the latest vendor pause (0 when none holds the connection)."""
        return max(0.0, self._pause_end - self._clock()) if self._pause_end else 0.0

    def wait_remaining(self) -> float:
        """Seconds a call on this connection would wait now, for the slowest of its limits: a vendor's
        pause, a full window, a budget the vendor says is spent (e.g. a day's); 0 if one could go now.
        Read-only (the admin API shows flows waiting on it)."""
        own = max(0.0, self._paused_until - self._clock())
        return max([own, self.pause_remaining(), *(bucket.delay() for bucket in self._buckets.values())])

    def _announce(self, asked: float, seconds: float, reason: str, *, restored: bool = False) -> None:
        """Log a pause that starts or moves on by a second or more, and mark it for :meth:`save_pause`."""
        end = self._clock() + seconds
        if seconds <= 0 or end < self._pause_end + PAUSE_LOG_STEP:
            return
        self._pause_end = end
        self._unsaved = not restored
        until = datetime.fromtimestamp(self._wall_clock() + seconds, UTC).isoformat(timespec="seconds")
        capped = asked > seconds  # NaN: False
        what = "still paused by the vendor (from before the restart)" if restored else "paused by the vendor"
        self._log.warning(
            f"connection {self.connection!r} {what} for {seconds:.0f}s until {until} "
            f"({reason}{f', capped at retry_after_cap = {self.retry_after_cap:g}s' if capped else ''})",
            rate_limit_pause=round(seconds, 3),
            paused_until=until,
            asked=round(asked, 3) if math.isfinite(asked) else None,
            retry_after_cap=self.retry_after_cap,
        )

    async def save_pause(self) -> None:
        """Persist the pause set since the last save (if any) in the pause store; a store that
        fails is logged, never fails the request (the pause still holds in this process)."""
        if self._pauses is None or not self._unsaved:
            return
        self._unsaved = False
        until = self._wall_clock() + self.pause_remaining()
        try:
            await self._pauses.save(until)
        except Exception as exc:  # noqa: BLE001 - the pause holds in memory; a broken store must not fail the call
            self._log.warning("could not keep the rate-limit pause in the state store", error=f"{type(exc).__name__}: {exc}")

    async def restore(self) -> None:
        """Take up a pause kept in the pause store that is not over yet (once; the first
        request does this by itself): the whole connection waits for it."""
        if self._restored:
            return
        self._restored = True
        assert self._pauses is not None
        try:
            until = await self._pauses.load()
        except Exception as exc:  # noqa: BLE001 - start without a remembered pause rather than not at all
            self._log.warning("could not read the rate-limit pause from the state store", error=f"{type(exc).__name__}: {exc}")
            return
        if until is None or not math.isfinite(until):
            return
        left = self._cap(until - self._wall_clock())
        if left > 0:
            self._paused_until = max(self._paused_until, self._clock() + left)
            self._announce(left, left, "kept in the state store", restored=True)


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


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    """httpx's default verifying TLS context, made once per process: loading the CA bundle costs
    ~2 ms of CPU, which every new client (every run of every flow) used to pay again."""
    return httpx.create_ssl_context()


REQUESTS_AT_ONCE = 20
"""Requests one connection has at its vendor at once (httpx keeps 20 of its connections alive); the
rest wait their turn in :class:`InstrumentedTransport`, outside their request deadline."""


class InstrumentedTransport(httpx.AsyncBaseTransport):
    """Wraps a transport: waits for the rate limiter, counts and times every call, turns
    timeouts and connection failures into :class:`RetryableError`, feeds the vendor's
    rate-limit headers back to the limiter, and (with a ``breaker``) fails fast while the
    connection's circuit is open.

    Every answer is bounded: its body is read here, at most ``max_response_bytes`` of it
    (a larger Content-Length is refused before reading; past the cap the answer is dropped
    and :class:`ResponseTooLarge` raised, which nothing retries), and the whole request
    (waiting for a connection, sending, headers and body, not the wait for a rate-limit slot)
    must finish within ``deadline`` seconds or it fails as a timeout (:class:`RetryableError`).
    """

    def __init__(
        self,
        connection: str,
        limiters: RateLimiterSet,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        breaker: CircuitBreaker | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        deadline: float = DEFAULT_REQUEST_DEADLINE,
    ):
        if max_response_bytes <= 0 or not (0 < deadline < math.inf):
            raise ValueError(
                f"max_response_bytes and the request deadline must be positive (and finite), "
                f"got {max_response_bytes} and {deadline}"
            )
        self.connection = connection
        self.limiters = limiters
        self.inner = inner or lean_transport(verify=shared_tls_context())
        self.breaker = breaker
        self.max_response_bytes = max_response_bytes
        self.deadline = deadline
        self._at_vendor: anyio.Semaphore | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        breaker = self.breaker
        if breaker is not None:
            breaker.check()  # fail fast, before waiting for a slot
        waited, tickets = await self.limiters.admit(request)
        if waited:
            metrics.rate_limit_wait.labels(self.connection).inc(waited)
        if self._at_vendor is None:
            self._at_vendor = anyio.Semaphore(REQUESTS_AT_ONCE)
        try:
            # the requests past REQUESTS_AT_ONCE wait here, not in httpcore's pool, whose every request
            # and every answer scans each queued request against each connection (quadratic in them)
            async with self._at_vendor:
                return await self._send(request, tickets)
        finally:
            self.limiters.done(tickets)

    async def _send(self, request: httpx.Request, tickets: list[Ticket]) -> httpx.Response:
        breaker = self.breaker
        probe = breaker.admit() if breaker is not None else False
        started = time.perf_counter()
        response: httpx.Response | None = None  # None: the error came before an answer reached this transport
        try:
            with anyio.fail_after(self.deadline):
                response = await self.inner.handle_async_request(request)
                # read the body here, so a connection that breaks mid-body is classified (and counted
                # by the breaker) like one that broke before the headers, and so its size is bounded
                await self._read_body(request, response)
        except ResponseTooLarge:
            # the vendor answered (the breaker hears how), but this answer is not taken
            metrics.api_requests.labels(self.connection, request.method, "too_large").inc()
            if breaker is not None:
                if response is not None and response.status_code >= 500:
                    breaker.failure(f"HTTP {response.status_code} {request.method} {request.url.path}")
                else:  # it answered (to a transport below this one, if the response is not here)
                    breaker.success()
            raise
        except TimeoutError:  # the whole request outlived its deadline (each read stayed under `timeout`)
            metrics.api_requests.labels(self.connection, request.method, "timeout").inc()
            if breaker is not None:
                breaker.failure(f"request deadline of {self.deadline:g}s exceeded")
            raise RetryableError(
                f"connection {self.connection!r}: {request.method} {request.url.path}: timed out: exceeded the total "
                f"request deadline of {self.deadline:g}s (connect, send and the whole answer; setting request_deadline)"
            ) from None
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
            header = response.headers.get("Retry-After")
            retry_after = parse_retry_after(header, cap=math.inf)  # the limiters cap it, and say so
            if retry_after:
                self.limiters.pause(request, retry_after, reason=f"Retry-After: {header.strip()[:40]}")
                await self.limiters.save_pause()
        return response

    def _too_large(self, request: httpx.Request, what: str, *, received: int = 0, declared: int | None = None) -> ResponseTooLarge:
        cap = self.max_response_bytes
        return ResponseTooLarge(
            f"connection {self.connection!r}: {request.method} {request.url.path}: the response body {what} "
            f"max_response_bytes = {cap} ({_size(cap)}), so it was dropped{'' if declared is not None else f' after {received} bytes'} "
            f"and the request is not retried; if the vendor really sends this much, raise max_response_bytes "
            f"in [connections.{self.connection}]",
            limit=cap,
            received=received,
            declared=declared,
        )

    async def _read_body(self, request: httpx.Request, response: httpx.Response) -> None:
        """Read the body into ``response`` (as ``aread`` would), at most ``max_response_bytes``
        of it (decoded); past that close the answer and raise :class:`ResponseTooLarge`."""
        cap = self.max_response_bytes
        declared = _number(response.headers.get("Content-Length"))
        if request.method != "HEAD" and declared is not None and declared > cap:
            await response.aclose()
            raise self._too_large(
                request, f"is announced as {int(declared)} bytes (Content-Length), more than", declared=int(declared)
            )
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap or response.num_bytes_downloaded > cap:
                    raise self._too_large(request, "grew past", received=size)
                chunks.append(chunk)
        except BaseException:  # too large, a broken connection, the deadline: drop the answer
            with anyio.CancelScope(shield=True):
                await response.aclose()
            raise
        response._content = b"".join(chunks)  # what Response.aread() keeps; the client reads it from there

    async def aclose(self) -> None:
        await self.inner.aclose()


def _size(count: int) -> str:
    """``count`` bytes for people: 64 MiB, 1.5 GiB, 512 B."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:g} {unit}" if unit == "B" else f"{value:.4g} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover


COALESCE_BYTES = 64 * 1024
"""A request's writes are held (and sent as one) until its answer is read or this much is held."""


class _LeanStream(AnyIOStream):
    """httpcore's anyio stream, with two costs of the record path taken out:

    - a request's head and body go out in one send, not two: httpcore writes them apart, and each
      send is a TCP segment (on loopback the sender's CPU carries the receiver's network stack too);
      what is held is sent before the answer is read (or once :data:`COALESCE_BYTES` are held);
    - the raw socket is kept: before reusing a pooled connection httpcore asks whether its socket
      is readable, and anyio answers that by building every attribute of the socket (its peer
      address through ``getpeername`` and ``ipaddress`` included) per request."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        super().__init__(stream)
        self._socket = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._write_timeout: float | None = None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 - httpcore's signature
        if not buffer:
            return
        self._held.append(buffer)
        self._held_bytes += len(buffer)
        self._write_timeout = timeout
        if self._held_bytes >= COALESCE_BYTES:
            await self._send_held()

    async def _send_held(self) -> None:
        data = b"".join(self._held)
        self._held.clear()
        self._held_bytes = 0
        await super().write(data, self._write_timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 - httpcore's signature
        if self._held:
            await self._send_held()
        return await super().read(max_bytes, timeout)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._socket is not None:
            return is_socket_readable(self._socket)
        return super().get_extra_info(info)

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None) -> Any:  # noqa: ASYNC109 - httpcore's signature
        stream = await super().start_tls(ssl_context, server_hostname, timeout)
        return _LeanStream(stream._stream) if isinstance(stream, AnyIOStream) else stream


class _LeanBackend(httpcore.AnyIOBackend):
    """httpcore's anyio network backend, giving :class:`_LeanStream` streams."""

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> Any:
        stream = await super().connect_tcp(*args, **kwargs)
        return _LeanStream(stream._stream) if isinstance(stream, AnyIOStream) else stream


def lean_transport(**options: Any) -> httpx.AsyncHTTPTransport:
    """httpx's transport on :class:`_LeanBackend` (the same connections, cheaper to reuse); where
    httpx or httpcore keep their pool differently, httpx's transport as it is."""
    transport = httpx.AsyncHTTPTransport(**options)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(pool, httpcore.AsyncConnectionPool) and isinstance(backend, (AutoBackend, httpcore.AnyIOBackend)):
        pool._network_backend = _LeanBackend()
    return transport


class _NoCookies(httpx.Cookies):
    """A client's cookie jar that keeps none: no vendor API a connector speaks is cookie-based, and
    reading every answer's ``Set-Cookie`` through :mod:`http.cookiejar` costs on the record path."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


URL_CACHE_SIZE = 1024
"""Request URLs (relative to a client's ``base_url``) a :class:`LeanAsyncClient` keeps parsed."""


class LeanAsyncClient(httpx.AsyncClient):
    """The :class:`httpx.AsyncClient` of :func:`make_client`, less what connectors never use: no
    cookie jar, and request paths merged
    with ``base_url`` and parsed once, not per request (a path with a record's id in it fills the
    cache, which then starts anew)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cookies = _NoCookies()
        self._urls: dict[str, httpx.URL] = {}

    def _merge_url(self, url: httpx.URL | str) -> httpx.URL:
        if not isinstance(url, str):
            return super()._merge_url(url)
        merged = self._urls.get(url)
        if merged is None:
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            merged = self._urls[url] = super()._merge_url(url)
        return merged

    @property
    def base_url(self) -> httpx.URL:
        return self._base_url

    @base_url.setter
    def base_url(self, url: httpx.URL | str) -> None:
        self._base_url = self._enforce_trailing_slash(httpx.URL(url))
        self._urls = {}  # merged with the old one


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
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    deadline: float = DEFAULT_REQUEST_DEADLINE,
) -> httpx.AsyncClient:
    """An :class:`httpx.AsyncClient` whose every request goes through ``InstrumentedTransport``
    (``timeout`` bounds each read, ``deadline`` the whole request, ``max_response_bytes`` the body)."""
    return LeanAsyncClient(
        base_url=base_url,
        auth=auth,
        headers=dict(headers or {}),
        timeout=timeout,
        transport=InstrumentedTransport(
            connection, limiters, inner, breaker=breaker, max_response_bytes=max_response_bytes, deadline=deadline
        ),
        follow_redirects=False,
    )

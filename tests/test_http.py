"""http and ratelimit: Retry-After, status → error class, the instrumented transport, sliding windows."""

from __future__ import annotations

import email.utils
import random
import uuid
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel
import httpx
import pytest
from prometheus_client import REGISTRY

from apicenterd import (
    AuthError,
    FatalError,
    RateLimit,
    RateLimited,
    RecordError,
    RetryableError,
    error_for_status,
    json_body,
    parse_retry_after,
)
from apicenterd.http import RETRY_AFTER_CAP, InstrumentedTransport, RateLimiterSet
from apicenterd.ratelimit import SlidingWindowLimiter

# --- a fake clock: sleeping advances it, nothing waits for real --------------------------------------


class FakeTime:
    def __init__(self, now: float = 1000.0):
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


# --- parse_retry_after ---------------------------------------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "header, seconds",
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        (str(int(RETRY_AFTER_CAP) * 10), RETRY_AFTER_CAP),
        ("inf", RETRY_AFTER_CAP),
        (email.utils.format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (email.utils.format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
        (email.utils.format_datetime(NOW + timedelta(days=3), usegmt=True), RETRY_AFTER_CAP),
        ("Sun, 01 Mar 2026 12:00:30", 30.0),  # no zone: taken as UTC
    ],
)
def test_parse_retry_after(header, seconds):
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize("header", [None, "", "   ", "soon", "nan", "12 seconds", "Mon, 99 Foo 2026"])
def test_parse_retry_after_unreadable(header):
    assert parse_retry_after(header, now=NOW) is None


# --- error_for_status ---------------------------------------------------------------------------------


def response(status: int, headers: dict | None = None, content: bytes = b"") -> httpx.Response:
    return httpx.Response(
        status, headers=headers, content=content, request=httpx.Request("POST", "https://api.example/v2/articles?x=1")
    )


@pytest.mark.parametrize(
    "status, cls",
    [
        (400, RecordError),
        (404, RecordError),
        (409, RecordError),
        (422, RecordError),
        (401, AuthError),
        (403, AuthError),
        (408, RetryableError),
        (425, RetryableError),
        (500, RetryableError),
        (502, RetryableError),
        (503, RetryableError),
        (302, FatalError),
        (200, FatalError),
    ],
)
def test_error_for_status(status, cls):
    err = error_for_status(response(status), "creating article", vendor_code="4010")
    assert type(err) is cls
    assert (err.status, err.vendor_code) == (status, "4010")
    assert f"creating article (HTTP {status} POST /v2/articles)" in str(err)


def test_429_is_rate_limited_with_retry_after():
    err = error_for_status(response(429, {"Retry-After": "17"}), "listing")
    assert type(err) is RateLimited and err.retry_after == 17.0 and err.status == 429
    assert error_for_status(response(429), "listing").retry_after is None


def test_json_body():
    assert json_body(response(200, content=b'{"a": 1}'), "articles") == {"a": 1}
    with pytest.raises(FatalError, match=r"articles: response is not JSON .*body starts '<html>oops'"):
        json_body(response(200, content=b"<html>oops"), "articles")


# --- InstrumentedTransport -----------------------------------------------------------------------------


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def requests_total(conn: str, method: str, status: str) -> float:
    return sample("apicenterd_api_requests_total", connection=conn, method=method, status=status)


def client_for(handler, limits=(), clock: FakeTime | None = None) -> tuple[httpx.AsyncClient, str, RateLimiterSet]:
    conn = f"test-{uuid.uuid4().hex[:8]}"
    options = {"clock": clock, "sleep": clock.sleep} if clock else {}
    limiters = RateLimiterSet(conn, limits, **options)
    transport = InstrumentedTransport(conn, limiters, httpx.MockTransport(handler))
    return httpx.AsyncClient(base_url="https://api.example", transport=transport), conn, limiters


@pytest.mark.anyio
async def test_transport_counts_requests_by_status():
    statuses = iter([200, 200, 404])

    def handler(request):
        return httpx.Response(next(statuses))

    client, conn, _ = client_for(handler)
    async with client:
        await client.get("/a")
        await client.post("/a")
        await client.get("/b")
    assert requests_total(conn, "GET", "200") == 1
    assert requests_total(conn, "POST", "200") == 1
    assert requests_total(conn, "GET", "404") == 1
    assert sample("apicenterd_api_request_duration_seconds_count", connection=conn, method="GET") == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    "exc, status, words",
    [
        (httpx.ReadTimeout, "timeout", "timed out (ReadTimeout)"),
        (httpx.ConnectTimeout, "timeout", "timed out (ConnectTimeout)"),
        (httpx.ConnectError, "error", "ConnectError: connection refused"),
        (httpx.RemoteProtocolError, "error", "RemoteProtocolError"),
    ],
)
async def test_transport_errors_are_retryable(exc, status, words):
    def handler(request):
        raise exc("connection refused", request=request)

    client, conn, _ = client_for(handler)
    async with client:
        with pytest.raises(RetryableError) as info:
            await client.get("/items")
    assert type(info.value) is RetryableError
    assert str(info.value).startswith("GET /items: ") and words in str(info.value)
    assert requests_total(conn, "GET", status) == 1


@pytest.mark.anyio
async def test_429_retry_after_pauses_the_bucket():
    clock = FakeTime()
    answers = iter([httpx.Response(429, headers={"Retry-After": "30"}), httpx.Response(200), httpx.Response(200)])
    client, conn, _ = client_for(lambda request: next(answers), [RateLimit(100, 60)], clock)
    async with client:
        first = await client.get("/x")
        assert first.status_code == 429  # the transport returns it; the connector raises
        paused_at = clock.now
        assert (await client.get("/x")).status_code == 200
        assert clock.now - paused_at >= 30  # the next call waited out Retry-After
        assert sum(clock.slept) == pytest.approx(30, abs=0.01)
        slept = len(clock.slept)
        await client.get("/x")
        assert len(clock.slept) == slept  # no pause left
    assert requests_total(conn, "GET", "429") == 1
    assert sample("apicenterd_rate_limit_wait_seconds_total", connection=conn) == pytest.approx(sum(clock.slept))


@pytest.mark.anyio
async def test_429_without_retry_after_does_not_pause():
    clock = FakeTime()
    answers = iter([httpx.Response(429), httpx.Response(200)])
    client, _, _ = client_for(lambda request: next(answers), [RateLimit(100, 60)], clock)
    async with client:
        await client.get("/x")
        await client.get("/x")
    assert clock.slept == []


@pytest.mark.anyio
async def test_key_none_exempts_a_request_from_that_limit():
    clock = FakeTime()
    writes = RateLimit(1, 60, name="writes", key=lambda r: None if r.method == "GET" else "w")
    reads = RateLimit(3, 60, name="reads", key=lambda r: r.url.path if r.method == "GET" else None)
    client, _, _ = client_for(lambda request: httpx.Response(200), [writes, reads], clock)
    async with client:
        for _ in range(3):
            await client.get("/a")
            await client.get("/b")  # its own bucket
        assert clock.slept == []  # reads never wait for the write limit
        await client.post("/a")
        assert clock.slept == []
        await client.post("/b")
        assert len(clock.slept) == 1 and clock.slept[0] >= 60 - 1e-9


@pytest.mark.anyio
async def test_key_none_request_is_not_held_by_a_429_pause():
    clock = FakeTime()
    writes = RateLimit(10, 60, name="writes", key=lambda r: None if r.method == "GET" else "w")
    answers = iter([httpx.Response(429, headers={"Retry-After": "50"}), httpx.Response(200), httpx.Response(200)])
    client, _, _ = client_for(lambda request: next(answers), [writes], clock)
    async with client:
        await client.post("/a")
        await client.get("/a")
        assert clock.slept == []
        await client.post("/a")
        assert sum(clock.slept) >= 50


@pytest.mark.anyio
async def test_pause_all_holds_every_bucket_of_the_connection():
    clock = FakeTime()
    per_path = RateLimit(100, 60, key=lambda r: r.url.path)
    client, _, limiters = client_for(lambda request: httpx.Response(200), [per_path], clock)
    async with client:
        await client.get("/a")
        await client.get("/b")
        limiters.pause_all(40)
        await client.get("/a")
        assert sum(clock.slept) >= 40
        slept = sum(clock.slept)
        await client.get("/b")  # the pause is over for this bucket too
        assert sum(clock.slept) == slept


# --- SlidingWindowLimiter -----------------------------------------------------------------------------


def assert_never_more_than(times: list[float], requests: int, period: float) -> None:
    for i in range(len(times) - requests):
        assert times[i + requests] - times[i] >= period, f"{requests + 1} calls within {period}s at {times[i]}"


@pytest.mark.anyio
@pytest.mark.parametrize("requests, period", [(1, 1.0), (3, 10.0), (10, 1.0), (5, 0.25)])
async def test_sliding_window_sequential(requests, period):
    clock = FakeTime()
    limiter = SlidingWindowLimiter(requests, period, clock=clock, sleep=clock.sleep)
    rng = random.Random(requests)
    sent, waits = [], []
    for _ in range(200):
        if rng.random() < 0.3:
            clock.now += rng.random() * period  # idle now and then
        before = len(clock.slept)
        waited = await limiter.acquire()
        sent.append(clock.now)
        waits.append(waited)
        assert waited == pytest.approx(sum(clock.slept[before:]))
    assert_never_more_than(sent, requests, period)
    assert any(waits)
    # and it is not needlessly slow: a call that waited went as soon as the window allowed
    for i, (t, waited) in enumerate(zip(sent, waits, strict=True)):
        if waited:
            assert i >= requests and t <= sent[i - requests] + period + 0.01


@pytest.mark.anyio
async def test_sliding_window_concurrent_callers():
    clock = FakeTime()
    limiter = SlidingWindowLimiter(4, 2.0, clock=clock, sleep=clock.sleep)
    sent: list[float] = []

    async def call():
        await limiter.acquire()
        sent.append(clock.now)

    async with anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(call)
    assert len(sent) == 40
    assert sent == sorted(sent)
    assert_never_more_than(sent, 4, 2.0)
    assert sent[-1] - sent[0] < 40 / 4 * 2.0  # about 9 windows, not one call a window


@pytest.mark.anyio
async def test_pause_holds_every_caller():
    clock = FakeTime()
    limiter = SlidingWindowLimiter(100, 1.0, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    limiter.pause(12.0)
    assert limiter.delay() == pytest.approx(12.0)
    start = clock.now
    await limiter.acquire()
    assert clock.now - start >= 12.0
    limiter.pause_until(clock.now - 5)  # a deadline in the past changes nothing
    assert limiter.delay() == 0


@pytest.mark.parametrize("requests, period", [(0, 1), (-1, 1), (1, 0), (1, -2)])
def test_limiter_rejects_nonsense(requests, period):
    with pytest.raises(ValueError, match="at least 1 request in a positive period"):
        SlidingWindowLimiter(requests, period)


@pytest.mark.anyio
async def test_real_sleep_small_period_counts_in_windows():
    """With the real clock and small periods: count calls, never time them."""
    import time

    limiter = SlidingWindowLimiter(3, 0.05)
    sent = []
    for _ in range(9):
        await limiter.acquire()
        sent.append(time.monotonic())
    assert_never_more_than(sent, 3, 0.05)


# --- Retry-After on every path, always capped --------------------------------------------------------


@pytest.mark.anyio
async def test_429_on_a_connection_without_declared_limits_pauses_the_connection():
    clock = FakeTime()
    answers = iter([httpx.Response(429, headers={"Retry-After": "25"}), httpx.Response(200), httpx.Response(200)])
    client, _, _ = client_for(lambda request: next(answers), (), clock)
    async with client:
        await client.get("/x")
        await client.post("/y")  # any request of the connection waits it out
        assert sum(clock.slept) == pytest.approx(25)
        await client.get("/x")
    assert sum(clock.slept) == pytest.approx(25)


@pytest.mark.anyio
async def test_retry_after_as_http_date_pauses_the_bucket():
    clock = FakeTime()
    when = datetime.now(UTC) + timedelta(seconds=40)
    answers = iter([httpx.Response(429, headers={"Retry-After": email.utils.format_datetime(when, usegmt=True)}), httpx.Response(200)])
    client, _, _ = client_for(lambda request: next(answers), [RateLimit(100, 60)], clock)
    async with client:
        await client.get("/x")
        await client.get("/x")
    assert 35 <= sum(clock.slept) <= 41


@pytest.mark.anyio
async def test_pause_all_holds_a_connection_whose_buckets_do_not_exist_yet():
    """The engine pauses the connection after a RateLimited from the body (eAccounting's
    'Try again in 55 seconds'): that must hold the next request even if no bucket was made yet."""
    clock = FakeTime()
    client, _, limiters = client_for(lambda request: httpx.Response(200), [RateLimit(100, 60, key=lambda r: r.url.path)], clock)
    limiters.pause_all(55)
    async with client:
        await client.get("/never-called-before")
    assert sum(clock.slept) == pytest.approx(55)


@pytest.mark.anyio
async def test_pauses_are_capped():
    clock = FakeTime()
    client, _, limiters = client_for(lambda request: httpx.Response(200), [RateLimit(100, 60)], clock)
    async with client:
        await client.get("/x")
        limiters.pause_all(10**9)
        limiters.pause(httpx.Request("GET", "https://api.example/x"), float("inf"))
        await client.get("/x")
    assert sum(clock.slept) == pytest.approx(RETRY_AFTER_CAP, abs=0.01)


@pytest.mark.parametrize(
    "value, expected", [(17, 17.0), (-3, 0.0), (10**9, RETRY_AFTER_CAP), (float("inf"), RETRY_AFTER_CAP), (None, None), (float("nan"), None)]
)
def test_rate_limited_retry_after_is_capped_however_it_is_set(value, expected):
    assert RateLimited("x", retry_after=value).retry_after == expected
    later = RateLimited("x")
    later.retry_after = value  # as a connector does when it computes the wait afterwards
    assert later.retry_after == expected


# --- several limits on one request ---------------------------------------------------------------


@pytest.mark.anyio
async def test_a_call_held_by_a_second_limit_is_counted_in_the_first_when_it_goes():
    """Exact: 60 a minute and 5,000 a day. A call that waits for the daily limit must not be
    counted in the minutely window at the time it started waiting."""
    clock = FakeTime()
    minutely = RateLimit(2, 60, name="minutely")
    daily = RateLimit(3, 3600, name="daily")
    client, _, limiters = client_for(lambda request: httpx.Response(200), [minutely, daily], clock)
    async with client:
        sent = []
        for _ in range(5):
            await client.get("/x")
            sent.append(clock.now)
    buckets = {name: bucket for (name, _), bucket in limiters._buckets.items()}
    # the 4th call waited ~an hour for the daily limit; the minutely log holds it at its real time
    assert sent[3] - sent[0] >= 3600
    assert list(buckets["minutely"]._sent)[-2:] == pytest.approx(sent[3:], abs=0.01)
    assert_never_more_than(sent, 2, 60)


# --- the lean client: no cookie jar, URLs parsed once, pooled connections reused cheaply -----------


@pytest.mark.anyio
async def test_lean_client_keeps_no_cookies_parses_a_path_once_and_reuses_its_connection(monkeypatch):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from apicenterd.http import LeanAsyncClient, _LeanStream, make_client
    from apicenterd.testing import serve_app

    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        response = JSONResponse(
            {"path": request.url.path, "query": str(request.url.query), "cookie": request.headers.get("cookie"), "size": len(body)}
        )
        response.set_cookie("session", "s1")
        return response

    app = Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST"])])
    from httpcore._backends.anyio import AnyIOStream

    sends: list[int] = []
    real_write = AnyIOStream.write

    async def counted(self, buffer, timeout=None):
        sends.append(len(buffer))
        return await real_write(self, buffer, timeout)

    monkeypatch.setattr(AnyIOStream, "write", counted)
    with serve_app(app) as url:
        client = make_client("c", RateLimiterSet("c", []), base_url=url + "/api/")
        assert isinstance(client, LeanAsyncClient)
        async with client:
            first = (await client.get("items/", params={"page": 1})).json()
            second = (await client.get("items/", params={"page": 2})).json()
            assert (first["path"], first["query"], first["cookie"]) == ("/api/items/", "page=1", None)
            assert (second["query"], second["cookie"]) == ("page=2", None)  # the answer's Set-Cookie was not kept
            assert client.cookies.jar is not None and len(client.cookies) == 0
            assert client._urls["items/"] == httpx.URL(url + "/api/items/")  # parsed once, then reused
            client.base_url = url + "/other"
            assert (await client.get("items/")).json()["path"] == "/other/items/"  # a new base: merged anew
            sends.clear()
            assert (await client.post("items/", content=b"x" * 1000)).json()["size"] == 1000
            assert len(sends) == 1 and sends[0] > 1000  # head and body in one send
            sends.clear()
            assert (await client.post("items/", content=b"y" * 300_000)).json()["size"] == 300_000
            assert len(sends) == 1 and sends[0] > 300_000  # held past 64 KiB: sent at once, whole
            pool = client._transport.inner._pool
            [connection] = pool.connections  # every request went over one connection
            assert isinstance(connection._connection._network_stream, _LeanStream)

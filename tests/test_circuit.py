"""The circuit breaker: open after repeated failures, fail fast, one probe, close; logged once each way."""

from __future__ import annotations

import uuid

import anyio
import httpx
import pytest
from prometheus_client import REGISTRY

from apicenterd import CircuitOpen, RetryableError
from apicenterd.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from apicenterd.context import Context
from apicenterd.http import InstrumentedTransport, RateLimiterSet


class Clock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Log:
    """Records what the breaker logs."""

    def __init__(self):
        self.lines: list[tuple[str, str, dict]] = []

    def _add(self, level):
        return lambda event, **kw: self.lines.append((level, event, kw))

    def __getattr__(self, level):
        return self._add(level)

    def events(self, *levels):
        return [event for level, event, _ in self.lines if level in levels]


def gauge(conn: str) -> float | None:
    return REGISTRY.get_sample_value("apicenterd_circuit_open", {"connection": conn})


def breaker(threshold=3, recovery=30.0):
    conn = f"cb-{uuid.uuid4().hex[:8]}"
    clock, log = Clock(), Log()
    return CircuitBreaker(conn, threshold, recovery, clock=clock, log=log), clock, log


def test_opens_after_consecutive_failures_only():
    cb, _, log = breaker(threshold=3)
    cb.failure("HTTP 503")
    cb.failure("HTTP 503")
    cb.success()  # the count starts again
    cb.failure("HTTP 503")
    cb.failure("HTTP 503")
    assert cb.state == CLOSED and gauge(cb.connection) == 0
    cb.admit()
    cb.failure("timeout")
    assert cb.state == OPEN and gauge(cb.connection) == 1
    assert log.events("warning") == ["circuit opened: calls to the connection fail fast until a probe succeeds"]
    assert log.lines[0][2]["error"] == "timeout"


def test_open_fails_fast_until_the_recovery_timeout():
    cb, clock, _ = breaker(threshold=1, recovery=30)
    cb.failure("HTTP 500")
    clock.now += 29
    with pytest.raises(CircuitOpen, match=r"circuit open after 1 consecutive failures \(last: HTTP 500\); next probe in 1.0s") as info:
        cb.admit()
    assert isinstance(info.value, RetryableError) and info.value.retry_in == pytest.approx(1)
    with pytest.raises(CircuitOpen):
        cb.check()
    assert cb.state == OPEN


def test_one_probe_after_the_timeout_then_closed_on_success():
    cb, clock, log = breaker(threshold=1, recovery=30)
    cb.failure("HTTP 502")
    clock.now += 30
    cb.check()  # would be let through; changes nothing
    assert cb.state == OPEN
    assert cb.admit() is True  # the probe
    assert cb.state == HALF_OPEN
    with pytest.raises(CircuitOpen):
        cb.admit()  # only one probe at a time
    clock.now += 2
    cb.success()
    assert cb.state == CLOSED and gauge(cb.connection) == 0
    assert cb.admit() is False
    assert log.events("info") == ["circuit closed: connection recovered"]
    assert log.lines[-1][2]["open_seconds"] == pytest.approx(32)


def test_a_failed_probe_opens_again_without_logging_again():
    cb, clock, log = breaker(threshold=2, recovery=10)
    cb.failure()
    cb.failure()
    for _ in range(3):
        clock.now += 10
        assert cb.admit() is True
        cb.failure("HTTP 503")
        assert cb.state == OPEN and gauge(cb.connection) == 1
        with pytest.raises(CircuitOpen):
            cb.admit()  # the timeout starts again from the failed probe
    clock.now += 10
    cb.admit()
    cb.success()
    assert log.events("warning", "info", "error") == [
        "circuit opened: calls to the connection fail fast until a probe succeeds",
        "circuit closed: connection recovered",
    ]


def test_an_abandoned_probe_lets_the_next_call_probe():
    cb, clock, _ = breaker(threshold=1, recovery=5)
    cb.failure()
    clock.now += 5
    assert cb.admit() is True
    cb.abandon()
    assert cb.admit() is True


@pytest.mark.parametrize("threshold, recovery", [(0, 30), (5, 0), (-1, -1)])
def test_nonsense_settings_are_refused(threshold, recovery):
    with pytest.raises(ValueError, match="failure_threshold >= 1 and recovery_timeout > 0"):
        CircuitBreaker("x", threshold, recovery)


# --- in the transport -----------------------------------------------------------------------------------


def client_with_breaker(handler, threshold=3, recovery=30.0):
    cb, clock, log = breaker(threshold, recovery)
    transport = InstrumentedTransport(cb.connection, RateLimiterSet(cb.connection, ()), httpx.MockTransport(handler), breaker=cb)
    return httpx.AsyncClient(base_url="https://api.example", transport=transport), cb, clock, log


@pytest.mark.anyio
async def test_transport_opens_on_5xx_and_fails_fast_without_calling():
    calls = []

    def handler(request):
        calls.append(request.url.path)
        return httpx.Response(503)

    client, cb, clock, _ = client_with_breaker(handler, threshold=3)
    async with client:
        for _ in range(3):
            assert (await client.get("/a")).status_code == 503
        with pytest.raises(CircuitOpen):
            await client.get("/a")
    assert len(calls) == 3  # the fourth never reached the vendor


@pytest.mark.anyio
@pytest.mark.parametrize("exc", [httpx.ReadTimeout, httpx.ConnectError])
async def test_timeouts_and_connection_errors_count_as_failures(exc):
    def handler(request):
        raise exc("down", request=request)

    client, cb, _, _ = client_with_breaker(handler, threshold=2)
    async with client:
        for _ in range(2):
            with pytest.raises(RetryableError) as info:
                await client.get("/a")
            assert type(info.value) is RetryableError
        with pytest.raises(CircuitOpen):
            await client.get("/a")


@pytest.mark.anyio
async def test_4xx_and_429_are_answers_not_failures():
    statuses = iter([503, 503, 404, 503, 503, 429, 503, 503, 200])
    client, cb, _, _ = client_with_breaker(lambda r: httpx.Response(next(statuses)), threshold=3)
    async with client:
        for _ in range(9):
            await client.get("/a")
    assert cb.state == CLOSED


@pytest.mark.anyio
async def test_transport_probes_after_the_timeout_and_recovers():
    answers = iter([500, 500, 200, 200])
    client, cb, clock, log = client_with_breaker(lambda r: httpx.Response(next(answers)), threshold=2, recovery=30)
    async with client:
        await client.get("/a")
        await client.get("/a")
        with pytest.raises(CircuitOpen):
            await client.get("/a")
        clock.now += 30
        assert (await client.get("/a")).status_code == 200  # the probe
        assert cb.state == CLOSED
        assert (await client.get("/a")).status_code == 200
    assert log.events("warning", "info") == [
        "circuit opened: calls to the connection fail fast until a probe succeeds",
        "circuit closed: connection recovered",
    ]


@pytest.mark.anyio
async def test_a_cancelled_probe_does_not_wedge_the_circuit():
    gate = anyio.Event()

    async def handler(request):
        if request.url.path == "/slow":
            await gate.wait()
        return httpx.Response(500 if request.url.path == "/fail" else 200)

    client, cb, clock, _ = client_with_breaker(handler, threshold=1, recovery=5)
    async with client:
        await client.get("/fail")
        clock.now += 5
        with anyio.move_on_after(0.05):
            await client.get("/slow")  # the probe, cancelled in flight
        assert cb.state == HALF_OPEN
        assert (await client.get("/ok")).status_code == 200  # the next call probes instead
    assert cb.state == CLOSED


def test_context_has_a_default_breaker_shared_by_its_clients():
    context = Context(f"ctx-{uuid.uuid4().hex[:6]}")
    assert context.breaker is not None
    assert (context.breaker.failure_threshold, context.breaker.recovery_timeout) == (5, 30.0)
    client = context.http_client(base_url="https://api.example")
    assert client._transport.breaker is context.breaker
    assert Context("none", breaker=False).breaker is None
    own = CircuitBreaker("own", 2, 1.0)
    assert Context("own", breaker=own).breaker is own

"""Bounded vendor answers, over real sockets: a body cap (endless chunked bodies, huge
Content-Length, decompression bombs), a total deadline per request (a server that trickles),
and the settings that set both per connection."""

from __future__ import annotations

import contextlib
import gzip
import types
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from apicenterd import (
    Change,
    ConfigError,
    Connector,
    ConnectorSettings,
    Entity,
    FatalError,
    Product,
    ResponseTooLarge,
    RetryableError,
    Source,
    hookimpl,
    json_body,
)
from apicenterd.circuit import CircuitBreaker
from apicenterd.config import Config, resolve
from apicenterd.context import Context
from apicenterd.engine import Engine
from apicenterd.http import InstrumentedTransport, RateLimiterSet
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
CHUNK = 64 * 1024
GENEROUS = 60  # seconds: only so a broken test ends; nothing here is timed


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- a loopback server that misbehaves on purpose -------------------------------------------------------


class Vendor:
    """Counts requests, body bytes it managed to send, and connections it saw closed."""

    def __init__(self, answer: Callable[[anyio.abc.SocketStream, Vendor], Awaitable[None]]):
        self.answer = answer
        self.requests = 0
        self.served = 0
        self.closed = 0
        self.all_closed = anyio.Event()

    async def send(self, stream: anyio.abc.SocketStream, data: bytes, *, body: bool = True) -> None:
        await stream.send(data)
        if body:
            self.served += len(data)

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await stream.receive()
            self.requests += 1
            await self.answer(stream, self)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError):
            pass  # the client hung up: what these tests want
        finally:
            await stream.aclose()
            self.closed += 1
            if self.closed >= self.requests:
                self.all_closed.set()


@contextlib.asynccontextmanager
async def serve(answer) -> AsyncIterator[tuple[str, Vendor]]:
    vendor = Vendor(answer)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, vendor.handle)
        try:
            yield f"http://127.0.0.1:{port}", vendor
        finally:
            tg.cancel_scope.cancel()
    await listener.aclose()


async def endless_chunked(stream, vendor: Vendor) -> None:
    await vendor.send(stream, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", body=False)
    await vendor.send(stream, b"%x\r\n[" % 1 + b"\r\n")
    filler = b'"x",' * (CHUNK // 4)
    while True:  # never ends
        await vendor.send(stream, b"%x\r\n" % len(filler) + filler + b"\r\n")


async def huge_content_length(stream, vendor: Vendor) -> None:
    await vendor.send(stream, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2147483648\r\n\r\n", body=False)
    while True:  # it would send all 2 GiB if let
        await vendor.send(stream, b" " * CHUNK)


async def trickle(stream, vendor: Vendor) -> None:
    await vendor.send(stream, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", body=False)
    while True:  # one byte at a time, each well within the read timeout
        await vendor.send(stream, b" ")
        await anyio.sleep(0.05)


async def small_json(stream, vendor: Vendor) -> None:
    body = b'{"ok": true}'
    await vendor.send(stream, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body), body=False)
    await vendor.send(stream, body)


def client(url: str, **transport_kw: Any) -> tuple[httpx.AsyncClient, str]:
    conn = f"bounds-{uuid.uuid4().hex[:8]}"
    transport = InstrumentedTransport(conn, RateLimiterSet(conn, ()), **transport_kw)
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=30.0), conn


# --- the body cap -------------------------------------------------------------------------------------


async def test_an_endless_chunked_body_fails_at_the_cap_and_the_connection_is_dropped():
    with anyio.fail_after(GENEROUS):
        async with serve(endless_chunked) as (url, vendor):
            http, conn = client(url, max_response_bytes=1 * MiB)
            async with http:
                with pytest.raises(ResponseTooLarge) as info:
                    await http.get("/v2/articles")
                await vendor.all_closed.wait()  # the client hung up: the flood stopped
    error = info.value
    assert isinstance(error, FatalError) and not isinstance(error, RetryableError)
    assert error.limit == MiB and error.received <= MiB + CHUNK + 16  # read at most the cap (and one chunk)
    message = str(error)
    for words in (f"connection {conn!r}", "GET /v2/articles", "max_response_bytes = 1048576 (1 MiB)", f"[connections.{conn}]"):
        assert words in message
    assert vendor.requests == 1
    assert sample("apicenterd_api_requests_total", connection=conn, method="GET", status="too_large") == 1


async def test_a_huge_content_length_is_refused_before_the_body_is_read():
    with anyio.fail_after(GENEROUS):
        async with serve(huge_content_length) as (url, vendor):
            http, conn = client(url, max_response_bytes=1 * MiB)
            async with http:
                with pytest.raises(ResponseTooLarge) as info:
                    await http.get("/v2/articles")
                await vendor.all_closed.wait()
    assert info.value.declared == 2 * 1024 * MiB and info.value.received == 0
    assert "is announced as 2147483648 bytes (Content-Length), more than max_response_bytes" in str(info.value)
    assert "max_response_bytes = 1048576" in str(info.value)


async def test_an_answer_under_the_cap_is_read_as_before():
    async with serve(small_json) as (url, vendor):
        http, _ = client(url, max_response_bytes=12)
        async with http:
            response = await http.get("/x")
    assert response.json() == {"ok": True} and vendor.requests == 1


async def test_the_cap_counts_decompressed_bytes():
    bomb = gzip.compress(b"0" * (4 * MiB))  # a few KiB on the wire
    assert len(bomb) < MiB

    def handler(request):
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=bomb)

    conn = f"bounds-{uuid.uuid4().hex[:8]}"
    transport = InstrumentedTransport(conn, RateLimiterSet(conn, ()), httpx.MockTransport(handler), max_response_bytes=MiB)
    async with httpx.AsyncClient(base_url="https://api.example", transport=transport) as http:
        with pytest.raises(ResponseTooLarge, match="the response body grew past max_response_bytes = 1048576 "):
            await http.get("/x")


async def test_a_too_large_answer_does_not_count_against_the_circuit():
    """The vendor answered; opening the circuit would stop every other call of the connection."""
    conn = f"bounds-{uuid.uuid4().hex[:8]}"
    breaker = CircuitBreaker(conn, 1, 30)
    transport = InstrumentedTransport(
        conn,
        RateLimiterSet(conn, ()),
        httpx.MockTransport(lambda request: httpx.Response(200, content=b"x" * 100)),
        breaker=breaker,
        max_response_bytes=10,
    )
    async with httpx.AsyncClient(base_url="https://api.example", transport=transport) as http:
        with pytest.raises(ResponseTooLarge):
            await http.get("/x")
    assert breaker.state == "closed"


async def test_a_too_large_answer_from_an_inner_transport_stays_itself():
    """ResponseTooLarge raised below this transport (one wrapped in another) reaches the caller as
    it is, not as an UnboundLocalError for a response that never arrived (found by mypy)."""
    conn = f"bounds-{uuid.uuid4().hex[:8]}"
    inner = InstrumentedTransport(
        conn, RateLimiterSet(conn, ()), httpx.MockTransport(lambda request: httpx.Response(200, content=b"x" * 100)), max_response_bytes=10
    )
    breaker = CircuitBreaker(conn, 1, 30)
    transport = InstrumentedTransport(conn, RateLimiterSet(conn, ()), inner, breaker=breaker)
    async with httpx.AsyncClient(base_url="https://api.example", transport=transport) as http:
        with pytest.raises(ResponseTooLarge, match="max_response_bytes = 10"):
            await http.get("/x")
    assert breaker.state == "closed"


# --- the total deadline -------------------------------------------------------------------------------


async def test_a_trickling_server_is_cut_off_by_the_total_deadline():
    with anyio.fail_after(GENEROUS):
        async with serve(trickle) as (url, vendor):
            http, conn = client(url, deadline=1.0)  # each byte comes well within the 30 s read timeout
            async with http:
                with pytest.raises(RetryableError) as info:
                    await http.get("/v2/articles")
                await vendor.all_closed.wait()
    message = str(info.value)
    assert "exceeded the total request deadline of 1s" in message and "request_deadline" in message
    assert f"connection {conn!r}: GET /v2/articles: timed out" in message
    assert sample("apicenterd_api_requests_total", connection=conn, method="GET", status="timeout") == 1


async def test_a_deadline_counts_against_the_circuit_like_a_timeout():
    async def hang(request):
        await anyio.sleep_forever()

    class Hanging(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request):
            await hang(request)

    conn = f"bounds-{uuid.uuid4().hex[:8]}"
    breaker = CircuitBreaker(conn, 1, 30)
    transport = InstrumentedTransport(conn, RateLimiterSet(conn, ()), Hanging(), breaker=breaker, deadline=0.05)
    with anyio.fail_after(GENEROUS):
        async with httpx.AsyncClient(base_url="https://api.example", transport=transport) as http:
            with pytest.raises(RetryableError, match=r"request deadline of 0\.05s"):
                await http.get("/x")
    assert breaker.state == "open" and "deadline" in breaker.last_error


# --- settings per connection --------------------------------------------------------------------------


def test_settings_have_sane_defaults():
    settings = ConnectorSettings(base_url="https://api.example")
    assert settings.max_response_bytes == 64 * MiB
    assert settings.request_deadline == 120.0
    assert settings.retry_after_cap == 3600.0


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_response_bytes", 0),
        ("max_response_bytes", -1),
        ("max_response_bytes", 1.5),
        ("request_deadline", 0),
        ("request_deadline", -5),
        ("request_deadline", float("inf")),
        ("request_deadline", float("nan")),
        ("retry_after_cap", 0),
        ("retry_after_cap", 7200),
        ("retry_after_cap", float("nan")),
    ],
)
def test_bad_bounds_are_refused(field, value):
    with pytest.raises(ValidationError) as info:
        ConnectorSettings(base_url="https://api.example", **{field: value})
    assert info.value.errors()[0]["loc"] == (field,)


class HttpProducts(Source[Product]):
    async def changes(self, since):
        response = await self.connector.http.get("/products")
        for i, item in enumerate(json_body(response, "products")):
            yield Change(str(i), Product(sku=str(item), name=str(item)), str(i))


class HttpSource(Connector):
    """A source that reads products over HTTP through the daemon's client, like a real plugin."""

    name = "httpsource"
    sources = {Entity.PRODUCTS: HttpProducts}

    async def open(self) -> None:
        self.http = self.context.http_client(base_url=self.settings.base_url, timeout=self.settings.timeout)

    async def aclose(self) -> None:
        await self.http.aclose()



def http_plugin() -> types.ModuleType:
    module = types.ModuleType("http_bounds_plugin")

    @hookimpl
    def register_connectors(register):
        register(HttpSource)

    module.register_connectors = register_connectors
    return module


@pytest.fixture
def http_registry():
    import fakes

    fakes.MemoryStore.reset()
    return load_registry([("fakes", fakes), ("http", http_plugin())], entry_points=False)


def config(tmp_path: Path, registry, **src: Any):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "httpsource", **src}, "dst": {"connector": "memtarget"}},
        "flows": {"products": {"source": "src", "target": "dst", "entity": "products", "interval": "1m"}},
    }
    return resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")


def test_a_bad_bound_in_the_config_is_named(tmp_path, http_registry):
    with pytest.raises(ConfigError) as info:
        config(tmp_path, http_registry, base_url="http://127.0.0.1:9", request_deadline=-1)
    assert any("src" in p and "request_deadline" in p for p in info.value.problems), info.value.problems


async def test_the_engine_fails_the_run_on_a_too_large_answer_without_retrying(tmp_path, http_registry):
    with anyio.fail_after(GENEROUS):
        async with serve(endless_chunked) as (url, vendor):
            resolved = config(tmp_path, http_registry, base_url=url, max_response_bytes=MiB)
            store = SQLiteStore(tmp_path / "state.db")
            await store.open()
            engine = Engine(resolved, store, retry_base_delay=0)
            try:
                result = await engine.run_flow("products")
            finally:
                await engine.aclose()
                await store.close()
    assert result.status == "failed"
    assert result.error.startswith("ResponseTooLarge: connection 'src': GET /products")
    assert "max_response_bytes = 1048576" in result.error
    assert vendor.requests == 1  # not read again: the same flood would come back


async def test_the_engine_gives_each_connection_its_own_bounds(tmp_path, http_registry):
    resolved = config(tmp_path, http_registry, base_url="http://127.0.0.1:9", max_response_bytes=1234, request_deadline=7.5, retry_after_cap=90)
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolved, store)
    try:
        await engine.open(["src", "dst"])
        context = engine.connectors["src"].context
        transport = engine.connectors["src"].http._transport
        assert (transport.max_response_bytes, transport.deadline) == (1234, 7.5)
        assert context.limiters.retry_after_cap == 90
        other = engine.connectors["dst"].context
        assert (other.max_response_bytes, other.request_deadline, other.limiters.retry_after_cap) == (64 * MiB, 120.0, 3600.0)
    finally:
        await engine.aclose()
        await store.close()


def test_a_context_without_settings_keeps_the_defaults():
    context = Context(f"ctx-{uuid.uuid4().hex[:6]}")
    transport = context.http_client(base_url="https://api.example")._transport
    assert (transport.max_response_bytes, transport.deadline) == (64 * MiB, 120.0)

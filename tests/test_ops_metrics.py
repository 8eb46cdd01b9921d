"""What the person on call sees while things happen: auth failures counted as such, a paused
connection's gauge and its flows visibly paused, rate-limit waits while they last."""

from __future__ import annotations

import uuid

import anyio
import httpx
import pytest
from fakes import MemorySource, product
from prometheus_client import REGISTRY
from structlog.testing import capture_logs
from test_engine import make_config

from apicenterd import RateLimit
from apicenterd.engine import Engine
from apicenterd.http import InstrumentedTransport, RateLimiterSet
from apicenterd.oauth import OAuth2RefreshAuth
from apicenterd.observe.alerts import Alerter
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


class Tokens:
    """A TokenStore holding one refresh token the vendor no longer accepts."""

    async def load(self):
        return {"refresh_token": "rt.revoked", "access_token": "", "expires_at": 0}

    async def save(self, tokens):  # pragma: no cover - a refused refresh saves nothing
        raise AssertionError("nothing to save")


async def test_an_invalid_grant_is_an_auth_failure_that_pauses_the_connection(tmp_path, registry, memory, monkeypatch):
    """The token endpoint's 400 invalid_grant is counted as an auth failure (not only as a 400
    request), the connection's paused gauge goes to 1, and back to 0 when the engine closes."""
    memory.put(product("A"), "1")
    token_answers: list[int] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        token_answers.append(400)
        return httpx.Response(400, json={"error": "invalid_grant", "error_description": "token revoked"})

    async def read_through_oauth(self, entity, since):
        # the source's first call needs an access token: the refresh is refused
        limiters = RateLimiterSet("src", ())
        token_client = httpx.AsyncClient(transport=InstrumentedTransport("src", limiters, httpx.MockTransport(token_endpoint)))
        auth = OAuth2RefreshAuth(
            token_client=token_client, token_url="https://id.example/token", client_id="c", client_secret="s", tokens=Tokens(), connection="src"
        )
        try:
            await auth.access_token()
        finally:
            await token_client.aclose()
        yield  # pragma: no cover

    monkeypatch.setattr(MemorySource, "read", read_through_oauth)
    before = sample("apicenterd_auth_failures_total", connection="src") or 0.0
    before_400 = sample("apicenterd_api_requests_total", connection="src", method="POST", status="400") or 0.0
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(make_config(tmp_path, registry), store, retry_base_delay=0, retry_attempts=1, alerter=Alerter())
    try:
        await engine.open()
        assert sample("apicenterd_connection_paused", connection="src") == 0  # the series exists before any failure
        assert sample("apicenterd_auth_failures_total", connection="src") == before
        result = await engine.run_flow("products")
        assert token_answers == [400]
        assert result.status == "failed" and "invalid_grant" in (result.error or "")
        assert engine.paused.keys() == {"src"}
        assert sample("apicenterd_auth_failures_total", connection="src") == before + 1
        assert sample("apicenterd_api_requests_total", connection="src", method="POST", status="400") == before_400 + 1
        assert sample("apicenterd_connection_paused", connection="src") == 1
        assert sample("apicenterd_connection_paused", connection="dst") == 0
    finally:
        await engine.aclose()
        await store.close()
    assert sample("apicenterd_connection_paused", connection="src") == 0  # a reload's new engine tries it again


async def test_a_paused_connections_flows_say_so_on_every_slot(tmp_path, registry, memory, monkeypatch):
    """The scheduler does not skip a paused connection's flow silently: a warning the first time
    (with the reason and the command to run), then info lines."""
    monkeypatch.setattr(MemorySource, "read", lambda self, entity, since: (_ for _ in ()).throw(AssertionError("must not run")))
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    with capture_logs() as logs:
        engine = Engine(make_config(tmp_path, registry, interval="1s"), store, alerter=Alerter())
        engine.paused["dst"] = "the refresh token was rejected (invalid_grant)"
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(engine.serve)
                with anyio.fail_after(30):
                    while sum(1 for e in logs if e["event"].startswith("flow paused")) < 2:
                        await anyio.sleep(0.05)
                engine.stop()
        finally:
            await engine.aclose()
            await store.close()
    paused = [e for e in logs if e["event"].startswith("flow paused")]
    assert [e["log_level"] for e in paused[:2]] == ["warning", "info"]
    assert paused[0]["flow"] == "products" and paused[0]["connections"] == ["dst"]
    assert "invalid_grant" in paused[0]["reason"] and "apicenterd auth dst" in paused[0]["fix"]


async def test_a_rate_limit_wait_shows_in_gauges_while_it_lasts():
    conn = f"wait-{uuid.uuid4().hex[:8]}"
    now = [1000.0]
    release = anyio.Event()
    sleeping = anyio.Event()

    async def sleep(seconds: float) -> None:
        sleeping.set()
        await release.wait()
        now[0] += seconds

    limiters = RateLimiterSet(conn, [RateLimit(1, 60)], clock=lambda: now[0], sleep=sleep)
    http = httpx.AsyncClient(
        base_url="https://api.example", transport=InstrumentedTransport(conn, limiters, httpx.MockTransport(lambda r: httpx.Response(200)))
    )
    async with http:
        await http.get("/a")  # takes the only slot of the minute
        assert sample("apicenterd_rate_limit_waiting", connection=conn) == 0
        assert sample("apicenterd_rate_limit_waiting_seconds", connection=conn) == 0
        async with anyio.create_task_group() as tg:
            tg.start_soon(http.get, "/b")
            with anyio.fail_after(10):
                await sleeping.wait()
            now[0] += 25  # 25 s into the wait, before it is over (and before the counter says anything)
            assert sample("apicenterd_rate_limit_waiting", connection=conn) == 1
            assert sample("apicenterd_rate_limit_waiting_seconds", connection=conn) == pytest.approx(25)
            release.set()
        assert sample("apicenterd_rate_limit_waiting", connection=conn) == 0
        assert sample("apicenterd_rate_limit_waiting_seconds", connection=conn) == 0
        assert (sample("apicenterd_rate_limit_wait_seconds_total", connection=conn) or 0) > 0


async def test_auth_failures_series_exists_before_the_first_failure(tmp_path, registry, memory):
    """increase() only sees a counter that was there before it rose: opened connections export 0."""
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(make_config(tmp_path, registry), store, alerter=Alerter())
    try:
        await engine.open()
        for conn in ("src", "dst"):
            assert sample("apicenterd_auth_failures_total", connection=conn) is not None
    finally:
        await engine.aclose()
        await store.close()


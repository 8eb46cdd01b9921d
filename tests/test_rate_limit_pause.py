"""A vendor's 429 pause: capped per connection, logged and shown while it lasts, and kept in
the state store so a restart does not call the vendor before it is over."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import anyio
import anyio.lowlevel
import httpx
import pytest
from prometheus_client import REGISTRY

from apicenterd import RateLimit, RateLimited
from apicenterd.config import Config, resolve
from apicenterd.engine import Engine, StatePauseStore
from apicenterd.http import InstrumentedTransport, RateLimiterSet
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio

WALL = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class FakeTime:
    """A monotonic clock that only sleeping advances, and a wall clock that moves with it."""

    def __init__(self, now: float = 1000.0, wall: float = WALL):
        self.now = now
        self.start = now
        self.wall_start = wall
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_start + (self.now - self.start)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


class Log:
    def __init__(self):
        self.lines: list[tuple[str, str, dict]] = []

    def warning(self, event, **kw):
        self.lines.append(("warning", event, kw))

    def info(self, event, **kw):
        self.lines.append(("info", event, kw))

    def events(self, level: str) -> list[str]:
        return [event for lvl, event, _ in self.lines if lvl == level]


def paused_seconds(conn: str) -> float:
    return REGISTRY.get_sample_value("apicenterd_rate_limit_pause_seconds", {"connection": conn})


def limiters_for(conn: str, clock: FakeTime, limits=(), **kw) -> RateLimiterSet:
    return RateLimiterSet(conn, limits, clock=clock, sleep=clock.sleep, wall_clock=clock.wall, **kw)


def client(limiters: RateLimiterSet, handler) -> httpx.AsyncClient:
    transport = InstrumentedTransport(limiters.connection, limiters, httpx.MockTransport(handler))
    return httpx.AsyncClient(base_url="https://api.example", transport=transport)


async def test_a_huge_retry_after_is_capped_by_the_setting_logged_and_shown_until_it_is_over():
    conn = f"pause-{uuid.uuid4().hex[:8]}"
    clock, log = FakeTime(), Log()
    limiters = limiters_for(conn, clock, [RateLimit(100, 60)], retry_after_cap=120, log=log)
    answers = iter([httpx.Response(429, headers={"Retry-After": "999999"}), httpx.Response(200)])
    async with client(limiters, lambda request: next(answers)) as http:
        assert paused_seconds(conn) == 0
        assert (await http.get("/x")).status_code == 429
        assert paused_seconds(conn) == pytest.approx(120)  # not the hour of the default cap
        assert log.events("warning") == [
            f"connection {conn!r} paused by the vendor for 120s until 2023-11-14T22:15:20+00:00 "
            "(Retry-After: 999999, capped at retry_after_cap = 120s)"
        ]
        assert log.lines[0][2]["rate_limit_pause"] == 120 and log.lines[0][2]["asked"] == 999999
        clock.now += 30
        assert paused_seconds(conn) == pytest.approx(90)  # counts down while it lasts
        assert (await http.get("/x")).status_code == 200
    assert sum(clock.slept) == pytest.approx(90, abs=0.01)
    assert paused_seconds(conn) == 0
    assert log.events("info") == ["rate-limit pause over: calls to the connection resume"]


async def test_a_pause_set_by_the_engine_is_capped_too():
    conn = f"pause-{uuid.uuid4().hex[:8]}"
    clock, log = FakeTime(), Log()
    limiters = limiters_for(conn, clock, retry_after_cap=45, log=log)
    limiters.pause_all(RateLimited("x", retry_after=600).retry_after, reason="a wait in the 429's body")
    assert paused_seconds(conn) == pytest.approx(45)
    assert "(a wait in the 429's body, capped at retry_after_cap = 45s)" in log.events("warning")[0]


async def test_repeated_429s_of_one_pause_are_logged_once():
    conn = f"pause-{uuid.uuid4().hex[:8]}"
    clock, log = FakeTime(), Log()
    limiters = limiters_for(conn, clock, log=log)
    limiters.pause_all(60)
    limiters.pause_all(60)  # concurrent calls that all got the 429
    limiters.pause_all(30)
    assert len(log.events("warning")) == 1
    limiters.pause_all(120)  # the vendor asks for longer: worth a line
    assert len(log.events("warning")) == 2


def test_the_cap_cannot_exceed_the_daemons_ceiling():
    with pytest.raises(ValueError, match="retry_after_cap"):
        RateLimiterSet("c", (), retry_after_cap=7200)


async def test_a_pause_survives_a_restart_and_the_first_call_waits_for_what_is_left(tmp_path):
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        before = FakeTime(now=1000.0, wall=WALL)
        limiters = limiters_for("strict", before, [RateLimit(100, 60)], pauses=StatePauseStore(store, "strict"))
        async with client(limiters, lambda request: httpx.Response(429, headers={"Retry-After": "300"})) as http:
            await http.get("/x")
        assert await store.load_pause("strict") == pytest.approx(WALL + 300)

        # the daemon restarts 100 s later: a new process, whose monotonic clock starts anywhere
        after = FakeTime(now=5.0, wall=WALL + 100)
        log = Log()
        restarted = limiters_for("strict", after, [RateLimit(100, 60)], pauses=StatePauseStore(store, "strict"), log=log)
        called_at: list[float] = []

        def vendor(request):
            called_at.append(after.wall())
            return httpx.Response(200)

        async with client(restarted, vendor) as http:
            await http.get("/x")
        assert called_at == [pytest.approx(WALL + 300)]  # not before the vendor said
        assert sum(after.slept) == pytest.approx(200)
        assert "still paused by the vendor (from before the restart) for 200s" in log.events("warning")[0]
    finally:
        await store.close()


async def test_a_pause_that_is_over_is_not_restored(tmp_path):
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        await store.save_pause("c", WALL - 10)
        clock = FakeTime()
        limiters = limiters_for("c", clock, pauses=StatePauseStore(store, "c"))
        async with client(limiters, lambda request: httpx.Response(200)) as http:
            await http.get("/x")
        assert clock.slept == []
    finally:
        await store.close()


async def test_a_failing_pause_store_does_not_fail_the_request():
    class Broken:
        async def load(self):
            raise OSError("disk gone")

        async def save(self, until):
            raise OSError("disk gone")

    clock, log = FakeTime(), Log()
    limiters = limiters_for("c", clock, pauses=Broken(), log=log)
    answers = iter([httpx.Response(429, headers={"Retry-After": "5"}), httpx.Response(200)])
    async with client(limiters, lambda request: next(answers)) as http:
        assert (await http.get("/x")).status_code == 429
        assert (await http.get("/x")).status_code == 200
    assert sum(clock.slept) == pytest.approx(5)  # the pause still held in this process
    assert "could not read the rate-limit pause from the state store" in log.events("warning")
    assert "could not keep the rate-limit pause in the state store" in log.events("warning")


# --- through the engine -------------------------------------------------------------------------------


def config(tmp_path: Path, registry, **dst):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "memsource"}, "dst": {"connector": "memtarget", **dst}},
        "flows": {"products": {"source": "src", "target": "dst", "entity": "products", "interval": "1m"}},
    }
    return resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")


async def test_a_restarted_engine_restores_the_pause_when_it_opens_the_connection(tmp_path, registry):
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    await store.save_pause("dst", time.time() + 3000)  # what the engine before the restart kept
    engine = Engine(config(tmp_path, registry), store)
    try:
        await engine.open(["src", "dst"])
        limiters = engine.connectors["dst"].context.limiters
        assert 2900 < limiters.pause_remaining() <= 3000
        assert 2900 < paused_seconds("dst") <= 3000
        assert engine.connectors["src"].context.limiters.pause_remaining() == 0
    finally:
        await engine.aclose()
        await store.close()


async def test_the_engine_keeps_a_pause_from_a_rate_limited_error_and_caps_its_wait(tmp_path, registry):
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    slept: list[float] = []

    async def sleep(seconds):
        slept.append(seconds)

    engine = Engine(config(tmp_path, registry, retry_after_cap=100), store, retry_base_delay=0, sleep=sleep)
    try:
        await engine.open(["dst"])
        target = engine.connectors["dst"]
        calls = iter([RateLimited("429 Try again in 3000 seconds", retry_after=3000)])

        async def call():
            error = next(calls, None)
            if error is not None:
                raise error
            return "done"

        assert await engine._with_retries(engine.log, "create x", target, call) == "done"
        assert slept == [100]  # the connection's retry_after_cap, not the vendor's 3000 s
        saved = await store.load_pause("dst")
        assert saved is not None and 0 < saved - time.time() <= 100
    finally:
        await engine.aclose()
        await store.close()

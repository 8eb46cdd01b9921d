"""The limiter narrowed by the vendor's rate-limit headers, and never over a vendor's window."""

from __future__ import annotations

import asyncio
import email.utils
import heapq
import itertools
import random
import uuid

import anyio
import anyio.lowlevel
import httpx
import pytest
import vendor_headers
from prometheus_client import REGISTRY

from apicenterd import RateLimit, RateLimitHeaders
from apicenterd.http import InstrumentedTransport, RateLimiterSet
from apicenterd.ratelimit import SlidingWindowLimiter
from apicenterd.testing import FixedWindow

EXACT = vendor_headers.EXACT_MINUTELY


class FakeTime:
    """Sleeping advances the clock; nothing waits for real. ``wall`` is Unix time (offset)."""

    def __init__(self, now: float = 1000.0, wall_offset: float = 1_800_000_000.0):
        self.now = now
        self.wall_offset = wall_offset
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self.wall_offset

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


def client_for(handler, limits, clock: FakeTime):
    conn = f"hdr-{uuid.uuid4().hex[:8]}"
    limiters = RateLimiterSet(conn, limits, clock=clock, sleep=clock.sleep, wall_clock=clock.wall)
    transport = InstrumentedTransport(conn, limiters, httpx.MockTransport(handler))
    return httpx.AsyncClient(base_url="https://api.example", transport=transport), conn, limiters


def exact_headers(remaining: int, reset_wall: float, limit: int = 60) -> dict[str, str]:
    return {
        "X-RateLimit-Minutely-Limit": str(limit),
        "X-RateLimit-Minutely-Remaining": str(remaining),
        "X-RateLimit-Minutely-Reset": str(int(reset_wall * 1000)),
    }


# --- declaring -----------------------------------------------------------------------------------------


def test_rate_limit_stays_backward_compatible():
    def key(request):
        return "k"

    limit = RateLimit(600, 60.0, "per_endpoint", key)
    assert (limit.requests, limit.period, limit.name, limit.key, limit.headers) == (600, 60.0, "per_endpoint", key, None)


def test_presets_name_the_vendors_headers():
    assert (EXACT.remaining, EXACT.reset, EXACT.reset_unit) == (
        "X-RateLimit-Minutely-Remaining",
        "X-RateLimit-Minutely-Reset",
        "epoch_ms",
    )
    assert vendor_headers.EXACT_DAILY.remaining == "X-RateLimit-Remaining"
    assert vendor_headers.VISMA_NET.reset_unit == "seconds"
    assert vendor_headers.HUBSPOT.reset is None and vendor_headers.HUBSPOT.limit == "X-HubSpot-RateLimit-Max"
    assert vendor_headers.HUBSPOT_SECONDLY.remaining == "X-HubSpot-RateLimit-Secondly-Remaining"


def test_unknown_reset_unit_is_refused():
    with pytest.raises(ValueError, match="reset_unit 'minutes' is not one of"):
        RateLimitHeaders(remaining="X-Left", reset="X-Reset", reset_unit="minutes")  # type: ignore[arg-type]


# --- remaining and reset ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_zero_remaining_waits_until_the_reset():
    clock = FakeTime()
    reset = clock.wall() + 42.5
    answers = iter([exact_headers(0, reset), {}])
    client, conn, _ = client_for(lambda r: httpx.Response(200, headers=next(answers)), [RateLimit(60, 60, headers=EXACT)], clock)
    async with client:
        await client.get("/a")
        start = clock.now
        await client.get("/a")
    assert clock.now - start == pytest.approx(42.5, abs=0.01)  # until the reset, not a whole period
    assert REGISTRY.get_sample_value("apicenterd_rate_limit_wait_seconds_total", {"connection": conn}) == pytest.approx(
        sum(clock.slept)
    )
    assert REGISTRY.get_sample_value("apicenterd_rate_limit_remaining", {"connection": conn, "limit": "default"}) == 0


@pytest.mark.anyio
async def test_only_the_remaining_calls_go_before_the_reset():
    clock = FakeTime()
    reset = clock.wall() + 30
    answers = itertools.chain([exact_headers(3, reset)], itertools.repeat({}))
    client, _, _ = client_for(lambda r: httpx.Response(200, headers=next(answers)), [RateLimit(60, 60, headers=EXACT)], clock)
    async with client:
        await client.get("/a")  # the vendor says 3 left after this one (and then nothing more)
        for _ in range(3):
            await client.get("/a")
        assert clock.slept == []
        await client.get("/a")
    assert sum(clock.slept) == pytest.approx(30, abs=0.01)


@pytest.mark.anyio
async def test_without_headers_nothing_changes():
    clock = FakeTime()
    client, _, limiters = client_for(lambda r: httpx.Response(200), [RateLimit(5, 60, headers=EXACT)], clock)
    async with client:
        for _ in range(5):
            await client.get("/a")
    assert clock.slept == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {"X-RateLimit-Minutely-Remaining": "lots", "X-RateLimit-Minutely-Reset": "soon"},
        {"X-RateLimit-Minutely-Remaining": "nan", "X-RateLimit-Minutely-Limit": "inf"},
        {"X-RateLimit-Minutely-Limit": "0"},
        {"X-RateLimit-Minutely-Limit": "-3"},
    ],
)
async def test_unreadable_headers_are_ignored(headers):
    clock = FakeTime()
    client, _, _ = client_for(lambda r: httpx.Response(200, headers=headers), [RateLimit(5, 60, headers=EXACT)], clock)
    async with client:
        for _ in range(5):
            assert (await client.get("/a")).status_code == 200
    assert clock.slept == []


@pytest.mark.anyio
async def test_a_reset_beyond_one_period_is_capped_at_the_period():
    clock = FakeTime()
    answers = iter([exact_headers(0, clock.wall() + 10 * 86400), {}])
    client, _, _ = client_for(lambda r: httpx.Response(200, headers=next(answers)), [RateLimit(60, 60, headers=EXACT)], clock)
    async with client:
        await client.get("/a")
        await client.get("/a")
    assert sum(clock.slept) == pytest.approx(60, abs=0.01)


@pytest.mark.anyio
async def test_epoch_reset_is_read_against_the_vendors_date_when_our_clock_is_off():
    clock = FakeTime()
    vendor_now = clock.wall() + 500  # the vendor's clock is 500 s ahead of ours
    headers = exact_headers(0, vendor_now + 20)
    headers["Date"] = email.utils.formatdate(vendor_now, usegmt=True)
    answers = iter([headers, {}])
    client, _, _ = client_for(lambda r: httpx.Response(200, headers=next(answers)), [RateLimit(60, 60, headers=EXACT)], clock)
    async with client:
        await client.get("/a")
        await client.get("/a")
    # 20 s by the vendor's clock (its Date has whole seconds: up to 1 s longer), not 60 (the cap)
    assert 20 <= sum(clock.slept) <= 21.01


@pytest.mark.anyio
async def test_visma_reset_in_seconds_and_one_that_is_really_unix_time():
    clock = FakeTime()
    visma = RateLimit(500, 3600, headers=vendor_headers.VISMA_NET)
    answers = iter(
        [
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "90"},
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(clock.wall() + 90 + 120))},
            {},
        ]
    )
    client, _, _ = client_for(lambda r: httpx.Response(200, headers=next(answers)), [visma], clock)
    async with client:
        await client.get("/a")
        await client.get("/a")
        assert sum(clock.slept) == pytest.approx(90, abs=0.01)
        await client.get("/a")
    assert sum(clock.slept) == pytest.approx(210, abs=1.01)


@pytest.mark.anyio
async def test_a_429_with_headers_holds_until_the_reset_even_without_retry_after():
    clock = FakeTime()
    answers = iter([httpx.Response(429, headers=exact_headers(0, clock.wall() + 12)), httpx.Response(200)])
    client, _, _ = client_for(lambda r: next(answers), [RateLimit(60, 60, headers=EXACT)], clock)
    async with client:
        await client.get("/a")
        await client.get("/a")
    assert sum(clock.slept) == pytest.approx(12, abs=0.01)


# --- in flight and out of order ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_calls_sent_after_the_answered_one_are_taken_off():
    clock = FakeTime()
    limiter = SlidingWindowLimiter(100, 60, clock=clock, sleep=clock.sleep)
    seqs = [(await limiter.acquire_slot())[2] for _ in range(5)]
    # the answer to the first call says 4 left; four more calls were already sent since
    limiter.vendor_budget(4, clock.now + 30, sent_since=4, seq=seqs[0])
    for seq in seqs:
        limiter.answered(seq)
    assert limiter.remaining() == 0
    assert limiter.delay() == pytest.approx(30)


@pytest.mark.anyio
async def test_earlier_calls_still_in_flight_are_taken_off():
    clock = FakeTime()
    limiter = SlidingWindowLimiter(100, 60, clock=clock, sleep=clock.sleep)
    first, second = [(await limiter.acquire_slot())[2] for _ in range(2)]
    # the second call's answer came first: the first may not be in the vendor's count yet
    limiter.vendor_budget(1, clock.now + 30, seq=second)
    assert limiter.remaining() == 0
    limiter.answered(second)
    limiter.answered(first)
    third = (await limiter.acquire_slot())[2]
    limiter.answered(third)
    limiter.vendor_budget(1, clock.now + 30, seq=third)  # nothing in flight: 1 is 1
    assert limiter.remaining() == 1


@pytest.mark.anyio
async def test_within_a_window_the_answer_to_the_latest_call_wins():
    clock = FakeTime()
    limiter = SlidingWindowLimiter(100, 60, clock=clock, sleep=clock.sleep)
    seqs = [(await limiter.acquire_slot())[2] for _ in range(3)]
    for seq in seqs:
        limiter.answered(seq)
    reset = clock.now + 30
    limiter.vendor_budget(10, reset, seq=seqs[2])
    limiter.vendor_budget(2, reset + 0.01, seq=seqs[0])  # older, and stale: ignored
    assert limiter.remaining() == 10
    limiter.vendor_budget(50, reset, seq=seqs[1])  # older and looser: ignored too
    assert limiter.remaining() == 10
    assert len(limiter._budgets) == 1


@pytest.mark.anyio
async def test_a_new_window_does_not_lift_the_current_one():
    clock = FakeTime()
    limiter = SlidingWindowLimiter(100, 60, clock=clock, sleep=clock.sleep)
    limiter.vendor_budget(0, clock.now + 5)
    limiter.vendor_budget(40, clock.now + 65)
    assert limiter.delay() == pytest.approx(5)
    clock.now += 5
    assert limiter.delay() == 0 and limiter.remaining() == 40


# --- limits reported lower or higher -----------------------------------------------------------------


@pytest.mark.anyio
async def test_a_lower_reported_limit_is_adopted_and_a_higher_one_ignored():
    clock = FakeTime()
    reported = {"value": "3"}
    client, _, limiters = client_for(
        lambda r: httpx.Response(200, headers={"X-RateLimit-Minutely-Limit": reported["value"]}),
        [RateLimit(10, 60, headers=EXACT)],
        clock,
    )
    async with client:
        for _ in range(3):
            await client.get("/a")
        assert clock.slept == []
        await client.get("/a")  # the fourth within the minute waits: the vendor's 3 holds
        assert sum(clock.slept) >= 60
        reported["value"] = "1000"
        clock.now += 120
        clock.slept.clear()
        for _ in range(10):
            await client.get("/a")
        assert clock.slept == []
        await client.get("/a")  # never faster than the declared 10
        assert sum(clock.slept) >= 60


@pytest.mark.anyio
async def test_hubspot_limit_is_adopted_only_for_the_same_window():
    clock = FakeTime()
    limiter_headers = {"X-HubSpot-RateLimit-Max": "50", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
    other_window = {"X-HubSpot-RateLimit-Max": "50", "X-HubSpot-RateLimit-Interval-Milliseconds": "86400000"}
    for headers, expected in ((limiter_headers, 50), (other_window, 100)):
        client, _, limiters = client_for(
            lambda r, h=headers: httpx.Response(200, headers=h), [RateLimit(100, 10, headers=vendor_headers.HUBSPOT)], clock
        )
        async with client:
            await client.get("/a")
        (bucket,) = limiters._buckets.values()
        assert bucket.requests == expected


@pytest.mark.anyio
async def test_hubspot_remaining_without_reset_counts_someone_elses_calls():
    clock = FakeTime()
    left = {"value": 100}

    def handler(request):
        left["value"] -= 1
        return httpx.Response(200, headers={"X-HubSpot-RateLimit-Remaining": str(left["value"])})

    client, _, _ = client_for(handler, [RateLimit(100, 10, headers=vendor_headers.HUBSPOT)], clock)
    async with client:
        for _ in range(5):  # the vendor agrees with us: no phantom calls, no wait
            await client.get("/a")
        assert clock.slept == []
        left["value"] = 3  # someone else spent most of the window
        await client.get("/a")  # says 2 left
        await client.get("/a")
        await client.get("/a")
        assert clock.slept == []
        await client.get("/a")
    assert sum(clock.slept) >= 10 - 1e-9  # a whole window: the other calls were made "just now"


# --- never over the vendor's window -------------------------------------------------------------------


class VirtualTime:
    """Time that passes only when every task waits: a small discrete-event scheduler."""

    def __init__(self, now: float = 0.0):
        self.now = now
        self._timers: list[tuple[float, int, anyio.Event]] = []
        self._ids = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        event = anyio.Event()
        heapq.heappush(self._timers, (self.now + max(seconds, 0.0), next(self._ids), event))
        await event.wait()

    @staticmethod
    async def _all_blocked() -> None:
        # like anyio.wait_all_tasks_blocked, which polls every 0.1 s of real time
        this = asyncio.current_task()
        while True:
            for task in asyncio.all_tasks():
                waiter = getattr(task, "_fut_waiter", None)
                if task is not this and (waiter is None or waiter.done()):
                    await asyncio.sleep(0)
                    break
            else:
                return

    async def run(self, until: anyio.Event) -> None:
        while not until.is_set():
            await anyio.lowlevel.checkpoint()
            await self._all_blocked()
            if until.is_set() or not self._timers:
                continue
            when, _, event = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            event.set()


@pytest.mark.anyio
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("with_headers", [False, True])
async def test_concurrent_flows_never_exceed_a_fixed_window_vendor(seed, with_headers):
    """Eight tasks through one connection against a vendor counting 20 calls per fixed 10 s
    window on arrival, with random latencies: no window ever gets more than 20, no 429."""
    rng = random.Random(seed)
    clock = VirtualTime(now=rng.uniform(0, 10))  # the daemon starts somewhere in a window
    vendor = FixedWindow(20, 10.0, clock=clock)
    arrivals: dict[int, int] = {}
    rejected = []

    async def handler(request):
        await clock.sleep(rng.uniform(0.001, 0.2))  # on the way there
        wait = vendor.hit()
        window = int(clock.now // 10)
        headers = {}
        if wait is None:
            arrivals[window] = arrivals.get(window, 0) + 1
        else:
            rejected.append(clock.now)
        if with_headers:
            used = arrivals.get(window, 0)
            headers = exact_headers(max(0, 20 - used), (window + 1) * 10.0, limit=20)
        await clock.sleep(rng.uniform(0.001, 0.2))  # on the way back
        return httpx.Response(429 if wait is not None else 200, headers=headers)

    limits = [RateLimit(20, 10.0, headers=EXACT if with_headers else None)]
    limiters = RateLimiterSet("virtual", limits, clock=clock, sleep=clock.sleep, wall_clock=clock)
    transport = InstrumentedTransport("virtual", limiters, httpx.MockTransport(handler))
    done = anyio.Event()
    sent = 0

    async def flow(calls: int) -> None:
        nonlocal sent
        async with httpx.AsyncClient(base_url="https://api.example", transport=transport) as client:
            for _ in range(calls):
                await client.get("/x")
                sent += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.run, done)
        async with anyio.create_task_group() as flows:
            for _ in range(8):
                flows.start_soon(flow, 25)
        done.set()
    assert sent == 200
    assert rejected == []
    assert max(arrivals.values()) <= 20
    # and not needlessly slow: the full windows between the first and the last are (nearly) full
    full = [arrivals.get(w, 0) for w in range(min(arrivals) + 1, max(arrivals))]
    assert full and sum(full) >= 0.9 * 20 * len(full)

"""A vendor that says nothing but 429: the limiter learns what is left of the budget from the
refusals (another app spends the rest) and stops causing them; the learned limit lifts again."""

from __future__ import annotations

import math
import uuid

import anyio
import anyio.lowlevel
import httpx
import pytest
from test_ratelimit_headers import FakeTime

from apicenterd import RateLimit
from apicenterd.http import InstrumentedTransport, RateLimiterSet
from apicenterd.ratelimit import SlidingWindowLimiter

pytestmark = pytest.mark.anyio


class SharedVendor:
    """``limit`` calls per fixed window of ``period`` s; another app spends ``other`` of them at
    each window's start; 429 with Retry-After (whole seconds, rounded up) and no other header."""

    def __init__(self, clock: FakeTime, limit: int = 100, period: float = 10.0, other: int = 20):
        self.clock, self.limit, self.period, self.other = clock, limit, period, other
        self.accepted: dict[int, int] = {}
        self.refused: dict[int, int] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        now = self.clock()
        window = math.floor(now / self.period)
        if self.other + self.accepted.get(window, 0) >= self.limit:
            self.refused[window] = self.refused.get(window, 0) + 1
            wait = max(1, math.ceil((window + 1) * self.period - now))
            return httpx.Response(429, headers={"Retry-After": str(wait)})
        self.accepted[window] = self.accepted.get(window, 0) + 1
        return httpx.Response(200)


async def test_the_budget_left_is_learned_from_the_first_refusal_and_no_429_follows():
    clock = FakeTime(now=1000.0)
    vendor = SharedVendor(clock)
    conn = f"learn-{uuid.uuid4().hex[:8]}"
    limiters = RateLimiterSet(conn, [RateLimit(100, 10.0)], clock=clock, sleep=clock.sleep, margin=0.0)
    transport = InstrumentedTransport(conn, limiters, httpx.MockTransport(vendor))
    async with httpx.AsyncClient(base_url="https://api.example", transport=transport) as http:
        for _ in range(500):
            await http.get("/items")
            clock.now += 0.001  # a millisecond a call
    windows = sorted(vendor.accepted)
    first = windows[0]
    assert vendor.refused == {first: 1}, vendor.refused  # one refusal teaches it, in the first window
    bucket = next(iter(limiters._buckets.values()))
    assert bucket.learned == 80 and bucket.requests == 80
    # every later full window: all 80 calls left to us, none refused
    assert all(vendor.accepted[w] == 80 for w in windows[1:-1]), vendor.accepted


async def sent(bucket: SlidingWindowLimiter, clock: FakeTime, count: int, *, answered: bool = True) -> list[tuple[float, int]]:
    """``count`` calls a millisecond apart: (stamp, seq) of each; answered unless told otherwise."""
    slots = []
    for _ in range(count):
        _, stamp, seq = await bucket.acquire_slot()
        if answered:
            bucket.answered(seq)
        slots.append((stamp, seq))
        clock.now += 0.001
    return slots


async def test_a_limit_learned_from_429s_lifts_one_step_per_ten_quiet_periods():
    clock = FakeTime(now=0.0)
    bucket = SlidingWindowLimiter(100, 10.0, clock=clock, sleep=clock.sleep)
    slots = await sent(bucket, clock, 61)
    bucket.rejected(*slots[-1])  # the 61st refused: 60 went through
    assert bucket.learned == 60 and bucket.requests == 60 and bucket.remaining() == 0
    clock.now += 10 * 10.0
    await bucket.acquire()
    assert bucket.learned == 62  # a step of declared / 50
    for _ in range(19):
        clock.now += 10 * 10.0
        await bucket.acquire()
    assert bucket.learned is None and bucket.requests == 100  # back at the declared limit


async def test_what_a_refusal_does_not_teach():
    clock = FakeTime(now=0.0)
    bucket = SlidingWindowLimiter(100, 10.0, clock=clock, sleep=clock.sleep)
    slots = await sent(bucket, clock, 5)
    bucket.rejected(*slots[-1])  # after 4 calls: some other limit, not this window being full
    assert bucket.learned is None and bucket.requests == 100
    slots += await sent(bucket, clock, 45)
    bucket.rejected(*slots[-1])  # the 50th refused: 49 went through
    assert bucket.learned == 49
    bucket.pause(5.0)  # the pause that refusal's Retry-After sets
    bucket.rejected(*slots[-2])  # a call in flight from before that pause teaches nothing more
    assert bucket.learned == 49
    # calls sent before the refused one but not answered yet are not counted as let through
    clock.now += 20.0
    fresh = await sent(bucket, clock, 30) + await sent(bucket, clock, 15, answered=False)
    bucket.rejected(*fresh[-1])
    assert bucket.learned == 30


async def test_a_retry_after_keeps_calls_of_the_previous_window_out_of_the_count():
    clock = FakeTime(now=0.0)
    bucket = SlidingWindowLimiter(100, 10.0, clock=clock, sleep=clock.sleep)
    await sent(bucket, clock, 40)  # late in the vendor's previous window
    clock.now = 5.0  # its next window began at 4.5
    slots = await sent(bucket, clock, 51)
    bucket.rejected(*slots[-1], 10.0)  # Retry-After 10: that window ends in (9, 10] s, began after 4.06
    assert bucket.learned == 50


async def test_a_vendor_that_reports_its_budget_is_not_second_guessed():
    from apicenterd import RateLimitHeaders

    clock = FakeTime(now=1000.0)
    policy = RateLimitHeaders(remaining="X-Remaining")
    conn = f"learn-{uuid.uuid4().hex[:8]}"
    limiters = RateLimiterSet(conn, [RateLimit(100, 10.0, headers=policy)], clock=clock, sleep=clock.sleep)
    answers = iter([httpx.Response(200, headers={"X-Remaining": "50"})] * 30 + [httpx.Response(429, headers={"X-Remaining": "0"})])
    transport = InstrumentedTransport(conn, limiters, httpx.MockTransport(lambda request: next(answers)))
    async with httpx.AsyncClient(base_url="https://api.example", transport=transport) as http:
        for _ in range(31):
            await http.get("/x")
    assert next(iter(limiters._buckets.values())).learned is None


async def test_after_an_uncertain_first_count_the_next_window_goes_one_call_at_a_time_past_the_sure_part():
    clock = FakeTime(now=1000.5)
    bucket = SlidingWindowLimiter(100, 10.0, clock=clock, sleep=clock.sleep)
    await sent(bucket, clock, 40)  # maybe the vendor's previous window, maybe this one
    clock.now = 1005.0
    slots = await sent(bucket, clock, 51)
    bucket.rejected(*slots[-1], 6.0)  # that window began in (1000.05, 1001.05]: 50 surely in it, 90 at most
    assert bucket.learned == 90
    bucket.pause(6.0)
    clock.now = 1011.1  # the pause is over: the next window
    await sent(bucket, clock, 50)  # the sure part goes as fast as it may
    _, _, first = await bucket.acquire_slot()  # the 51st: in flight
    done = []

    async def second() -> None:
        done.append(await bucket.acquire_slot())

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        assert not done  # waits for the call in flight
        bucket.answered(first)
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        assert done

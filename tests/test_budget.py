"""The day budget: flows on one connection share a day limit by priority (clocks injected, no waiting)."""

from __future__ import annotations

import httpx
import pytest

from apicenterd import RateLimit, RateLimitHeaders
from apicenterd.budget import DayBudget, is_day_limit
from apicenterd.errors import BudgetSpent
from apicenterd.http import RateLimiterSet
from apicenterd.schedule import Schedule
from apicenterd.scheduler import current_flow

pytestmark = pytest.mark.anyio

DAILY = RateLimitHeaders(remaining="X-Day-Remaining", reset="X-Day-Reset", reset_unit="epoch_seconds", limit="X-Day-Limit")
START = 1_800_000_000.0 - (1_800_000_000.0 % 86400)  # a midnight (UTC)


class Clock:
    """Monotonic and wall time moved by hand."""

    def __init__(self, now: float = START + 3600):
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _set(clock: Clock, limits, reserve: int = 0, **flows: tuple[int, Schedule | None]) -> tuple[RateLimiterSet, DayBudget]:
    limiters = RateLimiterSet("exact", limits, clock=clock, sleep=clock.sleep, wall_clock=clock)
    budget = DayBudget("exact", limiters, reserve=reserve, wall_clock=clock)
    for name, (priority, schedule) in flows.items():
        budget.add_flow(name, priority, schedule)
    limiters.budget = budget
    return limiters, budget


async def _call(limiters: RateLimiterSet, flow: str | None, response: httpx.Response | None = None) -> None:
    token = current_flow.set(flow)
    try:
        _, tickets = await limiters.admit(httpx.Request("GET", "https://vendor.test/items"))
        if response is not None:
            limiters.observe(tickets, response)
        limiters.done(tickets, answered=response is not None)
    finally:
        current_flow.reset(token)


async def _run(limiters: RateLimiterSet, budget: DayBudget, flow: str, calls: int) -> int:
    """A run of ``flow`` making up to ``calls`` calls; the calls made before BudgetSpent (if any)."""
    budget.run_started(flow)
    made = 0
    try:
        for _ in range(calls):
            await _call(limiters, flow)
            made += 1
    except BudgetSpent:
        budget.run_finished(flow, complete=False)
        return made
    budget.run_finished(flow)
    return made


def test_only_a_limit_of_a_day_or_more_is_a_day_budget():
    assert is_day_limit(RateLimit(5000, 86400))
    assert is_day_limit(RateLimit(5000, 86400, key=lambda request: None if request.url.path == "/token" else ""))
    assert not is_day_limit(RateLimit(60, 60))
    with pytest.raises(ValueError, match="declares no day limit"):
        DayBudget("x", RateLimiterSet("x", [RateLimit(60, 60)]))


async def test_a_lower_priority_flow_stops_where_the_higher_ones_still_need_the_rest_of_the_day():
    clock = Clock(START + 12 * 3600)  # noon: 12 hours to the reset of a sliding day counted from now
    hourly = Schedule(interval=3600.0)
    limiters, budget = _set(clock, [RateLimit(200, 86400.0, name="daily")], reserve=5, orders=(10, hourly), items=(0, hourly))
    assert await _run(limiters, budget, "orders", 3) == 3  # one run of orders: 3 calls
    # orders still need 3 a run for 24 runs (the window ends a day after its first call), the reserve 5
    assert budget.needs("orders") == 3 * 24
    made = await _run(limiters, budget, "items", 1000)
    assert made == 200 - 3 - 5 - 72
    assert budget.left() == 5 + 72
    with pytest.raises(BudgetSpent) as spent:
        await _call(limiters, "items")
    assert spent.value.flow == "items" and spent.value.reserved == 72 and spent.value.left == 77
    assert "share of the day budget" in str(spent.value) and "daily_reserve 5" in str(spent.value)
    assert budget.wait("items") > 0 and budget.wait("orders") == 0
    # orders go on, down to the reserve, and no further
    assert await _run(limiters, budget, "orders", 1000) == 72
    with pytest.raises(BudgetSpent):
        await _call(limiters, "orders")


async def test_flows_of_the_same_priority_keep_nothing_for_each_other():
    clock = Clock()
    hourly = Schedule(interval=3600.0)
    limiters, budget = _set(clock, [RateLimit(50, 86400.0, name="daily")], a=(0, hourly), b=(0, hourly))
    assert await _run(limiters, budget, "a", 10) == 10
    assert await _run(limiters, budget, "b", 100) == 40


async def test_a_spent_share_resumes_after_the_vendors_reset_not_a_sliding_day_later():
    clock = Clock(START + 22 * 3600)  # 22:00; the vendor resets at midnight
    reset = START + 86400

    def answer(left: int) -> httpx.Response:
        return httpx.Response(200, headers={"X-Day-Remaining": str(left), "X-Day-Reset": str(int(reset)), "X-Day-Limit": "20"})

    limiters, budget = _set(clock, [RateLimit(5000, 86400.0, name="daily", headers=DAILY)], reserve=2, items=(0, None))
    made = 0
    while budget.wait("items") == 0:
        await _call(limiters, "items", answer(20 - made - 1))
        made += 1
    with pytest.raises(BudgetSpent) as spent:
        await _call(limiters, "items")
    assert made == 18  # 20 less the reserve of 2: the answer to the 18th said 2 left
    assert budget.limit == 20  # the vendor's lower limit adopted
    assert spent.value.resume_at == pytest.approx(reset)
    assert budget.wait("items") == pytest.approx(2 * 3600)
    clock.now = reset + 1  # the next day: the vendor's new window; yesterday's calls do not count
    assert budget.wait("items") == 0
    await _call(limiters, "items", answer(19))
    assert budget.left() == 19


async def test_the_expected_completion_follows_the_calls_a_record_costs_and_the_share_left():
    clock = Clock(START)  # midnight
    hourly = Schedule(interval=3600.0)
    limiters, budget = _set(clock, [RateLimit(1000, 86400.0, name="daily")], reserve=0, orders=(1, hourly), items=(0, hourly))
    await _run(limiters, budget, "orders", 10)  # orders: 10 calls a run, 24 runs a day = 240
    budget.run_started("items")
    for _ in range(100):
        await _call(limiters, "items")
    # 100 calls for 50 records: 2 a record; the share a day is 1000 - 240 = 760: 380 records a day
    when = budget.completion("items", 760, running=50)
    assert when is not None
    assert when == pytest.approx(budget.reset_at() + 2 * 86400)
    assert budget.completion("items", 0) == clock.now


async def test_a_deferred_flow_waits_for_the_reset_not_for_calls_freed_during_the_day():
    clock = Clock(START + 12 * 3600)
    hourly = Schedule(interval=3600.0)
    limiters, budget = _set(clock, [RateLimit(200, 86400.0, name="daily")], orders=(10, hourly), items=(0, hourly))
    await _run(limiters, budget, "orders", 4)
    await _run(limiters, budget, "items", 1000)
    reset = budget.reset_at()
    clock.now += 6 * 3600  # six orders runs fewer still to come: 24 calls less kept for them
    assert budget.left() - 1 >= budget.reserved_for("items")  # they would fit now...
    assert budget.wait("items") == pytest.approx(reset - clock.now)  # ...but the flow waits for the reset
    with pytest.raises(BudgetSpent):
        await _call(limiters, "items")
    assert budget.wait("orders") == 0

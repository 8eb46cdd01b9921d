"""Several daemons keep one vendor limit together: each call takes the next slot of a schedule shared
through PostgreSQL (slots period/requests apart, on the database server's clock)."""

from __future__ import annotations

import functools
import itertools

import anyio
import httpx
import pg_support
import pytest

from apicenterd.http import RateLimiterSet
from apicenterd.plugin import RateLimit
from apicenterd.state.postgres import PostgresStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
async def two_daemons():
    url, schema = pg_support.server_url(), pg_support.new_schema()
    stores = [PostgresStore(url, schema=schema), PostgresStore(url, schema=schema)]
    for store in stores:
        await store.open()
    try:
        yield stores
    finally:
        for store in stores:
            await store.close()
        pg_support.drop_schema(url, schema)


async def test_slots_taken_by_two_daemons_at_once_are_one_schedule(two_daemons):
    a, b = two_daemons
    waits: list[float] = []

    async def take(store):
        waits.append(await store.take_rate_slot("eaccounting", "api:", 10.0))

    async with anyio.create_task_group() as tg:  # 12 calls at once, half from each daemon
        for n in range(12):
            tg.start_soon(take, (a, b)[n % 2])
    waits.sort()
    # one schedule: the first call goes now, each next one a slot (10 s) later, whoever took it
    assert waits[0] < 5.0, waits
    for before, after in itertools.pairwise(waits):
        assert 5.0 < after - before < 15.0, waits
    # another connection or bucket has a schedule of its own
    assert await a.take_rate_slot("eaccounting", "other:", 10.0) < 5.0
    assert await b.take_rate_slot("hubspot", "api:", 10.0) < 5.0


async def test_limiters_of_two_daemons_wait_for_the_shared_schedule(two_daemons):
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # no real waiting: what each daemon was told to wait
        slept.append(seconds)

    limit = RateLimit(2, 60.0, name="api")  # 2 calls a minute for the app, whichever daemon calls
    sets = []
    for store in two_daemons:
        limiters = RateLimiterSet("eaccounting", [limit], sleep=sleep)
        limiters.shared = functools.partial(store.take_rate_slot, "eaccounting")
        sets.append(limiters)
    request = httpx.Request("GET", "https://api.example/v2/articles")
    for limiters in sets:  # each daemon's own limiter allows its one call: only the shared one holds the second back
        await limiters.acquire(request)
    shared_waits = [s for s in slept if s > 0]
    assert len(shared_waits) == 1 and 20.0 < shared_waits[0] <= 30.0, slept

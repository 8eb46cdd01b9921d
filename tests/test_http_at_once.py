"""A connection has at most REQUESTS_AT_ONCE requests at its vendor; the others wait their turn in
the transport (cheaply), not in httpcore's pool, and each goes once one before it is answered."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import httpx
import pytest

from apicenterd.http import REQUESTS_AT_ONCE, InstrumentedTransport, RateLimiterSet

pytestmark = pytest.mark.anyio


class Held(httpx.AsyncBaseTransport):
    """Answers nothing until released; counts the requests it holds."""

    def __init__(self) -> None:
        self.holding = 0
        self.most = 0
        self.release = anyio.Event()
        self.full = anyio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.holding += 1
        self.most = max(self.most, self.holding)
        if self.holding == REQUESTS_AT_ONCE:
            self.full.set()
        try:
            await self.release.wait()
            return httpx.Response(200, content=b"{}")
        finally:
            self.holding -= 1


async def test_a_connection_has_at_most_requests_at_once_at_the_vendor_and_the_rest_follow():
    held = Held()
    transport = InstrumentedTransport("conn-at-once", RateLimiterSet("conn-at-once", ()), held)
    answered: list[int] = []

    async def call(n: int) -> None:
        response = await transport.handle_async_request(httpx.Request("GET", f"https://vendor.test/x/{n}"))
        assert response.status_code == 200
        answered.append(n)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for n in range(REQUESTS_AT_ONCE + 15):
                tg.start_soon(call, n)
            await held.full.wait()
            for _ in range(20):
                await anyio.lowlevel.checkpoint()  # the others had every chance to reach the vendor
            assert held.holding == REQUESTS_AT_ONCE
            held.release.set()
    assert held.most == REQUESTS_AT_ONCE
    assert sorted(answered) == list(range(REQUESTS_AT_ONCE + 15))

"""Benchmark: how much of a vendor's rate limit the daemon uses, and how many 429s it causes.

A loopback vendor enforces ``--limit`` calls per fixed window of ``--period`` seconds
(windows aligned to Unix time, as vendors do), answering 429 with ``Retry-After`` beyond
it. Several tasks (like several flows sharing one connection) call it as fast as they are
let through the real ``apicenterd.context.Context``, whose declared ``RateLimit`` matches
the vendor's.

Scenarios:

``plain``        the vendor sends no rate-limit headers
``headers``      it sends Exact Online-style ``X-RateLimit-Minutely-Limit/-Remaining/-Reset``
                 (reset in ms since the epoch), declared as Exact Online's ``X-RateLimit-Minutely-*`` headers
``plain+other``  another app spends ``--other`` of the same budget; no headers
``headers+other`` the same, with headers: the daemon sees the other app in ``Remaining``

    .venv/bin/python bench/rate_limit.py                       # every scenario, 40 s each
    .venv/bin/python bench/rate_limit.py --scenario headers --seconds 60

Figures per scenario: allowed rate, achieved rate, utilisation over the complete vendor
windows (goal ≥ 95 % of what is left to the daemon), 429s in that
steady state (goal 0) and at start, and the time the tasks spent waiting for the limiter.
"""

from __future__ import annotations

import argparse
import math
import threading
import time
import uuid

import anyio
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from apicenterd import RateLimit, RateLimitHeaders
from apicenterd.context import Context
from apicenterd.testing import serve_app

EXACT_MINUTELY = RateLimitHeaders(
    remaining="X-RateLimit-Minutely-Remaining",
    reset="X-RateLimit-Minutely-Reset",
    reset_unit="epoch_ms",
    limit="X-RateLimit-Minutely-Limit",
)
"""Exact Online's minutely limit headers (the connector declares them; the core has no vendor presets)."""


class Vendor:
    """A fixed-window vendor: ``limit`` calls per window of ``period`` seconds of Unix time."""

    def __init__(self, limit: int, period: float, *, headers: bool, other_share: float = 0.0):
        self.limit, self.period, self.headers = limit, period, headers
        self.other = int(limit * other_share)  # calls another app makes early in every window
        self.accepted: dict[int, int] = {}  # window → calls of ours accepted
        self.rejected: list[float] = []  # times of our 429s
        self._lock = threading.Lock()

    def _other_calls(self, window: int, now: float) -> int:
        """The other app's calls so far in ``window``: spread over its first tenth."""
        elapsed = now - window * self.period
        return min(self.other, int(self.other * elapsed / (self.period / 10)))

    async def items(self, request: Request) -> JSONResponse:
        now = time.time()
        window = int(now // self.period)
        reset = (window + 1) * self.period
        with self._lock:
            used = self.accepted.get(window, 0) + self._other_calls(window, now)
            allowed = used < self.limit
            if allowed:
                used += 1
                self.accepted[window] = self.accepted.get(window, 0) + 1
            else:
                self.rejected.append(now)
        headers = {}
        if self.headers:
            headers = {
                "X-RateLimit-Minutely-Limit": str(self.limit),
                "X-RateLimit-Minutely-Remaining": str(max(0, self.limit - used)),
                "X-RateLimit-Minutely-Reset": str(int(reset * 1000)),
            }
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
            return JSONResponse({"error": "rate limit exceeded"}, status_code=429, headers=headers)
        return JSONResponse({"items": []}, headers=headers)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/items", self.items)])


def metric(name: str, connection: str) -> float:
    return REGISTRY.get_sample_value(name, {"connection": connection}) or 0.0


async def drive(url: str, connection: str, limit: RateLimit, tasks: int, seconds: float) -> tuple[float, float, int]:
    context = Context(connection, rate_limits=(limit,))
    calls = 0
    async with context.http_client(base_url=url, timeout=10.0) as client:
        started = time.time()
        deadline = time.monotonic() + seconds

        async def flow() -> None:
            nonlocal calls
            while time.monotonic() < deadline:
                # a 429's Retry-After already holds the bucket (InstrumentedTransport): just go on
                await client.get("/api/items")
                calls += 1

        async with anyio.create_task_group() as tg:
            for _ in range(tasks):
                tg.start_soon(flow)
    return started, time.time(), calls


def run(scenario: str, args: argparse.Namespace) -> None:
    headers = scenario.startswith("headers")
    other = args.other if scenario.endswith("+other") else 0.0
    vendor = Vendor(args.limit, args.period, headers=headers, other_share=other)
    connection = f"bench-{scenario}-{uuid.uuid4().hex[:6]}"
    limit = RateLimit(
        args.limit, args.period, name="minutely", headers=EXACT_MINUTELY if headers else None
    )
    with serve_app(vendor.app()) as url:
        started, ended, calls = anyio.run(drive, url, connection, limit, args.tasks, args.seconds)
    first = int(started // args.period) + 1  # the first complete window
    last = int(ended // args.period) - 1  # the last complete window
    steady_windows = list(range(first, last + 1))  # the partial window at the start is start-up
    ours = args.limit - int(args.limit * other)
    allowed = ours / args.period
    accepted = sum(vendor.accepted.get(w, 0) for w in steady_windows)
    span = len(steady_windows) * args.period
    achieved = accepted / span if span else float("nan")
    steady_429 = sum(1 for t in vendor.rejected if first <= int(t // args.period) <= last)
    start_429 = sum(1 for t in vendor.rejected if int(t // args.period) < first)
    over = [w for w in steady_windows if vendor.accepted.get(w, 0) > ours]
    waited = metric("apicenterd_rate_limit_wait_seconds_total", connection)
    print(f"\n== {scenario}: vendor {args.limit} calls / {args.period:g} s fixed window"
          + (f", another app takes {int(args.limit * other)} of them" if other else "")
          + f"; {args.tasks} tasks, {args.seconds:g} s")
    print(f"  allowed rate        {allowed:8.2f} calls/s (for the daemon)")
    print(f"  achieved rate       {achieved:8.2f} calls/s over {len(steady_windows)} steady windows ({span:g} s)")
    print(f"  utilisation         {100 * achieved / allowed:8.1f} %   (goal >= 95 %)")
    print(f"  429s steady state   {steady_429:8d}     (goal 0); at start-up: {start_429}")
    print(f"  windows over limit  {len(over):8d}")
    print(f"  calls made          {calls:8d}   per window: {[vendor.accepted.get(w, 0) for w in steady_windows]}")
    print(f"  time waiting        {waited:8.1f} task-seconds ({waited / args.tasks:.1f} s per task of {ended - started:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=["plain", "headers", "plain+other", "headers+other", "all"], default="all")
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--period", type=float, default=10.0)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--other", type=float, default=0.2, help="share of the budget another app spends (+other)")
    args = parser.parse_args()
    scenarios = ["plain", "headers", "plain+other", "headers+other"] if args.scenario == "all" else [args.scenario]
    for scenario in scenarios:
        run(scenario, args)


if __name__ == "__main__":
    main()

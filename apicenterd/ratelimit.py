"""Client-side rate limiting: never send more calls than a vendor allows in any window."""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["SlidingWindowLimiter"]


class SlidingWindowLimiter:
    """At most ``requests`` acquisitions in any ``period`` seconds.

    A sliding log: stricter than a vendor's fixed window, so it is never exceeded
    however the vendor aligns its windows. ``pause_until`` lets a 429 with
    ``Retry-After`` hold every caller of this bucket, not just the one that got it.
    """

    def __init__(
        self,
        requests: int,
        period: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ):
        if requests < 1 or period <= 0:
            raise ValueError(f"rate limit must allow at least 1 request in a positive period, got {requests}/{period}s")
        self.requests = requests
        self.period = period
        self._clock = clock
        self._sleep = sleep  # with ``clock``, a seam for tests
        self._sent: collections.deque[float] = collections.deque()
        self._lock = anyio.Lock()
        self._paused_until = 0.0

    def pause_until(self, deadline: float) -> None:
        """Let no call through before the time ``deadline`` on this limiter's clock."""
        self._paused_until = max(self._paused_until, deadline)

    def pause(self, seconds: float) -> None:
        """Let no call through for the next ``seconds``."""
        self.pause_until(self._clock() + seconds)

    def delay(self) -> float:
        """Seconds until the next call may go, 0 if now."""
        now = self._clock()
        while self._sent and self._sent[0] <= now - self.period:
            self._sent.popleft()
        wait = max(0.0, self._paused_until - now)
        if len(self._sent) >= self.requests:
            wait = max(wait, self._sent[0] + self.period - now)
        return wait

    async def acquire(self) -> float:
        """Wait until a call is allowed, count it, and return the seconds waited."""
        waited = 0.0
        async with self._lock:  # FIFO: callers go in the order they asked
            while True:
                wait = self.delay()
                if wait <= 0:
                    break
                # a hair extra so the oldest call has surely left the window
                wait = math.nextafter(wait, math.inf) + 0.001
                await self._sleep(wait)
                waited += wait
            self._sent.append(self._clock())
        return waited

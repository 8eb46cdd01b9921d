"""Virtual time for benchmarks that span days: an asyncio loop whose clock jumps to the next timer
whenever nothing is left to do, and ``time.time``/``time.monotonic`` that read that clock.

Call :func:`install` **before importing apicenterd or a connector** (their default clock
arguments are bound at import), then run the program with :func:`run`. Work done in threads
(``anyio.to_thread.run_sync``: the SQLite state store) is waited for in real time: the clock never
jumps while a thread is busy, so a day of virtual time holds exactly the calls made in it.
"""

from __future__ import annotations

import asyncio
import selectors
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

_REAL_MONOTONIC = time.monotonic


class VirtualClock:
    """Seconds since ``epoch`` (Unix time at virtual monotonic 0)."""

    def __init__(self, epoch: float):
        self.epoch = epoch
        self.now = 0.0
        self.busy = 0  # threads at work
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.epoch + self.now


CLOCK: VirtualClock | None = None


def install(epoch: float) -> VirtualClock:
    """Make ``time.time``/``time.monotonic`` virtual (from Unix time ``epoch``), and count the threads
    anyio runs. Once per process."""
    global CLOCK
    CLOCK = VirtualClock(epoch)
    time.time = CLOCK.time  # type: ignore[assignment]
    time.monotonic = CLOCK.monotonic  # type: ignore[assignment]
    import anyio.to_thread

    real_run_sync = anyio.to_thread.run_sync

    async def run_sync(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        assert CLOCK is not None
        with CLOCK._lock:
            CLOCK.busy += 1
        try:
            return await real_run_sync(func, *args, **kwargs)
        finally:
            with CLOCK._lock:
                CLOCK.busy -= 1

    anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]
    return CLOCK


class _VirtualSelector(selectors.DefaultSelector):
    """Waits for real only while a thread works (or when nothing at all is scheduled); otherwise
    a timeout is a jump of the virtual clock."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        assert CLOCK is not None
        while True:
            events = super().select(0)
            if events:
                return events
            if CLOCK.busy:
                events = super().select(0.001 if timeout is None else min(timeout, 0.001) if timeout > 0 else 0)
                if events or (timeout is not None and timeout <= 0):
                    return events
                continue  # the thread's answer comes through the loop's self-pipe
            if timeout is None:
                return super().select(None)
            if timeout > 0:
                CLOCK.now += timeout
            return []


class _VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__(_VirtualSelector())

    def time(self) -> float:
        assert CLOCK is not None
        return CLOCK.now


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` on the virtual clock (see :func:`install`)."""
    loop = _VirtualLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def real_seconds() -> float:
    """Real monotonic time (for the benchmark's own figures)."""
    return _REAL_MONOTONIC()

"""Retries: a vendor call retried with exponential backoff and jitter (a 429 pauses its whole
connection), and the growing pause before a failed record is tried again."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from .errors import AuthError, BudgetSpent, CircuitOpen, RateLimited, RetryableError
from .flowrun import GaveUp
from .plugin import Connector

__all__ = ["Retries", "dead_letter_backoff"]


def dead_letter_backoff(attempts: int) -> float:
    """Seconds before an unchanged failed record is tried again when re-read: 1 min, 4, 16, ... 6 h."""
    return min(60.0 * 4 ** max(attempts - 1, 0), 6 * 3600.0)


class Retries:
    """The engine's retry policy (a mixin of :class:`~apicenterd.engine.Engine`)."""

    stopping: anyio.Event
    _retry_attempts: int
    _retry_base_delay: float
    _sleep: Callable[[float], Awaitable[Any]]

    def beat(self, flow: str | None = None, *, until: float = 0.0) -> None:  # pragma: no cover - the engine's
        raise NotImplementedError

    async def _with_retries(self, log: Any, what: str, conn: Connector, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn`` of ``conn``; retry RetryableError with exponential backoff and jitter. A 429's
        wait holds every flow on that connection, not only this record. A call that fails for good
        (retries spent, open circuit, refused credentials) raises :class:`GaveUp`."""
        attempt = 0
        while True:
            try:
                return await fn(*args)
            except AuthError as exc:
                self.beat()
                raise GaveUp(exc, conn.context.name) from exc
            except BudgetSpent:  # a day budget's share: the run stops (deferred), no retry would fit it
                raise
            except RetryableError as exc:
                self.beat()  # an answer, even a failed one, is progress
                attempt += 1
                if isinstance(exc, CircuitOpen) or attempt >= self._retry_attempts or self.stopping.is_set():
                    # an open circuit fails every call at once: retrying would only spin
                    raise GaveUp(exc, conn.context.name) from exc
                delay = self._backoff(attempt, exc, conn.context.retry_after_cap)
                if isinstance(exc, RateLimited) and exc.retry_after:
                    await conn.context.pause(exc.retry_after, reason=f"429: {str(exc)[:80]}")
                log.warning("retrying", what=what, attempt=attempt, delay=round(delay, 2), error=str(exc))
                self.beat(until=time.monotonic() + delay)
                await self._sleep(delay)

    def _backoff(self, attempt: int, exc: RetryableError, cap: float | None = None) -> float:
        """Exponential backoff with jitter; at least what the vendor's Retry-After asked for (at
        most ``cap``, the connection's retry_after_cap)."""
        delay = self._retry_base_delay * (2 ** (attempt - 1)) * (0.5 + random.random())
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after if cap is None else min(exc.retry_after, cap))
        return delay

"""Client-side rate limiting: never send more calls than a vendor allows in any window."""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["SlidingWindowLimiter"]

PROBE_POLL = 0.002
"""Seconds between looks at the calls in flight while probing one call at a time."""


class SlidingWindowLimiter:
    """At most ``requests`` acquisitions in any ``period`` seconds.

    A sliding log: stricter than a vendor's fixed window, so it is never exceeded
    however the vendor aligns its windows. ``pause_until`` lets a 429 with
    ``Retry-After`` hold every caller of this bucket, not just the one that got it.

    What the vendor reports narrows it further, never widens it: :meth:`adopt_limit`
    (a lower limit than declared), :meth:`vendor_budget` (only so many calls before a
    reset time) and :meth:`vendor_remaining` (only so many calls now, reset unknown).

    A vendor that says nothing but 429 teaches it too (:meth:`rejected`): when a call is
    refused, the calls this log counted in the period before it are what the vendor let
    through (someone else — another app on the account — spent the rest), so from then on
    no more than that go in any period. Every ``RELEARN_PERIODS`` periods without a 429
    the learned limit is lifted by a step (``declared / 50``, at least 1) towards the
    declared one, so calls come back when the other app stops; the step that overshoots
    costs one 429 round and is learned back.
    """

    RELEARN_PERIODS = 10
    """Periods without a 429 before a limit learned from 429s is lifted one step."""

    def __init__(
        self,
        requests: int,
        period: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        margin: float = 0.0,
        max_margin: float | None = None,
        vendor_window: bool = False,
    ):
        if requests < 1 or period <= 0:
            raise ValueError(f"rate limit must allow at least 1 request in a positive period, got {requests}/{period}s")
        self.declared = requests
        self.requests = requests
        self.period = period
        # A slot is reused ``margin`` after it left the window, more (up to ``max_margin``) while
        # answers are slow: a vendor counts a call when it gets it, which is up to one round
        # trip after it was sent here, so two calls a period apart here can land closer there.
        self.min_margin = margin
        self.max_margin = margin if max_margin is None else max(margin, max_margin)
        self._latency_peak = 0.0
        self.recheck = min(1.0, max(0.01, period / 100))  # seconds between looks at a vendor budget
        self.acquired = 0  # acquisitions so far; tells a response how many calls went after it
        self._clock = clock
        self._sleep = sleep  # with ``clock``, a seam for tests
        self._sent: collections.deque[float] = collections.deque()
        self._lock = anyio.Lock()
        self._paused_until = 0.0
        self._budgets: list[list[float]] = []  # [calls left, until, seq]: the vendor's word on a window
        self._in_flight: set[int] = set()  # seqs of calls counted here whose answer is not in yet
        self.learned: int | None = None  # the limit learned from 429s (None: none learned)
        self._probe_from: int | None = None  # past this many calls in the next window, one at a time
        self._adopted = requests  # the limit the vendor's headers reported (or the declared one)
        self._learned_at = 0.0
        self.vendor_window = vendor_window
        """The vendor's own window (its reset time) counts instead of this log's sliding one while it
        reports one: for a day budget that resets at the vendor's midnight, a sliding day would keep
        yesterday's calls counted well into today."""
        self._window_end = 0.0  # vendor_window: the end of the latest window the vendor reported

    def pause_until(self, deadline: float) -> None:
        """Let no call through before the time ``deadline`` on this limiter's clock."""
        self._paused_until = max(self._paused_until, deadline)

    def pause(self, seconds: float) -> None:
        """Let no call through for the next ``seconds``."""
        self.pause_until(self._clock() + seconds)

    @property
    def margin(self) -> float:
        """Seconds a slot stays taken after its call left the window."""
        return min(max(self.min_margin, self._latency_peak), self.max_margin)

    def note_latency(self, seconds: float) -> None:
        """A call took ``seconds`` from being counted here to its answer; the slowest of about the
        last window's calls sets the margin."""
        decay = 1.0 - 1.0 / self.declared
        self._latency_peak = max(seconds, self._latency_peak * decay)

    def now(self) -> float:
        """The time on this limiter's clock."""
        return self._clock()

    def adopt_limit(self, requests: int) -> None:
        """Use the vendor's reported limit when it is lower than the declared one (never higher)."""
        self._adopted = max(1, min(self.declared, int(requests)))
        self.requests = min(self._adopted, self.learned or self._adopted)

    def rejected(self, stamp: float, seq: int | None = None, retry_after: float | None = None) -> None:
        """The call counted at ``stamp`` was refused (429) and the vendor said nothing about its
        budget: the calls counted before it — in the period before it, and since the latest pause
        ended (a 429's Retry-After ends at the vendor's window start) — are all the vendor let
        through, so allow no more than that in any period. A call sent before the pause that an
        earlier 429 of the same round set is not counted again, nor one a period (and a second) before
        the end of the window its ``retry_after`` names, and neither are the calls sent before
        call number ``seq`` that are not answered yet. A refusal after fewer than a tenth of the
        declared limit teaches nothing (some other limit, not this window being full)."""
        if self._paused_until > stamp:
            return  # in flight when an earlier refusal paused the bucket: that one taught it already
        since = max(stamp - self.period, self._paused_until)
        known_start = since == self._paused_until  # the window began when the latest pause ended
        surely = since
        if retry_after is not None and 0 < retry_after <= self.period:
            # the vendor's window ends when its Retry-After does (told in whole seconds, rounded up):
            # a call more than a period (and that second) before that end is in its previous window,
            # one less than a period before it surely in this one
            since = max(since, self._clock() + retry_after - 1.0 - self.period)
            surely = max(since, self._clock() + retry_after - self.period)
        unanswered = self._earlier_in_flight(seq) if seq is not None else 0  # the vendor may refuse those too
        before = sum(1 for sent in self._live() if since <= sent < stamp) - unanswered
        if before < max(1, self.declared // 10):
            return
        self.learned = min(before, self.learned or before)
        self.requests = min(self._adopted, self.learned)
        self._learned_at = self._clock()
        self._probe_from = None
        lower = sum(1 for sent in self._live() if surely <= sent < stamp) - unanswered
        if not known_start and lower < self.learned:
            # the calls of that uncertain second may be the previous window's: next window, past
            # ``lower`` calls, one call at a time, so a count too high costs one refusal, not a round
            self._probe_from = max(1, lower)

    def _relearn(self, now: float) -> None:
        """Lift a limit learned from 429s one step after ``RELEARN_PERIODS`` periods without one."""
        if self.learned is not None and now - self._learned_at >= self.RELEARN_PERIODS * self.period:
            self.learned += max(1, self.declared // 50)
            self._learned_at = now
            if self.learned >= self.declared:
                self.learned = None
            self.requests = min(self._adopted, self.learned or self._adopted)

    def vendor_budget(self, remaining: int, until: float, sent_since: int = 0, *, seq: int | None = None) -> None:
        """The vendor says ``remaining`` calls are left until ``until`` (this clock), in its answer to
        call number ``seq`` (default: the latest); ``sent_since`` calls went out after that one and
        are taken off. For one window the answer to the latest call wins, so answers that come
        back out of order neither loosen nor (by always keeping the lowest) needlessly tighten it."""
        now = self._clock()
        if until <= now:
            return
        seq = self.acquired if seq is None else seq
        if self.vendor_window:
            self._window_end = max(self._window_end, until)
        # calls sent before this one and not answered yet may not be in the vendor's count
        left = remaining - sent_since - self._earlier_in_flight(seq)
        tolerance = min(1.0, 0.05 * self.period)  # one window, told in rounded or jittery times
        self._budgets = [b for b in self._budgets if b[1] > now]
        for budget in self._budgets:
            if abs(budget[1] - until) <= tolerance:
                if seq > budget[2]:
                    budget[0], budget[1], budget[2] = left, max(budget[1], until), seq
                break
        else:
            self._budgets.append([left, until, seq])
        # a window ending sooner with at least as many calls left adds nothing
        self._budgets = [
            b for b in self._budgets if not any(o is not b and o[1] >= b[1] and o[0] <= b[0] for o in self._budgets)
        ]

    def vendor_remaining(self, remaining: int, sent_since: int = 0, *, seq: int | None = None) -> None:
        """The vendor says ``remaining`` calls are left and not when its window resets: if that is
        fewer than this log has free, count the difference as calls made just now (by someone else)."""
        free = self.requests - len(self._live())
        seq = self.acquired if seq is None else seq
        extra = free - (remaining - sent_since - self._earlier_in_flight(seq))
        if extra > 0:
            now = self._clock()
            self._sent.extend([now] * extra)

    def answered(self, seq: int) -> None:
        """Call number ``seq`` got its answer (or failed): it is no longer in flight."""
        self._in_flight.discard(seq)

    def _earlier_in_flight(self, seq: int) -> int:
        return sum(1 for other in self._in_flight if other < seq)

    def remaining(self) -> int:
        """Calls that may go now without waiting, as far as this limiter knows."""
        if self._clock() < self._paused_until:
            return 0
        free = self.requests - len(self._live())
        now = self._clock()
        if self._vendor_counts(now):
            free = self.requests
        for left, until, _ in self._budgets:
            if until > now:
                free = min(free, int(left))
        return max(0, free)

    def _live(self) -> collections.deque[float]:
        now = self._clock()
        # a vendor window that has ended took its calls with it (vendor_window)
        floor = self._window_end if self.vendor_window and now >= self._window_end > 0 else -math.inf
        while self._sent and (self._sent[0] <= now - self.period or self._sent[0] < floor):
            self._sent.popleft()
        return self._sent

    def _vendor_counts(self, now: float) -> bool:
        """Whether the vendor's reported window, not this log, counts now (see ``vendor_window``)."""
        return self.vendor_window and any(until > now for _, until, _ in self._budgets)

    def budget_left(self) -> int:
        """Calls left in the window as far as this limiter knows, whatever pause holds it now (the
        vendor's count while it reports one, else this log's)."""
        now = self._clock()
        free = self.requests - len(self._live())
        budgets = [int(left) for left, until, _ in self._budgets if until > now]
        if budgets and self.vendor_window:
            return max(0, min(budgets))
        return max(0, min([free, *budgets]))

    def window_end(self) -> float | None:
        """When the current window ends on this limiter's clock: the vendor's reported reset, else
        when the oldest call of this log leaves it; None when no call is counted."""
        now = self._clock()
        ends = [until for _, until, _ in self._budgets if until > now]
        if ends:
            return max(ends)
        sent = self._live()
        return sent[0] + self.period if sent else None

    def delay(self) -> float:
        """Seconds until the next call may go, 0 if now."""
        return max(self._waits())

    def _probing(self, now: float) -> bool:
        """Whether the next call must wait for the ones in flight: the window after a first, uncertain
        count from a 429, past its sure part (see :meth:`rejected`)."""
        if self._probe_from is None or now < self._paused_until:
            return False
        if now >= self._paused_until + self.period:
            self._probe_from = None  # a whole window went by without a refusal: the count held
            return False
        done = sum(1 for sent in self._sent if sent >= self._paused_until)
        if done >= self.requests:
            self._probe_from = None
            return False
        return done >= self._probe_from and bool(self._in_flight)

    def _waits(self) -> tuple[float, float]:
        """Seconds to wait for the pause and this log's window, and for the vendor's budgets."""
        sent = self._live()
        now = self._clock()
        own = max(0.0, self._paused_until - now)
        if self._probing(now):
            own = max(own, PROBE_POLL)
        if len(sent) >= self.requests and not self._vendor_counts(now):
            # the call that must leave the window before one more fits
            own = max(own, sent[len(sent) - self.requests] + self.period + self.margin - now)
        vendor = 0.0
        for left, until, _ in self._budgets:
            if left <= 0 and until > now:
                vendor = max(vendor, until - now)
        return own, vendor

    async def acquire(self) -> float:
        """Wait until a call is allowed, count it, and return the seconds waited."""
        waited, _, seq = await self.acquire_slot()
        self.answered(seq)  # nobody will report this call's answer
        return waited

    async def acquire_slot(self) -> tuple[float, float, int]:
        """Like :meth:`acquire`, for a call whose answer will be reported (:meth:`answered`):
        the seconds waited, the time it was counted at (for :meth:`restamp`) and its number."""
        waited = 0.0
        async with self._lock:  # FIFO: callers go in the order they asked
            if self.learned is not None:
                self._relearn(self._clock())
            while True:
                own, vendor = self._waits()
                wait = max(own, vendor)
                if wait <= 0:
                    break
                # a hair extra so the oldest call has surely left the window
                wait = math.nextafter(wait, math.inf) + 0.001
                if vendor > own and self._in_flight:
                    # the answers still out may show the vendor counted less than feared: look again soon
                    wait = min(wait, max(own, self.recheck))
                await self._sleep(wait)
                waited += wait
            now = self._clock()
            self._sent.append(now)
            self.acquired += 1
            self._in_flight.add(self.acquired)
            self._budgets = [b for b in self._budgets if b[1] > now]
            for budget in self._budgets:
                budget[0] -= 1
            seq = self.acquired
        return waited, now, seq

    def restamp(self, stamp: float) -> float:
        """Count the call counted at ``stamp`` as made now instead (it was held up elsewhere);
        the new stamp."""
        try:
            self._sent.remove(stamp)
        except ValueError:
            pass  # already out of the window: counting it again now is only stricter
        now = self._clock()
        self._sent.append(now)
        return now

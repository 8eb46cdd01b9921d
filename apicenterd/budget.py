"""The day budget: a connection whose vendor allows so many calls a day shares them between its flows
by priority.

A connector declares a day limit as any other rate limit, with a period of a day or longer (Exact
Online: ``RateLimit(5000, 86400, name="daily", headers=...)``). Every flow that uses such a
connection (as source or target) spends from it; the call is counted for the flow whose run makes
it. Before each call the flow's share is checked:

    calls left in the day − 1  ≥  the connection's ``daily_reserve``
                                  + what the flows of a higher ``priority`` still need today

What a flow still needs today is learned, not configured: the most calls one of its recent runs
spent on the connection, times its runs left before the day's reset (by its schedule). A flow of
the highest priority is held only by the reserve. A call that does not fit raises
:class:`~apicenterd.errors.BudgetSpent` before it is sent: the engine ends the run as
``deferred`` (what was settled stays; the cursor is where it stopped) and does not start the flow
again until its share allows, i.e. after the vendor's reset at the latest: a long first sync goes
on each day where it stopped.

"Calls left" are the vendor's when its headers report them (``X-RateLimit-Remaining`` and the
reset), else this daemon's own count of the last period. Everything here is read from injected
clocks, so it is tested without waiting.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import BudgetSpent

if TYPE_CHECKING:  # pragma: no cover
    from .http import RateLimiterSet
    from .schedule import Schedule

__all__ = ["DAY", "DayBudget", "is_day_limit"]

DAY = 86400.0
"""A declared limit whose period is at least this many seconds is a day budget."""

HISTORY = 8
"""Runs of a flow whose calls are remembered; the most of them is what one run is expected to need."""

MAX_RUNS_COUNTED = 10_000
"""Runs of a flow counted ahead at most (a cron that fires every minute for a day is 1,440)."""


def is_day_limit(limit: Any) -> bool:
    """Whether a declared :class:`~apicenterd.RateLimit` is a day budget (a period of a day or more).
    Its ``key`` may leave requests out (return None for them); a key that sorts calls into several
    buckets is read conservatively (the bucket with the fewest calls left counts)."""
    return bool(limit.period >= DAY)


@dataclasses.dataclass
class _Use:
    """One flow's spending on the connection."""

    priority: int
    schedule: Schedule | None
    calls: int = 0
    """Calls made by the flow since the daemon started."""
    run_start: int | None = None
    """``calls`` when its current run began (None: not running)."""
    history: collections.deque[int] = dataclasses.field(default_factory=lambda: collections.deque(maxlen=HISTORY))
    records: int = 0
    """Records its runs handled (for the calls a record costs)."""
    deferred_until: float = 0.0
    """Unix time until which its share is spent (set when a call did not fit): it waits for the
    reset, not for the few calls the higher flows' shrinking needs free up during the day."""
    run_calls: int = 0
    """Calls of the runs whose records are counted in ``records``."""


class DayBudget:
    """The day budget of connection ``connection``: the day limits among ``limiters`` (read, never
    changed here), the ``reserve`` kept back, and the flows that share the rest by priority.

    ``wall_clock`` is Unix time (for schedules and messages); the limiters keep their own clock.
    """

    def __init__(
        self, connection: str, limiters: RateLimiterSet, *, reserve: int = 0, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self.connection = connection
        self.limiters = limiters
        self.limits = tuple(limit for limit in limiters.limits if is_day_limit(limit))
        if not self.limits:
            raise ValueError(f"connection {connection!r} declares no day limit")
        self.reserve = max(0, int(reserve))
        self.wall_clock = wall_clock
        self.flows: dict[str, _Use] = {}

    def add_flow(self, name: str, priority: int = 0, schedule: Schedule | None = None) -> None:
        """Let flow ``name`` spend from this budget at ``priority`` (higher goes first)."""
        self.flows[name] = _Use(priority, schedule)

    # ------------------------------------------------------------------ what is left

    @property
    def limit(self) -> int:
        """The day's calls (the smallest declared, or a lower one the vendor reported)."""
        buckets = self.limiters.buckets_of(self.limits)
        return min([bucket.requests for bucket in buckets] or [min(limit.requests for limit in self.limits)])

    def left(self) -> int:
        """Calls left in the day (the vendor's word when it reported one)."""
        buckets = self.limiters.buckets_of(self.limits)
        return min([bucket.budget_left() for bucket in buckets] or [self.limit])

    def reset_at(self) -> float:
        """Unix time the day's budget resets: the vendor's reset, else when this daemon's oldest
        counted call leaves the window, else a period from now."""
        now = self.wall_clock()
        ends = []
        for bucket in self.limiters.buckets_of(self.limits):
            end = bucket.window_end()
            if end is not None:
                ends.append(now + max(0.0, end - bucket.now()))
        return min(ends) if ends else now + min(limit.period for limit in self.limits)

    # ------------------------------------------------------------------ shares

    def per_run(self, flow: str) -> int:
        """Calls one run of ``flow`` is expected to make: the most of its recent runs (and of the
        one under way)."""
        use = self.flows[flow]
        running = use.calls - use.run_start if use.run_start is not None else 0
        return max([running, *use.history])

    def runs_left(self, flow: str, until: float | None = None) -> int:
        """Runs of ``flow`` due from now until ``until`` (default: the reset), by its schedule."""
        use = self.flows[flow]
        now = self.wall_clock()
        until = self.reset_at() if until is None else until
        if use.schedule is None or until <= now:
            return 0
        if use.schedule.interval is not None:
            return min(MAX_RUNS_COUNTED, math.ceil((until - now) / use.schedule.interval))
        runs, at = 0, now
        while runs < MAX_RUNS_COUNTED:
            at = use.schedule.next_after(at)
            if at >= until:
                break
            runs += 1
        return runs

    def needs(self, flow: str) -> int:
        """Calls ``flow`` is expected to make before the reset: the rest of its run under way and
        its runs still due."""
        use = self.flows[flow]
        per_run = self.per_run(flow)
        rest = max(0, per_run - (use.calls - use.run_start)) if use.run_start is not None else 0
        return rest + per_run * self.runs_left(flow)

    def reserved_for(self, flow: str | None) -> int:
        """Calls kept for the flows of a higher priority than ``flow`` (every flow's, for a call
        no flow makes: none is kept from such a call — it is the reserve's)."""
        if flow is None or flow not in self.flows:
            return 0
        mine = self.flows[flow].priority
        return sum(self.needs(name) for name, use in self.flows.items() if use.priority > mine)

    def wait(self, flow: str) -> float:
        """Seconds until ``flow`` may spend a call (0: now); until the reset when its share is spent
        (once a call of it did not fit, until that reset whatever frees up meanwhile)."""
        now = self.wall_clock()
        use = self.flows.get(flow)
        if use is not None and use.deferred_until > now:
            return use.deferred_until - now
        if self.left() - 1 >= self.reserve + self.reserved_for(flow):
            return 0.0
        return max(0.0, self.reset_at() - now)

    def check(self, flow: str | None) -> None:
        """Before a call of ``flow``: BudgetSpent when it does not fit its share."""
        left = self.left()
        reserved = self.reserved_for(flow)
        use = self.flows.get(flow or "")
        deferred = use is not None and use.deferred_until > self.wall_clock()
        if left - 1 >= self.reserve + reserved and not deferred:
            return
        resume_at = use.deferred_until if use is not None and deferred else self.reset_at()
        if use is not None:
            use.deferred_until = resume_at
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(resume_at))
        who = f"flow {flow!r}" if flow else "a call outside any flow"
        kept = f", {reserved} kept for flows of a higher priority" if reserved else ""
        raise BudgetSpent(
            connection=self.connection,
            message=f"connection {self.connection!r}: {who} has spent its share of the day budget "
            f"({left} of {self.limit} calls left: daily_reserve {self.reserve}{kept}); it goes on from where it stopped at {when}",
            flow=flow or "",
            resume_at=resume_at,
            left=left,
            reserved=reserved,
            retry_after=max(0.0, resume_at - self.wall_clock()),
        )

    # ------------------------------------------------------------------ accounting

    def spent(self, flow: str | None) -> None:
        """A call of ``flow`` was let through."""
        if flow is not None and flow in self.flows:
            self.flows[flow].calls += 1

    def run_started(self, flow: str) -> None:
        """A run of ``flow`` begins: its calls are counted from here."""
        use = self.flows.get(flow)
        if use is not None:
            use.run_start = use.calls

    def run_finished(self, flow: str, records: int = 0, *, complete: bool = True) -> int:
        """A run of ``flow`` ended after handling ``records``; the calls it made. Only a run that
        went to its end (``complete``) teaches what a run needs (a cut-off run made fewer)."""
        use = self.flows.get(flow)
        if use is None or use.run_start is None:
            return 0
        calls = use.calls - use.run_start
        use.run_start = None
        if complete:
            use.history.append(calls)
        if records:
            use.records += records
            use.run_calls += calls
        return calls

    def per_record(self, flow: str, running: int = 0) -> float | None:
        """Calls one record of ``flow`` has cost on this connection (None before any); ``running``:
        the records of its run under way, whose calls count too."""
        use = self.flows[flow]
        calls = use.run_calls + (use.calls - use.run_start if use.run_start is not None and running else 0)
        records = use.records + running
        return calls / records if records else None

    def completion(self, flow: str, backlog: int, *, running: int = 0) -> float | None:
        """Unix time ``flow`` is expected to have handled ``backlog`` more records, spending what its
        share leaves each day (None when that cannot be told yet); ``running`` as for :meth:`per_record`."""
        per_record = self.per_record(flow, running)
        if per_record is None or backlog <= 0:
            return self.wall_clock() if backlog <= 0 else None
        mine = self.flows[flow].priority
        reset = self.reset_at()
        # a whole day after the reset: the higher flows' runs of a day, the reserve kept back
        day = min(limit.period for limit in self.limits)
        higher = sum(
            self.per_run(name) * self.runs_left(name, self.wall_clock() + day)
            for name, use in self.flows.items()
            if use.priority > mine and name != flow
        )
        daily = self.limit - self.reserve - higher
        if daily <= 0:
            return None
        days = backlog * per_record / daily
        return reset + days * day

    def status(self, flow: str) -> dict[str, Any]:
        """The budget as ``flow`` sees it (for runs, metrics and ``flows list``)."""
        return {
            "connection": self.connection,
            "left": self.left(),
            "limit": self.limit,
            "reserve": self.reserve,
            "reserved": self.reserved_for(flow),
            "reset_at": self.reset_at(),
            "priority": self.flows[flow].priority if flow in self.flows else 0,
        }

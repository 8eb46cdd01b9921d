"""The daemon's side of the engine: every enabled flow on its schedule, and the progress the
watchdog reads (beats)."""

from __future__ import annotations

import contextlib
import contextvars
import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import anyio

from .errors import pause_fix
from .observe.logs import error_text

if TYPE_CHECKING:  # pragma: no cover
    from .config import Flow, Resolved
    from .engine import RunResult

__all__ = ["Scheduling", "current_flow"]

current_flow: contextvars.ContextVar[str | None] = contextvars.ContextVar("apicenterd_current_flow", default=None)
"""The flow whose run the current task is doing (for heartbeats from shared helpers)."""


class Scheduling:
    """Schedules and progress (a mixin of :class:`~apicenterd.engine.Engine`)."""

    resolved: Resolved
    stopping: anyio.Event
    pause_fixes: dict[str, str]
    paused: dict[str, str]
    log: Any
    _beats: dict[str, float]
    _flow_locks: dict[str, anyio.Lock]
    _waiting: set[anyio.CancelScope]

    async def run_flow(self, name: str, *, trigger: str = "schedule") -> RunResult:  # pragma: no cover - the engine's
        raise NotImplementedError

    def budget_wait(self, name: str) -> float:  # pragma: no cover - the engine's
        raise NotImplementedError

    # ---------------------------------------------------------------- progress (the watchdog's view)

    def beat(self, flow: str | None = None, *, until: float = 0.0) -> None:
        """Note progress of ``flow`` (default: the flow the current task runs): now, or a
        promise to be back by monotonic time ``until`` (an idle wait, a retry's pause)."""
        flow = flow or current_flow.get()
        if flow is not None:
            self._beats[flow] = max(time.monotonic(), until)

    @contextlib.contextmanager
    def waiting_on_others(self, flow: str) -> Iterator[None]:
        """While ``flow`` waits for something else that is tracked (the first run of an earlier
        flow, a lock held by another run), it is not itself counted as stalled."""
        self._beats[flow] = math.inf
        try:
            yield
        finally:
            self._beats[flow] = time.monotonic()

    def stalled(self, limit: float, now: float | None = None) -> dict[str, float]:
        """Flows that made no progress for more than ``limit`` seconds: name → seconds.

        Progress is a step of the scheduler or of a run: a record read or settled, a vendor
        call answered (or failed), a retry's pause (counted until its end), the wait for
        the next scheduled run (counted until its time). A vendor call in flight or a wait
        in a rate limiter is bounded by its own timeout, far below ``limit``; a flow stuck
        longer than that is wedged."""
        now = time.monotonic() if now is None else now
        return {flow: round(now - at, 1) for flow, at in self._beats.items() if now - at > limit}

    # ---------------------------------------------------------------- the daemon

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Run every enabled flow on its schedule until :attr:`stopping` is set. Connections open
        when a flow first needs them, so one that cannot open stops only its own flows."""
        flows = [f for f in self.resolved.flows.values() if f.enabled]
        first_done = {f.name: anyio.Event() for f in flows}
        async with anyio.create_task_group() as tg:
            for i, flow in enumerate(flows):
                # At start-up a flow waits for the first run of the flows defined before it
                # that write to the same target (products before stock, customers before orders).
                before = [first_done[f.name] for f in flows[:i] if f.target == flow.target]
                tg.start_soon(self._schedule_loop, flow, before, first_done[flow.name])
            task_status.started()
            await self.stopping.wait()
            with anyio.move_on_after(self.resolved.config.daemon.shutdown_timeout) as scope:
                while any(lock.locked() for lock in self._flow_locks.values()):  # noqa: ASYNC110 - runs end on their own; polled until the shutdown timeout
                    await anyio.sleep(0.05)
            if scope.cancelled_caught:
                self.log.warning("shutdown timeout: abandoning records in flight (they are not settled)")
            tg.cancel_scope.cancel()

    async def _schedule_loop(self, flow: Flow, before: list[anyio.Event], done: anyio.Event) -> None:
        self.log.info("flow scheduled", flow=flow.name, schedule=flow.schedule.describe())
        try:
            with self.waiting_on_others(flow.name):
                for event in before:
                    await event.wait()
            await self._schedule(flow, done)
        finally:
            self._beats.pop(flow.name, None)

    async def _schedule(self, flow: Flow, done: anyio.Event) -> None:
        next_at = time.time()
        first = True
        while not self.stopping.is_set():
            self.beat(flow.name)
            delay = next_at - time.time()
            if delay > 0:
                self.beat(flow.name, until=time.monotonic() + delay)  # idle until its next run: healthy
                # a plain sleep: serve() cancels the sleepers when it stops, and a timer is far cheaper
                # than a cancel scope's deadline when a thousand flows wake in the same second
                await anyio.sleep(delay)
                if self.stopping.is_set():
                    return
            paused = [c for c in (flow.source, flow.target) if c in self.paused]
            budget_wait = self.budget_wait(flow.name)
            try:
                if paused:
                    self._paused_skip(flow.name, paused)
                elif budget_wait > 0:  # its share of a day budget is spent: it goes on after the reset
                    self.log.debug("flow skipped: its share of the day budget is spent", flow=flow.name, seconds=round(budget_wait))
                else:
                    await self.run_flow(flow.name)
            except Exception as exc:  # noqa: BLE001 - e.g. a connector's open() failed: this flow only
                self.log.error("flow could not run", flow=flow.name, error=error_text(exc))
            if first:
                first = False
                done.set()
            next_at = flow.schedule.next_after(max(next_at, time.time() - 1e-3))
            if next_at < time.time():  # a run took longer than the interval: skip missed slots
                next_at = flow.schedule.next_after(time.time())

    def _paused_skip(self, flow: str, connections: list[str]) -> None:
        """Say that ``flow``'s run is skipped because a connection is paused: a warning the first
        time per pause, then at info level on every slot (visible, not a storm)."""
        told = self.__dict__.setdefault("_paused_told", set())
        level = "info" if flow in told else "warning"
        told.add(flow)
        getattr(self.log, level)(
            "flow paused: not run, its connection's credentials were rejected",
            flow=flow,
            connections=connections,
            reason="; ".join(f"{c}: {self.paused[c]}" for c in connections),
            fix=self.pause_fixes.get(connections[0]) or pause_fix(connections[0]),
        )

    def stop(self) -> None:
        """Ask the engine to stop after the records in flight (a run waiting for another process's
        run of its flow gives up waiting at once)."""
        self.stopping.set()
        for scope in list(self._waiting):
            scope.cancel()

"""What the admin API acts on: the daemon's configuration, state store and current engine, runs it
starts in the background, and the webhook debouncer."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from ..observe.logs import error_text, get_logger

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Resolved
    from ..engine import Engine, RunResult
    from ..state import StateStore

__all__ = ["Backend", "Debouncer", "NotReady"]


class NotReady(Exception):
    """The daemon has no engine running (starting, reloading or stopping): try again."""


class Debouncer:
    """Turns bursts of triggers into single runs: the first trigger of a flow schedules one run
    ``delay`` seconds later; triggers until it starts join it. A trigger while that run is going
    schedules one more (it may announce a change the run has read past)."""

    def __init__(self, run: Callable[[str], Awaitable[Any]], delay: float, *, sleep: Callable[[float], Awaitable[Any]] = anyio.sleep):
        self._run = run
        self.delay = delay
        self._sleep = sleep
        self._pending: set[str] = set()
        self._tg: anyio.abc.TaskGroup | None = None
        self.scheduled = 0
        """Runs scheduled so far (tests and logs)."""
        self.started = 0
        """Runs started so far (tests and logs)."""

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Own the delayed runs until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            await anyio.sleep_forever()

    def trigger(self, flow: str) -> bool:
        """Ask for a run of ``flow``; False if one is already scheduled and not started."""
        if flow in self._pending:
            return False
        if self._tg is None:
            raise NotReady("the webhook debouncer is not running")
        self._pending.add(flow)
        self.scheduled += 1
        self._tg.start_soon(self._later, flow)
        return True

    async def _later(self, flow: str) -> None:
        try:
            await self._sleep(self.delay)
        finally:
            self._pending.discard(flow)
        self.started += 1
        await self._run(flow)


class Backend:
    """The daemon as the admin API sees it. ``engine`` follows reloads (``engine_of`` returns the current
    one); ``reload`` applies the configuration file again and returns ``(result, reason)``."""

    def __init__(
        self,
        resolved: Callable[[], Resolved],
        store: StateStore,
        engine_of: Callable[[], Engine | None],
        reload: Callable[[], Awaitable[tuple[str, str | None]]] | None = None,
        *,
        debounce: float = 2.0,
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
    ):
        self._resolved = resolved
        self.store = store
        self._engine_of = engine_of
        self._reload = reload
        self.log = get_logger()
        self.started_at = time.time()
        self.debouncer = Debouncer(lambda flow: self.run_in_background(flow, "webhook"), debounce, sleep=sleep)
        self._tg: anyio.abc.TaskGroup | None = None
        self.background_runs = 0
        """Background runs finished (tests wait on it)."""
        self.ran = anyio.Event()
        """Set after each background run (a new Event then): tests wait on it instead of sleeping."""
        self.cluster: Any = None
        """The daemon's :class:`apicenterd.cluster.Cluster` with PostgreSQL state (None with SQLite)."""

    @property
    def resolved(self) -> Resolved:
        """The configuration the daemon runs now."""
        return self._resolved()

    @property
    def engine(self) -> Engine:
        """The engine running now; NotReady while there is none."""
        engine = self._engine_of()
        if engine is None or engine.stopping.is_set():
            raise NotReady("the daemon is starting, reloading or stopping; try again in a moment")
        return engine

    def ready(self) -> tuple[bool, str]:
        """Whether the daemon serves its flows now, and if not why."""
        try:
            self.engine  # noqa: B018 - raises NotReady
        except NotReady as exc:
            return False, str(exc)
        return True, "running"

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Own background runs and the debouncer until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            await tg.start(self.debouncer.serve)
            task_status.started()
            await anyio.sleep_forever()

    async def daemons(self) -> dict[str, Any]:
        """The daemons on the state store, what each runs, and the jobs waiting (PostgreSQL: every
        daemon, read from the job queue; SQLite: this daemon, the only one)."""
        from ..cluster import cluster_status, daemon_name

        cluster = self.cluster
        if cluster is None:
            engine = self.engine
            return {
                "mode": "sqlite",
                "this_daemon": daemon_name(),
                "daemons": [
                    {
                        "worker_id": None,
                        "name": daemon_name(),
                        "started_at": self.started_at,
                        "heartbeat_age": 0.0,
                        "alive": True,
                        "running": sorted(engine.running),
                    }
                ],
                "waiting": [],
                "stalled": [],
            }
        async with cluster.connector.pool.connection() as conn:
            status = await cluster_status(conn, cluster.config.worker_stall_seconds)
        return {"mode": "postgresql", "this_daemon": cluster.name, **status.as_dict()}

    def paused_connections(self, flow_name: str) -> list[str]:
        """The connections of a flow whose credentials were rejected (its runs would fail)."""
        flow = self.resolved.flows[flow_name]
        return [c for c in (flow.source, flow.target) if c in self.engine.paused]

    async def run_flow(self, flow: str, trigger: str, *, full: bool = False) -> RunResult:
        """One run of ``flow`` now, in the running engine (waits for a run of it in progress);
        ``full``: from the beginning, its cursor ignored for this run."""
        return await self.engine.run_flow(flow, trigger=trigger, full=full)

    def start_run(self, flow: str, trigger: str, *, full: bool = False) -> None:
        """Start a run of ``flow`` and return at once."""
        if self._tg is None:
            raise NotReady("the admin server is not running")
        self._tg.start_soon(functools.partial(self.run_in_background, flow, trigger, full=full))

    async def run_in_background(self, flow: str, trigger: str, *, full: bool = False) -> None:
        """A run nobody waits for: errors are logged, never raised."""
        try:
            if self.paused_connections(flow):
                self.log.info("flow not run: connection paused", flow=flow, trigger=trigger, connections=self.paused_connections(flow))
            else:
                await self.run_flow(flow, trigger, full=full)
        except NotReady as exc:
            self.log.warning("flow not run: the daemon is not ready", flow=flow, trigger=trigger, reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - e.g. a connector's open() failed: logged like a scheduled run's
            self.log.error("flow could not run", flow=flow, trigger=trigger, error=error_text(exc))
        finally:
            self.background_runs += 1
            self.ran.set()
            self.ran = anyio.Event()

    async def reload(self) -> tuple[str, str | None]:
        """Reload the configuration file: ``("applied", None)`` or ``("refused", reason)``."""
        if self._reload is None:
            raise NotReady("reload is not available here")
        return await self._reload()

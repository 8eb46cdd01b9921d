"""Several daemons on one PostgreSQL: procrastinate, not apicenterd, decides which daemon runs what.

In PostgreSQL mode (``[state] url``) every daemon is a procrastinate worker on the state database
(its tables are migration 2 of :mod:`apicenterd.state.postgres`). A flow's schedule is a chain of
jobs of the task ``apicenterd.run_flow``:

- a job carries the flow and the Unix time it is due (``schedule_at``); its ``lock`` (one per flow)
  makes procrastinate start no job of a flow while another of the same flow is running, and its
  ``queueing_lock`` (the same string) keeps at most one waiting job per flow, whoever defers it;
- the daemon that runs a job defers the flow's next job (its next due time) when the run ends;
- every daemon, every ``[state] worker_heartbeat_seconds``: defers a job (due now) for each enabled
  flow that has none waiting or running (a new flow, the first start; the queueing lock makes
  concurrent deferrals of several daemons one job), and hands back to the queue the running jobs of
  daemons whose heartbeat is older than ``[state] worker_stall_seconds`` (procrastinate's stalled
  jobs: the daemon was killed, its machine died or lost the network). Another daemon then runs that
  flow from its settled cursor; the record-by-record settle makes the repeat safe.

The engine's own flow lock (a PostgreSQL advisory lock held on a connection for the whole run) is
still taken inside the job: a daemon whose heartbeat stopped but whose run is still going (a network
partition) keeps it, and the daemon that took over waits for it instead of running the flow too.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import anyio
import procrastinate
from procrastinate import PsycopgConnector
from procrastinate import exceptions as pexc
from procrastinate.worker import Worker

from . import __version__
from .observe import metrics
from .observe.logs import error_text, get_logger

if TYPE_CHECKING:  # pragma: no cover
    from .config import StateConfig
    from .engine import Engine

__all__ = ["Cluster", "ClusterStatus", "DaemonInfo", "WaitingJob", "TASK", "QUEUE", "daemon_name", "cluster_status"]

TASK = "apicenterd.run_flow"
"""The procrastinate task that runs one flow once."""
QUEUE = "apicenterd"
"""The queue of the flows' jobs."""
RESTART_DELAY = 5.0
"""Seconds before a worker that stopped on its own (the database went away) is started again."""


def daemon_name() -> str:
    """This daemon's name among several: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def flow_lock(flow: str) -> str:
    """The procrastinate lock and queueing lock of ``flow``'s jobs."""
    return f"apicenterd-flow:{flow}"


def _connector(url: str, schema: str | None, max_size: int) -> PsycopgConnector:
    kwargs: dict[str, Any] = {}
    if schema is not None:  # the tables are in that schema (tests: one per test)
        kwargs["options"] = f"-csearch_path={schema}"
    return PsycopgConnector(conninfo=url, min_size=1, max_size=max_size, kwargs=kwargs, name="apicenterd-jobs")


class _JobEngineLog(logging.Handler):
    """procrastinate's own warnings and errors (its listener losing the database in a PostgreSQL restart,
    say) as one structured log line each, naming the cause, instead of a bare traceback on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING:
            return
        fields: dict[str, Any] = {"component": "job engine", "logger": record.name}
        cause = record.exc_info[1] if record.exc_info else None
        while cause is not None and cause.__cause__ is not None:  # the database's error, not the wrapper
            cause = cause.__cause__
        if cause is not None:
            fields["error"] = error_text(cause).strip()
        log = get_logger(**fields)
        message = f"job engine: {record.getMessage().strip()}"
        (log.error if record.levelno >= logging.ERROR else log.warning)(message)


def _log_job_engine() -> None:
    logger = logging.getLogger("procrastinate")
    if not any(isinstance(h, _JobEngineLog) for h in logger.handlers):
        logger.addHandler(_JobEngineLog())


class Cluster:
    """This daemon as one procrastinate worker among several on the state database at ``url``."""

    def __init__(self, url: str, config: StateConfig, *, schema: str | None = None, name: str | None = None):
        self.config = config
        self.name = name or daemon_name()
        self.log = get_logger().bind(daemon=self.name)
        _log_job_engine()
        self.connector = _connector(url, schema, max_size=4)
        self.app = procrastinate.App(connector=self.connector)
        self.task = self.app.task(name=TASK, queue=QUEUE, pass_context=False)(self._job)
        self.engine: Engine | None = None
        self.worker: Worker | None = None
        self.jobs_started = 0
        """Jobs this daemon started (tests wait on it)."""
        self._registered: int | None = None
        self._unqueued = False  # some flow waits for the first run of an earlier one
        self._wake = anyio.Event()

    async def open(self) -> None:
        """Open the job engine's connection pool (the schema is there: the state store migrated it)."""
        await self.app.open_async()

    async def close(self) -> None:
        await self.app.close_async()

    # ------------------------------------------------------------------------------------ scheduling

    async def defer(self, flow: str, at: float) -> bool:
        """Queue a run of ``flow`` due at Unix time ``at``; False if one is waiting already (any daemon's)."""
        when = datetime.fromtimestamp(at, tz=timezone.utc)
        lock = flow_lock(flow)
        try:
            await self.task.configure(lock=lock, queueing_lock=lock, schedule_at=when).defer_async(flow=flow, due=at)
        except pexc.AlreadyEnqueued:
            return False
        return True

    async def _job(self, flow: str, due: float) -> None:
        """One run of ``flow`` (a job of :data:`TASK`), then its next run queued."""
        engine = self.engine
        if engine is None:  # pragma: no cover - the worker runs only while an engine serves
            raise RuntimeError("no engine")
        config = engine.resolved.flows.get(flow)
        if config is None or not config.enabled:
            self.log.info("job of a flow no longer configured (or disabled) dropped", flow=flow)
            return
        self.jobs_started += 1
        started = time.time()
        metrics.schedule_lag.observe(max(0.0, started - due))
        self.log.debug("flow job started", flow=flow, lag_seconds=round(max(0.0, started - due), 3))
        status = "failed"
        try:
            paused = [c for c in (config.source, config.target) if c in engine.paused]
            if paused:
                self.log.debug("flow skipped: connection paused", flow=flow, connections=paused)
                status = "skipped"
            else:
                status = (await engine.run_flow(flow)).status
        except Exception as exc:  # noqa: BLE001 - e.g. a connector's open() failed: this flow only; it runs again on schedule
            self.log.error("flow could not run", flow=flow, error=error_text(exc))
        except BaseException:
            status = "stopped"
            raise
        finally:
            engine._beats.pop(flow, None)  # idle between jobs: not a stall the watchdog should see
            now = time.time()
            if status == "stopped":  # a shutdown cut it short: whichever daemon is free goes on with it now
                next_at = now
            else:
                next_at = config.schedule.next_after(max(due, now - 1e-3))
                if next_at < now:  # the run took longer than the interval: skip missed slots
                    next_at = config.schedule.next_after(now)
            with anyio.CancelScope(shield=True):
                try:
                    await self.defer(flow, next_at)
                except Exception as exc:  # noqa: BLE001 - the keeper queues it again within a heartbeat
                    self.log.warning("next run not queued", flow=flow, error=error_text(exc))
            if self._unqueued:  # a flow may have waited for this one's first run: queue it now
                self._wake.set()

    async def _keep(self, engine: Engine) -> None:
        """Every heartbeat: a job for each enabled flow that has none; stalled jobs back to the queue."""
        interval = self.config.worker_heartbeat_seconds
        while not engine.stopping.is_set():
            try:
                await self._register()
                await self._ensure(engine)
                await self.recover_stalled()
                await self._measure()
            except Exception as exc:  # noqa: BLE001 - the database may be restarting: try again next beat
                self.log.warning("job queue not checked", error=error_text(exc))
            with anyio.move_on_after(interval):
                async with anyio.create_task_group() as tg:  # whichever comes first: stop, or a first run ended

                    async def stopping(tg: anyio.abc.TaskGroup = tg) -> None:
                        await engine.stopping.wait()
                        tg.cancel_scope.cancel()

                    async def woken(tg: anyio.abc.TaskGroup = tg) -> None:
                        await self._wake.wait()
                        tg.cancel_scope.cancel()

                    tg.start_soon(stopping)
                    tg.start_soon(woken)
            self._wake = anyio.Event()

    async def _measure(self) -> None:
        """The queue's gauges: daemons alive, runs due, runs stalled."""
        async with self.connector.pool.connection() as conn:
            status = await cluster_status(conn, self.config.worker_stall_seconds)
        metrics.workers_alive.set(sum(d.alive for d in status.daemons))
        metrics.jobs_due.set(sum(1 for w in status.waiting if w.overdue > 0))
        metrics.jobs_stalled.set(len(status.stalled))

    async def _register(self) -> None:
        worker = self.worker
        if worker is None or worker.worker_id is None or worker.worker_id == self._registered:
            return
        await self.app.connector.execute_query_async(
            "INSERT INTO daemons (worker_id, name, host, pid, version, started_at) "
            "VALUES (%(id)s, %(name)s, %(host)s, %(pid)s, %(version)s, %(at)s) ON CONFLICT (worker_id) DO NOTHING",
            id=worker.worker_id,
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            version=__version__,
            at=time.time(),
        )
        self._registered = worker.worker_id

    async def _ensure(self, engine: Engine) -> None:
        rows = await self.app.connector.execute_query_all_async(
            "SELECT DISTINCT args->>'flow' AS flow FROM procrastinate_jobs "
            "WHERE task_name = %(task)s AND status IN ('todo', 'doing')",
            task=TASK,
        )
        queued = {row["flow"] for row in rows}
        flows = [f for f in engine.resolved.flows.values() if f.enabled]
        if all(f.name in queued for f in flows):
            return
        # the first time, a flow waits for the first run of the flows defined before it that write to the
        # same target (products before stock, customers before orders), as with one daemon
        ran = {
            row["flow"]
            for row in await self.app.connector.execute_query_all_async(
                "SELECT DISTINCT flow FROM runs WHERE status IN ('ok', 'failed') AND flow = ANY(%(flows)s)",
                flows=[f.name for f in flows],
            )
        }
        now = time.time()
        self._unqueued = False
        for i, flow in enumerate(flows):
            if flow.name in queued or engine.stopping.is_set():
                continue
            waits_for = [f.name for f in flows[:i] if f.target == flow.target and f.name not in ran]
            if waits_for:
                self._unqueued = True
                self.log.debug("flow waits for the first run of earlier flows", flow=flow.name, waits_for=waits_for)
                continue
            if await self.defer(flow.name, now):
                self.log.info("flow scheduled", flow=flow.name, schedule=flow.schedule.describe())

    async def recover_stalled(self) -> list[str]:
        """Hand the running jobs of daemons that stopped answering back to the queue; their flows."""
        stalled = await self.app.job_manager.get_stalled_jobs(
            task_name=TASK, seconds_since_heartbeat=self.config.worker_stall_seconds
        )
        flows = []
        for job in stalled:
            flow = str(job.task_kwargs.get("flow"))
            try:
                await self.app.job_manager.retry_job(job)
            except pexc.UniqueViolation:
                # another run of the flow is queued already (a daemon deferred it while this job ran:
                # the queueing lock covers waiting jobs only). Put back, this job would collide with it,
                # and that one cannot start while this one holds the flow's job lock: this one ends
                # (failed) so that the queued one runs
                try:
                    await self.app.job_manager.finish_job_by_id_async(
                        int(job.id or 0), status=procrastinate.jobs.Status.FAILED, delete_job=False
                    )
                except pexc.ProcrastinateException as exc:  # another daemon was quicker
                    self.log.debug("stalled job not ended here", flow=flow, job=job.id, error=str(exc))
                    continue
            except pexc.ProcrastinateException as exc:  # another daemon was quicker
                self.log.debug("stalled job not retried here", flow=flow, job=job.id, error=str(exc))
                continue
            flows.append(flow)
            await self.app.connector.execute_query_async(
                "UPDATE runs SET status = 'interrupted', finished_at = %(now)s, error = %(error)s "
                "WHERE flow = %(flow)s AND status = 'running' AND daemon IS NOT NULL AND daemon NOT IN ("
                "SELECT d.name FROM daemons d JOIN procrastinate_workers w ON w.id = d.worker_id "
                "WHERE w.last_heartbeat >= now() - make_interval(secs => %(stall)s))",
                now=time.time(),
                flow=flow,
                stall=self.config.worker_stall_seconds,
                error=f"its daemon stopped answering (no heartbeat for {self.config.worker_stall_seconds:g} s); "
                "the flow went back to the queue and goes on from its settled cursor",
            )
            self.log.warning(
                "flow's run was on a daemon that stopped answering; queued again (it goes on from its settled cursor)",
                flow=flow,
                job=job.id,
                worker=job.worker_id,
                stall_timeout=self.config.worker_stall_seconds,
            )
        return flows

    # ------------------------------------------------------------------------------------ serving

    async def serve(self, engine: Engine, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Work as one of the daemons until ``engine.stopping``: jobs run on ``engine``; the runs in
        progress end (between records) before it returns (``[daemon] shutdown_timeout``)."""
        self.engine = engine
        async with anyio.create_task_group() as tg:
            finished = anyio.Event()
            tg.start_soon(self._work, engine, finished)
            tg.start_soon(self._keep, engine)
            task_status.started()
            await engine.stopping.wait()
            if self.worker is not None:
                self.worker.stop()
            await finished.wait()
            tg.cancel_scope.cancel()

    async def _work(self, engine: Engine, finished: anyio.Event) -> None:
        """The worker, started again after a pause when it stops on its own (e.g. PostgreSQL restarted)."""
        daemon = engine.resolved.config.daemon
        try:
            while not engine.stopping.is_set():
                self.worker = Worker(
                    self.app,
                    queues=[QUEUE],
                    name=self.name,
                    concurrency=self.config.worker_concurrency,
                    install_signal_handlers=False,
                    update_heartbeat_interval=self.config.worker_heartbeat_seconds,
                    stalled_worker_timeout=self.config.worker_stall_seconds,
                    shutdown_graceful_timeout=daemon.shutdown_timeout,
                    delete_jobs="successful",
                    # a job deferred for later is announced when it is queued, not when it is due: a
                    # worker finds due jobs by polling, so this is the longest a due run waits for a free daemon
                    fetch_job_polling_interval=self.config.worker_poll_seconds,
                )
                try:
                    await self.worker.run()
                except Exception as exc:  # noqa: BLE001 - the database went away: start again after a pause
                    self.log.error("job worker stopped", error=error_text(exc), restart_in=RESTART_DELAY)
                if engine.stopping.is_set():
                    break
                self.log.warning("job worker stopped on its own; starting it again", restart_in=RESTART_DELAY)
                with anyio.move_on_after(RESTART_DELAY):
                    await engine.stopping.wait()
        finally:
            self.worker = None
            finished.set()


# ---------------------------------------------------------------------------------------- status


@dataclasses.dataclass(frozen=True)
class DaemonInfo:
    """One daemon (procrastinate worker) on the state database."""

    worker_id: int
    name: str | None
    started_at: float | None
    heartbeat_age: float
    """Seconds since its last heartbeat."""
    alive: bool
    running: tuple[str, ...]
    """The flows it runs now."""


@dataclasses.dataclass(frozen=True)
class WaitingJob:
    """A flow's run in the queue."""

    flow: str
    due: float
    """Unix time it is due."""
    overdue: float
    """Seconds past due (0 when not due yet)."""


@dataclasses.dataclass(frozen=True)
class ClusterStatus:
    daemons: list[DaemonInfo]
    waiting: list[WaitingJob]
    stalled: list[str]
    """Flows whose run is on a daemon that stopped answering (queued again by the next live daemon's check)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "daemons": [dataclasses.asdict(d) | {"running": list(d.running)} for d in self.daemons],
            "waiting": [dataclasses.asdict(w) for w in self.waiting],
            "stalled": list(self.stalled),
        }


async def cluster_status(conn: Any, stall_seconds: float) -> ClusterStatus:
    """The daemons, the jobs waiting and the stalled ones, read on ``conn`` (psycopg, the state database)."""
    rows = await (
        await conn.execute(
            "SELECT w.id, d.name, d.started_at, extract(epoch FROM now() - w.last_heartbeat), "
            "coalesce((SELECT array_agg(j.args->>'flow' ORDER BY j.args->>'flow') FROM procrastinate_jobs j "
            "WHERE j.worker_id = w.id AND j.status = 'doing' AND j.task_name = %s), '{}') "
            "FROM procrastinate_workers w LEFT JOIN daemons d ON d.worker_id = w.id ORDER BY w.id",
            (TASK,),
        )
    ).fetchall()
    daemons = [
        DaemonInfo(int(r[0]), r[1], r[2], round(float(r[3]), 1), float(r[3]) <= stall_seconds, tuple(r[4])) for r in rows
    ]
    now = time.time()
    jobs = await (
        await conn.execute(
            "SELECT args->>'flow', extract(epoch FROM scheduled_at) FROM procrastinate_jobs "
            "WHERE task_name = %s AND status = 'todo' ORDER BY scheduled_at NULLS FIRST, id",
            (TASK,),
        )
    ).fetchall()
    waiting = [WaitingJob(r[0], float(r[1] or now), round(max(0.0, now - float(r[1] or now)), 1)) for r in jobs]
    stalled = await (
        await conn.execute(
            "SELECT j.args->>'flow' FROM procrastinate_jobs j LEFT JOIN procrastinate_workers w ON w.id = j.worker_id "
            "WHERE j.task_name = %s AND j.status = 'doing' AND (w.id IS NULL OR w.last_heartbeat < now() - make_interval(secs => %s)) "
            "ORDER BY 1",
            (TASK, stall_seconds),
        )
    ).fetchall()
    return ClusterStatus(daemons, waiting, [r[0] for r in stalled])

"""The engine: runs flows record by record, on their schedules, and never writes the same thing twice.

One record's way through a run::

    source.read(entity, since=cursor) → prepare (flow kind) → filters
      → hash of the fields the target stores (less create-only fields)
      → link with the same hash?          → unchanged, no call
      → link?                             → target.update(fields allowed on update)
      → target.find(key) finds it?        → link it; update what differs
      → else                              → target.create
      → settle: the batch's audit entries, links and cursor in one transaction

A record is linked only after the target confirmed the write; before any create the
target is asked for the record by its key, so a retry or a crash never duplicates. Up to
:data:`WRITES_IN_FLIGHT` records of a batch are in flight at once; the batch settles in the
source's order, and never past a record that is not done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio

from .budget import DayBudget, is_day_limit
from .circuit import CircuitBreaker
from .compare import differing_fields, record_hash
from .config import Flow, Resolved
from .context import Context
from .dryrun import Plan, plan, written
from .errors import AuthError, BudgetSpent, CircuitOpen, ConnectorError, FatalError, RecordError, RetryableError, StateError, pause_fix
from .flowrun import COUNT_KEYS, FlowRun, GaveUp
from .flows import Skip, prepare
from .model import Customer, Entity, Order, Product, Record
from .observe import metrics
from .observe.alerts import Alerter
from .observe.logs import error_text, get_logger, redactor
from .orders import PENDING_DEBTOR, OrderProcess
from .plugin import Change, Connector, DocumentSink, Found, Sink
from .progress import Progress
from .progress import running as progress_running
from .replay import Replaying
from .retry import Retries, dead_letter_backoff
from .scheduler import Scheduling, current_flow
from .state import AuditEntry, Link, Settlement, StateStore
from .tokencrypt import TokenCipher
from .tokenstore import StatePauseStore, StateTokenStore

__all__ = [
    "COUNT_KEYS",
    "Engine",
    "GaveUp",
    "Plan",
    "RunResult",
    "StatePauseStore",
    "StateTokenStore",
    "dead_letter_backoff",
    "differing_fields",
    "record_hash",
]

LOCK_HOLDERS = {
    "schedule": "daemon",
    "cli": "flows run",
    "replay": "dlq replay",
    "api": "daemon (admin API)",
    "webhook": "daemon (webhook)",
    "reset": "flows reset",
}
"""Who holds a flow's lock, by the run's trigger (shown to a process waiting for it)."""


_VERBS = {"created": "create", "updated": "update"}


def _would(event: str) -> str:
    """``event`` said of a dry run (see :meth:`Engine.said`)."""
    subject, _, rest = event.partition(" ")
    verb, _, tail = rest.partition(" ")
    if verb in _VERBS:
        return f"would {_VERBS[verb]} {subject}{' ' + tail if tail else ''}"
    if verb == "failed":
        return f"{subject} would fail{' ' + tail if tail else ''}"
    if event.endswith(", linked"):
        return f"{event.removesuffix(', linked')}, would link"
    return f"dry run: {event}"


CONFIG_MARK = "#flow-config#"
"""Prefix of the state store's cursor row that keeps a flow's configuration hash and since when
(see Engine._config_since); no NUL: PostgreSQL text cannot hold one."""


def _batch_create(target: Connector, entity: Entity) -> bool:
    """Whether ``target`` creates ``entity`` in batches (its sink implements ``create_many``)."""
    sink = target.sinks.get(entity)
    return (
        entity not in (Entity.ORDERS, Entity.INVOICES)
        and sink is not None
        and issubclass(sink, Sink)
        and sink.create_many is not Sink.create_many
    )


def _batch_update(target: Connector, entity: Entity) -> bool:
    """Whether ``target`` updates ``entity`` in batches (its sink implements ``update_many``)."""
    sink = target.sinks.get(entity)
    return (
        entity not in (Entity.ORDERS, Entity.INVOICES)
        and sink is not None
        and issubclass(sink, Sink)
        and sink.update_many is not Sink.update_many
    )


def _batch_lookup(target: Connector, entity: Entity) -> bool:
    """Whether ``target`` looks ``entity`` up in batches (its sink or document sink implements ``find_many``)."""
    sink = target.sinks.get(entity)
    if sink is not None and issubclass(sink, DocumentSink):
        return sink.find_many is not DocumentSink.find_many
    return sink is not None and issubclass(sink, Sink) and sink.find_many is not Sink.find_many


def _batch_documents(target: Connector, entity: Entity) -> bool:
    """Whether ``target`` creates documents of ``entity`` in batches (its document sink implements
    ``create_many`` and ``find_many``)."""
    sink = target.sinks.get(entity)
    return (
        sink is not None
        and issubclass(sink, DocumentSink)
        and sink.create_many is not DocumentSink.create_many
        and sink.find_many is not DocumentSink.find_many
    )


def _batched(target: Connector, entity: Entity) -> bool:
    """Whether ``target`` writes records of ``entity`` in batches (creates, updates or documents)."""
    return _batch_create(target, entity) or _batch_update(target, entity) or _batch_documents(target, entity)


@dataclasses.dataclass
class RunResult:
    """What one run did."""

    flow: str
    run_id: int
    counts: dict[str, int]
    status: str = "ok"
    error: str | None = None
    duration: float = 0.0
    failures: list[tuple[str, str, str, str]] = dataclasses.field(default_factory=list, repr=False)
    """(flow, source id, key, reason) of the run's first failed records (see FlowRun.failures)."""
    progress: Progress | None = dataclasses.field(default=None, repr=False)
    """While it runs: records done, rate, what the source said of the total."""

    def as_dict(self) -> dict[str, Any]:
        """For ``--json`` output."""
        return {
            "flow": self.flow,
            "run_id": self.run_id,
            "status": self.status,
            "error": self.error,
            "duration_seconds": round(self.duration, 3),
            **self.counts,
        }


WRITES_IN_FLIGHT = 4
"""Records of one batch of a flow the engine takes to the target at once, by default."""


class _Stop(Exception):
    """Internal: the engine was asked to stop between records."""


PROGRESS_SAVE_SECONDS = 5.0
"""A run in progress saves its counts and progress to its row (for ``apicenterd runs``) at most this often."""
PROGRESS_LOG_SECONDS = 30.0
"""A run in progress logs a "run progress" line at most this often (and only if it runs this long)."""

HTTP_BOUNDS = ("max_response_bytes", "request_deadline", "retry_after_cap")
"""ConnectorSettings fields that bound a connection's HTTP; passed to its Context as they are."""


def describe_limits(limits: Any) -> str:
    """A connector's declared rate limits for people: ``600 calls / 60 s (per_endpoint)``."""
    return ", ".join(f"{lim.requests} calls / {lim.period:g} s ({lim.name})" for lim in limits) or "no limit"


def _http_bounds(settings: Any) -> dict[str, Any]:
    """The HTTP bounds of a connection's settings, for its Context."""
    return {name: getattr(settings, name) for name in HTTP_BOUNDS if getattr(settings, name, None) is not None}


class Engine(Scheduling, Replaying, Retries):
    """Runs the flows of one resolved configuration against one state store: connections, one run
    of a flow, and one record's way through it. Schedules and progress are in
    :mod:`~apicenterd.scheduler`, retries in :mod:`~apicenterd.retry`, replays in
    :mod:`~apicenterd.replay`, dry-run plans in :mod:`~apicenterd.dryrun`."""

    def __init__(
        self,
        resolved: Resolved,
        store: StateStore,
        *,
        transports: Mapping[str, Any] | None = None,
        rate_limits: bool = True,
        dry_run: bool = False,
        retry_attempts: int = 4,
        retry_base_delay: float = 0.5,
        sleep: Callable[[float], Any] = anyio.sleep,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        alerter: Alerter | None = None,
        batch_size: int = 100,
        writes_in_flight: int = WRITES_IN_FLIGHT,
        wait_for_flow: bool = True,
        on_flow_wait: Callable[[str, dict[str, Any]], None] | None = None,
    ):
        self.resolved = resolved
        self.store = store
        self.connectors: dict[str, Connector] = {}
        self.log = get_logger()
        self.stopping = anyio.Event()
        self._transports = dict(transports or {})
        self._rate_limits = rate_limits
        self.dry_run = dry_run
        self.plans: list[Plan] = []
        self.batch_size = batch_size
        if writes_in_flight < 1:
            raise ValueError(f"writes_in_flight must be at least 1, got {writes_in_flight}")
        self.writes_in_flight = writes_in_flight
        """Records of one batch of a flow taken to the target at once (their settles stay in the
        source's order: see :meth:`_settle_together`)."""
        self.alerter = alerter or Alerter(resolved.config.alerts)
        self.paused: dict[str, str] = {}
        """Connections whose credentials were rejected: no flow calls them until a reload."""
        self.pause_fixes: dict[str, str] = {}
        """What the operator does about each paused connection (see :func:`apicenterd.errors.pause_fix`)."""
        self._retry_attempts = retry_attempts
        self._retry_base_delay = retry_base_delay
        self._sleep = sleep
        self._wall_clock = wall_clock  # the day budgets' and rate limiters' (schedules, resets): a seam for tests
        self._clock = clock  # the rate limiters' monotonic clock
        self._flow_locks: dict[str, anyio.Lock] = {}
        self.wait_for_flow = wait_for_flow
        """A flow another process runs: wait for it (else raise FlowBusy)."""
        self.on_flow_wait = on_flow_wait
        """Called once with (flow, holder) when a run starts waiting for another process's run."""
        self._waiting: set[anyio.CancelScope] = set()
        token_key: str | None = getattr(resolved, "token_key", None)
        self._cipher = TokenCipher(token_key) if token_key else None
        self.last_result: RunResult | None = None
        """The latest run's result, kept up to date while it runs (also there when it was cancelled)."""
        self._beats: dict[str, float] = {}
        self.progress_save_seconds = PROGRESS_SAVE_SECONDS
        self.progress_log_seconds = PROGRESS_LOG_SECONDS
        self.budgets: dict[str, DayBudget] = {}
        """Connection → its day budget, for connections whose connector declares a day limit."""
        self.running: dict[str, RunResult] = {}
        """Flow → the result of its run in progress, counts kept up to date (progress for the admin API)."""
        """Per scheduled flow: the monotonic time it last made progress, or is due back (see :meth:`stalled`)."""

    @property
    def failures(self) -> list[tuple[str, str, str, str]]:
        """(flow, source id, key, reason) of the latest run's failed records (each run keeps its own)."""
        return self.last_result.failures if self.last_result is not None else []

    # ---------------------------------------------------------------- connections

    def _own_custom_fields(self, flow: Flow, record: Record) -> Record:
        """A customer's or product's ``custom_fields`` are named by the system that holds them: between
        two kinds of connector only those the flow names (its ``custom_fields`` option, or a ``map`` rule
        whose field is ``custom_fields.NAME``, or one on ``custom_fields`` as a whole) reach the target.
        An order's or invoice's customer likewise (rules on ``customer.custom_fields...``)."""
        connections = self.resolved.connections
        if connections[flow.source].connector is connections[flow.target].connector:
            return record
        fields = [rule.field for rule in flow.rules]
        if isinstance(record, (Customer, Product)):
            return _named_custom_fields(record, fields, "", set(getattr(flow.options, "custom_fields", None) or ()))
        customer = getattr(record, "customer", None)
        if isinstance(customer, Customer) and customer.custom_fields:
            kept = _named_custom_fields(customer, fields, "customer.", set())
            if kept is not customer:
                return record.model_copy(update={"customer": kept})
        return record

    async def open(self, names: list[str] | None = None) -> None:
        """Create and open the connectors of ``names`` (default: every connection a flow uses)."""
        if names is None:
            names = sorted({n for f in self.resolved.flows.values() for n in (f.source, f.target)})
        for name in names:
            if name in self.connectors:
                continue
            conn = self.resolved.connections[name]
            daemon = self.resolved.config.daemon
            context = Context(
                name,
                breaker=CircuitBreaker(name, daemon.circuit_failure_threshold, daemon.circuit_recovery_seconds),
                tokens=StateTokenStore(self.store, name, self._cipher),
                rate_limits=self._declared_limits(name, conn),
                transport=self._transports.get(name),
                **_http_bounds(conn.settings),
                pauses=StatePauseStore(self.store, name),
                clock=self._clock,
                wall_clock=self._wall_clock,
            )
            take_slot = getattr(self.store, "take_rate_slot", None)
            if take_slot is not None and context.limiters.limits:  # several daemons: one call schedule for all
                context.limiters.shared = functools.partial(take_slot, name)
            await context.limiters.restore()  # a vendor's pause from before a restart still holds
            self._open_budget(name, conn, context)
            instance = conn.connector(conn.settings, context)
            await instance.open()
            self.connectors[name] = instance
            # both series exist from the start, so increase() and the alerts see the first failure
            metrics.auth_failures.labels(name).inc(0)
            metrics.connection_paused.labels(name).set(1 if name in self.paused else 0)

    def _open_budget(self, name: str, conn: Any, context: Context) -> None:
        """Share connection ``name``'s day limit (if its connector declares one) between the flows
        that use it, by their priority (see :mod:`apicenterd.budget`)."""
        if not any(is_day_limit(limit) for limit in context.limiters.limits):
            return
        budget = DayBudget(name, context.limiters, reserve=getattr(conn.settings, "daily_reserve", 0), wall_clock=self._wall_clock)
        for flow in self.resolved.flows.values():
            if name in (flow.source, flow.target):
                budget.add_flow(flow.name, flow.priority, flow.schedule)
        context.limiters.budget = budget
        self.budgets[name] = budget
        metrics.day_budget_left.labels(name).set_function(budget.left)

    def budget_wait(self, name: str) -> float:
        """Seconds until flow ``name`` may spend from the day budgets of its connections (0: now, or no
        budget; only connections opened so far are known)."""
        flow = self.resolved.flows[name]
        return max([0.0, *(b.wait(name) for c, b in self.budgets.items() if c in (flow.source, flow.target))])

    def _budgets_of(self, flow: Flow) -> list[DayBudget]:
        return [b for c, b in self.budgets.items() if c in (flow.source, flow.target)]

    def _declared_limits(self, name: str, conn: Any) -> tuple[Any, ...]:
        """The connector's declared rate limits for connection ``name``, or none (a warning says
        so) when its settings turn them off (``client_rate_limit = false``)."""
        limits = tuple(conn.connector.limits_for(conn.settings)) if self._rate_limits else ()
        if limits and not getattr(conn.settings, "client_rate_limit", True):
            self.log.warning(
                f"connection {name!r}: client-side rate limit off (client_rate_limit = false): "
                f"{describe_limits(limits)} not enforced; only the vendor's 429s pause it",
                connection=name,
                client_rate_limit=False,
            )
            return ()
        return limits

    async def aclose(self) -> None:
        """Close every opened connector."""
        with anyio.CancelScope(shield=True):
            for name, instance in list(self.connectors.items()):
                try:
                    await instance.aclose()
                except Exception as exc:  # noqa: BLE001 - closing must not hide the real outcome
                    self.log.warning("connection close failed", connection=name, error=str(exc))
                if not self.dry_run:
                    metrics.connection_paused.labels(name).set(0)  # a reload's new engine tries it again
            self.connectors.clear()

    # ---------------------------------------------------------------- one run

    async def run_flow(self, name: str, *, trigger: str = "schedule", full: bool = False) -> RunResult:
        """Run flow ``name`` once: every record changed since its cursor; with ``full``, every record
        (the cursor ignored for this run; links stay, so what did not change costs no write)."""
        flow = self.resolved.flows[name]
        async with self._exclusive(name, trigger) as acquired:
            if not acquired:  # stopped while waiting for another process's run
                return RunResult(name, 0, dict.fromkeys(COUNT_KEYS, 0), status="stopped")
            await self.open([flow.source, flow.target])
            return await self._run(flow, trigger, full=full)

    async def reset_cursor(self, name: str) -> bool:
        """Forget flow ``name``'s cursor (links stay: nothing is written twice), between its runs;
        False if the engine was stopped while waiting for a run of it."""
        async with self._exclusive(name, "reset") as acquired:
            if acquired:
                await self.store.set_cursor(name, None)
            return acquired

    @contextlib.asynccontextmanager
    async def _exclusive(self, name: str, trigger: str) -> AsyncIterator[bool]:
        """Hold flow ``name`` for one run: in this process, and across every process on the state
        store (the store's flow lock). Yields False if :meth:`stop` came while waiting for another
        process. A dry run writes nothing and takes only the in-process lock."""
        # fast_acquire: an uncontended lock does not yield, so a thousand flows due at once all
        # start (their runs recorded) in the scheduler's first pass, not behind each other's work
        async with self._flow_locks.setdefault(name, anyio.Lock(fast_acquire=True)):
            if self.dry_run:
                yield True
                return
            async with contextlib.AsyncExitStack() as stack:
                acquired = False
                with anyio.CancelScope() as scope:
                    self._waiting.add(scope)
                    try:
                        if not self.stopping.is_set():
                            holder = LOCK_HOLDERS.get(trigger, trigger)
                            with self.waiting_on_others(name):  # another process's run: not a stall of ours
                                await stack.enter_async_context(
                                    self.store.flow_lock(
                                        name, holder=holder, wait=self.wait_for_flow, on_wait=lambda info: self._flow_waits(name, info)
                                    )
                                )
                            acquired = True
                    finally:
                        self._waiting.discard(scope)
                yield acquired

    def _flow_waits(self, name: str, holder: dict[str, Any]) -> None:
        self.log.info(
            "flow is running in another process; waiting for it to finish",
            flow=name,
            holder_pid=holder.get("pid"),
            holder=holder.get("holder"),
            holder_host=holder.get("host"),
        )
        if self.on_flow_wait is not None:
            self.on_flow_wait(name, holder)

    async def _config_since(self, flow: Flow) -> float:
        """Since when the flow's configuration (source, target, entity, options, map rules, filters,
        create-only fields, target settings) is as it is now: a hash of it is kept in the state
        store beside the flow's cursor; when it differs, now, and the new hash is kept. Records that
        failed before that wait out no dead-letter pause: the change may be what they lacked."""
        raw = self.resolved.config.flows.get(flow.name)
        fields = {"source", "target", "entity", "create_only_fields", "filters", "options", "map", "target_settings"}
        shape = raw.model_dump(mode="json", include=fields) if raw is not None else {"flow": repr(flow)}
        digest = hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:32]
        name = CONFIG_MARK + flow.name
        stored = await self.store.get_cursor(name)
        if stored:
            known, _, since = stored.partition(" ")
            with contextlib.suppress(ValueError):
                if known == digest:
                    return float(since)
        now = time.time()
        await self.store.set_cursor(name, f"{digest} {now!r}")
        if stored:
            flow_log = self.log.bind(flow=flow.name)
            flow_log.info("flow configuration changed: failed records are tried again now, not after their pause")
        return now

    async def _run(self, flow: Flow, trigger: str, *, full: bool = False) -> RunResult:
        try:
            run_id = 0 if self.dry_run else await self.store.start_run(flow.name, trigger)
            # let the other runs due now start too before this one works: a slot of a thousand flows
            # all start on time (the scheduler wakes them in one pass), then share the event loop
            await anyio.lowlevel.checkpoint()
        except StateError as exc:  # e.g. a full disk: the run cannot even be recorded; say why, once
            self.log.error("run failed: the state file cannot be used", flow=flow.name, error=str(exc))
            self.alerter.flow_result(flow.name, "failed", str(exc), [])
            raise
        run = FlowRun(
            flow,
            run_id,
            self.connectors[flow.source],
            self.connectors[flow.target],
            self.log.bind(flow=flow.name, run=run_id, entity=str(flow.entity)),
        )
        if not self.dry_run and flow.entity not in (Entity.ORDERS, Entity.INVOICES):
            run.settling = []  # a batch settles in one transaction (an order settles at once: see OrderProcess)
        log, counts = run.log, run.counts
        result = self.last_result = RunResult(flow.name, run_id, counts, failures=run.failures, progress=run.progress)
        self.running[flow.name] = result
        started = time.perf_counter()
        cursor = None if full else await self.store.get_cursor(flow.name)
        flow_token = current_flow.set(flow.name)
        self.beat()
        log.info("run started", trigger=trigger, cursor=cursor, source=flow.source, target=flow.target, **({"full": True} if full else {}))
        budgets = self._budgets_of(flow)
        for budget in budgets:
            budget.run_started(flow.name)
        try:
            if not self.dry_run:
                run.config_since = await self._config_since(flow)
            with progress_running(run.progress):
                await self._read_and_settle(run, cursor)
        except BudgetSpent as exc:  # its share of a day budget: settled work stays, the rest waits for the reset
            result.status, result.error = "deferred", str(exc)
            await self._deferred(run, result, exc, cursor)
        except _Stop:
            result.status = "stopped"
            log.info("run stopped between records for shutdown")
        except GaveUp as exc:
            self._run_failed(run, result, exc.error, exc.connection)
        except ConnectorError as exc:
            self._run_failed(run, result, exc, flow.source)
        except StateError as exc:  # disk full, damaged file: what was not settled is read again next run
            result.status, result.error = "failed", str(exc)
            log.error("run failed: the state file cannot be used", error=result.error)
        except Exception as exc:  # a bug in one flow must not stop the others
            result.status, result.error = "failed", error_text(exc, "internal error: ")
            log.exception("run failed with an internal error")
        except BaseException as exc:  # cancelled (shutdown timeout, Ctrl-C) or interrupted: not a success
            result.status = "stopped"
            result.error = "cut off by shutdown" if isinstance(exc, anyio.get_cancelled_exc_class()) else type(exc).__name__
            log.warning("run cut off with a record in flight (not settled)", reason=result.error)
            raise
        finally:
            handled = sum(v for k, v in counts.items() if k in COUNT_KEYS)
            for budget in budgets:
                calls = budget.run_finished(flow.name, handled, complete=result.status == "ok")
                log.debug("day budget", connection=budget.connection, calls=calls, left=budget.left())
            if budgets and result.status != "deferred":
                metrics.budget_resume.labels(flow.name).set(0)
                metrics.expected_completion.labels(flow.name).set(0)
            self.running.pop(flow.name, None)
            current_flow.reset(flow_token)
            result.duration = time.perf_counter() - started
            result.progress = None
            if not self.dry_run:
                for gauge in (metrics.run_progress, metrics.run_progress_rate, metrics.run_remaining_seconds):
                    gauge.labels(flow.name).set(0)
            if self.dry_run:
                log.info("dry run finished: nothing written", status=result.status, plans=len(self.plans), **counts)
            else:
                self._finish_alerts(run, result)
                with anyio.CancelScope(shield=True):  # the run row must not stay "running"
                    await self.store.finish_run(run_id, result.status, counts, result.error)
                metrics.runs.labels(flow.name, result.status).inc()
                metrics.run_duration.labels(flow.name).observe(result.duration)
                if result.status == "ok":
                    metrics.last_success.labels(flow.name).set(time.time())
                log.info("run finished", status=result.status, seconds=round(result.duration, 3), **counts)
        return result

    async def _deferred(self, run: FlowRun, result: RunResult, exc: BudgetSpent, started_at: str | None = None) -> None:
        """A run stopped by its share of a day budget: when it goes on, how far the budget goes, and
        (when its source can tell how many records are still to come) when it is expected to be done.
        The source is asked how many records it yields from ``started_at``, the cursor the run read
        from (whether its cursor moves record by record or only at the end of a read); the records
        this run handled are taken off."""
        budget = next((b for b in self._budgets_of(run.flow) if b.connection == exc.connection), None)
        complete_at = None
        if budget is not None:
            handled = sum(v for k, v in run.counts.items() if k in COUNT_KEYS)
            try:
                backlog = await run.source.backlog(run.flow.read_entity or run.flow.entity, started_at)
            except (BudgetSpent, ConnectorError) as error:  # a figure for people: never fails the run
                run.log.info("backlog unknown", error=str(error))
                backlog = None
            if backlog is not None:
                backlog = max(0, backlog - handled)
                run.counts["backlog"] = backlog
                complete_at = budget.completion(run.name, backlog, running=handled)
        run.counts["budget_left"] = exc.left
        run.counts["resume_at"] = int(exc.resume_at)
        if complete_at is not None:
            run.counts["complete_at"] = int(complete_at)
        metrics.budget_resume.labels(run.name).set(exc.resume_at)
        metrics.expected_completion.labels(run.name).set(complete_at or 0)
        run.log.info(
            "run deferred: its share of the day budget is spent",
            left=exc.left,
            reserved=exc.reserved,
            resume_at=exc.resume_at,
            complete_at=complete_at,
        )

    async def _read_and_settle(self, run: FlowRun, cursor: str | None) -> None:
        """Read the source since ``cursor`` in batches and settle every change; a read that fails
        mid-way starts again from the last settled cursor (what was done already costs no call)."""
        flow, log = run.flow, run.log
        read_failures = 0
        furthest = 0  # the most changes one read got through since the cursor last moved
        while True:
            iterator = run.source.read(flow.read_entity or flow.entity, cursor).__aiter__()
            taken = 0
            try:
                exhausted = False
                while not exhausted:
                    if self.stopping.is_set():
                        raise _Stop
                    batch: list[Change] = []
                    read_error: RetryableError | None = None
                    while len(batch) < self.batch_size:
                        try:
                            batch.append(await iterator.__anext__())
                            self.beat()
                        except StopAsyncIteration:
                            exhausted = True
                            break
                        except RetryableError as exc:  # settle what was read, then deal with it
                            read_error = exc
                            break
                    await self._prefetch(run, batch)

                    def settled(change: Change, action: str) -> None:
                        # progress (a later read failure starts a fresh count): the cursor moved,
                        # or, from a source that moves it only with its last change, this read
                        # got further than any before
                        nonlocal taken, cursor, read_failures, furthest
                        taken += 1
                        if change.cursor != cursor:
                            read_failures, furthest = 0, 0
                        elif taken > furthest:
                            read_failures, furthest = 0, taken
                        cursor = change.cursor
                        run.count(action)
                        if not self.dry_run:
                            metrics.records.labels(flow.name, str(flow.entity), action).inc()

                    if run.settling is not None and not _batched(run.target, flow.entity):
                        await self._settle_together(run, batch, settled)
                    else:
                        async for change, action in self._settled(run, batch):
                            settled(change, action)
                    await self._save_cursor(run)
                    await self._report_progress(run)
                    if read_error is not None:
                        raise read_error
                run.looked_up.clear()
                return
            except RetryableError as exc:  # a read failure (a write's is a GaveUp)
                if isinstance(exc, BudgetSpent):
                    raise
                read_failures += 1
                if isinstance(exc, CircuitOpen) or read_failures >= self._retry_attempts or self.stopping.is_set():
                    raise
                delay = self._backoff(read_failures, exc, run.source.context.retry_after_cap)
                log.warning("read failed, reading again from the cursor", attempt=read_failures, delay=round(delay, 2), error=str(exc))
                self.beat(until=time.monotonic() + delay)
                await self._sleep(delay)
            finally:
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()
                if run.pending_cursor is not None or run.settling:  # a run cut short: keep what was settled
                    try:
                        await self._save_cursor(run)
                    except StateError as exc:  # must not hide why the run stopped; read again next time
                        log.warning("records settled before the run stopped not saved; read again next run", error=str(exc))

    async def _report_progress(self, run: FlowRun) -> None:
        """After a batch: the run's progress to the metrics, and, at most every
        ``progress_save_seconds`` / ``progress_log_seconds``, to its row (``apicenterd runs``) and the log."""
        progress = run.progress
        now = progress.clock()
        if not self.dry_run:
            remaining = progress.remaining_seconds()
            metrics.run_progress.labels(run.name).set(progress.done)
            metrics.run_progress_rate.labels(run.name).set(progress.rate())
            metrics.run_remaining_seconds.labels(run.name).set(-1 if remaining is None else remaining)
            if now - run.progress_saved >= self.progress_save_seconds:
                run.progress_saved = now
                try:
                    await self.store.run_progress(run.run_id, run.counts, progress.as_dict())
                except StateError as exc:  # progress is for people: a full disk fails the next settle, not this
                    run.log.warning("run progress not saved", error=str(exc))
        if now - run.progress_logged >= self.progress_log_seconds:
            run.progress_logged = now
            run.log.info("run progress", **progress.as_dict(), **run.counts)

    async def _save_cursor(self, run: FlowRun) -> None:
        """Write what the batch settled since the last save (:attr:`FlowRun.settling`) and its cursor
        in one transaction (one write a batch)."""
        cursor, run.pending_cursor = run.pending_cursor, None
        settlements = run.settling
        if settlements:
            run.settling = []
        if self.dry_run or (cursor is None and not settlements):
            return
        with anyio.CancelScope(shield=True):
            if settlements:
                await self.store.settle_many(run.name, settlements, cursor=cursor)
            else:
                await self.store.set_cursor(run.name, cursor)

    async def link(self, run: FlowRun, source_id: str) -> Link | None:
        """The link of source record ``source_id`` to the run's target: from the batch's look-up, else the store."""
        if source_id in run.links:
            return run.links[source_id]
        flow = run.flow
        return await self.store.get_link(flow.source, str(flow.entity), source_id, flow.target)

    async def _settled(self, run: FlowRun, batch: Sequence[Change]) -> AsyncIterator[tuple[Change, str]]:
        """Each change of ``batch`` taken to the target and settled, in order, with its action.

        A target that creates or updates in batches (its sink's ``create_many`` / ``update_many``,
        its document sink's ``create_many``) gets the batch's new, changed or new-document records
        in few calls: the changes are processed first (writes collected, settles held), then the
        writes are sent, then every change is settled in the source's order, so the cursor never
        passes a record whose write is not confirmed."""
        if not _batched(run.target, run.flow.entity) or self.dry_run or run.replay:
            for change in batch:
                if self.stopping.is_set():
                    raise _Stop
                action = await self._process(run, change)
                self.beat()
                yield change, action
            return
        run.deferred, run.pending, run.pending_updates, run.pending_documents = [], [], [], []
        try:
            for change in batch:
                if self.stopping.is_set():
                    raise _Stop
                await self._process(run, change)
                self.beat()
            await self._flush(run)
            settles = run.deferred
        finally:
            run.deferred, run.pending, run.pending_updates, run.pending_documents = None, [], [], []
            run.pending_debtors = {}
        for change, settle in zip(batch, settles, strict=True):
            action = await settle()
            self.beat()
            yield change, action

    async def _settle_together(self, run: FlowRun, batch: Sequence[Change], settled: Callable[[Change, str], None]) -> None:
        """Take each change of ``batch`` to the target, up to :attr:`writes_in_flight` at once, and
        settle them in the source's order as they are done (into :attr:`FlowRun.settling`, written
        at the end of the batch), calling ``settled(change, action)`` for each.

        Two changes with the same key or source id are never in flight together: the later waits
        for the earlier. If the run stops part-way (a call failed for good, a stop, a cancel), only
        the changes before the first unfinished one are settled: the cursor never passes a record
        whose outcome is not settled (one written but not settled is found by its key next run)."""
        settling = run.settling
        assert settling is not None
        count = len(batch)
        outcomes: list[tuple[str, list[Settlement]] | None] = [None] * count
        finished = [anyio.Event() for _ in range(count)]
        before: list[tuple[int, ...]] = []  # the earlier changes each one waits for
        last: dict[tuple[str, str], int] = {}
        for n, change in enumerate(batch):
            key = change.record.key() if change.record is not None else change.source_id
            marks = (("key", key), ("id", change.source_id))
            before.append(tuple({last[m] for m in marks if m in last}))
            for mark in marks:
                last[mark] = n
        failure: list[Exception] = []
        queue = iter(range(count))
        done = 0  # changes settled, in order

        def settle_in_order() -> None:
            nonlocal done
            while done < count and (outcome := outcomes[done]) is not None:
                change = batch[done]
                action, out = outcome
                settling.extend(out)
                if change.cursor is not None:
                    run.pending_cursor = change.cursor
                done += 1
                settled(change, action)

        async def worker() -> None:
            for n in queue:
                if failure:
                    return
                try:
                    if self.stopping.is_set():
                        raise _Stop
                    for earlier in before[n]:
                        await finished[earlier].wait()
                    out: list[Settlement] = []
                    action = await self._process(run, batch[n], out)
                    self.beat()
                    outcomes[n] = (action, out)
                    settle_in_order()
                except Exception as exc:  # noqa: BLE001 - the run stops: the others are called off, the first error is raised
                    if not failure:
                        failure.append(exc)
                    scope.cancel()
                    return
                finally:
                    finished[n].set()

        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                sink = run.target.sinks.get(run.flow.entity)
                limit = self._writes_in_flight(run, sink)
                for _ in range(min(limit, count)):
                    tg.start_soon(worker)
        if failure:
            raise failure[0]

    def _writes_in_flight(self, run: FlowRun, sink: Any) -> int:
        """Writes of one batch in flight at once: 1 for a sink that declares its writes dependent; else
        the flow's ``writes_in_flight``, the target connection's, or the engine's bound capped by the sink's."""
        declared = max(1, int(getattr(sink, "writes_in_flight", 1)))
        if declared == 1:
            return 1
        configured = run.flow.writes_in_flight
        if configured is None:
            configured = getattr(run.target.settings, "writes_in_flight", None)
        return int(configured) if configured is not None else min(self.writes_in_flight, declared)

    async def _flush(self, run: FlowRun) -> None:
        """Send the creates, updates and documents collected for the batch in hand and note each outcome."""
        await self._flush_creates(run)
        await self._flush_updates(run)
        await self._flush_documents(run)

    def batch_creates(self, entity: Entity, run: FlowRun) -> bool:
        """Whether the run's target creates ``entity`` in batches (its sink's ``create_many``)."""
        return _batch_create(run.target, entity)

    async def _create_many(
        self,
        run: FlowRun,
        entity: Entity,
        keys: Sequence[str],
        create: Callable[[list[int]], Awaitable[Sequence[str | RecordError]]],
        noun: str,
    ) -> list[str | RecordError]:
        """Create a batch (``create(todo)`` creates the items at positions ``todo`` of ``keys``, in
        one call of the target's ``create_many``), with retries: a retry first looks the items up by
        key, as the last try may have created some before its answer was lost, so none is created
        twice. One outcome per key: the new id, or why that item failed (the call's reason for all
        of them when the whole call was refused)."""
        target = run.target
        attempts = 0

        async def create_all() -> list[str | RecordError]:
            nonlocal attempts
            attempts += 1
            results: list[str | RecordError | None] = [None] * len(keys)
            if attempts > 1:
                found = await target.find_many(entity, list(keys))
                for n, key in enumerate(keys):
                    if key in found:
                        results[n] = found[key].id
            todo = [n for n, result in enumerate(results) if result is None]
            if todo:
                created = await create(todo)
                if len(created) != len(todo):
                    raise FatalError(f"{run.flow.target}: create_many answered {len(created)} results for {len(todo)} {noun}s")
                for n, result in zip(todo, created, strict=True):
                    results[n] = result
            return [r if r is not None else RecordError(f"no answer for this {noun}") for r in results]

        try:
            return await self._with_retries(run.log, f"create {len(keys)} {entity}", target, create_all)
        except RecordError as exc:  # the whole call was refused: each item fails with the reason
            return [exc] * len(keys)

    async def _flush_debtors(self, run: FlowRun) -> dict[str, str | RecordError]:
        """Create the debtors the batch's orders collected (``create_many``, with retries; a retry
        looks them up by e-mail first, so none is created twice): key -> new id or the error."""
        pending, run.pending_debtors = run.pending_debtors, {}
        if not pending:
            return {}
        target, entity = run.target, Entity.CUSTOMERS
        keys, records = list(pending), list(pending.values())
        outcome = await self._create_many(
            run, entity, keys, lambda todo: target.create_many(entity, [records[n] for n in todo]), "customer"
        )
        results: dict[str, str | RecordError] = {}
        for key, record, result in zip(keys, records, outcome, strict=True):
            results[key] = result
            if isinstance(result, str):
                run.log.info("customer created", target_id=result, kind=record.kind, key=key, batched=True)
                run.order_lookups[(entity, key)] = Found(result, record)
            else:
                run.order_lookups[(entity, key)] = None
        return results

    async def _flush_documents(self, run: FlowRun) -> None:
        """Send the documents collected for the batch in hand (the document sink's ``create_many``,
        with retries; a retry looks them up by number first, so none is created twice). The debtors
        they wait for are created first, together; a document whose debtor failed fails with it."""
        debtors = await self._flush_debtors(run)
        pending, run.pending_documents = run.pending_documents, []
        if debtors:
            ready = []
            for number, request, holder in pending:
                debtor = request.customer
                if debtor is None or not debtor.id.startswith(PENDING_DEBTOR):
                    ready.append((number, request, holder))
                    continue
                key = debtor.id.removeprefix(PENDING_DEBTOR)
                result = debtors.get(key)
                if not isinstance(result, str):
                    holder["result"] = RecordError(f"{number}: its customer {key!r} was not created: {result}")
                    run.looked_up[number] = None
                    continue
                holder["customer_id"] = result
                record = request.record.model_copy(update={"customer_id": result})
                ready.append((number, dataclasses.replace(request, record=record, customer=Found(result, debtor.record)), holder))
            pending = ready
        if not pending:
            return
        flow, target = run.flow, run.target
        sink = target.document_sink(flow.entity)
        numbers = [number for number, _, _ in pending]
        requests = [request for _, request, _ in pending]
        outcome = await self._create_many(run, flow.entity, numbers, lambda todo: sink.create_many([requests[n] for n in todo]), "document")
        for (number, _, holder), result in zip(pending, outcome, strict=True):
            holder["result"] = result
            run.looked_up[number] = Found(result, None) if isinstance(result, str) else None
            if isinstance(result, str):  # as a settled create: a later change of the order in this batch is skipped
                run.links[holder["source_id"]] = holder["link"](result)

    async def _flush_updates(self, run: FlowRun) -> None:
        """Send the updates collected for the batch in hand (``update_many``, with retries: an
        update is safe to send again) and note each outcome."""
        pending, run.pending_updates = run.pending_updates, []
        if not pending:
            return
        flow, target = run.flow, run.target
        updates = [update for _, update, _ in pending]

        async def update_all() -> Sequence[RecordError | None]:
            results = await target.update_many(flow.entity, updates)
            if len(results) != len(updates):
                raise FatalError(f"{flow.target}: update_many answered {len(results)} results for {len(updates)} records")
            return results

        try:
            outcome: Sequence[RecordError | None] = await self._with_retries(
                run.log, f"update {len(updates)} {flow.entity}", target, update_all
            )
        except RecordError as exc:  # the whole call was refused: each of its records fails with the reason
            outcome = [exc] * len(updates)
        for (_, _, holder), result in zip(pending, outcome, strict=True):
            holder["result"] = result
            if result is None:  # as a settled update: a later change of the record in this batch compares with it
                run.links[holder["source_id"]] = holder["link"]

    async def _flush_creates(self, run: FlowRun) -> None:
        """Send the creates collected for the batch in hand (``create_many``, with retries; a retry
        looks the records up by key first, so none is created twice) and note each outcome."""
        pending, run.pending = run.pending, []
        if not pending:
            return
        flow, target = run.flow, run.target
        keys = [key for key, _, _ in pending]
        records = [record for _, record, _ in pending]
        outcome = await self._create_many(
            run, flow.entity, keys, lambda todo: target.create_many(flow.entity, [records[n] for n in todo]), "record"
        )
        for (key, _, holder), result in zip(pending, outcome, strict=True):
            holder["result"] = result
            run.looked_up[key] = Found(result, None) if isinstance(result, str) else None
            if isinstance(result, str):  # as a settled create: a later change of the record in this batch updates it
                run.links[holder["source_id"]] = holder["link"](result)

    def _run_failed(self, run: FlowRun, result: RunResult, exc: ConnectorError, connection: str) -> None:
        """Record why the run failed; a refused credential pauses its connection until a reload."""
        error = error_text(exc)
        if isinstance(exc, RetryableError) and self.stopping.is_set():  # gave up retrying because of the stop
            result.status, result.error = "stopped", error
            run.log.info("run stopped for shutdown while retrying", error=error)
        else:
            result.status, result.error = "failed", error
            run.log.error("run failed", error=result.error)
        if isinstance(exc, AuthError) and connection not in self.paused:
            self.paused[connection] = redactor.scrub(str(exc))
            self.pause_fixes[connection] = pause_fix(connection, exc)
            if not self.dry_run:
                metrics.auth_failures.labels(connection).inc()
                metrics.connection_paused.labels(connection).set(1)
            flows = sorted(f.name for f in self.resolved.flows.values() if connection in (f.source, f.target))
            run.log.error(
                "connection paused until it is re-authorised: its flows do not run"
                if exc.reauthorize
                else "connection paused until its credentials are fixed: its flows do not run",
                connection=connection,
                paused_flows=flows,
                reason=self.paused[connection],
                fix=self.pause_fixes[connection],
            )
            # queued: never waits for the receiver
            self.alerter.connection_paused(connection, self.paused[connection], reauthorize=exc.reauthorize)

    def _finish_alerts(self, run: FlowRun, result: RunResult) -> None:
        """Queue the run's alerts (flow state, failed records, circuits); never waits for a receiver."""
        try:
            self.alerter.flow_result(run.name, result.status, result.error, run.failures, run.counts["failed"])
            for connector in (run.source, run.target):
                is_open, last_error = connector.context.circuit()
                self.alerter.circuit(connector.context.name, is_open, last_error)
        except Exception as exc:  # noqa: BLE001 - an alert problem must not hide the run's outcome
            self.log.error("alerts of the run could not be queued", flow=run.name, error=f"{type(exc).__name__}: {exc}")

    async def _process(self, run: FlowRun, change: Change, out: list[Settlement] | None = None) -> str:
        """Take one record to the target; settle it; return the action. A run of ``replay``: from
        the dead-letter queue (no cursor; every outcome is audited). ``out``: where its settlement
        goes, the cursor left to the caller (records of a batch in flight together)."""
        flow, target, replay = run.flow, run.target, run.replay
        record = change.record
        key = record.key() if record is not None else change.source_id
        rlog = run.log.bind(source_id=change.source_id, key=key)
        run.writes = []  # this record's own (a task in flight with others has its own)

        async def settle(action: str, *, target_id: str | None = None, reason: str | None = None, link: Link | None = None) -> str:
            writes, run.writes = run.writes, []  # what this record sent to the target: into its audit entry
            if run.deferred is not None:  # creates of the batch are being collected: settle after them, in order
                run.deferred.append(functools.partial(settle_now, action, target_id=target_id, reason=reason, link=link, writes=writes))
                return action
            return await settle_now(action, target_id=target_id, reason=reason, link=link, writes=writes)

        async def settle_now(
            action: str,
            *,
            target_id: str | None = None,
            reason: str | None = None,
            link: Link | None = None,
            writes: list[dict[str, Any]] | None = None,
        ) -> str:
            if self.dry_run:
                if action == "failed":  # what would fail, and why: the dry run lists them
                    run.failed(change.source_id, key, redactor.scrub(reason) or "")
                return action
            reason = redactor.scrub(reason)  # stored in the audit trail and dead letters, alerted
            if action != "unchanged" or link is not None or replay:
                diff = redactor.scrub(json.dumps(writes, default=str)) if writes else None
                entry = AuditEntry(flow.name, run.run_id, str(flow.entity), change.source_id, action, target_id, key, reason, diff=diff)
                payload = record.model_dump_json() if action == "failed" and record is not None else None
                if out is not None:  # settled in the source's order by the caller
                    out.append(Settlement(entry, link, payload))
                elif run.settling is not None:  # written with the batch's others, in one transaction
                    run.settling.append(Settlement(entry, link, payload))
                    if change.cursor is not None:
                        run.pending_cursor = change.cursor
                else:
                    await self.store.settle(entry, link=link, cursor=change.cursor, payload=payload)
                    if change.cursor is not None:
                        run.pending_cursor = None  # saved with this one
                if link is not None:
                    run.links[change.source_id] = link
                if action == "failed":
                    run.letters.pop(change.source_id, None)  # it has one now: read it if the record comes again
                else:
                    run.letters[change.source_id] = None  # resolved
            elif change.cursor is not None and out is None:
                # nothing happened: the cursor moves (saved with the next settle or at the end of the
                # batch), the audit trail keeps to real events
                run.pending_cursor = change.cursor
            if action == "failed":
                run.failed(change.source_id, key, reason or "")
            return action

        if change.error is not None or record is None:
            reason = change.error or "the source gave no record"
            rlog.warning(self.said("record failed in the source"), reason=reason)
            return await settle("failed", reason=reason)
        if not replay and not self.dry_run:
            if change.source_id in run.letters:
                letter = run.letters[change.source_id]
            else:
                letter = await self.store.open_dead_letter(flow.name, change.source_id)
            if (
                letter is not None
                and letter.payload == record.model_dump_json()
                and time.time() < letter.last_failed_at + dead_letter_backoff(letter.attempts)
                and letter.last_failed_at >= run.config_since  # failed under the flow's configuration as it is now
            ):
                # failed before exactly as it is now: try again only after a growing pause (what
                # it lacked may have appeared meanwhile, e.g. the product for its stock)
                rlog.debug("record unchanged since it failed; waiting out its backoff", dead_letter=letter.id)

                async def waiting() -> str:
                    if change.cursor is not None and out is None:  # saved with the next settle or at the end of the batch
                        run.pending_cursor = change.cursor
                    return "waiting"

                if run.deferred is not None:  # in order, after the batch's creates are confirmed
                    run.deferred.append(waiting)
                    return "waiting"
                return await waiting()

        try:
            prepared = prepare(flow.entity, flow.options, record)
        except RecordError as exc:
            rlog.warning(self.said("record failed"), reason=str(exc))
            return await settle("failed", reason=str(exc))
        if isinstance(prepared, Skip):
            rlog.debug("record skipped", reason=prepared.reason)
            return await settle("skipped", reason=prepared.reason)
        for flt in flow.filters:
            if not flt.matches(prepared):
                reason = f"filtered out: {flt.describe()} is not true"
                rlog.debug("record skipped", reason=reason)
                return await settle("skipped", reason=reason)

        try:
            prepared = flow.mapper.apply(prepared) if flow.mapper is not None else prepared
            prepared = self._own_custom_fields(flow, prepared)
            if flow.entity in (Entity.ORDERS, Entity.INVOICES):
                if not isinstance(prepared, Order):  # select() gives every order flow an Order
                    raise RecordError(f"{flow.entity} flow: expected an order, got {type(prepared).__name__}")
                return await OrderProcess(self, run, rlog).run(change, prepared, settle)
            prepared = target.normalize(flow.entity, prepared)
            fields = frozenset(target.written_fields.get(flow.entity) or type(prepared).model_fields)
            update_fields = fields - flow.create_only_fields
            digest = record_hash(prepared, fields - self.hash_exempt_fields(flow))
            if run.deferred is not None and any(k == key or h["source_id"] == change.source_id for k, h in run.in_flight()):
                # a second record with a key, or a second change of a record, being written: write the first now
                await self._flush(run)
            link = await self.link(run, change.source_id)

            def new_link(target_id: str) -> Link:
                return Link(flow.source, str(flow.entity), change.source_id, flow.target, target_id, digest)

            async def updated(target_id: str, changed: frozenset[str], reason: str | None = None, found: Found | None = None) -> str:
                if run.deferred is not None and _batch_update(target, flow.entity):  # sent with the batch's other updates
                    holder: dict[str, Any] = {"source_id": change.source_id, "link": new_link(target_id)}
                    run.pending_updates.append((key, (target_id, prepared, changed), holder))

                    async def settle_update() -> str:
                        result = holder.get("result", RecordError("the batch update gave no answer for this record"))
                        if result is None:
                            rlog.info(self.said("record updated"), target_id=target_id, fields=sorted(changed), batched=True)
                            return await settle_now("updated", target_id=target_id, reason=reason, link=new_link(target_id))
                        rlog.warning("record failed", reason=str(result))
                        return await settle_now("failed", reason=str(result))

                    run.deferred.append(settle_update)
                    return "updated"
                current = found.record if found is not None else None
                await self.write(run, rlog, "update", flow.entity, target_id, prepared, changed, current, found=found)
                rlog.info(self.said("record updated"), target_id=target_id, fields=sorted(changed))
                return await settle("updated", target_id=target_id, reason=reason, link=new_link(target_id))

            if link is not None and link.hash == digest:
                rlog.debug("record unchanged", target_id=link.target_id)
                return await settle("unchanged")
            update_existing = run.update_existing
            if link is not None:
                target_id = link.target_id
                if not update_existing:  # the link keeps the hash of what was written: switched on, this is written
                    return await settle("skipped", target_id=target_id, reason="exists in target; update_existing = false")
                return await updated(target_id, update_fields)
            if key in run.looked_up:
                found = run.looked_up[key]
            else:
                found = await self._with_retries(rlog, f"find {key}", target, target.find, flow.entity, key)
            if found is not None:
                changed = differing_fields(prepared, found.record, update_fields)
                if not changed:
                    rlog.info(self.said("record already in target, linked"), target_id=found.id)
                    return await settle("unchanged", target_id=found.id, reason="found in target by key; linked", link=new_link(found.id))
                if not update_existing:  # linked with no hash (nothing written): switched on, it is updated
                    unwritten = Link(flow.source, str(flow.entity), change.source_id, flow.target, found.id, "")
                    return await settle("skipped", target_id=found.id, reason="exists in target; update_existing = false", link=unwritten)
                action = await updated(found.id, changed, "found in target by key", found)
                if key in run.looked_up:  # what was found is stale now: a second record with this key reads it again
                    run.looked_up[key] = Found(found.id, None)
                return action
            if run.deferred is not None:  # created with the batch's other new records (see _settled)
                holder: dict[str, Any] = {"source_id": change.source_id, "link": new_link}
                run.pending.append((key, prepared, holder))

                async def created() -> str:
                    result = holder.get("result")
                    if isinstance(result, str):
                        rlog.info(self.said("record created"), target_id=result, batched=True)
                        sent = [written("create", str(flow.entity), result, prepared, fields, None)]
                        return await settle_now("created", target_id=result, link=new_link(result), writes=sent)
                    reason = str(result) if result is not None else "the batch create gave no answer for this record"
                    rlog.warning(self.said("record failed"), reason=reason)
                    return await settle_now("failed", reason=reason)

                run.deferred.append(created)
                return "created"
            target_id = await self.write(run, rlog, "create", flow.entity, None, prepared, fields, None)
            if key in run.looked_up:  # a second source record with this key finds it
                run.looked_up[key] = Found(target_id, None)
            rlog.info(self.said("record created"), target_id=target_id)
            return await settle("created", target_id=target_id, link=new_link(target_id))
        except RecordError as exc:
            rlog.warning(self.said("record failed"), reason=str(exc))
            return await settle("failed", reason=str(exc))

    def hash_exempt_fields(self, flow: Flow) -> frozenset[str]:
        """The fields a link's hash leaves out: the flow's ``create_only_fields`` that every flow
        sharing its links (same source, entity and target) has create-only, so that flows which
        differ in them store the same hash and do not each take the other's for a change."""
        exempt = flow.create_only_fields
        for other in self.resolved.flows.values():
            if (other.source, other.entity, other.target) == (flow.source, flow.entity, flow.target):
                exempt = exempt & other.create_only_fields
        return exempt

    def said(self, event: str) -> str:
        """A record's log event as it happened, or, in a dry run, as what would happen: "record
        created" → "would create record", "customer updated" → "would update customer", "record
        failed" → "record would fail", "… linked" → "would link …"."""
        if not self.dry_run:
            return event
        return _would(event)

    async def _prefetch(self, run: FlowRun, batch: Sequence[Change]) -> None:
        """Look up, in one ``find_many``, the batch's records that were never linked (first runs)."""
        run.looked_up.clear()
        run.links.clear()
        run.letters.clear()
        run.order_lookups.clear()
        if not batch:
            return
        flow, target = run.flow, run.target
        ids = [change.source_id for change in batch]
        links = await self.store.get_links(flow.source, str(flow.entity), ids, flow.target)
        run.links.update({source_id: links.get(source_id) for source_id in ids})
        if not run.replay and not self.dry_run:
            letters = await self.store.open_dead_letters(flow.name, ids)
            run.letters.update({source_id: letters.get(source_id) for source_id in ids})
        if flow.entity in (Entity.ORDERS, Entity.INVOICES):
            await self._prefetch_orders(run, [c for c in batch if c.record is not None and links.get(c.source_id) is None])
            return
        if not _batch_lookup(target, flow.entity):
            return
        keys = [change.record.key() for change in batch if change.record is not None and links.get(change.source_id) is None]
        if len(keys) < 2:
            return
        keys = list(dict.fromkeys(keys))
        found = await self._with_retries(run.log, f"find {len(keys)} {flow.entity}", target, target.find_many, flow.entity, keys)
        run.looked_up.update({key: found.get(key) for key in keys})

    async def _prefetch_orders(self, run: FlowRun, changes: Sequence[Change]) -> None:
        """For an order flow: look up, each in one ``find_many`` where the target has it, the batch's
        unlinked documents by number, their debtors by e-mail and their articles by SKU (what the
        order process would otherwise ask one order at a time)."""
        target, log = run.target, run.log
        numbers = list(dict.fromkeys(c.record.key() for c in changes if c.record is not None))
        if len(numbers) >= 2 and _batch_lookup(target, run.flow.entity):
            entity = run.flow.entity
            found = await self._with_retries(log, f"find {len(numbers)} {entity}", target, target.find_many, entity, numbers)
            run.looked_up.update({number: found.get(number) for number in numbers})
        emails: dict[str, None] = {}
        skus: dict[str, None] = {}
        for change in changes:
            record = change.record
            customer = getattr(record, "customer", None)
            if customer is not None and customer.email and Entity.CUSTOMERS in target.sinks:
                with contextlib.suppress(RecordError, ValueError):
                    emails[target.normalize(Entity.CUSTOMERS, customer).key()] = None
            for line in getattr(record, "lines", ()):
                if line.sku:
                    skus[line.sku] = None
        for entity, keys in ((Entity.CUSTOMERS, list(emails)), (Entity.PRODUCTS, list(skus))):
            if keys and len(changes) >= 2 and _batch_lookup(target, entity):
                found = await self._with_retries(log, f"find {len(keys)} {entity}", target, target.find_many, entity, keys)
                run.order_lookups.update({(entity, key): found.get(key) for key in keys})

    async def write(
        self,
        run: FlowRun,
        log: Any,
        op: str,
        entity: Entity,
        target_id: str | None,
        record: Record,
        fields: frozenset[str],
        current: Record | None,
        create: Callable[[], Awaitable[str]] | None = None,
        *,
        found: Found | None = None,
    ) -> str:
        """Create or update in the run's target, or in a dry run only note what would be written.
        ``create``: how to create (a document sink's call) instead of ``target.create``; ``found``:
        what the look-up by key returned for the record updated (the sink may spare a read)."""
        target = run.target
        if self.dry_run:
            self.plans.append(plan(op, str(entity), target_id, record, fields, current))
            return target_id or f"(new {entity} {record.key()})"
        if op == "create":
            attempts = 0

            async def create_once() -> str:
                # A retry may follow a create that was applied but whose answer was lost (a
                # timeout, a dropped connection, a gateway's 5xx): look before creating again.
                nonlocal attempts
                attempts += 1
                if attempts > 1:
                    found = await target.find(entity, record.key())
                    if found is not None:
                        log.info("create was applied before its answer was lost; found by key", target_id=found.id)
                        return found.id
                if create is not None:
                    return await create()
                return await target.create(entity, record)

            created: str = await self._with_retries(log, f"create {record.key()}", target, create_once)
            run.writes.append(written("create", str(entity), created, record, fields, None))
            return created
        if found is not None:
            await self._with_retries(log, f"update {record.key()}", target, target.update_found, entity, found, record, fields)
        else:
            await self._with_retries(log, f"update {record.key()}", target, target.update, entity, target_id, record, fields)
        run.writes.append(written("update", str(entity), target_id, record, fields, current))
        return target_id or ""

    async def call(self, run: FlowRun, log: Any, what: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Call ``fn`` of the run's target with the engine's retries (the order process's door)."""
        return await self._with_retries(log, what, run.target, fn, *args)


def _named_custom_fields(record: Customer | Product, fields: list[str], prefix: str, named: set[str]) -> Any:
    """``record`` with only the custom fields in ``named`` or set by a map rule on ``{prefix}custom_fields...``."""
    if not record.custom_fields:
        return record
    whole = f"{prefix}custom_fields"
    for field in fields:
        if field == whole:
            return record
        if field.startswith(whole + "."):
            named.add(field[len(whole) + 1 :].split(".", 1)[0])
    kept = {k: v for k, v in record.custom_fields.items() if k in named}
    return record if len(kept) == len(record.custom_fields) else record.model_copy(update={"custom_fields": kept})

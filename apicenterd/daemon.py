"""The long-running daemon: metrics endpoint, state store, engine, signals, reload, systemd.

A reload (SIGHUP) never takes the daemon down: whatever goes wrong loading the new
configuration, the old one keeps running, the reason is logged and alerted, and the outcome
is written to ``<state path>.reload`` (JSON: ``generation``, ``result`` applied/refused,
``reason``, ``pid``, ``at``) for ``apicenterd reload`` to report to ``systemctl reload``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from . import __version__, systemd
from .config import Resolved, load
from .engine import Engine
from .errors import ConfigError, StateError
from .observe import logs, metrics
from .observe.alerts import Alert, Alerter
from .registry import Registry
from .state import DaemonLock, StateStore, store_for

__all__ = ["Daemon", "PurgeResult", "purge", "reload_status_path", "read_reload_status"]

DAY = 86400.0
RELOAD_ANSWER_TIMEOUT = 120.0
"""Seconds a reload through the admin API waits for the daemon's outcome."""
MAX_REASON = 2000
"""Characters of a refused reload's reason kept in the status file and the alert."""


RESTART_SETTINGS = ("daemon.metrics_address", "state.backend", "state.path", "state.url")
"""Settings a reload cannot apply: the metrics server keeps its address, the daemon its state store
(and ``admin.*``: the admin server keeps its address and token). Everything else in ``[daemon]``,
``[state]`` and ``[alerts]`` applies at the reload: the log level at once, alert receivers and their
limits with the next alert, retention and check intervals with the next purge or check, circuit
breakers, timeouts and ``token_key`` with the new engine."""


def changed_settings(old: Resolved, new: Resolved) -> tuple[list[str], list[str]]:
    """The ``daemon.*``, ``state.*``, ``alerts.*`` and ``admin.*`` settings that differ between two
    configurations: (applied by a reload, needing a restart), as dotted names."""
    live: list[str] = []
    restart: list[str] = []
    for section in ("daemon", "state", "alerts", "admin"):
        before, after = getattr(old.config, section), getattr(new.config, section)
        for field in type(before).model_fields:
            if getattr(before, field) != getattr(after, field):
                name = f"{section}.{field}"
                (restart if section == "admin" or name in RESTART_SETTINGS else live).append(name)
    if old.state_path != new.state_path and "state.path" not in restart and new.config.state.url is None:
        restart.append("state.path")  # the same setting, read from another folder
    if old.admin_token != new.admin_token and "admin.token" not in restart:
        restart.append("admin.token")  # the same reference, another secret behind it
    if getattr(old, "token_key", None) != getattr(new, "token_key", None) and "state.token_key" not in live:
        live.append("state.token_key")
    return live, restart


def reload_status_path(state_path: Path) -> Path:
    """Where the daemon records the outcome of its last reload: ``<state path>.reload``."""
    return Path(f"{state_path}.reload")


def read_reload_status(path: Path) -> dict[str, Any] | None:
    """The last reload outcome the daemon recorded at ``path``; None if none (or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("generation"), int) else None


@dataclasses.dataclass(frozen=True)
class PurgeResult:
    """What one retention purge did."""

    audit_entries: int = 0
    dead_letters: int = 0
    """Resolved or discarded dead letters deleted."""
    dead_letter_records: int = 0
    """Open dead letters that lost their record (payload, key) but stay listed."""
    runs: int = 0
    warned: Mapping[str, int] = dataclasses.field(default_factory=dict)
    """Open dead letters per flow whose owner was just warned that they lose their record soon."""

    def __bool__(self) -> bool:
        return any((self.audit_entries, self.dead_letters, self.dead_letter_records, self.runs, self.warned))


async def purge(store, state_config, now: float | None = None, alerter: Alerter | None = None) -> PurgeResult:
    """Delete what is past its retention (personal data): audit entries, finished runs, resolved and
    discarded dead letters. Open dead letters are never dropped: they lose their record but stay
    listed, and ``alerter`` is told (once per letter, per flow) ``dead_letter_warning_days`` before."""
    now = time.time() if now is None else now
    retention, warning = state_config.dead_letter_retention_days, state_config.dead_letter_warning_days
    expired = now - retention * DAY
    warned: dict[str, int] = {}
    # first those already past retention (the daemon was down, or warning_days is 0): they lose it now
    for days, older_than in ((0, expired), (min(warning, retention), now - max(retention - warning, 0) * DAY)):
        for flow, count in (await store.warn_dead_letters(older_than)).items():
            warned[flow] = warned.get(flow, 0) + count
            if alerter is not None:
                alerter.dead_letters_expiring(flow, count, days)
    audit = await store.purge_audit(now - state_config.audit_retention_days * DAY)
    deleted, stripped = await store.purge_dead_letters(expired)
    runs = await store.purge_runs(now - state_config.runs_retention_days * DAY)
    return PurgeResult(audit, deleted, stripped, runs, warned)


class Daemon:
    """One daemon process: runs the configuration at ``config_path`` until SIGTERM."""

    def __init__(self, config_path: Path, registry: Registry, resolved: Resolved):
        self.config_path = config_path
        self.registry = registry
        self.resolved = resolved
        self.engine: Engine | None = None
        self.log = logs.get_logger()
        self._stop = False
        self._pending: Resolved | None = None
        self.failure: StateError | None = None
        """Why the daemon stopped on its own (the state file is gone); raised by :meth:`run`."""
        self.alerter = Alerter(resolved.config.alerts)  # outlives reloads: failing/recovered state
        self.reload_status = reload_status_path(resolved.state_path)
        self._generation = 0
        self.watchdog_ticks = 0
        """Rounds of the watchdog task (pinged or not); tests wait on it."""
        self.watchdog_wedged = False
        """Whether the watchdog stopped pinging because a flow makes no progress."""
        self.admin: Any = None
        """The admin server (``[admin]``), once it listens; ``admin.url`` is where."""
        self.backend: Any = None
        """What the admin API acts on (:class:`~apicenterd.admin.Backend`), while the daemon runs."""
        self.cluster: Any = None
        """PostgreSQL state: this daemon as a procrastinate worker among several (:class:`~apicenterd.cluster.Cluster`)."""
        self._reloaded = anyio.Event()
        self._last_reload: tuple[str, str | None] = ("applied", None)
        self._reload_note: str | None = None
        """For an applied reload: the changed settings it could not apply (they need a restart)."""
        self._changed_live: list[str] = []

    async def run(self) -> None:
        """Serve until stopped; reload on SIGHUP. A second daemon on the same state store raises
        :class:`~apicenterd.state.DaemonRunning` naming the first."""
        with DaemonLock(self.resolved.state_path):
            await self._run_locked()

    async def _run_locked(self) -> None:
        daemon_cfg = self.resolved.config.daemon
        admin_socket = None
        if self.resolved.admin_token is not None:
            from .admin import bind

            admin_socket = bind(self.resolved.config.admin.address)  # before anything starts: a clear error
        if daemon_cfg.metrics_address:
            try:
                host, port = metrics.serve(daemon_cfg.metrics_address)
            except OSError as exc:  # the port is taken (or the host is not ours): the configuration's, said so
                if admin_socket is not None:
                    admin_socket.close()
                reason = exc.strerror or str(exc)
                raise ConfigError([f"daemon.metrics_address: cannot listen on {daemon_cfg.metrics_address}: {reason}"]) from None
            self.log.info("metrics listening", url=f"http://{host}:{port}/metrics")
        store = store_for(self.resolved.config.state.url, self.resolved.state_path)
        if self.resolved.config.state.url:  # several daemons may share it: procrastinate decides who runs what
            from .cluster import Cluster

            # every flow running at once makes state calls: a connection each, and a few for the rest
            store._max_size = max(store._max_size, self.resolved.config.state.worker_concurrency + 2)  # type: ignore[attr-defined]

            self.cluster = Cluster(self.resolved.config.state.url, self.resolved.config.state)
            store.daemon = self.cluster.name  # type: ignore[attr-defined]  # a PostgresStore: runs say which daemon
        try:
            await store.open()
            if self.cluster is not None:
                await self.cluster.open()
        except Exception as exc:
            if not isinstance(exc, StateError):  # the job engine's pool could not connect
                if self.cluster is None or isinstance(exc, ConfigError):
                    raise
                exc = StateError(
                    f"PostgreSQL state {store.where}: the job engine cannot connect ({exc})",  # type: ignore[attr-defined]
                    path=getattr(store, "where", ""),
                    cause="cannot_open",
                )
            await self._state_failed(exc)
            raise exc from None
            await self._state_failed(exc)
            raise
        self.log.info(
            "daemon starting",
            version=__version__,
            config=str(self.config_path),
            state=getattr(store, "where", str(self.resolved.state_path)),
            flows=sorted(self.resolved.flows),
        )
        self._generation = (read_reload_status(self.reload_status) or {}).get("generation", 0)
        try:
            async with anyio.create_task_group() as sender:
                await sender.start(self.alerter.run)  # its own task: a stuck receiver holds up nothing else
                if admin_socket is not None:
                    await self._start_admin(sender, store, admin_socket)
                try:
                    await self._serve(store)
                finally:
                    if self.admin is not None:
                        await self.admin.stop()
                    with anyio.CancelScope(shield=True):  # bounded: alerts.flush_timeout
                        await self.alerter.flush()
                    sender.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                if self.failure is not None:
                    self.failure = await self._state_failed(self.failure, store)
                if self.cluster is not None:
                    await self.cluster.close()
                await store.close()
            systemd.notify("STOPPING=1")
            self.log.info("daemon stopped")
        if self.failure is not None:
            raise self.failure

    async def _start_admin(self, tg: anyio.abc.TaskGroup, store: StateStore, sock: Any) -> None:
        """The admin API, dashboard and webhooks on ``sock``, in ``tg``, until the daemon stops."""
        from .admin import AdminServer, Backend, build_app

        token = self.resolved.admin_token
        assert token is not None
        admin = self.resolved.config.admin
        self.backend = Backend(
            lambda: self.resolved, store, lambda: self.engine, self.reload_and_wait, debounce=admin.webhook_debounce_seconds
        )
        self.backend.cluster = self.cluster
        await tg.start(self.backend.serve)
        self.admin = AdminServer(build_app(self.backend, token), sock)
        await tg.start(self.admin.serve)
        url = self.admin.url
        self.log.info("admin API listening", url=url, dashboard=f"{url}/", webhooks=f"{url}/webhooks/CONNECTION")

    async def reload_and_wait(self) -> tuple[str, str | None]:
        """Reload as on SIGHUP and wait for the outcome: ``("applied", None)`` or ``("refused", reason)``."""
        generation, done = self._generation, self._reloaded
        self._reload()
        timeout = RELOAD_ANSWER_TIMEOUT
        with anyio.move_on_after(timeout):
            while self._generation == generation:
                await done.wait()
                done = self._reloaded
            return self._last_reload
        return "refused", f"no outcome within {timeout:g} s (the daemon may be stopping); see its log"

    async def _serve(self, store: StateStore) -> None:
        """The engine, replaced on each applied reload, until stopped."""
        reloaded = False
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._signals)
            tg.start_soon(self._watchdog)
            tg.start_soon(self._purge, store)
            tg.start_soon(self._watch_state, store)
            while True:
                self.alerter.config = self.resolved.config.alerts
                engine = self.engine = Engine(self.resolved, store, alerter=self.alerter)
                done = anyio.Event()

                async def serve(engine: Engine = engine, done: anyio.Event = done, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
                    try:
                        if self.cluster is not None:
                            await self.cluster.serve(engine, task_status=task_status)
                        else:
                            await engine.serve(task_status=task_status)
                    finally:
                        await engine.aclose()
                        done.set()

                await tg.start(serve)
                systemd.notify("READY=1", f"STATUS=running {len(self.resolved.flows)} flows")
                if reloaded:
                    self._record_reload("applied", self._reload_note)
                await done.wait()
                if self._stop or self._pending is None:
                    break
                old, self.resolved, self._pending = self.resolved, self._pending, None
                reloaded = True
                self._apply_live(old)
                self.log.info("configuration reloaded", flows=sorted(self.resolved.flows), settings_applied=self._changed_live)
            tg.cancel_scope.cancel()

    def _apply_live(self, old: Resolved) -> None:
        """What a reload changes at once besides the engine: the log level (loggers the daemon keeps
        across reloads are bound again at the new level). Alert settings reach the alerter with the
        new engine; [state] retention and intervals are read where they are used."""
        level = self.resolved.config.daemon.log_level
        if level != old.config.daemon.log_level:
            logs.set_level(level)
            self.log = logs.get_logger()
            self.alerter.log = logs.get_logger(component="alerts")
            if self.backend is not None and hasattr(self.backend, "log"):
                self.backend.log = logs.get_logger()
            self.log.info("log level changed", log_level=level, was=old.config.daemon.log_level)

    def stop(self) -> None:
        """Stop after the records in flight (what SIGTERM does)."""
        self._stop = True
        if self.engine is not None:
            self.engine.stop()

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as received:
            async for signum in received:
                if signum == signal.SIGHUP:
                    self._reload()
                    continue
                self.log.info("signal received, stopping", signal=signal.Signals(signum).name)
                systemd.notify("STOPPING=1")
                self.stop()

    def _reload(self) -> None:
        if self._stop:
            return
        systemd.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            new = load(self.config_path, self.registry)
        except ConfigError as exc:
            self.log.error("reload refused: configuration is invalid; the old one keeps running", problems=exc.problems)
            self._refuse("invalid configuration: " + "; ".join(exc.problems))
            return
        except Exception as exc:  # noqa: BLE001 - whatever a broken file makes the parser raise (RecursionError, ...)
            error = f"{type(exc).__name__}: {exc}"
            self.log.error("reload refused: configuration cannot be loaded; the old one keeps running", error=error)
            self._refuse(f"cannot load {self.config_path}: {error}")
            return
        self.log.info("reloading configuration", config=str(self.config_path))
        live, restart = changed_settings(self.resolved, new)
        self._reload_note = None
        if restart:
            self._reload_note = (
                f"changed settings that take effect only at the next restart (systemctl restart apicenterd): {', '.join(restart)}; "
                "until then the daemon keeps their old values"
            )
            self.log.warning(
                "reload: some changed settings need a restart; the daemon keeps their old values until then",
                restart_needed=restart,
            )
        self._changed_live = live
        self._pending = new
        if self.engine is not None:
            self.engine.stop()

    def _refuse(self, reason: str) -> None:
        """A refused reload: tell systemd, the operator (alert) and ``apicenterd reload``."""
        reason = reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 3] + "..."
        systemd.notify("READY=1", f"STATUS=reload refused: {reason[:200]}")
        self.alerter.send(
            Alert(
                "reload_refused",
                "apicenterd: configuration reload refused",
                f"configuration reload refused: {reason}\nThe daemon keeps running the previous configuration. "
                f"Fix {self.config_path} (apicenterd check --config {self.config_path}), then reload again.",
            )
        )
        self._record_reload("refused", reason)

    def _record_reload(self, result: str, reason: str | None = None) -> None:
        """Write the reload outcome atomically (a reader never sees half a file)."""
        self._generation += 1
        self._last_reload = (result, reason)
        self._reloaded.set()
        self._reloaded = anyio.Event()
        status = {"generation": self._generation, "result": result, "reason": reason, "pid": os.getpid(), "at": time.time()}
        tmp = self.reload_status.with_name(self.reload_status.name + ".tmp")
        try:
            tmp.write_text(json.dumps(status), encoding="utf-8")
            os.replace(tmp, self.reload_status)
        except OSError as exc:
            self.log.error("reload status not written", path=str(self.reload_status), error=str(exc))

    async def _purge(self, store) -> None:
        """Hourly: delete what is past its retention (personal data); warn before open dead letters lose theirs."""
        while True:
            try:
                done = await purge(store, self.resolved.config.state, alerter=self.alerter)
                if done:
                    self.log.info(
                        "retention purge",
                        audit_entries=done.audit_entries,
                        dead_letters=done.dead_letters,
                        dead_letter_records=done.dead_letter_records,
                        runs=done.runs,
                        warned=dict(done.warned),
                    )
            except StateError as exc:  # e.g. a full disk: the flows say so too; a purge must not stop them
                self.log.error("retention purge failed", error=str(exc))
            except Exception as exc:  # noqa: BLE001 - a purge problem must not stop the flows
                self.log.error("retention purge failed", error=f"{type(exc).__name__}: {exc}")
            await anyio.sleep(3600)

    async def _watch_state(self, store) -> None:
        """Every ``[state] file_check_seconds``: is the state file still the one open? Deleted or
        replaced, everything written from now on would be lost: stop (non-zero exit)."""
        while True:
            await anyio.sleep(self.resolved.config.state.file_check_seconds)
            try:
                await store.check_file()
            except StateError as exc:
                self.log.error("state file lost, stopping", path=exc.path, cause=exc.cause)
                self.failure = exc
                self._stop = True
                if self.engine is not None:
                    self.engine.stop()
                return

    async def _state_failed(self, exc: StateError, store=None) -> StateError:
        """Log and alert a state file that cannot be used; rescue the open database of one that was
        deleted or replaced into a copy next to it. The error to exit with."""
        if store is not None and exc.cause in ("deleted", "replaced"):
            copy = Path(f"{exc.path}.rescued-{time.strftime('%Y%m%dT%H%M%S')}")
            try:
                await store.save_copy(copy)
            except Exception as failed:  # noqa: BLE001 - the folder may be gone too
                saved = f" A copy of its content could not be saved to {copy} ({failed.__cause__ or failed})"
            else:
                saved = (
                    f" Its content up to now was saved to {copy}: to go on with it, "
                    f"mv {copy} {exc.path}, then start apicenterd"
                )
                self.log.info("state rescued", copy=str(copy))
            exc = StateError(f"{exc}.{saved}", path=exc.path, cause=exc.cause)
        self.log.error("state file cannot be used, stopping", path=exc.path, cause=exc.cause, error=str(exc))
        self.alerter.state_failed(str(exc))
        await self.alerter.flush()  # the sender task may be gone already; bounded by alerts.flush_timeout
        return exc

    async def _watchdog(self) -> None:
        """Ping systemd's watchdog while every flow makes progress (``Engine.stalled``); a
        flow stuck longer than ``daemon.stall_timeout`` stops the pings, so systemd restarts
        the daemon. A blocked event loop stops them too (this task cannot run)."""
        interval = systemd.watchdog_interval()
        if interval is None:
            return
        while True:
            engine = self.engine
            stalled = engine.stalled(self.resolved.config.daemon.stall_timeout) if engine is not None else {}
            if not stalled:
                if self.watchdog_wedged:
                    self.log.warning("engine making progress again, pinging the watchdog")
                    self.watchdog_wedged = False
                systemd.notify("WATCHDOG=1")
            elif not self.watchdog_wedged:
                self.watchdog_wedged = True
                self.log.error(
                    "engine wedged, not pinging the watchdog: systemd will restart the daemon",
                    stalled_seconds=stalled,
                    stall_timeout=self.resolved.config.daemon.stall_timeout,
                )
                self.alerter.send(
                    Alert(
                        "engine_wedged",
                        "apicenterd: engine wedged, the watchdog will restart it",
                        "No progress for more than daemon.stall_timeout seconds in flow(s) "
                        + ", ".join(f"{f} ({s:g} s)" for f, s in sorted(stalled.items())),
                    )
                )
            self.watchdog_ticks += 1
            await anyio.sleep(interval)

"""The long-running daemon: metrics endpoint, state store, engine, signals, reload, systemd."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import anyio

from . import __version__, systemd
from .config import Resolved, load
from .engine import Engine
from .errors import ConfigError
from .observe import logs, metrics
from .observe.alerts import Alerter
from .registry import Registry
from .state import DaemonLock, SQLiteStore

__all__ = ["Daemon", "purge"]

DAY = 86400.0


async def purge(store, state_config, now: float | None = None) -> tuple[int, int]:
    """Delete what is past its retention; (audit entries, dead letters) deleted."""
    now = time.time() if now is None else now
    audit = await store.purge_audit(now - state_config.audit_retention_days * DAY)
    letters = await store.purge_dead_letters(now - state_config.dead_letter_retention_days * DAY)
    return audit, letters


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
        self.alerter = Alerter(resolved.config.alerts)  # outlives reloads: failing/recovered state

    async def run(self) -> None:
        """Serve until stopped; reload on SIGHUP. A second daemon on the same state store raises
        :class:`~apicenterd.state.DaemonRunning` naming the first."""
        with DaemonLock(self.resolved.state_path):
            await self._serve()

    async def _serve(self) -> None:
        daemon_cfg = self.resolved.config.daemon
        if daemon_cfg.metrics_address:
            host, port = metrics.serve(daemon_cfg.metrics_address)
            self.log.info("metrics listening", url=f"http://{host}:{port}/metrics")
        store = SQLiteStore(self.resolved.state_path)
        await store.open()
        self.log.info(
            "daemon starting",
            version=__version__,
            config=str(self.config_path),
            state=str(self.resolved.state_path),
            flows=sorted(self.resolved.flows),
        )
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._signals)
                tg.start_soon(self._watchdog)
                tg.start_soon(self._purge, store)
                while True:
                    self.alerter.config = self.resolved.config.alerts
                    engine = self.engine = Engine(self.resolved, store, alerter=self.alerter)
                    done = anyio.Event()

                    async def serve(engine: Engine = engine, done: anyio.Event = done, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
                        try:
                            await engine.serve(task_status=task_status)
                        finally:
                            await engine.aclose()
                            done.set()

                    await tg.start(serve)
                    systemd.notify("READY=1", f"STATUS=running {len(self.resolved.flows)} flows")
                    await done.wait()
                    if self._stop or self._pending is None:
                        break
                    self.resolved, self._pending = self._pending, None
                    self.log.info("configuration reloaded", flows=sorted(self.resolved.flows))
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await store.close()
            systemd.notify("STOPPING=1")
            self.log.info("daemon stopped")

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as received:
            async for signum in received:
                if signum == signal.SIGHUP:
                    self._reload()
                    continue
                self.log.info("signal received, stopping", signal=signal.Signals(signum).name)
                systemd.notify("STOPPING=1")
                self._stop = True
                if self.engine is not None:
                    self.engine.stop()

    def _reload(self) -> None:
        systemd.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            new = load(self.config_path, self.registry)
        except ConfigError as exc:
            self.log.error("reload refused: configuration is invalid; the old one keeps running", problems=exc.problems)
            systemd.notify("READY=1", "STATUS=reload refused: invalid configuration")
            return
        self.log.info("reloading configuration", config=str(self.config_path))
        self._pending = new
        if self.engine is not None:
            self.engine.stop()

    async def _purge(self, store) -> None:
        """Hourly: delete audit entries and dead letters past their retention (personal data)."""
        while True:
            try:
                audit, letters = await purge(store, self.resolved.config.state)
                if audit or letters:
                    self.log.info("retention purge", audit_entries=audit, dead_letters=letters)
            except Exception as exc:  # a purge problem must not stop the flows
                self.log.error("retention purge failed", error=f"{type(exc).__name__}: {exc}")
            await anyio.sleep(3600)

    async def _watchdog(self) -> None:
        interval = systemd.watchdog_interval()
        if interval is None:
            return
        while True:
            systemd.notify("WATCHDOG=1")
            await anyio.sleep(interval)

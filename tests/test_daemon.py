"""The daemon in-process: the watchdog pings only while flows make progress; a reload never
takes the daemon down and records its outcome for ``apicenterd reload``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path

import anyio
import fakes
import pytest

from apicenterd import hookimpl
from apicenterd.config import load
from apicenterd.daemon import Daemon, read_reload_status, reload_status_path
from apicenterd.registry import load_registry

pytestmark = pytest.mark.anyio


class StuckSource(fakes.MemorySource):
    """A source whose read never returns and never fails: a wedged flow."""

    name = "stucksource"

    async def read(self, entity, since):
        await anyio.sleep_forever()
        yield  # pragma: no cover


class _StuckPlugin:
    @hookimpl
    def register_connectors(self, register):
        register(StuckSource)


@pytest.fixture
def registry():
    fakes.MemoryStore.reset()
    return load_registry([("fakes", fakes), ("stuck", _StuckPlugin())], entry_points=False)


def write_config(tmp_path: Path, source: str = "memsource", flow: str = "products", extra: str = "") -> Path:
    path = tmp_path / "apicenterd.toml"
    path.write_text(
        f"""{extra}
[daemon]
metrics_address = ""
shutdown_timeout = 0.5
stall_timeout = 1

[state]
path = "state.db"

[connections.src]
connector = "{source}"

[connections.dst]
connector = "memtarget"

[flows.{flow}]
source = "src"
target = "dst"
entity = "products"
interval = "1h"
""",
        encoding="utf-8",
    )
    return path


class Notifications:
    """A fake $NOTIFY_SOCKET: collects the datagrams the daemon sends."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except OSError:
                return

    def drain(self) -> list[str]:
        return list(self.messages)

    def mark(self) -> None:
        """Put a marker datagram in the queue."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"MARK", self.sock.getsockname())



@pytest.fixture
def notify(monkeypatch):
    folder = tempfile.mkdtemp(prefix="apicd")  # short: a unix socket path has at most 107 bytes
    notifications = Notifications(os.path.join(folder, "notify"))
    monkeypatch.setenv("NOTIFY_SOCKET", os.path.join(folder, "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # a ping every 0.05 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield notifications
    notifications.sock.close()
    shutil.rmtree(folder, ignore_errors=True)


async def until(predicate, timeout: float = 30.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)


async def test_watchdog_stops_pinging_when_a_flow_makes_no_progress(tmp_path, registry, notify):
    path = write_config(tmp_path, source="stucksource")
    daemon = Daemon(path, registry, load(path, registry))
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await until(lambda: daemon.watchdog_wedged)  # the read is stuck past stall_timeout (1 s)
            notify.mark()  # queued behind every datagram the daemon sent so far
            ticks = daemon.watchdog_ticks
            await until(lambda: daemon.watchdog_ticks >= ticks + 10 and "MARK" in notify.drain())
            messages = notify.drain()
            after = messages[messages.index("MARK") + 1 :]
            assert not [m for m in after if "WATCHDOG=1" in m]  # before: pinged from its own task whatever the engine did
            pinged = sum("WATCHDOG=1" in m for m in messages[: messages.index("MARK")])
            assert [a.kind for a in daemon.alerter.sent] == ["engine_wedged"]
            daemon.stop()
    assert pinged >= 1  # it was pinged while the flow still counted as making progress


async def test_watchdog_keeps_pinging_an_idle_healthy_engine(tmp_path, registry, notify):
    fakes.MemoryStore.put(fakes.product("A"), "1")
    path = write_config(tmp_path)
    daemon = Daemon(path, registry, load(path, registry))
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await until(lambda: daemon.engine is not None and daemon.engine.last_result is not None and daemon.watchdog_ticks > 0)
            ticks = daemon.watchdog_ticks
            # 40 rounds of 0.05 s: more than stall_timeout (1 s) with the flow idle until its next run in 1 h
            await until(lambda: daemon.watchdog_ticks >= ticks + 40)
            assert not daemon.watchdog_wedged
            done = daemon.watchdog_ticks
            notify.mark()
            await until(lambda: "MARK" in notify.drain())
            messages = notify.drain()
            assert sum("WATCHDOG=1" in m for m in messages[: messages.index("MARK")]) >= done  # one ping each round
            daemon.stop()
    assert fakes.MemoryStore.target  # the flow did run


async def test_a_reload_that_makes_the_parser_blow_up_keeps_the_daemon_and_says_why(tmp_path, registry, notify):
    path = write_config(tmp_path)
    good = path.read_text()
    daemon = Daemon(path, registry, load(path, registry))
    status_path = reload_status_path(tmp_path / "state.db")
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await until(lambda: daemon.engine is not None and daemon.engine.last_result is not None)
            engine = daemon.engine
            path.write_text("junk = " + "[" * 5000 + "]" * 5000 + "\n" + good)  # RecursionError in the parser
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: read_reload_status(status_path) is not None)
            status = read_reload_status(status_path)
            assert status["result"] == "refused" and status["generation"] == 1 and status["pid"] == os.getpid()
            assert status["reason"]  # e.g. "cannot load ...: RecursionError: maximum recursion depth exceeded"
            assert daemon.engine is engine and not engine.stopping.is_set()  # the old config keeps running
            (alert,) = [a for a in daemon.alerter.sent if a.kind == "reload_refused"]
            assert alert.text.startswith("configuration reload refused: ") and status["reason"] in alert.text
            assert any("STATUS=reload refused" in m for m in notify.drain())

            path.write_text(good.replace("[flows.products]", "[flows.renamed]"))
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: read_reload_status(status_path)["generation"] == 2)
            assert read_reload_status(status_path)["result"] == "applied"
            assert "renamed" in daemon.engine.resolved.flows
            daemon.stop()
    assert json.loads(status_path.read_text())["reason"] is None

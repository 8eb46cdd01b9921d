"""Duplicates through concurrency: the daemon, `flows run`, `dlq replay` and a second daemon racing
on one state store. Every order must end up in eAccounting exactly once, with one debtor per e-mail.

The race is made real, not hoped for: the eAccounting simulator holds every create (POST) while a
gate is closed. The daemon starts the orders flow and its first create waits at the gate; then the
rivals start. The gate opens when each rival has said it waits for the daemon, or when a second
create reaches the gate (a rival that did not wait, which is the bug). Either way the outcome is
checked the same, so the assertion holds however the timing falls.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector
from apicenterd_eaccounting.connector import EAccountingConnector
from e2e_support import _toml_value, write_config

from apicenterd import Entity, Product
from apicenterd.config import load
from apicenterd.engine import Engine, StateTokenStore
from apicenterd.registry import load_registry
from apicenterd.state import AuditEntry, SQLiteStore, daemon_lock_holder
from apicenterd.testing import connect, serve_app

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0
"""Generous: how long a step may take on a loaded machine before the test fails."""


class PostGate:
    """ASGI wrapper: while closed, every POST but the token endpoint's waits; counts those that came."""

    def __init__(self, app):
        self.app = app
        self.opened = threading.Event()
        self.opened.set()
        self.arrived = 0

    @property
    def state(self):
        return self.app.state

    async def __call__(self, scope, receive, send):
        posts = scope["type"] == "http" and scope["method"] == "POST" and not scope["path"].startswith("/connect/")
        if posts and not self.opened.is_set():
            self.arrived += 1
            while not self.opened.is_set():
                await asyncio.sleep(0.01)
        await self.app(scope, receive, send)


class Output:
    """Collects a process's output lines in a thread."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line.decode(errors="replace"))

    def json(self):
        for line in list(self.lines):
            with contextlib.suppress(ValueError):
                yield json.loads(line)

    def text(self) -> str:
        return "".join(self.lines)


def wait_until(predicate, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def apicenterd(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "apicenterd.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.fixture
def race(tmp_path):
    """Simulators (eAccounting behind a gate), a config with products and orders flows, the service
    articles and products already in eAccounting; every process started is killed at the end."""
    procs: list[subprocess.Popen] = []
    with contextlib.ExitStack() as stack:
        ccv_app = CCVSalesPOSConnector.simulator(seed=7, records=40, rate_limit=0)
        eacc_app = EAccountingConnector.simulator(seed=7, records=0)
        gate = PostGate(eacc_app)
        ccv_url = stack.enter_context(serve_app(ccv_app))
        eacc_url = stack.enter_context(serve_app(gate))
        path = write_config(tmp_path, ccv_url, eacc_url, stock={"enabled": False})
        options = {"document": "invoice_draft", "shipping_sku": "VERZEND", "discount_sku": "KORTING", "fee_sku": "TOESLAG"}
        path.write_text(
            path.read_text()
            + '\n[flows.orders]\nsource = "salespos"\ntarget = "eaccounting"\nentity = "orders"\ninterval = "1h"\n'
            + f"options = {_toml_value(options)}\n"
        )
        resolved = load(path, load_registry())
        anyio.run(prepare_target, resolved, eacc_url)

        def start(*args: str) -> tuple[subprocess.Popen, Output, Output]:
            proc = apicenterd(*args)
            procs.append(proc)
            return proc, Output(proc.stdout), Output(proc.stderr)

        try:
            yield eacc_app, gate, path, resolved, ccv_url, start
        finally:
            gate.opened.set()
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()


async def prepare_target(resolved, eacc_url):
    """The shipping/discount/fee articles and the products flow's articles, before the race."""
    store = SQLiteStore(resolved.state_path)
    await store.open()
    try:
        tokens = StateTokenStore(store, "eaccounting")
        async with connect(EAccountingConnector, EAccountingConnector.demo_settings(eacc_url), tokens=tokens) as target:
            for sku, name in {"VERZEND": "Verzendkosten", "KORTING": "Korting", "TOESLAG": "Toeslag"}.items():
                product = Product(sku=sku, name=name, price_excl_tax=Decimal(0), price_incl_tax=Decimal(0), tax_rate=Decimal(21))
                await target.create(Entity.PRODUCTS, target.normalize(Entity.PRODUCTS, product))
        engine = Engine(resolved, store, retry_base_delay=0.01)
        try:
            assert (await engine.run_flow("products")).status == "ok"
        finally:
            await engine.aclose()
    finally:
        await store.close()


async def source_orders(ccv_url):
    async with connect(CCVSalesPOSConnector, CCVSalesPOSConnector.demo_settings(ccv_url)) as source:
        return [(c.source_id, c.record) async for c in source.read(Entity.ORDERS, None) if c.record is not None]


async def dead_letter_first_order(resolved, ccv_url) -> None:
    """An open dead letter for the first order (an older version of it), for `dlq replay --all`."""
    source_id, order = (await source_orders(ccv_url))[0]
    older = order.model_copy(update={"note": (order.note or "") + " (as it failed before)"})
    store = SQLiteStore(resolved.state_path)
    await store.open()
    try:
        entry = AuditEntry("orders", 0, "orders", source_id, "failed", key=order.key(), reason="HTTP 503 (a test)")
        await store.settle(entry, payload=older.model_dump_json())
    finally:
        await store.close()


def assert_every_order_once(eacc_app, ccv_url) -> None:
    sim = eacc_app.state.sim
    orders = anyio.run(source_orders, ccv_url)
    assert len(orders) >= 5
    drafts = collections.Counter(d["YourReference"] for d in sim.invoice_drafts.values())
    assert drafts == collections.Counter({order.number: 1 for _, order in orders}), "an order became more than one draft"
    debtors = collections.Counter(c["EmailAddress"] for c in sim.customers.values())
    assert debtors and set(debtors.values()) == {1}, f"duplicate debtors: {[e for e, n in debtors.items() if n > 1]}"


def daemon_blocked_in_orders_run(gate, daemon_out) -> None:
    """Close the gate first; then wait for the daemon's orders run and its first create held at the gate."""
    wait_until(
        lambda: any(l.get("event") == "run started" and l.get("flow") == "orders" for l in daemon_out.json()),
        "the daemon's orders run",
    )
    wait_until(lambda: gate.arrived >= 1, "the daemon's first create at the gate")


def stop_daemon(proc, out) -> None:
    wait_until(
        lambda: any(l.get("event") == "run finished" and l.get("flow") == "orders" for l in out.json()),
        "the daemon's orders run to finish",
    )
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(TIMEOUT) == 0


def test_daemon_flows_run_and_dlq_replay_racing_create_every_order_once(race):
    eacc_app, gate, path, resolved, ccv_url, start = race
    anyio.run(dead_letter_first_order, resolved, ccv_url)
    gate.opened.clear()
    daemon, daemon_out, _ = start("run", "--config", str(path))
    daemon_blocked_in_orders_run(gate, daemon_out)
    assert daemon_lock_holder(resolved.state_path)["pid"] == daemon.pid

    run, run_out, run_err = start("flows", "run", "orders", "--config", str(path), "--json")
    replay, replay_out, replay_err = start("dlq", "replay", "--all", "--config", str(path), "--json")
    waiting = f"flow orders is running in pid {daemon.pid} (daemon)"
    wait_until(
        lambda: (waiting in run_err.text() and waiting in replay_err.text()) or gate.arrived >= 2,
        "both commands to wait for the daemon (or to race it)",
    )
    gate.opened.set()

    assert run.wait(TIMEOUT) == 0, run_err.text()[-3000:]
    assert replay.wait(TIMEOUT) == 0, replay_err.text()[-3000:]
    stop_daemon(daemon, daemon_out)
    assert_every_order_once(eacc_app, ccv_url)
    for err in (run_err, replay_err):
        assert err.text().count(f"{waiting} since ") == 1 and "waiting for it to finish" in err.text()
    ran = json.loads(run_out.text())
    assert ran["status"] == "ok" and ran["created"] == 0 and ran["failed"] == 0  # the daemon had done it all
    replayed = json.loads(replay_out.text())
    assert replayed["replayed"] == 1 and replayed["skipped"] == 1 and replayed["created"] == 0


def test_second_daemon_on_one_state_store_is_refused_naming_the_first(race):
    eacc_app, gate, path, resolved, ccv_url, start = race
    gate.opened.clear()
    first, first_out, _ = start("run", "--config", str(path))
    daemon_blocked_in_orders_run(gate, first_out)

    second, _, second_err = start("run", "--config", str(path))
    wait_until(lambda: second.poll() is not None or gate.arrived >= 2, "the second daemon to exit (or to race the first)")
    gate.opened.set()
    assert second.wait(TIMEOUT) == 75
    message = second_err.text()
    assert f"state store {resolved.state_path} is in use by the daemon pid {first.pid}" in message, message
    assert "one daemon per state store" in message and "Traceback" not in message
    assert len(message.strip().splitlines()) == 1

    stop_daemon(first, first_out)
    assert_every_order_once(eacc_app, ccv_url)
    assert daemon_lock_holder(resolved.state_path) is None

"""SIGKILL a `flows run` into QuickBooks mid-run, restart, and nothing is duplicated or missing.

The QuickBooks simulator is wrapped in a middleware that SIGKILLs the `apicenterd flows run`
process at its n-th write of one kind (a ``batch`` of item creates, or of sales receipts, 30 a call):
before QuickBooks applies it, after it applied it but before the answer is sent (the write the
process never heard of), or right after the answer (between the write and its settle). No timers:
the kills happen at the calls the test names. MplusKASSA (the source: articles and till orders)
is served alongside. Every article must end up as exactly one item, every till order as exactly
one sales receipt.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from apicenterd_mpluskassa import MplusKassaConnector
from apicenterd_quickbooks import QuickBooksConnector
from starlette.requests import ClientDisconnect

from apicenterd.testing import serve_app

pytestmark = pytest.mark.slow

APICENTERD = [sys.executable, "-m", "apicenterd.cli"]
ARTICLES = 160
PRODUCT_KILLS = (("before", 2), ("applied", 1), ("answered", 2))
ORDERS = 100  # 4 batch calls of sales receipts in the first run
ORDER_KILLS = (("before", 2), ("applied", 1), ("answered", 1))  # answered last: the process may outrun it


class KillAtCall:
    """ASGI middleware: SIGKILLs the armed process at its ``n``-th POST to a path ending in ``suffix``, in ``phase``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state
        self._lock = threading.Lock()
        self._plan: tuple[str, str, int] | None = None
        self._proc: subprocess.Popen | None = None
        self._calls = 0
        self.fired: list[str] = []

    def arm(self, suffix: str, phase: str, n: int) -> None:
        with self._lock:
            self._plan, self._proc, self._calls = (suffix, phase, n), None, 0

    def target(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._proc = proc

    def disarm(self) -> None:
        with self._lock:
            self._plan = None

    def _due(self, scope: Any) -> str | None:
        with self._lock:
            if self._plan is None:
                return None
            suffix, phase, n = self._plan
            if scope["method"] != "POST" or not scope["path"].endswith(suffix):
                return None
            self._calls += 1
            return phase if self._calls == n else None

    async def _kill(self, phase: str) -> None:
        for _ in range(1000):  # Popen returned long before the process makes its first write; be sure
            with self._lock:
                proc = self._proc
            if proc is not None:
                break
            await anyio.sleep(0.01)
        assert proc is not None, "the armed process was never named"
        with self._lock:
            self.fired.append(phase)
        proc.kill()
        await anyio.to_thread.run_sync(proc.wait)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        phase = self._due(scope)
        try:
            if phase is None:
                await self.app(scope, receive, send)
            elif phase == "before":
                await self._kill(phase)
                await send({"type": "http.response.start", "status": 503, "headers": [(b"content-length", b"6")]})
                await send({"type": "http.response.body", "body": b"killed"})
            elif phase == "applied":
                held: list[Any] = []

                async def hold(message: Any) -> None:
                    held.append(message)

                await self.app(scope, receive, hold)
                await self._kill(phase)
                for message in held:
                    await send(message)
            else:
                await self.app(scope, receive, send)
                await self._kill(phase)
        except (ClientDisconnect, OSError):  # the killed process's connection is gone: expected
            pass


def write_config(tmp_path: Path, books_url: str, till_url: str) -> Path:
    books = {**QuickBooksConnector.demo_settings(books_url), "currency": "EUR"}
    till = MplusKassaConnector.demo_settings(till_url)
    lines = ["[daemon]", 'metrics_address = ""', "", "[state]", f"path = {json.dumps(str(tmp_path / 'state.db'))}", ""]
    for name, connector, settings in (("books", "quickbooks", books), ("till", "mpluskassa", till)):
        lines += [f"[connections.{name}]", f'connector = "{connector}"']
        lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
        lines.append("")
    lines += ["[flows.products]", 'source = "till"', 'target = "books"', 'entity = "products"', 'interval = "1h"', ""]
    lines += ["[flows.orders]", 'source = "till"', 'target = "books"', 'entity = "orders"', 'interval = "1h"']
    lines += ['options = { customer = "default_without_email", default_customer = "1", missing_products = "create" }']
    lines += ['target_settings = { paid_as = "sales_receipt" }', ""]
    path = tmp_path / "apicenterd.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def flows_run(config: Path, flow: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*APICENTERD, "flows", "run", flow, "--config", str(config), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def killed_runs(switch: KillAtCall, config: Path, flow: str, suffix: str, kills) -> None:
    for phase, n in kills:
        switch.arm(suffix, phase, n)
        proc = flows_run(config, flow)
        switch.target(proc)
        try:
            returncode = proc.wait(180)
        finally:
            switch.disarm()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        _, err = proc.communicate()
        assert returncode == -signal.SIGKILL, f"{flow} was not killed at {suffix} {n} ({phase}): {err.decode()[-2000:]}"


def finish(config: Path, flow: str) -> None:
    final = flows_run(config, flow)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()[-2000:]


def test_sigkill_mid_run_then_restart_leaves_every_item_and_receipt_once(tmp_path):
    books_app = QuickBooksConnector.simulator(seed=9)
    till_app = MplusKassaConnector.simulator(seed=9, records=ARTICLES, relations=0, orders=ORDERS)
    books = books_app.state.sim
    books.write("Customer", "create", {"DisplayName": "Walk-in customer"})
    switch = KillAtCall(books_app)
    with contextlib.ExitStack() as stack:
        config = write_config(tmp_path, stack.enter_context(serve_app(switch)), stack.enter_context(serve_app(till_app)))
        killed_runs(switch, config, "products", "/batch", PRODUCT_KILLS)
        assert 0 < len(books.store["Item"]) < ARTICLES, "the kills were mid-run"
        finish(config, "products")
        killed_runs(switch, config, "orders", "/batch", ORDER_KILLS)
        finish(config, "orders")
    assert switch.fired == [phase for phase, _ in PRODUCT_KILLS + ORDER_KILLS]
    skus = collections.Counter(i.get("Sku") for i in books.store["Item"].values())
    assert len(skus) == ARTICLES and set(skus.values()) == {1}, {s: c for s, c in skus.items() if c > 1}
    assert set(skus) == {str(n) for n in till_app.state.sim.article_product}
    receipts = collections.Counter(r["DocNumber"] for r in books.store["SalesReceipt"].values())
    assert len(receipts) == len(till_app.state.sim.orders) and set(receipts.values()) == {1}, receipts

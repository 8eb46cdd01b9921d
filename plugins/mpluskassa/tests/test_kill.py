"""SIGKILL a `flows run` into MplusKASSA mid-run, restart, and nothing is duplicated or missing.

The till simulator is wrapped in a middleware that SIGKILLs the `apicenterd flows run` process at
its n-th ``createProduct`` or ``createOrderV3``: before the till applies it, after it applied it but
before the answer is sent (the write the process never heard of), or right after the answer
(between the write and its settle). No timers: the kills happen at the calls the test names.
Every SKU must end up as exactly one article (its allocated number never handed to another SKU),
every web order as exactly one till order.
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
from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector
from apicenterd_ccv_salespos.mapping import ORDER_STATUSES
from apicenterd_mpluskassa import MplusKassaConnector
from starlette.requests import ClientDisconnect

from apicenterd.testing import serve_app

pytestmark = pytest.mark.slow

APICENTERD = [sys.executable, "-m", "apicenterd.cli"]
PRODUCTS = 40
PRODUCT_KILLS = (("before", 3), ("applied", 2), ("answered", 4), ("applied", 1))
ORDER_KILLS = (("applied", 1), ("answered", 2), ("before", 1))
STATUSES = ("new", "in_process", "sent", "delivered", "completed", "cancelled", "paid")


class KillAtCall:
    """ASGI middleware: SIGKILLs the armed process at its ``n``-th call of ``operation``, in ``phase``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state
        self._lock = threading.Lock()
        self._plan: tuple[str, str, int] | None = None
        self._proc: subprocess.Popen | None = None
        self._calls = 0
        self.fired: list[str] = []

    def arm(self, operation: str, phase: str, n: int) -> None:
        with self._lock:
            self._plan, self._proc, self._calls = (operation, phase, n), None, 0

    def target(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._proc = proc

    def disarm(self) -> None:
        with self._lock:
            self._plan = None

    def _due(self, body: bytes) -> str | None:
        with self._lock:
            if self._plan is None:
                return None
            operation, phase, n = self._plan
            if f":{operation}>".encode() not in body and f"<{operation}>".encode() not in body:
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
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        phase = self._due(body)
        try:
            if phase is None:
                await self.app(scope, replay, send)
            elif phase == "before":
                await self._kill(phase)
                await send({"type": "http.response.start", "status": 503, "headers": [(b"content-length", b"6")]})
                await send({"type": "http.response.body", "body": b"killed"})
            elif phase == "applied":
                held: list[Any] = []

                async def hold(message: Any) -> None:
                    held.append(message)

                await self.app(scope, replay, hold)
                await self._kill(phase)
                for message in held:
                    await send(message)
            else:
                await self.app(scope, replay, send)
                await self._kill(phase)
        except (ClientDisconnect, OSError):  # the killed process's connection is gone: expected
            pass


def write_config(tmp_path: Path, shop_url: str, till_url: str) -> Path:
    shop = CCVSalesPOSConnector.demo_settings(shop_url)
    till = {**MplusKassaConnector.demo_settings(till_url), "allocate_article_numbers": True, "allocation_range": [300000, 399999]}
    lines = ["[daemon]", 'metrics_address = ""', "", "[state]", f"path = {json.dumps(str(tmp_path / 'state.db'))}", ""]
    for name, connector, settings in (("shop", "ccv_salespos", shop), ("till", "mpluskassa", till)):
        lines += [f"[connections.{name}]", f'connector = "{connector}"']
        lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
        lines.append("")
    lines += ["[flows.products]", 'source = "shop"', 'target = "till"', 'entity = "products"', 'interval = "1h"', ""]
    lines += ["[flows.orders]", 'source = "shop"', 'target = "till"', 'entity = "orders"', 'interval = "1h"']
    lines += [
        f"options = {{ statuses = {json.dumps(list(STATUSES))}, "
        'missing_products = "create", shipping_sku = "900001", discount_sku = "900002", document = "order" }'
    ]
    lines += ["target_settings = { text_article_number = 900003 }", ""]
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


def killed_runs(switch: KillAtCall, config: Path, flow: str, operation: str, kills) -> None:
    for phase, n in kills:
        switch.arm(operation, phase, n)
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
        assert returncode == -signal.SIGKILL, f"{flow} was not killed at {operation} {n} ({phase}): {err.decode()[-2000:]}"


def test_sigkill_mid_run_then_restart_leaves_every_article_and_order_once(tmp_path):
    shop_app = CCVSalesPOSConnector.simulator(seed=9, records=PRODUCTS)
    till_app = MplusKassaConnector.simulator(seed=9)
    till = till_app.state.sim
    switch = KillAtCall(till_app)
    with contextlib.ExitStack() as stack:
        config = write_config(tmp_path, stack.enter_context(serve_app(shop_app)), stack.enter_context(serve_app(switch)))
        killed_runs(switch, config, "products", "createProduct", PRODUCT_KILLS)
        assert 0 < sum(len(p["articles"]) for p in till.products.values()) < PRODUCTS, "the kills were mid-run"
        final = flows_run(config, "products")
        _, err = final.communicate(timeout=300)
        assert final.returncode == 0, err.decode()[-2000:]
        killed_runs(switch, config, "orders", "createOrderV3", ORDER_KILLS)
        final = flows_run(config, "orders")
        _, err = final.communicate(timeout=300)
        assert final.returncode == 0, err.decode()[-2000:]
    assert switch.fired == [phase for phase, _ in PRODUCT_KILLS + ORDER_KILLS]
    skus = collections.Counter(a.get("pluNumber") for p in till.products.values() for a in p["articles"] if a.get("pluNumber"))
    assert len(skus) == PRODUCTS and set(skus.values()) == {1}, {s: c for s, c in skus.items() if c > 1}
    numbers = [a["articleNumber"] for p in till.products.values() for a in p["articles"]]
    assert len(numbers) == len(set(numbers))
    orders = collections.Counter(o["extOrderId"] for o in till.orders.values())
    assert orders and set(orders.values()) == {1}, orders
    selected = [o for o in shop_app.state.sim.orders.values() if ORDER_STATUSES.get(o["status"]) in STATUSES]
    assert len(orders) == len(selected)

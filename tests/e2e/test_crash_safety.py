"""SIGKILL in the middle of a run, restart, and nothing is duplicated or missing.

The kills happen at points the test controls, never on a timer: the eAccounting simulator is
wrapped in a middleware that SIGKILLs the ``flows run`` process at its n-th article create,
before the create is applied, after it is applied but before the answer is sent (the write the
process never heard of), or right after the answer (between the write and its settle). Each
run has more products left than the create that kills it, so every kill lands mid-run however
fast or slow the machine is. It runs with the state in SQLite and in PostgreSQL (``state_backend``).
"""

from __future__ import annotations

import collections
import contextlib
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
from apicenterd_eaccounting.connector import EAccountingConnector
from starlette.requests import ClientDisconnect

from apicenterd import Entity
from apicenterd.engine import WRITES_IN_FLIGHT
from apicenterd.testing import connect, serve_app

pytestmark = pytest.mark.slow

APICENTERD = [sys.executable, "-m", "apicenterd.cli"]
PRODUCTS = 80
KILLS = (("before", 5), ("applied", 4), ("answered", 6), ("applied", 1), ("before", 2), ("answered", 3))
"""(phase, n): kill at the n-th article create of a run. At most 6 creates per run, 80 products."""


def flows_run(config: Path, flow: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*APICENTERD, "flows", "run", flow, "--config", str(config), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


class KillAtCreate:
    """ASGI middleware: SIGKILLs the armed process at its ``n``-th ``POST /v2/articles``, in ``phase``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state
        self._lock = threading.Lock()
        self._plan: tuple[str, int] | None = None
        self._proc: subprocess.Popen | None = None
        self._creates = 0
        self.fired: list[str] = []

    def arm(self, phase: str, n: int) -> None:
        """Count creates from now; the process is named by :meth:`target` (the count may start first)."""
        with self._lock:
            self._plan, self._proc, self._creates = (phase, n), None, 0

    def target(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._proc = proc

    def disarm(self) -> None:
        with self._lock:
            self._plan = None

    def _due(self, scope: Any) -> str | None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != "/v2/articles":
            return None
        with self._lock:
            if self._plan is None:
                return None
            self._creates += 1
            return self._plan[0] if self._creates == self._plan[1] else None

    async def _kill(self, phase: str) -> None:
        for _ in range(1000):  # Popen returned long before a process can make its first create; be sure
            with self._lock:
                proc = self._proc
            if proc is not None:
                break
            await anyio.sleep(0.01)
        assert proc is not None, "the armed process was never named"
        with self._lock:  # before the kill: the test re-arms as soon as it sees the process die
            self.fired.append(phase)
        proc.kill()
        await anyio.to_thread.run_sync(proc.wait)  # dead before anything else is answered

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        phase = self._due(scope)
        try:
            if phase is None:
                await self.app(scope, receive, send)
            elif phase == "before":
                await self._kill(phase)
                body = b"killed before the create was applied"
                await send({"type": "http.response.start", "status": 503, "headers": [(b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
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


def test_sigkill_mid_run_then_restart_leaves_no_duplicate_and_no_gap(config, state_backend):
    ccv_app = CCVSalesPOSConnector.simulator(seed=7, records=PRODUCTS)
    eacc_app = EAccountingConnector.simulator(seed=7, records=0, rate_limit=0)
    switch = KillAtCreate(eacc_app)
    eacc_sim = eacc_app.state.sim
    with contextlib.ExitStack() as stack:
        ccv_url = stack.enter_context(serve_app(ccv_app))
        eacc_url = stack.enter_context(serve_app(switch))
        path, _ = config(ccv_url, eacc_url)
        for phase, n in KILLS:
            before = len(eacc_sim.articles)
            switch.arm(phase, n)
            proc = flows_run(path, "products")
            switch.target(proc)
            try:
                out, err = proc.communicate(timeout=120)  # its output read while waiting: a full pipe never blocks it
                returncode = proc.returncode
            finally:
                switch.disarm()
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
            assert returncode == -signal.SIGKILL, f"run was not killed at create {n} ({phase}): {err.decode()[-2000:]}"
            # killed at its n-th create; the creates in flight with it (the engine's writes_in_flight)
            # may still be applied by the simulator: the restart must find them by key, not repeat them
            assert 0 < len(eacc_sim.articles) - before <= n + WRITES_IN_FLIGHT - 1, "the run was killed at its n-th create"
            assert len(eacc_sim.articles) < PRODUCTS, "the kill was mid-run: products were left"
        assert switch.fired == [phase for phase, _ in KILLS]

        final = flows_run(path, "products")
        out, err = final.communicate(timeout=300)
        assert final.returncode == 0, err.decode()[-2000:]

        async def expected():
            async with connect(CCVSalesPOSConnector, CCVSalesPOSConnector.demo_settings(ccv_url)) as source:
                return {c.record.sku: c.record async for c in source.read(Entity.PRODUCTS, None)}

        products = anyio.run(expected)
    counts = collections.Counter(a["Number"] for a in eacc_sim.articles.values())
    duplicates = {n: c for n, c in counts.items() if c > 1}
    assert duplicates == {}
    assert len(products) == PRODUCTS
    assert set(counts) == set(products), f"missing: {sorted(set(products) - set(counts))}"
    for sku, product in products.items():
        article = eacc_sim.article_by_number(sku)
        assert article["IsActive"] == product.active, sku

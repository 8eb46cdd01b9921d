"""SIGKILL in the middle of a run, restart, and nothing is duplicated or missing."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector

from apicenterd import Entity
from apicenterd.testing import connect

pytestmark = pytest.mark.slow

APICENTERD = [sys.executable, "-m", "apicenterd.cli"]


def flows_run(config: Path, flow: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*APICENTERD, "flows", "run", flow, "--config", str(config), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_for_progress(proc: subprocess.Popen, eacc_sim, before: int, timeout: float = 20.0) -> bool:
    """Wait until the run has written at least one more article (or ended); True if still running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if len(eacc_sim.articles) > before:
            return True
        time.sleep(0.005)
    return proc.poll() is None


def test_sigkill_mid_run_then_restart_leaves_no_duplicate_and_no_gap(simulators, config):
    ccv_app, eacc_app, ccv_url, eacc_url = simulators(products=80, eacc_options={"rate_limit": 0})
    path, _ = config(ccv_url, eacc_url)
    eacc_sim = eacc_app.state.sim
    rng = random.Random(20261201)
    kills = 0
    for _ in range(6):
        proc = flows_run(path, "products")
        running = wait_for_progress(proc, eacc_sim, len(eacc_sim.articles))
        if not running:
            break
        time.sleep(rng.uniform(0.0, 0.15))  # somewhere in the middle of a write, a settle, a read
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
    assert kills >= 3, "the run finished too quickly to be killed mid-way; raise the product count"
    final = flows_run(path, "products")
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()[-2000:]

    import anyio

    async def expected():
        async with connect(CCVSalesPOSConnector, CCVSalesPOSConnector.demo_settings(ccv_url)) as source:
            return {c.record.sku: c.record async for c in source.read(Entity.PRODUCTS, None)}

    products = anyio.run(expected)
    counts = collections.Counter(a["Number"] for a in eacc_sim.articles.values())
    duplicates = {n: c for n, c in counts.items() if c > 1}
    assert duplicates == {}
    assert set(counts) == set(products), f"missing: {sorted(set(products) - set(counts))}"
    for sku, product in products.items():
        article = eacc_sim.article_by_number(sku)
        assert article["IsActive"] == product.active, sku

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

import anyio
import pytest
from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector
from apicenterd_eaccounting.connector import EAccountingConnector

from apicenterd import Entity
from apicenterd.engine import WRITES_IN_FLIGHT
from apicenterd.testing import connect, serve_app
from apicenterd.testing.kill import KillAtCall, flows_run, killed_runs

pytestmark = pytest.mark.slow

PRODUCTS = 80
KILLS = (("before", 5), ("applied", 4), ("answered", 6), ("applied", 1), ("before", 2), ("answered", 3))
"""(phase, n): kill at the n-th article create of a run. At most 6 creates per run, 80 products."""


def article_create(method: str, path: str, body: bytes) -> bool:
    return method == "POST" and path.rstrip("/") == "/v2/articles"


def test_sigkill_mid_run_then_restart_leaves_no_duplicate_and_no_gap(config, state_backend):
    ccv_app = CCVSalesPOSConnector.simulator(seed=7, records=PRODUCTS)
    eacc_app = EAccountingConnector.simulator(seed=7, records=0, rate_limit=0)
    switch = KillAtCall(eacc_app, match=article_create)
    eacc_sim = eacc_app.state.sim
    with contextlib.ExitStack() as stack:
        ccv_url = stack.enter_context(serve_app(ccv_app))
        eacc_url = stack.enter_context(serve_app(switch))
        path, _ = config(ccv_url, eacc_url)
        before = [0]

        def after_kill(phase: str, n: int) -> None:
            # killed at its n-th create; the creates in flight with it (the engine's writes_in_flight)
            # may still be applied by the simulator: the restart must find them by key, not repeat them
            made = len(eacc_sim.articles) - before[0]
            assert 0 < made <= n + WRITES_IN_FLIGHT - 1, f"the run was killed at its create {n} ({phase}): {made} made"
            assert len(eacc_sim.articles) < PRODUCTS, "the kill was mid-run: products were left"
            before[0] = len(eacc_sim.articles)

        killed_runs(switch, path, "products", KILLS, timeout=120, after=after_kill)
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

"""End to end through the daemon's engine: Exact Online's goods deliveries (simulator) → CCV SalesPOS orders
(simulator): the tracking number on the shop's order, once; a second run writes nothing; a second
parcel of a split delivery is reported, never merged (CCV holds one code per order)."""

from __future__ import annotations

import httpx
import pytest
from apicenterd_exact_online import ExactOnlineConnector

from apicenterd.config import Config
from apicenterd.config.resolve import resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

ccv = pytest.importorskip("apicenterd_ccv_salespos")
CCVSalesPOSConnector = ccv.CCVSalesPOSConnector

pytestmark = pytest.mark.anyio


async def _run(resolved, transports, flow="shipments"):
    store = SQLiteStore(resolved.state_path)
    await store.open()
    engine = Engine(resolved, store, transports=transports, retry_base_delay=0.01)
    try:
        return await engine.run_flow(flow), list(engine.failures)
    finally:
        await engine.aclose()
        await store.close()


async def test_goods_deliveries_reach_the_shop_orders_once(tmp_path):
    shop_app = CCVSalesPOSConnector.simulator(seed=3, records=10)
    shop = shop_app.state.sim
    open_orders = [o for o in shop.orders.values() if o["status"] in (1, 2) and not o["track_and_trace_code"]]
    assert len(open_orders) >= 2, "the shop simulator's seed has open orders"
    exact_app = ExactOnlineConnector.simulator(seed=3, records=0)
    sim = exact_app.state.sim
    buyer = sim.add_account("Buyer BV", "orders@buyer.example", code="3001", City="Gouda", Country="NL")
    for n in range(1, 3):
        sim._store("logistics/Items", {"Code": f"EXO-{n}", "Description": f"Exact product {n}", "IsSalesItem": True})
    # the shop's orders, as they reached Exact: YourRef is the shop's order number
    first = sim.add_order(buyer["ID"], [("EXO-1", 1, 10.0)], your_ref=str(open_orders[0]["ordernumber_full"]))
    second = sim.add_order(buyer["ID"], [("EXO-1", 2, 10.0), ("EXO-2", 1, 5.0)], your_ref=str(open_orders[1]["ordernumber_full"]))
    sim.deliver(first, "3SEXACT0001", carrier="PostNL")
    sim.deliver(second, "3SEXACT0002", carrier="DHL", lines=1)  # a split delivery: the first line first
    raw = {
        "daemon": {"log_level": "warning", "metrics_address": ""},
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {
            "exact": {"connector": "exact_online", **ExactOnlineConnector.demo_settings("http://exact.test")},
            "shop": {"connector": "ccv_salespos", **CCVSalesPOSConnector.demo_settings("http://shop.test")},
        },
        "flows": {"shipments": {"source": "exact", "target": "shop", "entity": "shipments", "interval": "1h"}},
    }
    resolved = resolve(Config(**raw), load_registry(), tmp_path / "apicenterd.toml")
    transports = {"exact": httpx.ASGITransport(exact_app), "shop": httpx.ASGITransport(shop_app)}

    result, failures = await _run(resolved, transports)
    assert result.status == "ok", result.error
    assert result.counts["created"] == 2 and result.counts["failed"] == 0, (result.counts, failures)
    assert (open_orders[0]["track_and_trace_code"], open_orders[0]["track_and_trace_carrier"]) == ("3SEXACT0001", "PostNL")
    assert (open_orders[1]["track_and_trace_code"], open_orders[1]["track_and_trace_carrier"]) == ("3SEXACT0002", "DHL")

    shop.requests.clear()
    again, _ = await _run(resolved, transports)
    assert again.status == "ok" and again.counts["created"] == again.counts["updated"] == 0, again.counts
    assert [r for r in shop.requests if r[0] in ("POST", "PUT", "PATCH", "DELETE")] == []

    # the rest of the split delivery, with its own parcel: reported (CCV keeps one code), not merged
    sim.deliver(second, "3SEXACT0003", carrier="DHL")
    third, failures = await _run(resolved, transports)
    assert third.counts["failed"] == 1, third.counts
    assert "split shipments" in failures[0][3] and "3SEXACT0002" in failures[0][3]
    assert open_orders[1]["track_and_trace_code"] == "3SEXACT0002"

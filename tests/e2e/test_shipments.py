"""Shipments back to the shop: track and trace on the CCV order; split shipments reported, never merged."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector

from apicenterd import Shipment
from apicenterd.config import Config, resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore
from apicenterd.testing import serve_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fakes

pytestmark = pytest.mark.anyio


async def run(resolved):
    store = SQLiteStore(resolved.state_path)
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0.01)
    try:
        return await engine.run_flow("shipments"), engine
    finally:
        await engine.aclose()
        await store.close()


async def test_tracking_codes_reach_the_shop_order_and_a_second_code_is_a_recorded_failure(tmp_path):
    fakes.MemoryStore.reset()
    app = CCVSalesPOSConnector.simulator(seed=3, records=10)
    sim = app.state.sim
    order = next(o for o in sim.orders.values() if o["status"] in (1, 2) and not o["track_and_trace_code"])
    number = order["ordernumber_full"]
    with serve_app(app) as url:
        registry = load_registry([("fakes", fakes)])
        raw = {
            "state": {"path": str(tmp_path / "state.db")},
            "connections": {"wms": {"connector": "memsource"}, "salespos": {"connector": "ccv_salespos", **CCVSalesPOSConnector.demo_settings(url)}},
            "flows": {"shipments": {"source": "wms", "target": "salespos", "entity": "shipments", "interval": "1h"}},
        }
        resolved = resolve(Config(**raw), registry, tmp_path / "x.toml")
        fakes.MemoryStore.shipments["a"] = Shipment(order_number=number, tracking_code="3SABCD0001", carrier="PostNL")
        result, _ = await run(resolved)
        assert result.counts["created"] == 1, result
        assert (order["track_and_trace_code"], order["track_and_trace_carrier"], order["status"]) == ("3SABCD0001", "PostNL", 5)

        # a second parcel for the same order: CCV holds one code per order; reported, not merged
        fakes.MemoryStore.shipments["b"] = Shipment(order_number=number, tracking_code="3SABCD0002", carrier="PostNL")
        result, engine = await run(resolved)
        assert result.counts["failed"] == 1
        (failure,) = engine.failures
        assert "split shipments" in failure[3] and "3SABCD0001" in failure[3]
        assert order["track_and_trace_code"] == "3SABCD0001"
        store = SQLiteStore(resolved.state_path)
        await store.open()
        (letter,) = await store.dead_letters(flow="shipments")
        await store.close()
        assert letter.source_id == "b"

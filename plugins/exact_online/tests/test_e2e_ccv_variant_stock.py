"""End to end through the daemon's engine: Exact Online's stock positions → the stock of CCV SalesPOS
variants (attribute combinations), matched by SKU (the combination's ``sku_number``, else its
``product_number``): written once with ``PATCH /attributecombinations/:id/``, a second run writes
nothing, a change in Exact writes that variant only, and the parent product's manage-stock flag rules."""

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


async def _run(resolved, transports):
    store = SQLiteStore(resolved.state_path)
    await store.open()
    engine = Engine(resolved, store, transports=transports, retry_base_delay=0.01)
    try:
        return await engine.run_flow("stock")
    finally:
        await engine.aclose()
        await store.close()


def _setup(tmp_path, *, stock_enable: bool = False):
    shop_app = CCVSalesPOSConnector.simulator(seed=4, records=0)
    shop = shop_app.state.sim
    shirt = shop.add_product(name="T-shirt", price=19.95, productnumber="TS", stockenabled=True, stock=0.0)
    small = shop.add_combination(shirt["id"], [("Maat", "S"), ("Kleur", "Rood")], sku_number="TS-S-RED", stock=1)
    large = shop.add_combination(shirt["id"], [("Maat", "L"), ("Kleur", "Rood")], sku_number="TS-L-RED", stock=1)
    # no sku_number: found by the combination's own product_number
    medium = shop.add_combination(shirt["id"], [("Maat", "M"), ("Kleur", "Rood")], product_number="TS-M-RED", stock=1)
    plain = shop.add_product(name="Mok", price=7.5, productnumber="MUG-1", stockenabled=True, stock=1.0)
    socks = shop.add_product(name="Sokken", price=5.0, productnumber="SOCK", stockenabled=False)
    unmanaged = shop.add_combination(socks["id"], [("Maat", "42")], sku_number="SOCK-42", stock=None)
    exact_app = ExactOnlineConnector.simulator(seed=4, records=0)
    sim = exact_app.state.sim
    for code in ("TS-S-RED", "TS-L-RED", "TS-M-RED", "MUG-1", "SOCK-42", "TS-XL-RED"):
        sim._store("logistics/Items", {"Code": code, "Description": f"Exact {code}", "IsSalesItem": True})
    sim.set_stock("TS-S-RED", 10, 1)  # available 9
    sim.set_stock("TS-L-RED", 20, 2)  # 18
    sim.set_stock("TS-M-RED", 5, 0)  # 5
    sim.set_stock("MUG-1", 7, 0)  # 7
    sim.set_stock("SOCK-42", 3, 0)
    sim.set_stock("TS-XL-RED", 4, 0)  # a size the shop does not sell
    shop_settings = {**CCVSalesPOSConnector.demo_settings("http://shop.test"), "stock_enable": stock_enable}
    raw = {
        "daemon": {"log_level": "warning", "metrics_address": ""},
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {
            "exact": {"connector": "exact_online", **ExactOnlineConnector.demo_settings("http://exact.test")},
            "shop": {"connector": "ccv_salespos", **shop_settings},
        },
        "flows": {"stock": {"source": "exact", "target": "shop", "entity": "stock", "interval": "1h"}},
    }
    resolved = resolve(Config(**raw), load_registry(), tmp_path / "apicenterd.toml")
    transports = {"exact": httpx.ASGITransport(exact_app), "shop": httpx.ASGITransport(shop_app)}
    ids = {"small": small["id"], "large": large["id"], "medium": medium["id"], "plain": plain["id"]}
    ids |= {"socks": socks["id"], "unmanaged": unmanaged["id"]}
    return resolved, transports, shop, sim, ids


def _writes(shop) -> list:
    return [r for r in shop.requests if r[0] in ("POST", "PATCH", "PUT", "DELETE")]


async def test_exact_stock_reaches_the_shops_variants_by_sku_once(tmp_path):
    resolved, transports, shop, sim, ids = _setup(tmp_path)
    first = await _run(resolved, transports)
    assert first.status == "ok", first.error
    combos = shop.attributecombinations
    assert [combos[ids[k]]["stock"] for k in ("small", "large", "medium")] == [9.0, 18.0, 5.0]
    assert shop.products[ids["plain"]]["stock"] == 7.0  # a plain product as before
    assert combos[ids["unmanaged"]]["stock"] is None  # its product does not manage stock: left alone
    assert shop.products[ids["socks"]]["stockenabled"] is False
    assert first.counts["failed"] == 1  # TS-XL-RED: no product or variant has it (dead-lettered)
    variant_writes = [target for method, target in _writes(shop) if "attributecombinations" in target]
    assert len(variant_writes) == 3 and all(method == "PATCH" for method, _ in _writes(shop))
    # the variants were indexed with one paged products read, not one call per product
    expansions = [t for m, t in shop.requests if m == "GET" and "expand=attributecombinations" in t]
    assert len(expansions) == 1

    shop.requests.clear()
    second = await _run(resolved, transports)
    assert second.status == "ok" and second.counts["created"] == 0 and second.counts["updated"] == 0
    assert _writes(shop) == []  # a second run writes nothing

    sim.set_stock("TS-L-RED", 30, 5)  # a change in Exact: only that variant's stock is written
    shop.requests.clear()
    third = await _run(resolved, transports)
    assert third.status == "ok" and third.counts["updated"] == 1, third.counts
    assert [t for _m, t in _writes(shop)] == [f"/api/rest/v1/attributecombinations/{ids['large']}/"]
    assert combos[ids["large"]]["stock"] == 25.0


async def test_stock_enable_turns_the_parent_products_flag_on_for_a_variant(tmp_path):
    resolved, transports, shop, _sim, ids = _setup(tmp_path, stock_enable=True)
    result = await _run(resolved, transports)
    assert result.status == "ok", result.error
    assert shop.products[ids["socks"]]["stockenabled"] is True
    assert shop.attributecombinations[ids["unmanaged"]]["stock"] == 3.0

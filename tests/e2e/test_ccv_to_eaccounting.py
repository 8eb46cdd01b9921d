"""End to end: real flows from the CCV SalesPOS simulator to the eAccounting simulator."""

from __future__ import annotations

import collections
from decimal import Decimal

import pytest
from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector
from apicenterd_eaccounting.connector import EAccountingConnector

from apicenterd import Entity
from apicenterd.engine import Engine, StateTokenStore
from apicenterd.state import SQLiteStore
from apicenterd.testing import connect
from apicenterd.testing.settle import run_once

pytestmark = pytest.mark.anyio


async def source_products(ccv_url):
    async with connect(CCVSalesPOSConnector, CCVSalesPOSConnector.demo_settings(ccv_url)) as source:
        return {c.record.sku: c.record async for c in source.read(Entity.PRODUCTS, None)}


async def source_stock(ccv_url):
    async with connect(CCVSalesPOSConnector, CCVSalesPOSConnector.demo_settings(ccv_url)) as source:
        return {c.record.sku: c.record async for c in source.read(Entity.STOCK, None)}


def articles_by_number(eacc_app):
    counts = collections.Counter(a["Number"] for a in eacc_app.state.sim.articles.values())
    return counts


def writes(eacc_app):
    return [r for r in eacc_app.state.sim.requests if r[0] in ("POST", "PUT", "PATCH", "DELETE") and "/connect/" not in r[1]]


async def test_first_run_creates_each_product_once_and_second_run_writes_nothing(simulators, config):
    ccv_app, eacc_app, ccv_url, eacc_url = simulators(products=30)
    _, resolved = config(ccv_url, eacc_url)
    expected = await source_products(ccv_url)

    first = await run_once(resolved, "products")
    assert first.status == "ok", first.error
    assert first.counts["created"] == len(expected) and first.counts["failed"] == 0
    counts = articles_by_number(eacc_app)
    assert set(counts) == set(expected) and set(counts.values()) == {1}

    eacc_app.state.sim.requests.clear()
    second = await run_once(resolved, "products")
    assert second.status == "ok"
    assert second.counts["created"] == 0 and second.counts["updated"] == 0
    assert eacc_app.state.sim.requests == []  # not one call to the target
    assert articles_by_number(eacc_app) == counts


async def test_written_content_matches_the_source(simulators, config):
    ccv_app, eacc_app, ccv_url, eacc_url = simulators(products=15)
    _, resolved = config(ccv_url, eacc_url)
    await run_once(resolved, "products")
    expected = await source_products(ccv_url)
    fields = EAccountingConnector.written_fields[Entity.PRODUCTS]
    store = SQLiteStore(resolved.state_path)
    await store.open()
    tokens = StateTokenStore(store, "eaccounting")  # the refresh token rotated: use the daemon's
    try:
        async with connect(EAccountingConnector, EAccountingConnector.demo_settings(eacc_url), tokens=tokens) as target:
            for sku, product in expected.items():
                found = await target.find(Entity.PRODUCTS, sku)
                assert found is not None, sku
                stored = target.normalize(Entity.PRODUCTS, product)
                assert found.record.model_dump(include=set(fields)) == stored.model_dump(include=set(fields)), sku
    finally:
        await store.close()


async def test_changed_product_updates_only_it_and_only_fields_allowed_on_update(simulators, config):
    ccv_app, eacc_app, ccv_url, eacc_url = simulators(products=12)
    _, resolved = config(ccv_url, eacc_url, products={"create_only_fields": ["name"]})
    await run_once(resolved, "products")
    sim = ccv_app.state.sim
    pid, product = next((pid, p) for pid, p in sim.products.items() if p["productnumber"] and p["is_active"])
    original_name = eacc_app.state.sim.article_by_number(product["productnumber"])["Name"]
    sim.update_product(pid, name="Renamed in the till", price=float(product["price"]) + 5)
    eacc_app.state.sim.requests.clear()

    result = await run_once(resolved, "products")
    assert result.counts["updated"] == 1 and result.counts["created"] == 0
    assert [r[0] for r in writes(eacc_app)] == ["PUT"]
    article = eacc_app.state.sim.article_by_number(product["productnumber"])
    assert article["Name"] == original_name  # create-only: never overwritten
    changed = (await source_products(ccv_url))[product["productnumber"]]
    assert Decimal(str(article["GrossPrice"])) == changed.price_incl_tax or Decimal(str(article["NetPrice"])) == changed.price_excl_tax


async def test_filter_keeps_inactive_products_out(simulators, config):
    ccv_app, eacc_app, ccv_url, eacc_url = simulators(products=10)
    sim = ccv_app.state.sim
    inactive = next(p for p in sim.products.values() if p["productnumber"])
    sim.update_product(inactive["id"], active=False)
    _, resolved = config(ccv_url, eacc_url, products={"filters": [{"field": "active", "op": "eq", "value": True}]})
    result = await run_once(resolved, "products")
    assert result.counts["skipped"] >= 1
    assert eacc_app.state.sim.article_by_number(inactive["productnumber"]) is None


async def test_stock_is_on_hand_minus_reservations(simulators, config):
    ccv_app, eacc_app, ccv_url, eacc_url = simulators(products=25)
    _, resolved = config(ccv_url, eacc_url)
    await run_once(resolved, "products")
    result = await run_once(resolved, "stock")
    assert result.status == "ok", result.error
    levels = await source_stock(ccv_url)
    reserved = [lv for lv in levels.values() if lv.reserved > 0 and lv.tracked]
    assert reserved, "the seeded simulator should have open orders reserving stock"
    for level in levels.values():
        article = eacc_app.state.sim.article_by_number(level.sku)
        if article is None or not level.tracked:
            continue
        assert Decimal(str(article["StockBalance"])) == max(level.on_hand - level.reserved, Decimal(0)), level.sku
    eacc_app.state.sim.requests.clear()
    again = await run_once(resolved, "stock")
    assert again.counts["updated"] == 0 and writes(eacc_app) == []


async def test_stock_calculation_on_hand_is_selectable(simulators, config):
    ccv_app, eacc_app, ccv_url, eacc_url = simulators(products=25)
    _, resolved = config(ccv_url, eacc_url, stock={"options": {"available": "on_hand"}})
    await run_once(resolved, "products")
    await run_once(resolved, "stock")
    levels = await source_stock(ccv_url)
    level = next(lv for lv in levels.values() if lv.reserved > 0 and lv.tracked)
    article = eacc_app.state.sim.article_by_number(level.sku)
    assert Decimal(str(article["StockBalance"])) == level.on_hand


async def test_a_vendor_that_keeps_failing_opens_the_circuit_and_alerts(simulators, config):
    from apicenterd.observe.alerts import Alerter

    ccv_app, eacc_app, ccv_url, eacc_url = simulators(products=5)
    _, resolved = config(ccv_url, eacc_url)
    eacc_app.state.sim.fail_next(503, {"ErrorCode": 5000, "DeveloperErrorMessage": "down"}, times=50, path_prefix="/v2/")
    alerter = Alerter()
    store = SQLiteStore(resolved.state_path)
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0.001, retry_attempts=8, alerter=alerter)
    try:
        result = await engine.run_flow("products")
        breaker = engine.connectors["eaccounting"].context.breaker
    finally:
        await engine.aclose()
        await store.close()
    assert result.status == "failed" and breaker.state != "closed"
    kinds = [a.kind for a in alerter.sent]
    assert "circuit_open" in kinds and "flow_failing" in kinds

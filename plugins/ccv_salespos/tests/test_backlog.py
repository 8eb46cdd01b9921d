"""The sources' backlogs (``Source.backlog``: how many records a read from a cursor has, for a deferred
flow's expected completion). CCV's collections tell no total (CCV-SHOP-API.md §4): products are
placed by a search with one-item pages, a delta orders read counts what it gathered, a read of every
order takes the span of the order numbers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from apicenterd_ccv_salespos import CCVSalesPOSConnector

from apicenterd import Entity
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio
BASE = "http://myshop.test"
START = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def _gets(sim) -> list[str]:
    return [target for method, target in sim.requests if method == "GET"]


@pytest.mark.parametrize("count", [0, 1, 2, 3, 7, 8, 9, 100, 257])
async def test_every_product_is_counted_exactly_in_few_calls(count):
    app = CCVSalesPOSConnector.simulator(seed=1, records=0)
    sim = app.state.sim
    for n in range(count):
        sim.add_product(name=f"P{n}", price=1.0, productnumber=f"P-{n}", when=START + timedelta(minutes=n))
    async with connect(CCVSalesPOSConnector, CCVSalesPOSConnector.demo_settings(BASE), app=app) as conn:
        sim.requests.clear()
        assert await conn.source(Entity.STOCK).backlog(None) == count
        assert await conn.source(Entity.PRODUCTS).backlog(None) == count
        assert len(_gets(sim)) <= 2 * (2 * count.bit_length() + 2)  # two searches of ~2·log2(n) one-item pages
        assert all("size=1" in t for t in _gets(sim))


async def test_products_since_a_cursor_are_the_ones_the_read_yields():
    app = CCVSalesPOSConnector.simulator(seed=1, records=0)
    sim = app.state.sim
    for n in range(40):
        sim.add_product(name=f"P{n}", price=1.0, productnumber=f"P-{n}", when=START + timedelta(minutes=n))
    async with connect(CCVSalesPOSConnector, CCVSalesPOSConnector.demo_settings(BASE), app=app) as conn:
        source = conn.source(Entity.PRODUCTS)
        for minutes in (0, 1, 13, 39, 40):
            cursor = (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
            read = [c async for c in source.changes(cursor)]
            assert await source.backlog(cursor) == len(read) == 40 - minutes
        assert await source.backlog("not a time") is None


async def test_a_delta_orders_read_counts_what_it_gathered_without_a_call():
    app = CCVSalesPOSConnector.simulator(seed=2, records=5)
    sim = app.state.sim
    product = next(iter(sim.products.values()))
    for _ in range(6):
        sim.add_order([(product["id"], 1)], status=7)
    async with connect(CCVSalesPOSConnector, {**CCVSalesPOSConnector.demo_settings(BASE), "order_reread_days": 0}, app=app) as conn:
        source = conn.source(Entity.ORDERS)
        everything = [c async for c in source.changes(None)]
        numbers = sorted(o["ordernumber"] for o in sim.orders.values() if o["ordernumber"] is not None)
        assert await source.backlog(None) == numbers[-1] - numbers[0] + 1 == len(everything)
        cursor = everything[-4].cursor
        delta = [c async for c in source.changes(cursor)]
        sim.requests.clear()
        assert await source.backlog(cursor) == len(delta) == 4
        assert sim.requests == []
        assert await source.backlog("x") is None


async def test_no_orders_no_backlog_figure():
    app = CCVSalesPOSConnector.simulator(seed=2, records=0)
    async with connect(CCVSalesPOSConnector, CCVSalesPOSConnector.demo_settings(BASE), app=app) as conn:
        assert await conn.source(Entity.ORDERS).backlog(None) is None

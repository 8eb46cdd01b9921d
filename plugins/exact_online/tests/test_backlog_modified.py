"""The backlog of the sources read with a ``Modified ge`` filter (sales orders, stock positions, goods
deliveries): a read whose first page is full (60 rows: more follow) is counted once with
``{resource}/$count`` and the read's own filter; the backlog is then told without a call."""

from __future__ import annotations

import itertools

import pytest
from apicenterd_exact_online import ExactOnlineConnector
from apicenterd_exact_online.simulator import PAGE

from apicenterd import Entity
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio

MORE = PAGE + 7
"""Rows in a long read: a full first page and a few more."""


@pytest.fixture
def app():
    """A fresh simulator with three items, on a clock that stays within one second: every row's
    ``Modified`` is the same second, so a read from the newest one reads them all again (on the wall
    clock a loaded machine could cross a second while the rows are made, and the re-read be short)."""
    ticks = itertools.count()
    return ExactOnlineConnector.simulator(seed=3, records=3, clock=lambda: 1_800_000_000.0 + next(ticks) * 1e-5)


def _counts(sim) -> list[str]:
    return [target for _method, target in sim.requests if "/$count" in target]


async def _read_twice(sim, settings, app, entity: Entity, resource: str, *, expected: int, **extra):
    """Read ``entity`` from the start (one count, with the read's filter), then from where it ended."""
    async with connect(ExactOnlineConnector, {**settings, **extra}, app=app) as conn:
        source = conn.source(entity)
        assert await source.backlog(None) is None  # nothing counted yet: unknown, and no call to find out
        filters: dict[str, list[str]] = {"count": [], "read": []}
        count, pages = conn.client.count, conn.client.pages

        async def counting(resource, *, filter, what):
            filters["count"].append(filter)
            return await count(resource, filter=filter, what=what)

        def reading(resource, **kw):
            filters["read"].append(kw.get("filter"))
            return pages(resource, **kw)

        conn.client.count, conn.client.pages = counting, reading
        sim.requests.clear()
        read = [change async for change in source.changes(None)]
        counts = _counts(sim)
        assert len(counts) == 1 and counts[0].endswith(f"{resource}/$count")
        assert filters["count"] == [filters["read"][0]] == ["Modified ge datetime'1900-01-01T00:00:00'"]  # the read's filter
        sim.requests.clear()
        assert await source.backlog(None) == expected
        assert sim.requests == []  # told from what the read counted
        # another read (another run) is counted again, once, under its own cursor
        sim.requests.clear()
        again = [change async for change in source.changes(read[-1].cursor)]
        assert len(_counts(sim)) == 1
        assert await source.backlog(read[-1].cursor) == (expected if len(again) >= PAGE else None)
        return read


def _orders(sim, n: int) -> list[dict]:
    buyer = sim.add_account("Buyer BV", "buyer@example.com", code="4001", City="Gouda", Country="NL")
    code = next(iter(sim.data["logistics/Items"].values()))["Code"]
    return [sim.add_order(buyer["ID"], [(code, 1, 10.0)]) for _ in range(n)]


async def test_sales_orders_are_counted_once_with_the_reads_filter(app, sim, settings):
    _orders(sim, MORE)
    read = await _read_twice(sim, settings, app, Entity.ORDERS, "salesorder/SalesOrders", expected=MORE)
    assert len(read) == MORE


async def test_goods_deliveries_are_counted_once(app, sim, settings):
    for order in _orders(sim, MORE):
        sim.deliver(order, f"3S{order['OrderNumber']:08d}")
    await _read_twice(sim, settings, app, Entity.SHIPMENTS, "salesorder/GoodsDeliveries", expected=MORE)


async def test_stock_positions_are_counted_and_scaled_to_the_warehouse_read(app, sim, settings):
    for n in range(MORE):
        sim._store("logistics/Items", {"Code": f"S-{n}", "Description": f"Item {n}", "IsSalesItem": True})
        sim.set_stock(f"S-{n}", 5, warehouse="1" if n % 3 else "2")
    rows = len(sim.data["inventory/ItemWarehouses"])
    assert rows == MORE
    read = await _read_twice(sim, settings, app, Entity.STOCK, "inventory/ItemWarehouses", expected=rows)
    assert len(read) == rows


async def test_one_warehouses_stock_is_counted_scaled_to_what_the_read_keeps(app, sim, settings):
    for n in range(MORE):
        sim._store("logistics/Items", {"Code": f"S-{n}", "Description": f"Item {n}", "IsSalesItem": True})
        sim.set_stock(f"S-{n}", 5, warehouse="1" if n % 3 else "2")
    # one warehouse: the count of every warehouse's rows scaled by the share the first page kept
    in_one = sum(1 for r in sim.data["inventory/ItemWarehouses"].values() if r["WarehouseCode"] == "1")
    async with connect(ExactOnlineConnector, {**settings, "stock_warehouse": "1"}, app=app) as conn:
        source = conn.source(Entity.STOCK)
        kept = [change async for change in source.changes(None)]
        assert len(kept) == in_one
        assert abs(await source.backlog(None) - in_one) <= 2  # about: the first page's share of 60 rows


async def test_a_short_read_costs_no_count(app, sim, settings):
    _orders(sim, 3)
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        source = conn.source(Entity.ORDERS)
        assert len([c async for c in source.changes(None)]) == 3
        assert _counts(sim) == [] and await source.backlog(None) is None


async def test_a_failed_count_leaves_the_backlog_unknown_and_the_read_whole(app, sim, settings):
    _orders(sim, MORE)
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        source = conn.source(Entity.ORDERS)
        original = conn.client.count

        async def refused(resource, *, filter, what):
            from apicenterd import RecordError

            raise RecordError(f"{what}: 400 $count is not supported here")

        conn.client.count = refused
        try:
            assert len([c async for c in source.changes(None)]) == MORE
        finally:
            conn.client.count = original
        assert await source.backlog(None) is None

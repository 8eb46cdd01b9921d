"""The simulator's lazy mode: a million products served without holding them, same behaviour as stored ones."""

from __future__ import annotations

import contextlib

import pytest
from apicenterd_ccv_salespos import CCVSalesPOSConnector
from apicenterd_ccv_salespos.simulator import LazyProducts

from apicenterd import Entity
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio

SETTINGS = {"base_url": "http://simulator.test", **{k: v for k, v in CCVSalesPOSConnector.demo_settings("x").items() if k != "base_url"}}


def lazy_app(records: int):
    return CCVSalesPOSConnector.simulator(seed=4, records=records, lazy=True, rate_limit=0)


def test_a_million_products_are_not_built_until_asked_for():
    sim = lazy_app(1_000_000).state.sim
    assert isinstance(sim.products, LazyProducts) and len(sim.products) == 1_000_000
    assert sim.products._written == {}  # nothing materialised by seeding the orders
    first, last = sim.products[1001], sim.products[1_001_000]
    assert first["productnumber"] == "SP-10001" and last["productnumber"] == "SP-1010000"
    assert first["modifydate"] < last["modifydate"] and sim.products[1001] == first  # the same each time
    assert len(sim.orders) == 200


async def test_the_connector_reads_lazy_products_newest_first_and_sees_changes():
    app = lazy_app(30)
    sim = app.state.sim
    async with connect(CCVSalesPOSConnector, {**SETTINGS, "page_size": 7}, app=app) as connector:
        changes = [c async for c in connector.read(Entity.PRODUCTS, None)]
        assert [c.source_id for c in changes] == [str(pid) for pid in range(1030, 1000, -1)]
        cursor = changes[-1].cursor
        sim.update_product(1003, name="Nieuw")
        sim.add_product(productnumber="SP-NEW", name="Nieuw product", price=2.0)
        del sim.products[1010]
        again = [c async for c in connector.read(Entity.PRODUCTS, cursor)]
        everything = [c async for c in connector.read(Entity.PRODUCTS, None)]
    assert {c.source_id for c in again} >= {"1003", "1031"} and "1010" not in {c.source_id for c in everything}
    assert next(c.record for c in again if c.source_id == "1003").name == "Nieuw"
    assert len(everything) == 30 and sim.products[1003]["name"] == "Nieuw"


async def test_lazy_paging_answers_like_stored_products():
    app = lazy_app(12)
    sim = app.state.sim
    async with (
        connect(CCVSalesPOSConnector, {**SETTINGS, "page_size": 5}, app=app) as connector,
        contextlib.aclosing(connector.client.products(orderby="createdate_desc")) as items,
    ):
        listed = [item async for item in items]
    assert [i["id"] for i in listed] == list(range(1012, 1000, -1))
    for item in listed:
        stored = sim.products[item["id"]]
        assert (item["productnumber"], item["name"], item["modifydate"]) == (stored["productnumber"], stored["name"], stored["modifydate"])
        assert set(item) == set(stored)

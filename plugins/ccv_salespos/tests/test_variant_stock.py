"""Variant stock: the stock sink finds a SKU no product has among the attribute combinations (indexed
by one paged ``/products/?expand=attributecombinations`` read) and writes ``PATCH
/attributecombinations/:id/ {"stock": n}`` (CCV-SHOP-API.md §5)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from apicenterd_ccv_salespos import CCVSalesPOSConnector
from apicenterd_ccv_salespos import connector as ccv

from apicenterd import Entity, RecordError, StockLevel
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio
BASE = "http://myshop.test"


def _level(sku: str, available: str, *, tracked: bool = True) -> StockLevel:
    n = Decimal(available)
    return StockLevel(sku=sku, on_hand=n, reserved=Decimal(0), available=n, tracked=tracked)


def _shirt(sim):
    shirt = sim.add_product(name="T-shirt", price=19.95, productnumber="TS", stockenabled=True, stock=0.0)
    combos = [
        sim.add_combination(shirt["id"], [("Maat", size)], sku_number=f"TS-{size}", ean_number=f"871000000{n}", stock=2)
        for n, size in enumerate(("S", "M", "L"))
    ]
    return shirt, combos


async def test_the_simulator_serves_variants_as_the_spec_describes():
    app = CCVSalesPOSConnector.simulator(seed=1, records=0)
    sim = app.state.sim
    shirt, combos = _shirt(sim)
    async with connect(CCVSalesPOSConnector, CCVSalesPOSConnector.demo_settings(BASE), app=app) as conn:
        listed = [c async for c in conn.client.collection(f"products/{shirt['id']}/attributecombinations/", what="variants")]
        keys = {"href", "id", "note", "product_id", "stock", "netto_extra_price", "ordering_without_stock", "product_number"}
        keys |= {"ean_number", "sku_number", "delivery_time", "delivery_time_type", "delivery_default_text", "active", "combination"}
        assert [c["id"] for c in listed] == [c["id"] for c in combos] and set(listed[0]) == keys
        assert listed[0]["combination"][0]["attribute_value"]["name"] == "S"
        with pytest.raises(RecordError, match="400.11|not allowed"):  # only stock and active are written
            await conn.client.request("PATCH", f"attributecombinations/{combos[0]['id']}/", what="v", json={"price": 3})
        with pytest.raises(RecordError, match="expand"):
            await conn.client.request("GET", "products/", what="p", params={"expand": "everything"})


async def test_a_variant_sku_is_found_and_its_stock_written_with_one_index_read():
    app = CCVSalesPOSConnector.simulator(seed=1, records=3)
    sim = app.state.sim
    _shirt_product, combos = _shirt(sim)
    async with connect(CCVSalesPOSConnector, CCVSalesPOSConnector.demo_settings(BASE), app=app) as conn:
        sink = conn.sink(Entity.STOCK)
        found = await sink.find("TS-M")
        assert found is not None and found.id == f"attributecombinations/{combos[1]['id']}"
        assert found.record.available == 2 and found.record.tracked
        await sink.update_found(found, _level("TS-M", "11"), frozenset({"available"}))
        assert sim.attributecombinations[combos[1]["id"]]["stock"] == 11.0
        sim.requests.clear()
        other = await sink.find("TS-L")  # known from the index: no call at all
        assert other is not None and sim.requests == []
        # update() (a record the daemon mapped before) goes to the same variant
        await sink.update(other.id, _level("TS-L", "4"), frozenset({"available"}))
        assert sim.attributecombinations[combos[2]["id"]]["stock"] == 4.0
        with pytest.raises(RecordError, match="no product or variant"):
            await sink.create(_level("TS-XXL", "1"))


async def test_a_new_variant_is_found_once_the_index_is_old(monkeypatch):
    app = CCVSalesPOSConnector.simulator(seed=1, records=0)
    sim = app.state.sim
    shirt, _combos = _shirt(sim)
    async with connect(CCVSalesPOSConnector, CCVSalesPOSConnector.demo_settings(BASE), app=app) as conn:
        sink = conn.sink(Entity.STOCK)
        assert await sink.find("TS-XL") is None
        sim.add_combination(shirt["id"], [("Maat", "XL")], sku_number="TS-XL", stock=1)
        assert await sink.find("TS-XL") is None  # the index is fresh: not read again for every unknown SKU
        monkeypatch.setattr(ccv, "VARIANT_INDEX_SECONDS", -1.0)
        assert (await sink.find("TS-XL")) is not None


async def test_a_sku_two_variants_share_is_not_guessed():
    app = CCVSalesPOSConnector.simulator(seed=1, records=0)
    sim = app.state.sim
    shirt, _combos = _shirt(sim)
    sim.add_combination(shirt["id"], [("Maat", "M"), ("Kleur", "Blauw")], sku_number="TS-M", stock=1)
    async with connect(CCVSalesPOSConnector, CCVSalesPOSConnector.demo_settings(BASE), app=app) as conn:
        assert await conn.sink(Entity.STOCK).find("TS-M") is None  # then create: "no product or variant" (dead-lettered)
        assert await conn.sink(Entity.STOCK).find("TS-S") is not None


async def test_a_realistic_expansion_with_more_variants_than_it_embeds(monkeypatch):
    """The products page as a shop sends it (keys of CCV-SHOP-API.md §5, numbers as JSON floats, the
    expansion holding the first combination and a ``next`` link): the rest is read from the product's
    ``attributecombinations`` collection."""
    app = CCVSalesPOSConnector.simulator(seed=1, records=0)
    sim = app.state.sim
    shirt, combos = _shirt(sim)
    root = f"{BASE}/api/rest/v1/"
    first = dict(combos[0], href=f"{root}attributecombinations/{combos[0]['id']}/", stock=Decimal("2.0"))
    href = f"{root}products/{shirt['id']}/attributecombinations/"
    page = {
        "href": f"{root}products/?expand=attributecombinations&start=0&size=100",
        "start": 0,
        "size": 100,
        "first": f"{root}products/?expand=attributecombinations&start=0&size=100",
        "previous": None,
        "next": None,
        "items": [
            {
                **{k: v for k, v in shirt.items() if k != "attributecombinations"},
                "href": f"{root}products/{shirt['id']}/",
                "stock": Decimal("0.0"),
                "attributecombinations": {
                    "href": href,
                    "collection": {
                        "href": f"{href}?start=0&size=1",
                        "start": 0,
                        "size": 1,
                        "first": f"{href}?start=0&size=1",
                        "previous": None,
                        "next": f"{href}?start=1&size=1",
                        "items": [first],
                    },
                },
            },
            {"href": f"{root}products/99/", "id": 99, "productnumber": "NO-VARIANTS", "stockenabled": True,
             "attributecombinations": {"href": f"{root}products/99/attributecombinations/"}},
        ],
    }  # fmt: skip
    async with connect(CCVSalesPOSConnector, CCVSalesPOSConnector.demo_settings(BASE), app=app) as conn:
        real = conn.client.products

        def products(**params):
            if params.get("expand") != "attributecombinations":
                return real(**params)

            async def one_page():
                for item in page["items"]:
                    yield item

            return one_page()

        monkeypatch.setattr(conn.client, "products", products)
        index = await conn.variants_by_sku()
        assert sorted(index) == ["TS-L", "TS-M", "TS-S"]
        assert index["TS-L"]["attributecombination"]["id"] == combos[2]["id"] and index["TS-L"]["product_id"] == shirt["id"]
        gets = [t.split("?")[0] for m, t in sim.requests if m == "GET" and "/attributecombinations" in t]
        assert gets == [f"/api/rest/v1/products/{shirt['id']}/attributecombinations/"]
        sink = conn.sink(Entity.STOCK)
        found = await sink.find("TS-S")
        assert found is not None and found.record.on_hand == Decimal("2")
        await sink.update_found(found, _level("TS-S", "7"), frozenset({"available"}))
        assert sim.attributecombinations[combos[0]["id"]]["stock"] == 7.0

"""The connector against its simulator, in process: reads, delta cursor, reservations, limits, auth."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from importlib.metadata import entry_points

import anyio
import httpx
import pytest
from apicenterd_ccv_salespos import CCVSalesPOSConnector
from apicenterd_ccv_salespos.mapping import NOT_RESERVING_STATUSES

from apicenterd import AuthError, Connector, Entity, FatalError, RateLimited, RetryableError, StockLevel
from apicenterd.testing import connect, make_context

pytestmark = pytest.mark.anyio
BASE = "http://myshop.test"


def settings(**overrides):
    """Demo settings for the in-process simulator, with ``overrides``."""
    return {**CCVSalesPOSConnector.demo_settings(BASE), **overrides}


async def read(connector, entity, since=None):
    """Every change a read yields."""
    return [change async for change in connector.read(entity, since)]


class Recorder:
    """A stand-in logger that keeps warnings."""

    def __init__(self):
        self.warnings = []

    def warning(self, event, **fields):
        self.warnings.append((event, fields))


def test_plugin_registers_the_connector_through_its_entry_point():
    (entry,) = [e for e in entry_points(group="apicenterd.connectors") if e.name == "ccv_salespos"]
    registered: list[type[Connector]] = []
    entry.load().register_connectors(register=registered.append)
    assert registered == [CCVSalesPOSConnector]
    assert CCVSalesPOSConnector.reads == {Entity.PRODUCTS, Entity.STOCK, Entity.ORDERS, Entity.CUSTOMERS}
    assert CCVSalesPOSConnector.writes == {Entity.SHIPMENTS, Entity.STOCK}
    assert CCVSalesPOSConnector.written_fields == {
        Entity.SHIPMENTS: {"order_number", "tracking_code", "carrier"},
        Entity.STOCK: {"available"},
    }
    assert CCVSalesPOSConnector.default_port == 8701


def test_settings_defaults_and_bounds():
    model = CCVSalesPOSConnector.Settings.model_validate(settings())
    assert model.media_type == "application/vnd.verto.salespos+json"
    assert (model.page_size, model.currency, model.prices_include_tax, model.verify_response_signature) == (
        100, "EUR", None, True
    )
    assert (model.order_reread_days, model.variant_sku, model.shipment_mail) == (30, False, True)
    with pytest.raises(ValueError, match="order_reread_days"):
        CCVSalesPOSConnector.Settings.model_validate(settings(order_reread_days=-1))
    with pytest.raises(ValueError, match="page_size"):
        CCVSalesPOSConnector.Settings.model_validate(settings(page_size=251))
    assert "demo-private" not in repr(model)


def test_rate_limits_are_150_gets_and_100_writes_per_resource_and_method():
    limits = {limit.name: limit for limit in CCVSalesPOSConnector.rate_limits}
    gets, writes = limits["get_per_resource"], limits["write_per_resource"]
    assert (gets.requests, gets.period, writes.requests, writes.period) == (150, 60.0, 100, 60.0)

    def keys(method, url):
        request = httpx.Request(method, BASE + url)
        return gets.key(request), writes.key(request)

    # each request is governed by exactly one of the two limits
    assert keys("GET", "/api/rest/v1/products/?start=0&size=5") == ("GET:products", None)
    assert keys("GET", "/api/rest/v1/products/17/") == ("GET:products", None)
    assert keys("GET", "/api/rest/v1/orders/3/orderrows/") == ("GET:orderrows", None)
    assert keys("PATCH", "/api/rest/v1/orders/3/") == (None, "PATCH:orders")
    assert keys("POST", "/api/rest/v1/orders/") == (None, "POST:orders")


async def test_client_side_limits_hold_gets_and_writes_apart():
    context = make_context(CCVSalesPOSConnector)
    limiters = context.limiters  # the daemon's limiter set for this connection
    get = httpx.Request("GET", BASE + "/api/rest/v1/products/")
    patch = httpx.Request("PATCH", BASE + "/api/rest/v1/products/1/")

    async def blocks(request) -> bool:
        with anyio.move_on_after(0.05) as scope:
            await limiters.acquire(request)
        return scope.cancelled_caught

    for _ in range(100):
        assert not await blocks(patch)
    assert await blocks(patch)
    for _ in range(150):  # the writes did not eat the GET budget
        assert not await blocks(get)
    assert await blocks(get)
    assert not await blocks(httpx.Request("POST", BASE + "/api/rest/v1/products/"))  # POST has its own


async def test_check_and_accept_header():
    app = CCVSalesPOSConnector.simulator(seed=1, records=3)
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        await connector.check()
    assert app.state.sim.request_count == 1
    assert app.state.sim.last_accept == "application/vnd.verto.salespos+json"


async def test_reads_every_product_newest_first_and_moves_the_cursor_with_the_last():
    app = CCVSalesPOSConnector.simulator(seed=3, records=23)
    sim = app.state.sim
    async with connect(CCVSalesPOSConnector, settings(page_size=5), app=app) as connector:
        changes = await read(connector, Entity.PRODUCTS)
    assert sorted(c.source_id for c in changes) == sorted(str(i) for i in sim.products)
    stamps = [sim.products[int(c.source_id)]["modifydate"] for c in changes]
    assert stamps == sorted(stamps, reverse=True)  # CCV's own order: modifydate_desc
    # nothing older is settled before the read ends: only the last change moves the cursor
    assert [c.cursor for c in changes[:-1]] == ["1970-01-01T00:00:00Z"] * 22
    assert changes[-1].cursor == max(p["modifydate"] for p in sim.products.values())
    assert len([r for r in sim.requests if "/products/" in r[1]]) == 5  # 23 products at 5 a page
    one = next(c for c in changes if c.source_id == str(min(sim.products)))
    raw = sim.products[min(sim.products)]
    assert one.record.sku == raw["productnumber"] and one.record.ean == raw["eannumber"]
    assert one.record.price_incl_tax == Decimal(str(raw["price"])) - Decimal(str(raw["discount"]))


async def test_products_are_yielded_page_by_page_not_after_the_whole_read():
    app = CCVSalesPOSConnector.simulator(seed=3, records=40)
    sim = app.state.sim
    async with connect(CCVSalesPOSConnector, settings(page_size=5), app=app) as connector:
        seen_pages = []
        async with contextlib.aclosing(connector.read(Entity.PRODUCTS, None)) as changes:
            async for _change in changes:
                seen_pages.append(len([r for r in sim.requests if "/products/" in r[1]]))
    assert len(seen_pages) == 40
    # the first product is handed on after one page (of 8), the sixth after two
    assert seen_pages[0] == 1 and seen_pages[5] == 2 and seen_pages[-1] == 8


async def test_delta_read_yields_what_changed_since_the_cursor():
    app = CCVSalesPOSConnector.simulator(seed=1, records=30)
    sim = app.state.sim
    async with connect(CCVSalesPOSConnector, settings(page_size=7), app=app) as connector:
        first = await read(connector, Entity.PRODUCTS)
        cursor = first[-1].cursor
        changed = sorted(sim.products)[4]
        sim.update_product(changed, name="Hollandse stroopwafels 8 stuks", price=3.49)
        sim.request_count = 0
        again = await read(connector, Entity.PRODUCTS, cursor)
    ids = [c.source_id for c in again]
    assert str(changed) in ids
    assert ids[0] == str(changed) and again[0].record.name == "Hollandse stroopwafels 8 stuks"
    # only the boundary second is read again, not the catalogue
    assert all(c.cursor == cursor for c in again[:-1]) and len(again) < len(first)
    assert again[-1].cursor == sim.products[changed]["modifydate"] > cursor
    assert sim.request_count == 1


async def test_product_without_productnumber_is_a_failed_change_not_a_gap():
    """Before: logged and skipped (never in the audit trail or the dead-letter queue)."""
    app = CCVSalesPOSConnector.simulator(seed=1, records=2)
    sim = app.state.sim
    orphan = sim.add_product(name="Zonder nummer", price=1.0)
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        changes = await read(connector, Entity.PRODUCTS)
    failed = {c.source_id: c for c in changes if c.record is None}
    assert set(failed) == {str(orphan["id"])} and len(changes) == 3
    assert "productnumber" in failed[str(orphan["id"])].error


async def test_product_with_an_unreadable_modifydate_fails_that_product_not_the_run():
    app = CCVSalesPOSConnector.simulator(seed=1, records=3)
    sim = app.state.sim
    broken = sorted(sim.products)[1]
    sim.products[broken]["modifydate"] = "gisteren"  # found by test_fuzz.py: this used to fail every products run
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        changes = await read(connector, Entity.PRODUCTS)
    assert {c.source_id for c in changes if c.record is not None} == {str(pid) for pid in sim.products if pid != broken}
    (failed,) = [c for c in changes if c.record is None]
    assert failed.source_id == str(broken)
    assert failed.error == f"product {broken}.modifydate: 'gisteren' is not an ISO-8601 timestamp"


async def test_an_unreadable_reserved_row_fails_that_products_stock_not_the_run():
    app = CCVSalesPOSConnector.simulator(seed=2, records=5)
    sim = app.state.sim
    tracked = next(p for p in sim.products.values() if p["stockenabled"])
    order = sim.add_order([(tracked["id"], 2)], status=14)
    row = next(r for r in sim.orderrows.values() if r["order_id"] == order["id"])
    row["count"] = "twee"  # found by test_fuzz.py: a RecordError here used to end the stock run
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        changes = {c.source_id: c for c in await read(connector, Entity.STOCK)}
    assert set(changes) == {str(pid) for pid in sim.products}
    failed = changes.pop(str(tracked["id"]))
    assert failed.record is None and failed.cursor is not None
    assert failed.error == f"reserved stock unknown: order row {row['id']}.count: expected a number, got 'twee'"
    assert all(isinstance(c.record, StockLevel) and c.error is None for c in changes.values())


async def test_stock_subtracts_rows_of_open_orders_only():
    app = CCVSalesPOSConnector.simulator(seed=2, records=40)
    sim = app.state.sim
    tracked = next(p for p in sim.products.values() if p["stockenabled"])
    sim.add_order([(tracked["id"], 2)], status=14)  # reserved
    sim.add_order([(tracked["id"], 5)], status=5)  # sent: no longer reserved
    sim.add_order([(tracked["id"], 7)], status=2, is_completed=False)  # never checked out
    expected: dict[int, Decimal] = {}
    for row in sim.orderrows.values():
        order = sim.orders[row["order_id"]]
        if order["is_completed"] and order["status"] not in NOT_RESERVING_STATUSES:
            expected[row["product_id"]] = expected.get(row["product_id"], Decimal(0)) + Decimal(row["count"])
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        changes = await read(connector, Entity.STOCK)
    levels = {int(c.source_id): c.record for c in changes}
    assert set(levels) == set(sim.products)
    assert all(isinstance(level, StockLevel) for level in levels.values())
    assert len({c.cursor for c in changes}) == 1
    assert any(level.reserved for level in levels.values())
    for pid, level in levels.items():
        product = sim.products[pid]
        assert level.tracked is product["stockenabled"]
        if product["stockenabled"]:
            assert level.on_hand == Decimal(str(product["stock"]))
            assert level.reserved == expected.get(pid, 0)
            assert level.available == level.on_hand - level.reserved
    assert levels[tracked["id"]].reserved >= 2


async def test_stock_ignores_since_and_reads_again():
    app = CCVSalesPOSConnector.simulator(seed=1, records=5)
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        first = await read(connector, Entity.STOCK)
        second = await read(connector, Entity.STOCK, first[-1].cursor)
    assert [c.record for c in first] == [c.record for c in second]
    assert second[0].cursor >= first[0].cursor


async def test_wrong_private_key_is_an_auth_error():
    app = CCVSalesPOSConnector.simulator(seed=1, records=1)
    async with connect(CCVSalesPOSConnector, settings(private_key="wrong"), app=app) as connector:
        with pytest.raises(AuthError) as caught:
            await connector.check()
    assert caught.value.status == 401 and caught.value.vendor_code.startswith("401")


async def test_unsigned_responses_are_refused_unless_verification_is_off():
    app = CCVSalesPOSConnector.simulator(seed=1, records=2, sign_responses=False)
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        with pytest.raises(FatalError, match="not signed"):
            await read(connector, Entity.PRODUCTS)
    async with connect(CCVSalesPOSConnector, settings(verify_response_signature=False), app=app) as connector:
        assert len(await read(connector, Entity.PRODUCTS)) == 2


async def test_simulator_rate_limit_is_rate_limited_429_10():
    app = CCVSalesPOSConnector.simulator(seed=1, records=10, rate_limit=2)
    async with connect(CCVSalesPOSConnector, settings(page_size=3), app=app, rate_limits=False) as connector:
        with pytest.raises(RateLimited) as caught:
            await read(connector, Entity.PRODUCTS)
    assert caught.value.vendor_code == "429.10" and 0 < caught.value.retry_after <= 60


async def test_simulator_total_limit_is_429_11():
    app = CCVSalesPOSConnector.simulator(seed=1, records=1, rate_limit=0, total_limit=3)
    async with connect(CCVSalesPOSConnector, settings(), app=app, rate_limits=False) as connector:
        for _ in range(3):
            await connector.check()
        with pytest.raises(RateLimited) as caught:
            await connector.check()
    assert caught.value.vendor_code == "429.11"


async def test_simulator_fail_next_is_the_toolkits_fault_switch_after_the_signature_check():
    app = CCVSalesPOSConnector.simulator(seed=1, records=1)
    sim = app.state.sim
    sim.fail_next(503, {"status": 503, "code": "503.00", "developermessage": "down"}, path_prefix="/api/rest/v1/")
    async with connect(CCVSalesPOSConnector, settings(private_key="wrong"), app=app) as connector:
        with pytest.raises(AuthError):  # refused by the signature gate: the fault is still queued
            await connector.check()
    assert len(sim.faults) == 1
    async with connect(CCVSalesPOSConnector, settings(), app=app, rate_limits=False) as connector:
        with pytest.raises(RetryableError) as caught:
            await connector.check()
        assert caught.value.status == 503
        await connector.check()  # once only
    assert len(sim.faults) == 0 and sim.count("GET", "/api/rest/v1/") == sim.request_count


def test_simulator_seed_is_deterministic():
    a = CCVSalesPOSConnector.simulator(seed=7, records=15).state.sim
    b = CCVSalesPOSConnector.simulator(seed=7, records=15).state.sim
    c = CCVSalesPOSConnector.simulator(seed=8, records=15).state.sim
    assert a.products == b.products and a.orders == b.orders
    assert a.products != c.products
    for product in a.products.values():
        digits = [int(d) for d in product["eannumber"]]
        assert len(digits) == 13 and sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10 == 0
    statuses = {o["status"] for o in a.orders.values()}
    assert statuses & NOT_RESERVING_STATUSES and statuses - NOT_RESERVING_STATUSES

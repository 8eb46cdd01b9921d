"""The connector's orders, customers and shipments against its simulator, in process."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from apicenterd_ccv_salespos import CCVSalesPOSConnector
from apicenterd_ccv_salespos.mapping import ORDER_STATUSES, order_cursor
from apicenterd_ccv_salespos.simulator import EPOCH, UNKNOWN_SKU

from apicenterd import Customer, Entity, Order, RecordError, Shipment
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio
BASE = "http://myshop.test"
SOON_AFTER_SEED = EPOCH + timedelta(days=10)
"""A clock at which every seeded order is inside the default 30-day re-read window."""


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


def calls(sim, fragment, method="GET"):
    """How many requests the simulator saw whose path contains ``fragment``."""
    return len([1 for m, uri in sim.requests if m == method and fragment in uri])


def completed(sim):
    """The simulator's completed orders by ordernumber."""
    return sorted((o for o in sim.orders.values() if o["is_completed"]), key=lambda o: o["ordernumber"])


# -- orders ------------------------------------------------------------------------------------


async def test_reads_every_completed_order_with_its_rows_in_number_order():
    app = CCVSalesPOSConnector.simulator(seed=4, records=40)
    sim = app.state.sim
    basket = sim.add_order([(min(sim.products), 1)], is_completed=False)  # never checked out
    async with connect(CCVSalesPOSConnector, settings(page_size=3), app=app) as connector:
        changes = await read(connector, Entity.ORDERS)
    expected = completed(sim)
    assert [c.source_id for c in changes] == [str(o["id"]) for o in expected]
    assert str(basket["id"]) not in {c.source_id for c in changes}
    assert [c.cursor for c in changes] == [order_cursor(o["ordernumber"]) for o in expected]
    for change, raw in zip(changes, expected, strict=True):
        order = change.record
        assert isinstance(order, Order)
        assert (order.number, order.status, order.paid) == (raw["ordernumber_full"], ORDER_STATUSES[raw["status"]], raw["paid"])
        assert order.total == Decimal(str(raw["total_price"])) and order.custom_fields["ccv_status"] == raw["status"]
        rows = [r for r in sim.orderrows.values() if r["order_id"] == raw["id"]]
        products = [line for line in order.lines if line.kind == "product"]
        assert sorted(line.sku for line in products) == sorted(r["product_number"] for r in rows)
        assert sum(line.total for line in order.lines) == order.total  # rows + shipping − coupon add up
        assert order.customer.email == raw["customer"]["email"].lower()
    kinds = {line.kind for change in changes for line in change.record.lines}
    assert {"product", "shipping", "discount"} <= kinds  # the seed has shipping costs and coupons
    assert calls(sim, "/orderrows") == len(expected)


async def test_delta_reads_new_orders_and_rereads_recent_ones_at_the_since_cursor():
    app = CCVSalesPOSConnector.simulator(seed=1, records=40)
    sim = app.state.sim
    async with connect(CCVSalesPOSConnector, settings(page_size=4), app=app) as connector:
        connector.clock = lambda: SOON_AFTER_SEED
        first = await read(connector, Entity.ORDERS)
        since = first[-1].cursor
        unpaid = next(o for o in completed(sim) if not o["paid"])
        sim.set_status(unpaid["id"], 2, paid=True)  # paid in the back office: no new order number
        new = sim.add_order([(min(sim.products), 2)], status=1, when=EPOCH + timedelta(days=5))
        again = await read(connector, Entity.ORDERS, since)
    cursors = [c.cursor for c in again]
    assert cursors == sorted(cursors) and all(c >= since for c in cursors)
    by_id = {c.source_id: c for c in again}
    changed = by_id[str(unpaid["id"])]
    assert changed.cursor == since  # re-read below the cursor: the cursor does not go back
    assert (changed.record.paid, changed.record.status) == (True, "in_process")
    assert again[-1].source_id == str(new["id"]) and again[-1].cursor == order_cursor(new["ordernumber"])
    assert again[-1].cursor > since


async def test_without_a_reread_window_a_delta_is_the_new_orders_only():
    app = CCVSalesPOSConnector.simulator(seed=1, records=40)
    sim = app.state.sim
    async with connect(CCVSalesPOSConnector, settings(order_reread_days=0), app=app) as connector:
        connector.clock = lambda: SOON_AFTER_SEED
        since = (await read(connector, Entity.ORDERS))[-1].cursor
        new = sim.add_order([(min(sim.products), 1)])
        again = await read(connector, Entity.ORDERS, since)
    assert [c.cursor for c in again] == [since, order_cursor(new["ordernumber"])]  # since is inclusive


async def test_orders_older_than_the_window_are_not_reread_and_cost_one_page():
    app = CCVSalesPOSConnector.simulator(seed=1, records=40)
    sim = app.state.sim
    async with connect(CCVSalesPOSConnector, settings(page_size=3), app=app) as connector:
        connector.clock = lambda: EPOCH + timedelta(days=90)
        since = (await read(connector, Entity.ORDERS))[-1].cursor
        sim.requests.clear()
        again = await read(connector, Entity.ORDERS, since)
    assert [c.cursor for c in again] == [since]
    assert calls(sim, "/orders/?") == 1 and calls(sim, "/orderrows") == 0  # rows of an unchanged order are kept


async def test_rows_are_fetched_again_only_for_orders_that_changed():
    app = CCVSalesPOSConnector.simulator(seed=2, records=40)
    sim = app.state.sim
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        connector.clock = lambda: SOON_AFTER_SEED
        first = await read(connector, Entity.ORDERS)
        sim.requests.clear()
        second = await read(connector, Entity.ORDERS, first[-1].cursor)
        assert len(second) == len(first) and calls(sim, "/orderrows") == 0
        assert [c.record for c in second] == [c.record for c in first]
        target = completed(sim)[1]
        sim.add_row(target["id"], min(sim.products), 4)  # the merchant adds a row: the order's totals change
        third = await read(connector, Entity.ORDERS, first[-1].cursor)
    assert calls(sim, "/orderrows") == 1
    changed = next(c.record for c in third if c.source_id == str(target["id"]))
    assert len(changed.lines) > len(next(c.record for c in first if c.source_id == str(target["id"])).lines)


async def test_a_bad_order_is_a_failed_change_and_the_others_are_read():
    """An order that cannot be mapped reaches the audit trail and dead-letter queue (before: skipped);
    one without an ordernumber has no place in the cursor order and is still logged and skipped."""
    app = CCVSalesPOSConnector.simulator(seed=1, records=30)
    sim = app.state.sim
    orders = completed(sim)
    orders[0]["ordernumber_full"] = None
    orders[1]["total_price"] = "n.v.t."
    orders[2]["ordernumber"] = None
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        connector.context.log = recorder = Recorder()
        changes = await read(connector, Entity.ORDERS)
    assert {c.source_id for c in changes if c.record is not None} == {str(o["id"]) for o in orders[3:]}
    failed = {c.source_id: c.error for c in changes if c.record is None}
    assert set(failed) == {str(orders[0]["id"]), str(orders[1]["id"])}
    assert "ordernumber_full" in failed[str(orders[0]["id"])] and "total_price" in failed[str(orders[1]["id"])]
    skipped = {fields["order_id"] for event, fields in recorder.warnings if event == "ccv_salespos.order_skipped"}
    assert skipped == {orders[2]["id"]}


async def test_a_bad_cursor_is_fatal():
    from apicenterd import FatalError

    app = CCVSalesPOSConnector.simulator(seed=1, records=5)
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        with pytest.raises(FatalError, match="orders order cursor"):
            await read(connector, Entity.ORDERS, "2025-01-01T00:00:00Z")


async def test_seeded_skus_exist_unless_unknown_sku_is_asked_for():
    for unknown in (False, True):
        app = CCVSalesPOSConnector.simulator(seed=3, records=20, unknown_sku=unknown)
        skus = {p["productnumber"] for p in app.state.sim.products.values()}
        async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
            lines = [line for c in await read(connector, Entity.ORDERS) for line in c.record.lines if line.kind == "product"]
        missing = {line.sku for line in lines} - skus
        assert missing == ({UNKNOWN_SKU} if unknown else set())


# -- customers ---------------------------------------------------------------------------------


async def test_customers_are_one_per_email_from_the_latest_order_without_row_calls():
    app = CCVSalesPOSConnector.simulator(seed=1, records=60)
    sim = app.state.sim
    latest = {}
    for order in completed(sim):
        latest[order["customer"]["email"].lower()] = order
    assert len(latest) < len(completed(sim))  # the seed has returning customers
    async with connect(CCVSalesPOSConnector, settings(page_size=5), app=app) as connector:
        changes = await read(connector, Entity.CUSTOMERS)
    assert sorted(c.source_id for c in changes) == sorted(latest)
    assert [c.cursor for c in changes] == sorted(c.cursor for c in changes)
    for change in changes:
        order = latest[change.source_id]
        customer = change.record
        assert isinstance(customer, Customer) and change.cursor == order_cursor(order["ordernumber"])
        billing = order["customer"]["billingaddress"]
        assert (customer.billing_address.street, customer.billing_address.house_number) == (
            billing["street"], str(billing["housenumber"])
        )
        assert customer.kind == ("company" if billing["company"] else "person")
    assert calls(sim, "/orderrows") == 0


async def test_customer_delta_yields_who_ordered_since_with_the_new_address():
    app = CCVSalesPOSConnector.simulator(seed=1, records=30)
    sim = app.state.sim
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        first = await read(connector, Entity.CUSTOMERS)
        since = first[-1].cursor
        returning = next(c for c in first[:-1])
        old = next(o for o in completed(sim) if o["customer"]["email"].lower() == returning.source_id)
        customer = {**old["customer"], "email": old["customer"]["email"].upper(),
                    "billingaddress": {**old["customer"]["billingaddress"], "street": "Nieuwe Gracht", "housenumber": 1}}  # fmt: skip
        sim.add_order([(min(sim.products), 1)], customer=customer)
        again = await read(connector, Entity.CUSTOMERS, since)
    assert [c.source_id for c in again] == [first[-1].source_id, returning.source_id]
    assert again[-1].record.billing_address.street == "Nieuwe Gracht" and again[-1].cursor > since


async def test_orders_without_email_are_not_customers():
    app = CCVSalesPOSConnector.simulator(seed=1, records=15)
    sim = app.state.sim
    walk_in = sim.add_order([(min(sim.products), 1)])
    walk_in["customer"] = {**walk_in["customer"], "email": ""}
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        changes = await read(connector, Entity.CUSTOMERS)
    assert all(c.source_id for c in changes)
    assert order_cursor(walk_in["ordernumber"]) not in {c.cursor for c in changes}


# -- shipments ---------------------------------------------------------------------------------


def open_order(sim):
    """A completed order without track & trace."""
    return next(o for o in completed(sim) if not o["track_and_trace_code"] and o["status"] != 8)


async def test_find_shipment_by_order_number_and_tracking_code():
    app = CCVSalesPOSConnector.simulator(seed=1, records=30)
    sim = app.state.sim
    sent = next(o for o in completed(sim) if o["track_and_trace_code"])
    fresh = open_order(sim)
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        found = await connector.find(Entity.SHIPMENTS, f"{sent['ordernumber_full']}/{sent['track_and_trace_code']}")
        assert found is not None and found.id == str(sent["id"])
        assert found.record == Shipment(
            order_number=sent["ordernumber_full"], tracking_code=sent["track_and_trace_code"],
            carrier=sent["track_and_trace_carrier"], tracking_url=sent["track_and_trace_deeplink"],
        )  # fmt: skip
        assert await connector.find(Entity.SHIPMENTS, f"{sent['ordernumber_full']}/OTHER") is None
        assert await connector.find(Entity.SHIPMENTS, f"{fresh['ordernumber_full']}/3SABC") is None
        assert await connector.find(Entity.SHIPMENTS, "999999/3SABC") is None
    assert f"ordernumber={sent['ordernumber']}" in next(uri for m, uri in sim.requests if "/orders/?" in uri)


async def test_create_shipment_marks_the_order_sent_and_mails_the_customer():
    app = CCVSalesPOSConnector.simulator(seed=1, records=30)
    sim = app.state.sim
    order = open_order(sim)
    shipment = Shipment(order_number=order["ordernumber_full"], tracking_code="3SNEW0001", carrier="PostNL")
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        target_id = await connector.create(Entity.SHIPMENTS, shipment)
        found = await connector.find(Entity.SHIPMENTS, shipment.key())
    assert target_id == str(order["id"]) and found.id == target_id
    assert (order["status"], order["track_and_trace_code"], order["track_and_trace_carrier"]) == (5, "3SNEW0001", "PostNL")
    assert sim.mails == [(order["id"], {"status": 5, "track_and_trace_code": "3SNEW0001",
                                        "track_and_trace_carrier": "PostNL", "mail": True})]  # fmt: skip


async def test_shipment_mail_can_be_switched_off():
    app = CCVSalesPOSConnector.simulator(seed=1, records=30)
    sim = app.state.sim
    order = open_order(sim)
    async with connect(CCVSalesPOSConnector, settings(shipment_mail=False), app=app) as connector:
        await connector.create(Entity.SHIPMENTS, Shipment(order_number=order["ordernumber_full"], tracking_code="3SQUIET"))
    assert order["track_and_trace_code"] == "3SQUIET" and order["status"] == 5 and sim.mails == []


async def test_shipment_for_an_unknown_order_names_the_number():
    app = CCVSalesPOSConnector.simulator(seed=1, records=5)
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        with pytest.raises(RecordError, match="order 4242 not found"):
            await connector.create(Entity.SHIPMENTS, Shipment(order_number="4242", tracking_code="3SABC"))


async def test_a_second_tracking_code_is_refused_and_nothing_is_overwritten():
    app = CCVSalesPOSConnector.simulator(seed=1, records=30)
    sim = app.state.sim
    order = open_order(sim)
    number = order["ordernumber_full"]
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        await connector.create(Entity.SHIPMENTS, Shipment(order_number=number, tracking_code="3SFIRST", carrier="PostNL"))
        patches = calls(sim, "/orders/", method="PATCH")
        with pytest.raises(RecordError) as caught:
            await connector.create(Entity.SHIPMENTS, Shipment(order_number=number, tracking_code="3SSECOND", carrier="DHL"))
        with pytest.raises(RecordError, match="already has track & trace 3SFIRST"):
            await connector.update(Entity.SHIPMENTS, str(order["id"]), Shipment(order_number=number, tracking_code="3SSECOND"), frozenset({"tracking_code"}))
    assert str(caught.value) == (
        f"order {number} already has track & trace 3SFIRST; CCV keeps one code per order; split shipments are not supported"
    )
    assert (order["track_and_trace_code"], order["track_and_trace_carrier"]) == ("3SFIRST", "PostNL")
    assert calls(sim, "/orders/", method="PATCH") == patches


async def test_update_changes_the_carrier_without_a_second_mail():
    app = CCVSalesPOSConnector.simulator(seed=1, records=30)
    sim = app.state.sim
    order = open_order(sim)
    shipment = Shipment(order_number=order["ordernumber_full"], tracking_code="3SCARRIER", carrier="PostNL")
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        target_id = await connector.create(Entity.SHIPMENTS, shipment)
        sim.set_status(order["id"], 6)  # delivered meanwhile
        await connector.update(Entity.SHIPMENTS, target_id, shipment.model_copy(update={"carrier": "DHL"}), frozenset({"carrier"}))
        # creating it again (a retry) writes nothing
        sim.requests.clear()
        assert await connector.create(Entity.SHIPMENTS, shipment.model_copy(update={"carrier": "DHL"})) == target_id
    assert calls(sim, "/orders/", method="PATCH") == 0
    assert (order["track_and_trace_carrier"], order["status"], len(sim.mails)) == ("DHL", 6, 1)


async def test_a_cancelled_order_gets_no_shipment():
    app = CCVSalesPOSConnector.simulator(seed=1, records=30)
    sim = app.state.sim
    order = open_order(sim)
    sim.set_status(order["id"], 8)
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        with pytest.raises(RecordError, match="is cancelled"):
            await connector.create(Entity.SHIPMENTS, Shipment(order_number=order["ordernumber_full"], tracking_code="3SX"))
    assert order["track_and_trace_code"] == ""


async def test_order_numbers_with_a_prefix():
    app = CCVSalesPOSConnector.simulator(seed=1, records=10)
    sim = app.state.sim
    order = open_order(sim)
    order.update(ordernumber_prefix="WEB-", ordernumber_full=f"WEB-{order['ordernumber']}")
    async with connect(CCVSalesPOSConnector, settings(), app=app) as connector:
        shipment = Shipment(order_number=order["ordernumber_full"], tracking_code="3SPREFIX")
        assert await connector.create(Entity.SHIPMENTS, shipment) == str(order["id"])
        found = await connector.find(Entity.SHIPMENTS, shipment.key())
        assert found is not None and found.record.order_number == order["ordernumber_full"]
        assert await connector.find(Entity.SHIPMENTS, f"SHOP-{order['ordernumber']}/3SPREFIX") is None


async def test_an_order_added_while_paging_newest_first_is_yielded_once():
    app = CCVSalesPOSConnector.simulator(seed=1, records=40)
    sim = app.state.sim
    async with connect(CCVSalesPOSConnector, settings(page_size=2), app=app) as connector:
        connector.clock = lambda: SOON_AFTER_SEED
        since = (await read(connector, Entity.ORDERS))[0].cursor
        original = dict.values
        added = []

        class Growing(dict):
            """The orders store, growing by one order after the first page was served."""

            def values(self):
                if len([1 for m, uri in sim.requests if "/orders/?" in uri]) == 2 and not added:
                    added.append("adding")  # add_order reads the store too
                    added.append(sim.add_order([(min(sim.products), 1)]))
                return original(self)

        sim.orders = Growing(sim.orders)
        sim.requests.clear()
        again = await read(connector, Entity.ORDERS, since)
        new = added[-1]
        # the new order shifted the later pages by one: the order at the page edge was served twice
        ids = [c.source_id for c in again]
        assert len(ids) == len(set(ids)) == len(completed(sim)) - 1 and str(new["id"]) not in ids
        after = await read(connector, Entity.ORDERS, again[-1].cursor)
    assert after[-1].source_id == str(new["id"])  # not lost: it is above the cursor

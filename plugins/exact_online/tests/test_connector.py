"""The connector's sources and sinks against the simulator."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal

import pytest
from apicenterd_exact_online import ExactOnlineConnector
from apicenterd_exact_online.simulator import DIVISION

from apicenterd import (
    Address,
    AuthError,
    Contact,
    Customer,
    Entity,
    Invoice,
    InvoiceLine,
    JournalEntry,
    JournalLine,
    Product,
    RecordError,
)
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio


class MemoryTokens:
    """A token store in memory that outlives one connection."""

    def __init__(self):
        self.tokens = None

    async def load(self):
        return self.tokens

    async def save(self, tokens):
        self.tokens = dict(tokens)


async def test_division_comes_from_current_me(app, sim, settings):
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        await conn.check()
        assert await conn.client.division() == DIVISION
    assert sim.count("GET", "/api/v1/current/Me") == 1


async def test_product_create_find_update(app, sim, settings):
    product = Product(sku="NEW-1", name="New item", price_excl_tax=Decimal("12.50"), ean="8712345678906", unit="pc")
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.PRODUCTS)
        assert await sink.find("NEW-1") is None
        item_id = await sink.create(sink.normalize(product))
        found = await sink.find("NEW-1")
        assert found is not None and found.id == item_id
        assert found.record.price_excl_tax == Decimal("12.50") and found.record.ean == "8712345678906"
        changed = product.model_copy(update={"name": "Renamed", "price_excl_tax": Decimal("13.00")})
        await sink.update(item_id, sink.normalize(changed), frozenset({"name", "price_excl_tax"}))
        again = await sink.find("NEW-1")
        assert again is not None and again.record.name == "Renamed" and again.record.price_excl_tax == Decimal("13.00")
    prices = [p for p in sim.data["logistics/SalesItemPrices"].values() if p["Item"] == item_id]
    assert len(prices) == 1  # the price was updated, not added


async def test_find_many_by_code(app, settings):
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        found = await conn.sink(Entity.PRODUCTS).find_many(["EX-00001", "EX-00003", "MISSING"])
    assert sorted(found) == ["EX-00001", "EX-00003"]
    assert all(f.record.price_excl_tax is not None for f in found.values())


async def test_items_source_reads_the_sync_api_in_timestamp_order(app, sim, settings):
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        source = conn.source(Entity.PRODUCTS)
        changes = [c async for c in source.changes(None)]
        assert [c.record.sku for c in changes] == ["EX-00001", "EX-00002", "EX-00003"]
        cursors = [c.cursor for c in changes]
        assert cursors == sorted(cursors)
        assert [c async for c in source.changes(cursors[-1])] == []
    assert sim.count("GET", f"/api/v1/{DIVISION}/sync/Logistics/Items") == 2


async def test_customer_by_email_then_code_with_contact(app, sim, settings):
    company = Customer(
        kind="company",
        name="Acme BV",
        email="info@acme.example",
        customer_number="1001",
        contact=Contact(first_name="Ann", last_name="Smit", email="ann@acme.example"),
        billing_address=Address(street="Kerkstraat", house_number="1", postcode="1234 AB", city="Utrecht", country="NL"),
    )
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.CUSTOMERS)
        account_id = await sink.create(sink.normalize(company))
        by_mail = await sink.find("info@acme.example")
        assert by_mail is not None and by_mail.id == account_id
        assert by_mail.record.billing_address.street == "Kerkstraat 1"
        by_contact = await sink.find("ann@acme.example")
        assert by_contact is not None and by_contact.id == account_id
        by_code = await sink.find("1001")
        assert by_code is not None and by_code.id == account_id
    account = sim.data["crm/Accounts"][account_id]
    assert account["Code"] == "1001".rjust(18) and account["Status"] == "C"
    contact = next(iter(sim.data["crm/Contacts"].values()))
    assert account["MainContact"] == contact["ID"]


async def test_tokens_rotate_and_are_stored(app, sim, settings):
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        await conn.sink(Entity.PRODUCTS).find("EX-00001")
        stored = await conn.context.tokens.load()
        assert stored["refresh_token"] != settings["refresh_token"]
        sim.expire_access_tokens()
        await conn.sink(Entity.PRODUCTS).find("EX-00001")
        assert (await conn.context.tokens.load())["refresh_token"] != stored["refresh_token"]
    assert sim.token_requests == 2


async def test_a_used_refresh_token_is_an_auth_error(app, sim, settings):
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        await conn.client.division()
    async with connect(ExactOnlineConnector, settings, app=app) as conn:  # a new store with the spent bootstrap token
        with pytest.raises(AuthError):
            await conn.sink(Entity.PRODUCTS).find("EX-00001")


async def test_read_only_and_unknown_fields_are_refused_by_the_simulator(app, sim, settings):
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        with pytest.raises(RecordError, match="read-only"):
            await conn.client.create("logistics/Items", {"Code": "X", "Description": "x", "Stock": 3}, what="item")
        with pytest.raises(RecordError, match="does not exist"):
            await conn.client.create("logistics/Items", {"Code": "X", "Description": "x", "SalesPrice": 3}, what="item")


async def test_sales_orders_with_lines_and_account(settings):
    now = [time.time() - 60]
    app = ExactOnlineConnector.simulator(seed=3, records=3, clock=lambda: now[0])
    sim = app.state.sim
    account = sim.add_account("Shop BV", "buyer@shop.example", code="2001", City="Delft", Country="NL")
    first = sim.add_order(account["ID"], [("EX-00001", 2, 10.0), ("EX-00002", 1, 5.5)], your_ref="PO-1")
    now[0] += 5
    second = sim.add_order(account["ID"], [("EX-00003", 1, 3.0)], status=21)
    now[0] += 5
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        source = conn.source(Entity.ORDERS)
        changes = [c async for c in source.changes(None)]
        assert [c.record.number for c in changes] == [str(first["OrderNumber"]), str(second["OrderNumber"])]
        order = changes[0].record
        assert order.customer is not None and order.customer.email == "buyer@shop.example"
        assert [(line.sku, line.quantity, line.unit_price, line.tax_rate) for line in order.lines] == [
            ("EX-00001", Decimal(2), Decimal("10.0"), Decimal(21)),
            ("EX-00002", Decimal(1), Decimal("5.5"), Decimal(21)),
        ]
        assert order.total == Decimal("30.86") and order.reference == "PO-1" and order.status == "new"
        assert changes[1].record.status == "completed"
        # every change but the last keeps the start; the last carries the newest Modified
        assert changes[0].cursor < changes[-1].cursor
        again = [c async for c in source.changes(changes[-1].cursor)]
        assert [c.record.number for c in again] == [str(second["OrderNumber"])]  # ties at the second are read again
    listed = [t for m, t in sim.requests if t.endswith("/salesorder/SalesOrders")]
    assert len(listed) == 2


def _entry(number: str = "501", amount: str = "121.00") -> JournalEntry:
    return JournalEntry(
        number=number,
        entry_date=date(2026, 3, 1),
        description="Cash-up",
        lines=(
            JournalLine(account="1000", debit=Decimal(amount)),
            JournalLine(account="8000", credit=Decimal("100.00")),
            JournalLine(account="1500", credit=Decimal(amount) - Decimal("100.00"), cost_centre="CC1"),
        ),
    )


async def test_journal_entry_booked_once(app, sim, settings):
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.JOURNAL)
        assert await sink.find("501") is None
        entry_id = await sink.create(sink.normalize(_entry()))
        found = await sink.find("501")
        assert found is not None and found.id == entry_id
        with pytest.raises(RecordError, match="not changed"):
            await sink.update(entry_id, _entry(), frozenset({"number"}))
    entries = list(sim.data["generaljournalentry/GeneralJournalEntries"].values())
    assert len(entries) == 1 and entries[0]["JournalCode"] == "90" and entries[0]["EntryNumber"] == 501
    amounts = [line["AmountFC"] for line in entries[0]["GeneralJournalEntryLines"]]
    assert amounts == [121.0, -100.0, -21.0]


async def test_journal_entry_refusals(app, settings):
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.JOURNAL)
        with pytest.raises(RecordError, match="over 100 characters"):
            sink.normalize(_entry(number="V" * 101))
        unbalanced = _entry().model_copy(update={"lines": _entry().lines[:2]})
        with pytest.raises(RecordError, match="differ by 21"):
            sink.normalize(unbalanced)
        unknown = _entry().model_copy(
            update={"lines": (JournalLine(account="9999", debit=Decimal(1)), JournalLine(account="8000", credit=Decimal(1)))}
        )
        with pytest.raises(RecordError, match="9999"):
            await sink.create(unknown)


async def test_a_journal_entry_whose_number_is_not_an_entry_number_is_kept_in_notes_and_found_again(app, settings):
    """eAccounting's voucher numbers (F12-20240105): Exact numbers the entry, the lines' Notes keep the source's number."""
    sim = app.state.sim
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.JOURNAL)
        assert await sink.find("F12-20240105") is None
        entry = _entry(number="F12-20240105")
        entry_id = await sink.create(sink.normalize(entry))
        stored = sim.data["generaljournalentry/GeneralJournalEntries"][entry_id]
        assert isinstance(stored["EntryNumber"], int)
        assert {line["Notes"] for line in stored["GeneralJournalEntryLines"]} == {"F12-20240105"}
        found = await sink.find("F12-20240105")
        assert found is not None and found.id == entry_id and found.record.number == "F12-20240105"
        assert await sink.find("F12-20240106") is None


async def test_stock_per_warehouse(settings):
    now = [time.time() - 60]
    app = ExactOnlineConnector.simulator(seed=3, records=3, clock=lambda: now[0])
    sim = app.state.sim
    sim.set_stock("EX-00001", 10, 3)
    sim.set_stock("EX-00002", 5, 0, warehouse="2")
    now[0] += 5
    sim.set_stock("EX-00003", 7.5, 0)
    tokens = MemoryTokens()  # one token store for both connections: the refresh token rotates
    async with connect(ExactOnlineConnector, settings, app=app, tokens=tokens) as conn:
        changes = [c async for c in conn.source(Entity.STOCK).changes(None)]
        levels = {c.record.sku: c.record for c in changes}
        assert levels["EX-00001"].on_hand == 10 and levels["EX-00001"].reserved == 3 and levels["EX-00001"].available == 7
        assert levels["EX-00002"].location == "2" and levels["EX-00003"].on_hand == Decimal("7.5")
        assert [c.record.sku for c in [c async for c in conn.source(Entity.STOCK).changes(changes[-1].cursor)]] == ["EX-00003"]
    async with connect(ExactOnlineConnector, {**settings, "stock_warehouse": "2"}, app=app, tokens=tokens) as conn:
        assert [c.record.sku async for c in conn.source(Entity.STOCK).changes(None)] == ["EX-00002"]


async def test_sales_invoice_created_once_with_lines(settings):
    app = ExactOnlineConnector.simulator(seed=3, records=3, customers=1)
    sim = app.state.sim
    debtor = next(iter(sim.data["crm/Accounts"]))
    invoice = Invoice(
        number="INV-7",
        invoice_date=date(2026, 4, 1),
        due_date=date(2026, 4, 15),
        total=Decimal("36.30"),
        customer_id=debtor,
        payment_terms="14",
        lines=(
            InvoiceLine(
                sku="EX-00001",
                description="Item",
                quantity=Decimal(2),
                unit_price=Decimal("12.10"),
                tax_rate=Decimal(21),
                tax_code="2",
                discount=Decimal("2.00"),
            ),
            InvoiceLine(description="Service", unit_price=Decimal("12.10"), tax_rate=Decimal(21), account="8000"),
        ),
    )
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        sink = conn.document_sink(Entity.INVOICES)
        assert await sink.find("INV-7") is None
        invoice_id = await conn.create(Entity.INVOICES, sink.normalize(invoice))
        found = await sink.find("INV-7")
        assert found is not None and found.id == invoice_id
    stored = sim.data["salesinvoice/SalesInvoices"][invoice_id]
    assert stored["InvoiceTo"] == debtor and stored["YourRef"] == "INV-7" and stored["Type"] == 8020 and stored["Journal"] == "70"
    lines = stored["SalesInvoiceLines"]
    assert [line["UnitPrice"] for line in lines] == [10.0, 10.0]  # excl. VAT
    assert lines[0]["Item"] == sim.data["logistics/Items"].find("Code", "EX-00001")["ID"] and lines[0]["VATCode"] == "2"
    assert lines[0]["Discount"] == pytest.approx(2.00 / 20.00)  # a fraction of the line, excl. VAT as the line is
    revenue = next(a["ID"] for a in sim.data["financial/GLAccounts"].values() if a["Code"] == "8000")
    assert lines[1]["GLAccount"] == revenue and "Item" not in lines[1]


async def test_invoice_incl_tax_without_rate_is_a_record_error(app, settings):
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        invoice = Invoice(number="X", invoice_date=date(2026, 1, 1), total=Decimal(1), lines=(InvoiceLine(unit_price=Decimal(1)),))
        with pytest.raises(RecordError, match="no tax_rate"):
            conn.document_sink(Entity.INVOICES).normalize(invoice)


async def test_goods_deliveries_as_shipments_of_the_shop_orders(settings):
    now = [time.time() - 60]
    app = ExactOnlineConnector.simulator(seed=3, records=3, clock=lambda: now[0])
    sim = app.state.sim
    account = sim.add_account("Shop BV", "buyer@shop.example")
    order = sim.add_order(account["ID"], [("EX-00001", 2, 10.0), ("EX-00002", 1, 5.0)], your_ref="SHOP-1001")
    untraced = sim.add_order(account["ID"], [("EX-00003", 1, 1.0)])  # no YourRef: not from the shop
    sim.deliver(order, "3STEST0001", lines=1)  # a split delivery: first the first line
    now[0] += 5
    sim.deliver(order, "3STEST0002")
    sim.deliver(untraced, "3STEST0003")
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        changes = [c async for c in conn.source(Entity.SHIPMENTS).changes(None)]
    shipped = [c.record for c in changes if c.record is not None]
    assert [(s.order_number, s.tracking_code, s.carrier) for s in shipped] == [
        ("SHOP-1001", "3STEST0001", "POSTNL"),
        ("SHOP-1001", "3STEST0002", "POSTNL"),
    ]
    assert [(line.sku, line.quantity) for line in shipped[0].lines] == [("EX-00001", Decimal(2))]
    failed = [c for c in changes if c.record is None]
    assert len(failed) == 1 and "YourRef" in str(failed[0].error)


async def test_account_revenue_account_and_payment_condition_on_create(app, sim, settings):
    customer = Customer(kind="company", name="Rev BV", email="rev@example.com", revenue_account="8000", payment_terms="30", tax_code="2")
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.CUSTOMERS)
        account_id = await sink.create(sink.normalize(customer))
        with pytest.raises(RecordError, match="9999"):
            await sink.create(sink.normalize(customer.model_copy(update={"email": "x@example.com", "revenue_account": "9999"})))
    account = sim.data["crm/Accounts"][account_id]
    revenue = next(a["ID"] for a in sim.data["financial/GLAccounts"].values() if a["Code"] == "8000")
    assert account["GLAccountSales"] == revenue and account["PaymentConditionSales"] == "30" and account["SalesVATCode"] == "2"


async def test_a_large_items_read_takes_the_prices_from_the_bulk_api(settings):
    app = ExactOnlineConnector.simulator(seed=4, records=450)
    sim = app.state.sim
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        changes = [c async for c in conn.source(Entity.PRODUCTS).changes(None)]
    assert len(changes) == 450 and all(c.record is not None and c.record.price_excl_tax is not None for c in changes)
    assert sim.count("GET", f"/api/v1/{DIVISION}/bulk/Logistics/SalesItemPrices") == 1
    assert sim.count("GET", f"/api/v1/{DIVISION}/logistics/SalesItemPrices") == 0

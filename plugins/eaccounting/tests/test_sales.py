"""Orders and invoices through the connector against the simulator, in-process."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_eaccounting.documents import InvoiceSettings, OrderSettings

from apicenterd import (
    Address,
    Contact,
    Customer,
    Entity,
    Invoice,
    InvoiceLine,
    Order,
    OrderLine,
    RateLimited,
    RecordError,
    RetryableError,
)
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio


@pytest.fixture
def app():
    """A simulator with three articles (EA-00001..3) and two customers (1: company, 2: private person)."""
    return EAccountingConnector.simulator(seed=11, records=3, customers=2)


def customer_id(sim, *, private: bool) -> str:
    """The id of a seeded company or private-person customer."""
    return next(c["Id"] for c in sim.customers.values() if c["IsPrivatePerson"] is private)


def skus(sim) -> list[str]:
    """The seeded article numbers, sorted."""
    return sorted(a["Number"] for a in sim.articles.values())


def shop_order(sim, *, private: bool = False, **overrides) -> Order:
    """An order for a seeded customer: two product lines (one discounted) and shipping (article EA-00003)."""
    first, second, shipping = skus(sim)
    values = dict(
        number="WEB-1001",
        status="paid",
        created_at=datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc),
        billing_address=Address(street="Kerkstraat", house_number="1", postcode="1011AB", city="Amsterdam", country="NL"),
        lines=(
            OrderLine(sku=first, name="First", quantity=Decimal(2), unit_price=Decimal("12.10"), tax_rate=Decimal(21), discount=Decimal("2.42")),
            OrderLine(sku=second, name="Second", quantity=Decimal(1), unit_price=Decimal("10.90"), tax_rate=Decimal(9)),
            OrderLine(kind="shipping", sku=shipping, name="Shipping", unit_price=Decimal("4.95")),
        ),
        total=Decimal("37.63"),
        customer_id=customer_id(sim, private=private),
        document="order",
    )
    values.update(overrides)
    return Order(**values)


def expected_totals(sim, stored_rows, included: bool) -> tuple[Decimal, Decimal]:
    """Amount (incl. VAT) and VAT of stored rows, recomputed from the simulator's articles here."""
    amount = vat = Decimal(0)
    for row in stored_rows:
        if row.get("IsTextRow") or not row.get("ArticleId"):
            continue
        rate = sim.codings[sim.articles[row["ArticleId"]]["CodingId"]]["VatRatePercent"]
        line = (Decimal(row["Quantity"]) * Decimal(row["UnitPrice"]) * (1 - Decimal(row["DiscountPercentage"] or 0))).quantize(Decimal("0.01"))
        line_vat = (line * rate / (1 + rate) if included else line * rate).quantize(Decimal("0.01"))
        amount += line if included else line + line_vat
        vat += line_vat
    return amount, vat


async def test_a_company_order_is_created_excl_vat_and_found_by_its_reference(app, sim, settings):
    order = shop_order(sim, target_fields={"our_reference": "Anna", "delivery_method_code": "post"})
    async with connect(EAccountingConnector, settings, app=app) as conn:
        order = conn.normalize(Entity.ORDERS, order)
        new_id = await conn.create(Entity.ORDERS, order)
        found = await conn.find(Entity.ORDERS, "WEB-1001")
    stored = sim.orders[new_id]
    assert (stored["YourReference"], stored["OurReference"], stored["CustomerIsPrivatePerson"], stored["Status"]) == ("WEB-1001", "Anna", False, 2)
    assert (stored["DeliveryMethodCode"], stored["DeliveryMethodName"]) == ("POST", "Parcel post")
    assert (stored["InvoiceAddress1"], stored["InvoiceCity"], stored["OrderDate"]) == ("Kerkstraat 1", "Amsterdam", "2024-05-01T00:00:00")
    first = stored["Rows"][0]
    assert (first["UnitPrice"], first["DiscountPercentage"], first["Quantity"]) == (Decimal("10.00"), Decimal("0.1"), Decimal(2))
    assert stored["Rows"][1]["UnitPrice"] == Decimal("10.00")  # 10.90 incl. 9 %
    # what the connector sent as Amount/VatAmount is what eAccounting computes from the rows
    assert (stored["Amount"], stored["VatAmount"]) == expected_totals(sim, stored["Rows"], included=False)
    assert sim.requests[-1][0] == "GET" and found.id == new_id
    assert (found.record.document, found.record.number, found.record.customer_id) == ("order", "WEB-1001", order.customer_id)
    assert [l.sku for l in found.record.lines] == skus(sim)


async def test_a_private_persons_draft_includes_vat(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as conn:
        new_id = await conn.create(Entity.ORDERS, conn.normalize(Entity.ORDERS, shop_order(sim, private=True, document="invoice_draft")))
    draft = sim.invoice_drafts[new_id]
    assert draft["IncludesVat"] is True and draft["CustomerIsPrivatePerson"] is True
    assert [r["UnitPrice"] for r in draft["Rows"]] == [Decimal("12.10"), Decimal("10.90"), Decimal("4.95")]
    assert (draft["TotalAmount"], draft["TotalVatAmount"]) == expected_totals(sim, draft["Rows"], included=True)
    assert draft["TotalAmount"] == Decimal("37.63")


async def test_an_invoice_is_booked_and_its_id_found_by_reference(app, sim, settings):
    order = shop_order(sim, document="invoice", payment_terms="14 days net")
    async with connect(EAccountingConnector, settings, app=app) as conn:
        new_id = await conn.create(Entity.ORDERS, conn.normalize(Entity.ORDERS, order))
    invoice = sim.invoices[new_id]
    assert invoice["YourReference"] == "WEB-1001" and invoice["DueDate"] == "2024-05-15T00:00:00"
    assert sim.count("POST", "/v2/customerinvoices") == 1 and sim.requests[-1] == ("GET", "/v2/customerinvoices")


async def test_find_looks_in_every_document_kind(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as conn:
        sim.reset_counts()
        assert await conn.find(Entity.ORDERS, "WEB-1001") is None
        assert [p for _, p in sim.requests] == ["/v2/orders", "/v2/customerinvoicedrafts", "/v2/customerinvoices"]
        draft_id = await conn.create(Entity.ORDERS, shop_order(sim, document="invoice_draft"))
        assert (await conn.find(Entity.ORDERS, "WEB-1001")).id == draft_id
        # a user books the draft: the order is now an invoice, under a new id
        invoice = sim.convert_draft(draft_id)
        found = await conn.find(Entity.ORDERS, "WEB-1001")
        assert (found.id, found.record.document, found.record.status) == (invoice["Id"], "invoice", "invoiced")
        assert await conn.find(Entity.ORDERS, "WEB-100") is None  # an exact match only


async def test_an_order_turned_into_an_invoice_is_still_found_as_the_order(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as conn:
        order_id = await conn.create(Entity.ORDERS, shop_order(sim))
        sim.invoice_order(order_id)
        found = await conn.find(Entity.ORDERS, "WEB-1001")
    assert (found.id, found.record.status) == (order_id, "invoiced")


async def request_for(conn, order):
    """The DocumentRequest the order process hands the sink: the debtor and articles it found."""
    from apicenterd import DocumentRequest, Found

    articles = dict(await conn.find_many(Entity.PRODUCTS, [line.sku for line in order.lines if line.sku]))
    return DocumentRequest(order, order.document, Found(order.customer_id) if order.customer_id else None, articles)


async def test_a_document_sink_takes_what_the_order_process_found_and_looks_nothing_up(app, sim, settings):
    """No caches and no look-ups in the sink: the request carries the debtor and articles (with
    what eAccounting returned for them), so creating the order is one POST."""
    from apicenterd import DocumentRequest

    order = shop_order(sim)
    async with connect(EAccountingConnector, settings, app=app) as conn:
        articles = dict(await conn.find_many(Entity.PRODUCTS, skus(sim)))
        customer = await conn.find(Entity.CUSTOMERS, sim.customers[order.customer_id]["EmailAddress"])
        await conn.vat_rates()  # the company's codings: a connection-wide list, read once
        sim.reset_counts()
        await conn.document_sink(Entity.ORDERS).create(DocumentRequest(order, "order", customer, articles))
    assert sim.requests == [("POST", "/v2/orders")]
    assert not hasattr(conn.sales, "_articles") and not hasattr(conn.sales, "_customers")


async def test_missing_skus_are_named_and_nothing_is_posted(app, sim, settings):
    lines = (OrderLine(sku="NOPE-1", unit_price=Decimal(1)), OrderLine(sku=skus(sim)[0], unit_price=Decimal(1)), OrderLine(sku="NOPE-2", unit_price=Decimal(1)))
    async with connect(EAccountingConnector, settings, app=app) as conn:
        with pytest.raises(RecordError, match="SKU not in eAccounting: NOPE-1, NOPE-2"):
            await conn.create(Entity.ORDERS, shop_order(sim, lines=lines))
    assert sim.count("POST") == 0 and not sim.orders


async def test_a_customer_id_is_required_and_must_exist(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as conn:
        with pytest.raises(RecordError, match="no customer_id"):
            await conn.create(Entity.ORDERS, shop_order(sim, customer_id=None))
        with pytest.raises(RecordError, match="no customer with Id '0b6c1b7e"):
            await conn.create(Entity.ORDERS, shop_order(sim, customer_id="0b6c1b7e-5a7a-4f5e-9a3b-2f1d3c4e5f60"))
    assert not sim.orders


async def test_an_article_deleted_since_it_was_found_is_a_record_error_then_missing(app, sim, settings):
    from apicenterd import DocumentRequest, Found

    order = shop_order(sim)
    async with connect(EAccountingConnector, settings, app=app) as conn:
        articles = dict(await conn.find_many(Entity.PRODUCTS, skus(sim)))
        gone = sim.article_by_number(skus(sim)[0])
        del sim.articles[gone["Id"]]
        with pytest.raises(RecordError, match="ArticleId .* does not exist"):
            await conn.document_sink(Entity.ORDERS).create(DocumentRequest(order, "order", Found(order.customer_id), articles))
        with pytest.raises(RecordError, match=f"SKU not in eAccounting: {gone['Number']}"):
            await conn.create(Entity.ORDERS, order)  # looked up afresh


async def test_a_draft_in_another_currency_than_the_customer_is_a_record_error(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as conn:
        with pytest.raises(RecordError, match="in SEK, but an eAccounting invoice_draft for this customer is in EUR"):
            await conn.create(Entity.ORDERS, shop_order(sim, currency="SEK", document="invoice_draft"))
        # an order carries its own CurrencyCode
        order_id = await conn.create(Entity.ORDERS, shop_order(sim, currency="SEK"))
    assert sim.orders[order_id]["CurrencyCode"] == "SEK"


async def test_unknown_codes_are_named_with_what_exists(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as conn:
        with pytest.raises(RecordError, match="no delivery method with Code 'DRONE' .*PICKUP, POST"):
            await conn.create(Entity.ORDERS, shop_order(sim, target_fields={"delivery_method_code": "DRONE"}))
        with pytest.raises(RecordError, match="no terms of payment 'weekly'"):
            await conn.create(Entity.ORDERS, shop_order(sim, payment_terms="weekly"))
        lines = (OrderLine(sku=skus(sim)[0], unit_price=Decimal(1), cost_centre="OLD"),)
        with pytest.raises(RecordError, match="no active item 'OLD' .*SALES, WEB"):
            await conn.create(Entity.ORDERS, shop_order(sim, lines=lines))
        lines = (OrderLine(sku=skus(sim)[0], unit_price=Decimal(1), cost_centre="web", cost_unit="NORTH"),)
        order_id = await conn.create(Entity.ORDERS, shop_order(sim, lines=lines))
    row = sim.orders[order_id]["Rows"][0]
    centres = {c["Number"]: {i["ShortName"]: i["Id"] for i in c["Items"]} for c in sim.cost_centers.values()}
    assert (row["CostCenterItemId1"], row["CostCenterItemId2"]) == (centres[1]["WEB"], centres[2]["NORTH"])


async def test_invalid_target_fields_are_a_record_error(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as conn:
        with pytest.raises(RecordError, match="order_status"):
            await conn.create(Entity.ORDERS, shop_order(sim, target_fields={"order_status": "shipped"}))


async def test_vendor_faults_on_the_new_endpoints_are_classified(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as conn:
        sim.fail_next(503, "<html>down</html>", path_prefix="/v2/orders")
        with pytest.raises(RetryableError):
            await conn.create(Entity.ORDERS, shop_order(sim))
        sim.fail_next(429, {"ErrorCode": 4010, "DeveloperErrorMessage": "Try again in 12 seconds.", "ErrorId": "x"}, path_prefix="/v2/customerinvoicedrafts")
        with pytest.raises(RateLimited) as limited:
            await conn.find(Entity.ORDERS, "WEB-1")
        assert limited.value.retry_after == 12
        sim.expire_access_tokens()
        assert await conn.create(Entity.ORDERS, shop_order(sim)) in sim.orders


async def test_the_simulators_rate_limit_covers_the_document_endpoints(settings):
    app = EAccountingConnector.simulator(seed=11, records=3, customers=2, rate_limit=2)
    async with connect(EAccountingConnector, settings, app=app, rate_limits=False) as conn:
        for n in range(2):
            await conn.find(Entity.ORDERS, f"X-{n}")
        with pytest.raises(RateLimited):
            await conn.find(Entity.ORDERS, "X-3")


async def test_invoices_go_to_drafts_or_invoices_and_are_found_there(app, sim, settings):
    invoice = Invoice(
        number="F-2024-7", invoice_date=date(2024, 6, 1), total=Decimal("24.20"), customer_id=customer_id(sim, private=False),
        lines=(InvoiceLine(sku=skus(sim)[0], description="First", quantity=Decimal(2), unit_price=Decimal("12.10"), tax_rate=Decimal(21)),),
    )
    async with connect(EAccountingConnector, settings, app=app) as conn:
        draft_id = await conn.create(Entity.INVOICES, conn.normalize(Entity.INVOICES, invoice))
        found = await conn.find(Entity.INVOICES, "F-2024-7")
        booked = invoice.model_copy(update={"number": "F-2024-8", "target_fields": {"document": "invoice"}, "due_date": date(2024, 7, 1)})
        invoice_id = await conn.create(Entity.INVOICES, booked)
        assert (await conn.find(Entity.INVOICES, "F-2024-8")).id == invoice_id
        sim.reset_counts()
        assert await conn.find(Entity.INVOICES, "F-2024-9") is None
    assert [p for _, p in sim.requests] == ["/v2/customerinvoicedrafts", "/v2/customerinvoices"]
    assert found.id == draft_id and found.record.lines[0].unit_price == Decimal("10.00") and found.record.prices_include_tax is False
    assert sim.invoices[invoice_id]["DueDate"] == "2024-07-01T00:00:00"


async def test_sales_documents_are_not_updated(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as conn:
        order_id = await conn.create(Entity.ORDERS, shop_order(sim))
        with pytest.raises(RecordError, match="does not change sales documents"):
            await conn.update(Entity.ORDERS, order_id, shop_order(sim), frozenset({"lines"}))


async def test_a_company_debtor_gets_its_contact_person_and_a_person_is_private(app, sim, settings):
    address = Address(street="Markt", house_number="2", postcode="5611AA", city="Eindhoven", country="NL")
    company = Customer(kind="company", name="Acme", email="a@acme.example", billing_address=address, contact=Contact(first_name="Jan", last_name="de Vries", email="jan@acme.example", phone="040-1"))
    person = Customer(kind="person", name="Piet Jansen", email="piet@example.com", billing_address=address)
    async with connect(EAccountingConnector, settings, app=app) as conn:
        company_id = await conn.create(Entity.CUSTOMERS, conn.normalize(Entity.CUSTOMERS, company))
        person_id = await conn.create(Entity.CUSTOMERS, conn.normalize(Entity.CUSTOMERS, person))
        order = shop_order(sim, customer_id=person_id, lines=(OrderLine(sku=skus(sim)[0], unit_price=Decimal(1)),))
        request = await request_for(conn, order)
        request = dataclasses.replace(request, customer=await conn.find(Entity.CUSTOMERS, "piet@example.com"))
        sim.reset_counts()
        await conn.document_sink(Entity.ORDERS).create(request)
    stored = sim.customers[company_id]
    assert (stored["IsPrivatePerson"], stored["ContactPersonName"], stored["ContactPersonEmail"], stored["ContactPersonPhone"]) == (False, "Jan de Vries", "jan@acme.example", "040-1")
    assert sim.customers[person_id]["IsPrivatePerson"] is True and sim.customers[person_id]["ContactPersonName"] is None
    assert ("GET", f"/v2/customers/{person_id}") not in sim.requests  # the customer found is not read again


def test_declarations():
    assert EAccountingConnector.documents == {"order", "invoice_draft", "invoice"}
    assert EAccountingConnector.flow_settings == {Entity.ORDERS: OrderSettings, Entity.INVOICES: InvoiceSettings}
    with pytest.raises(ValueError, match="store_id"):
        OrderSettings.model_validate({"store_id": 1})
    assert {Entity.ORDERS, Entity.INVOICES} <= EAccountingConnector.writes

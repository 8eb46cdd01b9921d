"""Exact sales orders read as a source are made whole before they are mapped: lines Exact gave
deferred are read from ``SalesOrderLines``, a line's VAT percentage missing is taken from its VAT code."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from apicenterd_exact_online import ExactOnlineConnector, mapping

from apicenterd import Entity, RecordError
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio


def _sim(clock: list[float]):
    app = ExactOnlineConnector.simulator(seed=3, records=3, clock=lambda: clock[0])
    sim = app.state.sim
    account = sim.add_account("Shop BV", "buyer@shop.example", code="2001", City="Gent", Country="BE")
    return app, sim, account


async def test_deferred_lines_are_read_and_vat_comes_from_the_vat_code(settings):
    now = [time.time() - 60]
    app, sim, account = _sim(now)
    sim.expand_lines = False  # Exact answers the lines __deferred
    low = sim.add_order(account["ID"], [("EX-00001", 2, 10.0), ("EX-00002", 1, 5.0)], vat_code="1")
    high = sim.add_order(account["ID"], [("EX-00003", 1, 3.0)], vat_code="2")
    zero = sim.add_order(account["ID"], [("EX-00003", 1, 7.0)], vat_code="0")
    for order in (low, high, zero):
        for row in order["SalesOrderLines"]:
            del row["VATPercentage"], row["VATAmount"]  # only the code: its percentage is in vat/VATCodes
    now[0] += 5
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        changes = [c async for c in conn.source(Entity.ORDERS).changes(None)]
    assert [c.error for c in changes] == [None, None, None]
    rates = {c.record.number: [(ln.sku, ln.tax_rate) for ln in c.record.lines] for c in changes}
    assert rates == {
        str(low["OrderNumber"]): [("EX-00001", Decimal(9)), ("EX-00002", Decimal(9))],
        str(high["OrderNumber"]): [("EX-00003", Decimal(21))],
        str(zero["OrderNumber"]): [("EX-00003", Decimal(0))],
    }
    assert changes[0].record.customer is not None and changes[0].record.customer.billing_address.country == "BE"
    paths = [t for m, t in sim.requests]
    assert sum(p.endswith("/salesorder/SalesOrderLines") for p in paths) == 1  # one call for the page's orders
    assert sum(p.endswith("/vat/VATCodes") for p in paths) == 1  # the codes once


async def test_expanded_lines_are_not_read_again(settings):
    now = [time.time() - 60]
    app, sim, account = _sim(now)
    sim.add_order(account["ID"], [("EX-00001", 1, 10.0)], vat_code="2")
    now[0] += 5
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        changes = [c async for c in conn.source(Entity.ORDERS).changes(None)]
    assert changes[0].record.lines[0].tax_rate == Decimal(21)
    paths = [t for m, t in sim.requests]
    assert not any(p.endswith(("/salesorder/SalesOrderLines", "/vat/VATCodes")) for p in paths)


async def test_a_line_whose_vat_code_exact_lacks_fails_its_order_named(settings):
    now = [time.time() - 60]
    app, sim, account = _sim(now)
    bad = sim.add_order(account["ID"], [("EX-00001", 1, 10.0)], vat_code="2")
    good = sim.add_order(account["ID"], [("EX-00002", 1, 4.0)])
    row = bad["SalesOrderLines"][0]
    row.update(VATCode="7")  # a code the division has not (deleted since)
    del row["VATPercentage"], row["VATAmount"]
    now[0] += 5
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        changes = [c async for c in conn.source(Entity.ORDERS).changes(None)]
    failed = next(c for c in changes if c.source_id == bad["OrderID"])
    assert failed.record is None and "VAT code '7' has no percentage" in (failed.error or "")
    assert f"sales order {bad['OrderNumber']}" in (failed.error or "") and "line 1" in (failed.error or "")
    assert next(c for c in changes if c.source_id == good["OrderID"]).record.lines[0].tax_rate == Decimal(21)


# A sales order as Exact's REST API gives it (``$expand=SalesOrderLines``): dates as /Date(ms)/, the
# VAT code padded, the percentage a fraction; the second line has no VATPercentage but its amounts.
REALISTIC = {
    "__metadata": {
        "uri": "https://start.exactonline.nl/api/v1/1234567/salesorder/SalesOrders(guid'...')",
        "type": "Exact.Web.Api.Models.SalesOrder",
    },
    "OrderID": "5c4d7d6e-9f3a-4a9e-8a7b-1e2f3a4b5c6d",
    "OrderNumber": 20240017,
    "OrderDate": "/Date(1709251200000)/",
    "Status": 12,
    "Currency": "EUR",
    "OrderedBy": "0b1f3c2a-3d4e-4f5a-8b6c-7d8e9f0a1b2c",
    "YourRef": "WEB-4411",
    "Description": "Webshop order",
    "Remarks": None,
    "PaymentCondition": "14",
    "AmountFC": 137.94,
    "AmountFCExclVat": 118.5,
    "Modified": "/Date(1709254800000)/",
    "SalesOrderLines": {
        "results": [
            {
                "__metadata": {"type": "Exact.Web.Api.Models.SalesOrderLine"},
                "LineNumber": 1,
                "ItemCode": "CHAIR-01",
                "Description": "Chair",
                "Quantity": 2.0,
                "UnitPrice": 45.0,
                "NetPrice": 40.5,
                "Discount": 0.1,
                "AmountFC": 81.0,
                "VATCode": "2  ",
                "VATPercentage": 0.21,
                "VATAmount": 17.01,
            },
            {
                "__metadata": {"type": "Exact.Web.Api.Models.SalesOrderLine"},
                "LineNumber": 2,
                "ItemCode": "BOOK-07",
                "Description": "Manual",
                "Quantity": 1.0,
                "UnitPrice": 37.5,
                "NetPrice": 37.5,
                "Discount": 0.0,
                "AmountFC": 37.5,
                "VATCode": "1  ",
                "VATPercentage": None,
                "VATAmount": 3.38,
            },
        ]
    },
}


def test_a_realistic_sales_order_payload():
    order = mapping.sales_order_to_order(REALISTIC, None, payment_method="B")
    assert [(ln.sku, ln.quantity, ln.unit_price, ln.discount, ln.tax_rate) for ln in order.lines] == [
        ("CHAIR-01", Decimal(2), Decimal(45), Decimal("9.00"), Decimal(21)),
        ("BOOK-07", Decimal(1), Decimal("37.5"), Decimal("0.00"), Decimal(9)),  # 3.38 / 37.50 = 9.01%: to a tenth, 9
    ]
    assert order.total_tax == Decimal("19.44") and order.reference == "WEB-4411" and order.payment_terms == "14"


def test_a_line_without_any_vat_is_a_record_error():
    row = {"LineNumber": 3, "UnitPrice": 1.0, "Quantity": 1.0}
    with pytest.raises(RecordError, match="line 3: no VATCode, VATPercentage or VATAmount"):
        mapping.line_vat(row, "Exact sales order 9")

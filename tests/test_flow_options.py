"""The flow options that fill a product's item group and free fields, a customer's payment method,
cost centre and unit and free fields, and a journal entry's accounts, cost centre and unit; what
the order process carries between orders and invoices."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from apicenterd import Address, Customer, Invoice, InvoiceLine, JournalEntry, JournalLine, Order, OrderLine, Product, RecordError
from apicenterd.flows import OPTIONS, CustomerOptions, InvoiceOptions, JournalOptions, ProductOptions, prepare
from apicenterd.model import Entity
from apicenterd.orders import apply_maps, invoice_to_order, order_to_invoice


def test_products_get_the_item_group_of_their_category_or_the_flows_and_its_free_fields():
    options = ProductOptions(item_group="ALL", item_groups={"Mugs": "KITCHEN"}, custom_fields={"FreeTextField_01": "x"})
    mug = Product(sku="M", name="Mug", categories=("Sale", "Mugs"), custom_fields={"Class_01": "A"})
    chair = Product(sku="C", name="Chair", categories=("Chairs",))
    prepared = prepare(Entity.PRODUCTS, options, mug)
    assert isinstance(prepared, Product)
    assert prepared.item_group == "KITCHEN" and prepared.custom_fields == {"Class_01": "A", "FreeTextField_01": "x"}
    other = prepare(Entity.PRODUCTS, options, chair)
    assert isinstance(other, Product) and other.item_group == "ALL"
    assert prepare(Entity.PRODUCTS, ProductOptions(), chair) == chair


def test_customers_get_the_flows_constants():
    options = CustomerOptions(payment_method="I", cost_centre="CC", cost_unit="CU", custom_fields={"Remarks": "r"})
    customer = Customer(kind="company", name="Co", billing_address=Address(country="NL"), custom_fields={"Website": "w"})
    prepared = prepare(Entity.CUSTOMERS, options, customer)
    assert isinstance(prepared, Customer)
    assert (prepared.payment_method, prepared.cost_centre, prepared.cost_unit) == ("I", "CC", "CU")
    assert prepared.custom_fields == {"Website": "w", "Remarks": "r"}


def _entry() -> JournalEntry:
    return JournalEntry(
        number="F1",
        entry_date=date(2026, 1, 1),
        lines=(JournalLine(account="1510", debit=Decimal(5), cost_centre="OWN"), JournalLine(account="3001", credit=Decimal(5))),
    )


def test_journal_accounts_are_mapped_and_lines_get_the_cost_centre_and_unit_they_lack():
    options = JournalOptions(accounts={"1510": "1300", "default": "8000"}, cost_centre="CC", cost_unit="CU")
    prepared = prepare(Entity.JOURNAL, options, _entry())
    assert isinstance(prepared, JournalEntry)
    assert [line.account for line in prepared.lines] == ["1300", "8000"]
    assert [line.cost_centre for line in prepared.lines] == ["OWN", "CC"]
    assert [line.cost_unit for line in prepared.lines] == ["CU", "CU"]
    assert prepare(Entity.JOURNAL, JournalOptions(), _entry()) == _entry()


def test_an_unmapped_journal_account_is_a_record_error_naming_it():
    with pytest.raises(RecordError, match="'3001' is not in options.accounts"):
        prepare(Entity.JOURNAL, JournalOptions(accounts={"1510": "1300"}), _entry())


def test_journal_flows_take_options_and_refuse_unknown_ones():
    assert OPTIONS[Entity.JOURNAL] is JournalOptions
    with pytest.raises(ValidationError):
        JournalOptions.model_validate({"acounts": {}})


def test_invoices_and_orders_carry_payment_method_cost_unit_custom_fields_and_line_kinds():
    invoice = Invoice(
        number="1",
        invoice_date=date(2026, 1, 1),
        total=Decimal(10),
        payment_method="ideal",
        cost_centre="CC",
        cost_unit="CU",
        custom_fields={"a": 1},
        lines=(
            InvoiceLine(sku="A", unit_price=Decimal(5), cost_unit="L"),
            InvoiceLine(sku="SHIP", unit_price=Decimal(5)),
            InvoiceLine(kind="text", description="note", unit_price=Decimal(0), quantity=Decimal(0)),
        ),
    )
    order = invoice_to_order(invoice)
    assert (order.payment_method, order.cost_centre, order.cost_unit, order.custom_fields) == ("ideal", "CC", "CU", {"a": 1})
    assert [line.kind for line in order.lines] == ["product", "product", "text"] and order.lines[0].cost_unit == "L"
    mapped = apply_maps(order, InvoiceOptions(shipping_sku="SHIP", shipping_account="8300", revenue_accounts={"default": "8000"}), "f", {})
    assert [line.kind for line in mapped.lines] == ["product", "shipping", "text"]
    assert [line.account for line in mapped.lines] == ["8000", "8300", None]
    back = order_to_invoice(mapped)
    assert [line.kind for line in back.lines] == ["product", "shipping", "text"]
    assert (back.payment_method, back.cost_centre, back.cost_unit, back.custom_fields) == ("ideal", "CC", "CU", {"a": 1})
    assert back.lines[0].cost_unit == "L"


def test_an_order_line_kind_survives_the_round_trip():
    order = Order(
        number="7",
        status="paid",
        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        total=Decimal(1),
        lines=(OrderLine(kind="fee", sku="FEE", unit_price=Decimal(1), cost_unit="U"),),
    )
    invoice = order_to_invoice(order)
    assert invoice.lines[0].kind == "fee" and invoice.lines[0].cost_unit == "U"

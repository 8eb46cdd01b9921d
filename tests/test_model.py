"""model: canonical records are frozen and strict, money is Decimal, codes are validated, keys per type."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError

import apicenterd.model as model
from apicenterd.model import (
    RECORD_TYPES,
    Address,
    Customer,
    Entity,
    Invoice,
    InvoiceLine,
    JournalEntry,
    JournalLine,
    Order,
    OrderLine,
    Product,
    Record,
    Shipment,
    StockLevel,
)

NOW = datetime(2026, 1, 2, 10, 0, tzinfo=timezone.utc)

EXAMPLES: dict[type[Record], dict] = {
    Customer: {"kind": "company", "name": "Acme BV", "email": "info@acme.nl"},
    Product: {"sku": "SP-1", "name": "Mug", "price_excl_tax": "12.50"},
    StockLevel: {"sku": "SP-1", "on_hand": 5, "available": 3},
    Order: {"number": "1001", "status": "paid", "created_at": NOW, "total": "25.00"},
    Invoice: {"number": "F2026-1", "invoice_date": date(2026, 1, 2), "total": "25.00"},
    Shipment: {"order_number": "1001", "tracking_code": "3SABC123"},
    JournalEntry: {"number": "J1", "entry_date": date(2026, 1, 2)},
}


def all_models() -> list[type[BaseModel]]:
    return [
        obj
        for name in model.__all__
        if isinstance(obj := getattr(model, name), type) and issubclass(obj, BaseModel)
    ]


def test_every_record_type_has_an_example():
    assert set(RECORD_TYPES.values()) == set(EXAMPLES)
    assert set(RECORD_TYPES) == set(Entity)


@pytest.mark.parametrize("cls", all_models(), ids=lambda c: c.__name__)
def test_models_are_frozen_and_forbid_extra(cls):
    assert cls.model_config.get("frozen") is True
    assert cls.model_config.get("extra") == "forbid"


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda c: c.__name__)
def test_records_reject_unknown_fields_and_mutation(cls):
    record = cls(**EXAMPLES[cls])
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        cls(**EXAMPLES[cls], colour="blue")
    field = next(iter(EXAMPLES[cls]))
    with pytest.raises(ValidationError, match="frozen"):
        setattr(record, field, getattr(record, field))


def test_nested_models_are_strict_too():
    with pytest.raises(ValidationError, match="Extra inputs"):
        Address(street="x", planet="Mars")
    line = OrderLine(unit_price="1.00")
    with pytest.raises(ValidationError):
        line.quantity = Decimal(3)


def test_money_is_decimal():
    product = Product(sku="A", name="a", price_excl_tax=10.1, price_incl_tax="12.221", tax_rate=21)
    assert isinstance(product.price_excl_tax, Decimal) and product.price_excl_tax == Decimal("10.1")
    assert product.price_incl_tax == Decimal("12.221")
    order = Order(**EXAMPLES[Order], lines=[{"unit_price": 0.1, "quantity": 3}])
    assert isinstance(order.total, Decimal) and isinstance(order.lines[0].unit_price, Decimal)
    assert order.lines[0].unit_price * order.lines[0].quantity == Decimal("0.3")  # no float drift
    money_fields = {
        (cls.__name__, name)
        for cls in all_models()
        for name, info in cls.model_fields.items()
        if "float" in str(info.annotation)
    }
    assert money_fields == set(), "no model field may be a float"


def test_money_rejects_garbage():
    with pytest.raises(ValidationError):
        Product(sku="A", name="a", price_excl_tax="ten euro")
    with pytest.raises(ValidationError):
        InvoiceLine(unit_price="NaN-ish")


@pytest.mark.parametrize("code", ["EUR", "USD", "SEK"])
def test_currency_accepted(code):
    assert Product(sku="A", name="a", currency=code).currency == code


@pytest.mark.parametrize("code", ["eur", "EU", "EURO", "€", "", "EUR\n", " EUR"])
def test_currency_rejected(code):
    with pytest.raises(ValidationError):
        Product(sku="A", name="a", currency=code)
    with pytest.raises(ValidationError):
        Invoice(**{**EXAMPLES[Invoice], "currency": code})


@pytest.mark.parametrize("code", ["nl", "NLD", "N", "", "NL\n", "1A"])
def test_country_rejected(code):
    with pytest.raises(ValidationError):
        Address(country=code)


def test_country_accepted_or_absent():
    assert Address(country="NL").country == "NL"
    assert Address().country is None


@pytest.mark.parametrize(
    "given, stored",
    [(" Info@Acme.NL ", "info@acme.nl"), ("a@b.c", "a@b.c"), ("", None), ("   ", None), (None, None)],
)
def test_customer_email_normalised(given, stored):
    assert Customer(kind="person", name="An", email=given).email == stored


def test_customer_kind_validated():
    with pytest.raises(ValidationError):
        Customer(kind="robot", name="R2")


@pytest.mark.parametrize(
    "record, key",
    [
        (Customer(kind="person", name="An", email="AN@x.nl", customer_number="C1"), "an@x.nl"),
        (Customer(kind="person", name="An", email="  ", customer_number="C1"), "C1"),
        (Customer(kind="company", name="Acme BV"), "Acme BV"),
        (Product(sku="SP-1", name="Mug"), "SP-1"),
        (StockLevel(sku="SP-1", on_hand=1, available=1), "SP-1"),
        (Order(**EXAMPLES[Order]), "1001"),
        (Invoice(**EXAMPLES[Invoice]), "F2026-1"),
        (Shipment(order_number="1001", tracking_code="3S1"), "1001/3S1"),
        (JournalEntry(number="J9", entry_date=date(2026, 1, 1), lines=[JournalLine(account="8000")]), "J9"),
    ],
)
def test_key_per_type(record, key):
    assert record.key() == key


def test_base_record_has_no_key():
    with pytest.raises(NotImplementedError):
        Record().key()


@pytest.mark.parametrize("cls, field", [(Product, "sku"), (StockLevel, "sku"), (Order, "number"), (Shipment, "order_number")])
def test_keys_cannot_be_empty(cls, field):
    with pytest.raises(ValidationError):
        cls(**{**EXAMPLES[cls], field: ""})


def test_stock_defaults_and_entity_str():
    level = StockLevel(sku="A", on_hand="5", available="5")
    assert level.reserved == Decimal(0) and level.tracked is True
    assert str(Entity.PRODUCTS) == "products" and f"{Entity.STOCK}" == "stock"

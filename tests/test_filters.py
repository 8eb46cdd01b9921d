"""filters: each op, nested paths, missing and empty fields, value validation."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from apicenterd import Address, Attribute, Customer, Order, OrderLine, Product
from apicenterd.filters import MISSING, Filter, field_value

PRODUCT = Product(
    sku="SP-1001",
    name="Blue Mug",
    ean=None,
    price_excl_tax=Decimal("12.50"),
    active=True,
    categories=("kitchen", "Mugs"),
    attributes=(Attribute(name="colour", value="blue"),),
)

ORDER = Order(
    number="1001",
    status="paid",
    created_at=datetime(2026, 1, 2, tzinfo=timezone.utc),
    customer=Customer(kind="person", name="An Jansen", email="An@Example.NL"),
    billing_address=Address(street="Dorpsstraat", house_number="1", city="Utrecht", country="NL"),
    lines=(OrderLine(sku="SP-1001", quantity=Decimal(2), unit_price=Decimal("12.50")),),
    total=Decimal("25.00"),
    custom_fields={"channel": "web", "tags": ["vip"], "score": 7},
)


def passes(record, **flt) -> bool:
    return Filter(**flt).matches(record)


# --- field_value ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, value",
    [
        ("number", "1001"),
        ("billing_address.country", "NL"),
        ("customer.email", "an@example.nl"),
        ("lines.0.sku", "SP-1001"),
        ("lines.0.quantity", Decimal(2)),
        ("custom_fields.channel", "web"),
        ("custom_fields.tags.0", "vip"),
        ("shipping_address", None),
    ],
)
def test_field_value(path, value):
    assert field_value(ORDER, path) == value


@pytest.mark.parametrize(
    "path", ["nope", "billing_address.planet", "lines.1.sku", "lines.x", "custom_fields.absent", "number.0", "shipping_address.city"]
)
def test_field_value_missing(path):
    assert field_value(ORDER, path) is MISSING


# --- ops ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flt, expected",
    [
        ({"field": "status", "op": "eq", "value": "paid"}, True),
        ({"field": "status", "value": "paid"}, True),  # eq is the default
        ({"field": "status", "op": "eq", "value": "PAID"}, False),
        ({"field": "status", "op": "ne", "value": "cancelled"}, True),
        ({"field": "status", "op": "ne", "value": "paid"}, False),
        ({"field": "total", "op": "eq", "value": 25}, True),  # numbers compare as numbers
        ({"field": "total", "op": "eq", "value": "25.0"}, True),
        ({"field": "paid", "op": "eq", "value": False}, True),
        ({"field": "paid", "op": "eq", "value": 0}, False),  # a bool is not a number
        ({"field": "status", "op": "in", "value": ["paid", "shipped"]}, True),
        ({"field": "status", "op": "in", "value": ["new"]}, False),
        ({"field": "status", "op": "not_in", "value": ["cancelled"]}, True),
        ({"field": "status", "op": "not_in", "value": ["paid"]}, False),
        ({"field": "total", "op": "gt", "value": 24.99}, True),
        ({"field": "total", "op": "gt", "value": 25}, False),
        ({"field": "total", "op": "ge", "value": "25"}, True),
        ({"field": "total", "op": "lt", "value": 25}, False),
        ({"field": "total", "op": "le", "value": 25}, True),
        ({"field": "custom_fields.score", "op": "lt", "value": 10}, True),
        ({"field": "billing_address.city", "op": "contains", "value": "TREC"}, True),  # case-insensitive
        ({"field": "billing_address.city", "op": "contains", "value": "Amsterdam"}, False),
        ({"field": "custom_fields.tags", "op": "contains", "value": "vip"}, True),
        ({"field": "custom_fields.tags", "op": "contains", "value": "vi"}, False),  # list: whole elements
        ({"field": "number", "op": "matches", "value": "^10\\d\\d$"}, True),
        ({"field": "number", "op": "matches", "value": "^2"}, False),
        ({"field": "customer.email", "op": "matches", "value": "@example\\.nl$"}, True),
        ({"field": "lines.0.sku", "op": "eq", "value": "SP-1001"}, True),
        ({"field": "customer.email", "op": "exists"}, True),
        ({"field": "shipping_address", "op": "exists"}, False),  # None counts as absent
        ({"field": "shipping_address", "op": "exists", "value": False}, True),
    ],
)
def test_ops_on_order(flt, expected):
    assert passes(ORDER, **flt) is expected


@pytest.mark.parametrize("op, value", [("eq", "x"), ("ne", "x"), ("in", ["x"]), ("not_in", ["x"]), ("gt", 1), ("contains", "x"), ("matches", ".")])
def test_missing_field_passes_nothing_but_exists_false(op, value):
    assert passes(ORDER, field="custom_fields.nothere", op=op, value=value) is False
    assert passes(ORDER, field="custom_fields.nothere", op="exists", value=False) is True
    assert passes(ORDER, field="custom_fields.nothere", op="exists") is False


@pytest.mark.parametrize(
    "flt, expected",
    [
        ({"field": "ean", "op": "matches", "value": "^No"}, False),  # not the text "None"
        ({"field": "ean", "op": "contains", "value": "one"}, False),
        ({"field": "ean", "op": "eq", "value": "None"}, False),
        ({"field": "ean", "op": "ne", "value": "None"}, True),
        ({"field": "ean", "op": "gt", "value": 0}, False),
        ({"field": "ean", "op": "not_in", "value": ["8712345678906"]}, True),
    ],
)
def test_empty_field(flt, expected):
    assert passes(PRODUCT, **flt) is expected


def test_contains_on_models_and_tuples():
    assert passes(PRODUCT, field="categories", op="contains", value="kitchen")
    assert passes(PRODUCT, field="attributes.0.value", op="eq", value="blue")
    assert passes(PRODUCT, field="price_excl_tax", op="ge", value="12.5")


@pytest.mark.parametrize(
    "flt, words",
    [
        ({"field": "status", "op": "like", "value": "x"}, "Input should be"),
        ({"field": "status", "op": "in", "value": "paid"}, "needs a list"),
        ({"field": "total", "op": "gt", "value": "lots"}, "needs a number"),
        ({"field": "total", "op": "lt", "value": True}, "needs a number"),
        ({"field": "total", "op": "le"}, "needs a number"),
        ({"field": "number", "op": "matches", "value": "(["}, "is not a regular expression"),
        ({"field": "number", "op": "exists", "value": "no"}, "needs true or false"),
        ({"field": "number", "value": 1, "extra": 2}, "Extra inputs are not permitted"),
    ],
)
def test_bad_filters_are_rejected(flt, words):
    with pytest.raises(ValidationError, match=words):
        Filter(**flt)


def test_filter_is_frozen_and_describes_itself():
    flt = Filter(field="status", op="in", value=["paid"])
    with pytest.raises(ValidationError):
        flt.op = "eq"
    assert flt.describe() == "status in ['paid']"


# -- regressions found by tests/test_fuzz_core.py ------------------------------------------------


@pytest.mark.parametrize("text", ["NaN", "sNaN", "-nan", "Infinity"])
def test_a_field_that_reads_as_a_non_finite_number_compares_to_nothing(text):
    product = PRODUCT.model_copy(update={"name": text})
    assert not passes(product, field="name", op="gt", value=1)
    assert not passes(product, field="name", op="eq", value=5)  # a signalling NaN used to raise here
    assert passes(product, field="name", op="eq", value=text)


def test_nan_is_not_a_number_to_compare_with():
    with pytest.raises(ValidationError, match="needs a number"):
        Filter(field="price_excl_tax", op="gt", value="NaN")

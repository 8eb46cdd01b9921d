"""The one field-path walker: get, every value over ``*``, set, check against a model, a model's paths."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from apicenterd import Order, OrderLine, Product
from apicenterd.fieldpath import MISSING, PathError, check, get, parse, paths, set_value, star_count, values

ORDER = Order(
    number="1001",
    status="paid",
    created_at=datetime(2026, 1, 2, tzinfo=timezone.utc),
    lines=(OrderLine(sku="A", unit_price=Decimal(1)), OrderLine(sku="B", unit_price=Decimal(2))),
    total=Decimal(3),
    custom_fields={"tags": ["vip"]},
)


def test_parse_and_get():
    assert parse("lines.*.sku") == ("lines", "*", "sku")
    assert get(ORDER, "lines.1.sku") == "B"
    assert get(ORDER, "custom_fields.tags.0") == "vip"
    assert get(ORDER, "lines.2.sku") is MISSING and get(ORDER, "lines.*.sku") is MISSING


def test_values_over_star():
    assert values(ORDER, "lines.*.sku") == ["A", "B"]
    assert values(ORDER, "lines.*.nope") == [] and values(ORDER, "number") == ["1001"]
    assert star_count(ORDER.model_dump(), "lines.*.sku") == 2 and star_count(ORDER.model_dump(), "number.*") == 0


def test_set_value_and_its_errors():
    data = ORDER.model_dump()
    set_value(data, "lines.1.name", "Bee")
    set_value(data, "custom_fields.deep.key", 1)
    assert data["lines"][1]["name"] == "Bee" and data["custom_fields"]["deep"] == {"key": 1}
    with pytest.raises(PathError, match=r"^the record has no lines\.5$"):
        set_value(data, "lines.5.name", "x")
    with pytest.raises(PathError, match="cannot set a field inside str"):
        set_value(data, "number.x", "x")


@pytest.mark.parametrize(
    "path, problem",
    [
        ("lines.*.sku", None),
        ("lines.0.sku", None),
        ("custom_fields.anything.at.all", None),
        ("billing_address.city", None),
        ("nope", "Order has no field 'nope'"),
        ("lines.*.nope", "Order has no field 'lines.*.nope'"),
        ("lines.sku", "Order field 'lines' is a list: write 'lines.*.sku' (every item) or an index ('lines.0.sku')"),
    ],
)
def test_check(path, problem):
    assert check(Order, path) == problem


def test_paths_of_a_model():
    listed = paths(Order)
    assert "lines.*.sku" in listed and "billing_address.country" in listed and "lines" not in listed
    assert all(check(Order, p) is None for p in listed)
    assert "attributes.*.name" in paths(Product) and "categories" in paths(Product)

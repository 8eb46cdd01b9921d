"""Unit tests of the pure CCV ⇄ canonical mapping."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from apicenterd import RecordError
from apicenterd_ccv_salespos import mapping


def test_product_sell_price_is_price_minus_discount_incl_vat(product):
    result = mapping.product_to_canonical(product)
    assert result.sku == "KAAS-001"
    assert result.price_incl_tax == Decimal("11.95")
    assert result.price_excl_tax == (Decimal("11.95") / Decimal("1.09")).quantize(Decimal("0.0001"))
    assert result.tax_rate == Decimal(9)
    assert result.ean == "8712345678906"
    assert result.quantity == Decimal(25)
    assert result.weight_kg == Decimal("0.5")
    assert result.purchase_price == Decimal("6.5")
    assert result.images == (product["productmainphoto"],)
    assert result.short_description == "Jong belegen, 500 g"
    assert result.active is True


def test_product_prices_excl_vat_when_the_shop_says_so(product):
    result = mapping.product_to_canonical(product, prices_include_tax=False, currency="USD")
    assert result.price_excl_tax == Decimal("11.95")
    assert result.price_incl_tax == (Decimal("11.95") * Decimal("1.09")).quantize(Decimal("0.0001"))
    assert result.currency == "USD"


def test_product_without_rate_keeps_only_the_known_side(product):
    product.update(vatrate=None, taxtariff="normal")
    result = mapping.product_to_canonical(product)
    assert (result.price_incl_tax, result.price_excl_tax, result.tax_rate) == (Decimal("11.95"), None, None)
    product["taxtariff"] = "zero"
    assert mapping.product_to_canonical(product).tax_rate == Decimal(0)


def test_product_without_productnumber_is_a_record_error(product):
    product["productnumber"] = "  "
    with pytest.raises(RecordError, match="product 123456.*productnumber"):
        mapping.product_to_canonical(product)


def test_product_untracked_stock_and_inactive(product):
    product.update(stockenabled=False, stock=None, is_active=False, eannumber="", shortdescription="")
    result = mapping.product_to_canonical(product)
    assert result.quantity is None and result.active is False
    assert result.ean is None and result.short_description is None


def test_product_bad_number_names_the_field(product):
    product["price"] = "twelve"
    with pytest.raises(RecordError, match=r"product 123456\.price"):
        mapping.product_to_canonical(product)


def test_money_is_decimal_without_float_noise():
    assert mapping.to_decimal(0.1, "x") + mapping.to_decimal(0.2, "x") == Decimal("0.3")
    assert mapping.to_decimal(None, "x") is None
    with pytest.raises(RecordError):
        mapping.to_decimal(True, "x")


@pytest.mark.parametrize("text", ["2022-11-07T21:51:00Z", "2022-11-07T21:51:00+00:00", "2022-11-07T21:51:00+0000",
                                  "2022-11-07T22:51:00+01:00"])  # fmt: skip
def test_timestamps_in_every_spelling_mean_the_same_moment(text):
    assert mapping.parse_datetime(text) == datetime(2022, 11, 7, 21, 51, tzinfo=timezone.utc)


def test_cursor_strings_sort_like_times():
    early = mapping.format_cursor(datetime(2022, 1, 9, 23, 0, tzinfo=timezone.utc))
    late = mapping.format_cursor(mapping.parse_datetime("2022-01-10T00:30:00+01:00"))
    assert early < late == "2022-01-09T23:30:00Z"
    assert mapping.parse_datetime(late) == datetime(2022, 1, 9, 23, 30, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="cursor"):
        mapping.parse_datetime("yesterday", "cursor")


def test_statuses_that_reserve_stock():
    assert mapping.OPEN_STATUSES == (1, 2, 3, 4, 9, 10, 11, 12, 13, 14)
    assert mapping.reserves_stock({"status": 14, "is_completed": True})
    assert not mapping.reserves_stock({"status": 5})
    assert not mapping.reserves_stock({"status": 1, "is_completed": False})


def test_reserved_quantities_sum_counts_per_product(order_row):
    rows = [order_row, {**order_row, "id": 2, "count": 2.5}, {**order_row, "id": 3, "product_id": 7, "count": 1},
            {**order_row, "id": 4, "product_id": None, "count": 9}]  # fmt: skip
    assert mapping.reserved_quantities(rows) == {123456: Decimal("3.5"), 7: Decimal(1)}


def test_stock_level(product):
    level = mapping.stock_level(product, Decimal(4))
    assert (level.sku, level.on_hand, level.reserved, level.available, level.tracked) == (
        "KAAS-001", Decimal(25), Decimal(4), Decimal(21), True
    )
    assert level.location == "A-12"
    product.update(stockenabled=False, stock=None)
    untracked = mapping.stock_level(product, Decimal(4))
    assert (untracked.on_hand, untracked.reserved, untracked.available, untracked.tracked) == (0, 0, 0, False)


def test_order_maps_rows_customer_and_shipping(order, order_row):
    result = mapping.order_to_canonical(order, [order_row])
    assert (result.number, result.status, result.total, result.paid) == ("1", "new", Decimal("591.95"), False)
    assert result.created_at == datetime(2022, 11, 7, 21, 51, tzinfo=timezone.utc)
    product_line, shipping_line = result.lines
    assert (product_line.sku, product_line.unit_price, product_line.discount, product_line.total) == (
        "KAAS-001", Decimal(595), Decimal(10), Decimal(585)
    )
    assert product_line.unit_price * product_line.quantity - product_line.discount == product_line.total
    assert (shipping_line.kind, shipping_line.unit_price, shipping_line.tax_rate) == ("shipping", Decimal("6.95"), 21)
    customer = result.customer
    assert (customer.kind, customer.name, customer.email) == ("company", "Kaashandel Jansen B.V.", "jan@example.nl")
    assert customer.contact.full_name == "Jan Jansen"
    assert customer.billing_address.house_number == "12" and customer.billing_address.country == "NL"
    assert customer.shipping_address is None  # all-empty delivery address means "same as billing"
    assert result.reference == "PO-77"


def test_order_delivery_address_and_private_customer(order, order_row):
    order["customer"]["customertype"] = "b2c"
    order["customer"]["deliveryaddress"].update(street="Kerkstraat", housenumber=3, zipcode="2801 AA", city="Gouda",
                                                country_code="NL")  # fmt: skip
    result = mapping.order_to_canonical(order, [order_row])
    assert result.customer.kind == "person" and result.customer.name == "Jan Jansen"
    assert result.shipping_address.street == "Kerkstraat"


def test_order_not_completed_has_no_number(order):
    order.update(ordernumber=None, ordernumber_full=None)
    with pytest.raises(RecordError, match="order 339323562"):
        mapping.order_to_canonical(order, [])

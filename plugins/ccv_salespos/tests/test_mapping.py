"""Unit tests of the pure CCV ⇄ canonical mapping."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from apicenterd_ccv_salespos import mapping

from apicenterd import RecordError, Shipment


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


# -- orders ------------------------------------------------------------------------------------


def test_order_maps_header_rows_and_shipping(order, order_row):
    result = mapping.order_to_canonical(order, [order_row])
    assert (result.number, result.status, result.total, result.total_tax) == ("1", "new", Decimal("591.95"), Decimal("102.73"))
    assert (result.paid, result.payment_method, result.currency) == (False, "BankTransfer", "EUR")
    assert result.created_at == datetime(2022, 11, 7, 21, 51, tzinfo=timezone.utc)
    assert result.custom_fields["ccv_status"] == 1 and result.custom_fields["ccv_order_id"] == 339323562
    assert result.custom_fields["ccv_paymethod_label"] == "Vooraf overmaken"
    product_line, shipping_line = result.lines
    assert (product_line.kind, product_line.sku, product_line.name, product_line.quantity) == (
        "product", "KAAS-001", "Goudse kaas jong belegen", Decimal(1)
    )
    assert (product_line.unit_price, product_line.discount, product_line.total, product_line.tax_rate) == (
        Decimal(595), Decimal(10), Decimal(585), Decimal(9)
    )
    assert product_line.unit_price * product_line.quantity - product_line.discount == product_line.total
    assert (shipping_line.kind, shipping_line.unit_price, shipping_line.tax_rate, shipping_line.total) == (
        "shipping", Decimal("6.95"), Decimal(21), Decimal("6.95")
    )
    assert product_line.prices_include_tax and shipping_line.prices_include_tax
    assert sum(line.total for line in result.lines) == result.total
    assert result.reference == "PO-77"


def test_row_discount_is_per_unit_and_counts_are_decimal(order, order_row):
    order_row.update(count=3, price=2.5, discount=0.1, total_price=7.2)
    (line, _) = mapping.order_to_canonical(order, [order_row]).lines
    assert (line.quantity, line.unit_price, line.discount, line.total) == (3, Decimal("2.5"), Decimal("0.3"), Decimal("7.2"))


def test_tax_flags_come_from_the_order_unless_the_setting_overrides(order, order_row):
    order.update(order_row_taxes_included=False, shipping_taxes_included=False)
    product_line, shipping_line = mapping.order_to_canonical(order, [order_row]).lines
    assert not product_line.prices_include_tax and not shipping_line.prices_include_tax
    forced = mapping.order_to_canonical(order, [order_row], prices_include_tax=True).lines
    assert all(line.prices_include_tax for line in forced)


def test_no_shipping_line_without_shipping_costs(order, order_row):
    order.update(total_shipping=0, total_price=585)
    assert [line.kind for line in mapping.order_to_canonical(order, [order_row]).lines] == ["product"]


def test_order_level_coupon_becomes_a_negative_discount_line(order, order_row):
    order.update(total_discounts=25, total_price=566.95, discountcoupon={"code": "WELKOM25", "discount": 25})
    result = mapping.order_to_canonical(order, [order_row])
    discount = result.lines[-1]
    assert (discount.kind, discount.name, discount.unit_price, discount.total) == (
        "discount", "Korting WELKOM25", Decimal(-25), Decimal(-25)
    )
    assert discount.tax_rate == Decimal(9)  # the only rate in the order
    assert sum(line.total for line in result.lines) == result.total


def test_discounts_already_carried_by_the_rows_get_no_line(order, order_row):
    order["total_discounts"] = 10  # the row's own discount; total_price already matches rows + shipping
    assert [line.kind for line in mapping.order_to_canonical(order, [order_row]).lines] == ["product", "shipping"]


def test_discount_that_does_not_reconcile_counts_what_exceeds_the_rows(order, order_row):
    order.update(total_discounts=14, total_price=999)  # the totals add up neither way
    discount = mapping.order_to_canonical(order, [order_row]).lines[-1]
    assert (discount.kind, discount.total) == ("discount", Decimal(-4))


def test_discount_rate_is_unknown_when_rows_have_several(order, order_row):
    second = {**order_row, "id": 2, "tax": 21, "price": 10, "discount": 0, "total_price": 10}
    order.update(total_discounts=5, total_price=596.95)
    discount = mapping.order_to_canonical(order, [order_row, second]).lines[-1]
    assert discount.kind == "discount" and discount.tax_rate is None


def test_payment_and_extra_costs_become_fee_lines(order, order_row):
    order.update(paymethod_costs=0.35, extra_costs=2, extra_costs_description="Cadeauverpakking", total_price=594.30)
    fees = [line for line in mapping.order_to_canonical(order, [order_row]).lines if line.kind == "fee"]
    assert [(f.name, f.total) for f in fees] == [("Betaalkosten", Decimal("0.35")), ("Cadeauverpakking", Decimal(2))]


def test_deposit_rows_are_fee_lines(order, order_row):
    deposit = {**order_row, "id": 2, "product_type": "deposit", "product_number": "", "tax": 0, "price": 0.15,
               "discount": 0, "count": 6, "total_price": 0.9}  # fmt: skip
    lines = mapping.order_to_canonical(order, [order_row, deposit]).lines
    assert (lines[1].kind, lines[1].sku, lines[1].tax_rate, lines[1].total) == ("fee", None, Decimal(0), Decimal("0.9"))


def test_variant_rows_use_product_number_unless_variant_sku(order, order_row):
    order_row.update(sub_sku_number="KAAS-001-XL", attributes=[
        {"href": "", "id": 1, "option_name": "Gewicht", "value_name": "1 kg", "price": 0},
        {"href": "", "id": 2, "option_name": "Rijping", "value_name": "Belegen", "price": 0},
    ])  # fmt: skip
    line = mapping.order_to_canonical(order, [order_row]).lines[0]
    assert line.sku == "KAAS-001"
    assert line.name == "Goudse kaas jong belegen (Gewicht: 1 kg, Rijping: Belegen)"
    assert mapping.order_to_canonical(order, [order_row], variant_sku=True).lines[0].sku == "KAAS-001-XL"
    order_row["sub_sku_number"] = ""
    assert mapping.order_to_canonical(order, [order_row], variant_sku=True).lines[0].sku == "KAAS-001"


@pytest.mark.parametrize(("code", "name"), sorted(mapping.ORDER_STATUSES.items()))
def test_every_status_maps_to_a_stable_name_and_keeps_its_code(order, code, name):
    order["status"] = code
    result = mapping.order_to_canonical(order, [])
    assert result.status == name and result.custom_fields["ccv_status"] == code
    assert name == name.lower() and " " not in name


def test_status_names_are_distinct_and_unknown_codes_stay_visible(order):
    assert len(set(mapping.ORDER_STATUSES.values())) == 14
    order["status"] = 15
    assert mapping.order_to_canonical(order, []).status == "status_15"
    order["status"] = None
    with pytest.raises(RecordError, match="order 1 .*no status"):
        mapping.order_to_canonical(order, [])


@pytest.mark.parametrize(
    ("change", "message"),
    [({"ordernumber": None, "ordernumber_full": None}, "order 339323562: has no ordernumber_full"),
     ({"total_price": None}, "no total_price"), ({"create_date": "gisteren"}, "create_date"),
     ({"total_shipping": "gratis"}, "total_shipping")],
)  # fmt: skip
def test_unmappable_orders_are_record_errors_naming_the_order(order, change, message):
    order.update(change)
    with pytest.raises(RecordError, match=message):
        mapping.order_to_canonical(order, [])


def test_note_comes_from_the_customer_comment(order):
    assert mapping.order_to_canonical(order, []).note is None
    order["customer"]["billingaddress"]["comment"] = "Graag na 17:00 bezorgen"
    assert mapping.order_to_canonical(order, []).note == "Graag na 17:00 bezorgen"


def test_order_without_customer_block(order):
    del order["customer"]
    result = mapping.order_to_canonical(order, [])
    assert result.customer is None and result.shipping_address is None and result.reference is None


# -- customers ---------------------------------------------------------------------------------


def test_company_customer_with_the_person_as_contact(order):
    customer = mapping.customer_to_canonical(order["customer"], currency="EUR", language="nl")
    assert (customer.kind, customer.name, customer.email) == ("company", "Kaashandel Jansen B.V.", "jan@example.nl")
    assert (customer.vat_number, customer.coc_number, customer.phone) == ("NL123456789B01", "12345678", "0182123456")
    assert customer.contact.full_name == "Jan Jansen" and customer.contact.email == "jan@example.nl"
    assert (customer.currency, customer.language) == ("EUR", "nl")
    address = customer.billing_address
    assert (address.street, address.house_number, address.house_number_suffix) == ("Dorpsstraat", "12", "A")
    assert (address.postcode, address.city, address.country) == ("1234 AB", "Gouda", "NL")


def test_all_empty_delivery_address_falls_back_to_billing(order):
    customer = mapping.customer_to_canonical(order["customer"])
    assert customer.shipping_address == customer.billing_address
    result = mapping.order_to_canonical(order, [])
    assert result.shipping_address == result.billing_address == customer.billing_address


def test_filled_delivery_address_is_used(order):
    order["customer"]["deliveryaddress"].update(street="Kerkstraat", housenumber=3, housenumber_suffix="bis",
                                                zipcode="2801 AA", city="Gouda", country_code="nl")  # fmt: skip
    result = mapping.order_to_canonical(order, [])
    shipping = result.shipping_address
    assert (shipping.street, shipping.house_number, shipping.house_number_suffix, shipping.country) == (
        "Kerkstraat", "3", "bis", "NL"
    )
    assert result.billing_address.street == "Dorpsstraat"


@pytest.mark.parametrize(
    ("company", "customertype", "kind", "name"),
    [("Kaashandel Jansen B.V.", "b2b", "company", "Kaashandel Jansen B.V."),
     ("Kaashandel Jansen B.V.", "b2c", "company", "Kaashandel Jansen B.V."),
     ("", "b2b", "company", "Jan Jansen"), ("", "b2c", "person", "Jan Jansen")],
)  # fmt: skip
def test_company_or_person(order, company, customertype, kind, name):
    order["customer"]["billingaddress"]["company"] = company
    order["customer"]["customertype"] = customertype
    customer = mapping.customer_to_canonical(order["customer"])
    assert (customer.kind, customer.name) == (kind, name)
    assert (customer.contact is not None) is (kind == "company")


def test_foreign_address_on_address_lines(order):
    billing = order["customer"]["billingaddress"]
    billing.update(street="", housenumber="", housenumber_suffix="", address_line_1="10 Downing Street",
                   address_line_2="Westminster", zipcode="SW1A 2AA", city="London", country_code="GB")  # fmt: skip
    address = mapping.customer_to_canonical(order["customer"]).billing_address
    assert (address.street, address.house_number, address.line2, address.country) == (
        "10 Downing Street", "", "Westminster", "GB"
    )


# -- cursors and shipments ---------------------------------------------------------------------


def test_order_cursors_sort_like_the_numbers():
    cursors = [mapping.order_cursor(n) for n in (9, 10, 100, 2_000_000)]
    assert cursors == sorted(cursors) and [mapping.parse_order_cursor(c) for c in cursors] == [9, 10, 100, 2_000_000]
    for bad in ("2025-01-01T00:00:00Z", "", "-1"):
        with pytest.raises(ValueError, match="order cursor"):
            mapping.parse_order_cursor(bad)


def test_shipment_key_and_ordernumber_filter():
    assert mapping.split_shipment_key("1001/3SABC123") == ("1001", "3SABC123")
    assert mapping.split_shipment_key("2024/0017/JVGL0123") == ("2024/0017", "JVGL0123")
    assert mapping.split_shipment_key("no-slash") == ("", "no-slash")
    assert mapping.ordernumber_filter("WEB-0123") == 123 and mapping.ordernumber_filter("abc") is None
    assert mapping.matches_number({"ordernumber": 123, "ordernumber_full": "WEB-0123"}, "WEB-0123")
    assert mapping.matches_number({"ordernumber": 123, "ordernumber_full": "WEB-0123"}, "123")
    assert not mapping.matches_number({"ordernumber": 123, "ordernumber_full": "WEB-0123"}, "SHOP-0123")


def test_shipment_from_order(order):
    assert mapping.shipment_from_order(order) is None  # "" = no code yet
    order.update(track_and_trace_code="3SABC1", track_and_trace_carrier="MyParcel",
                 track_and_trace_deeplink="https://postnl.nl/tracktrace/?B=3SABC1")  # fmt: skip
    shipment = mapping.shipment_from_order(order)
    assert (shipment.order_number, shipment.tracking_code, shipment.carrier) == ("1", "3SABC1", "MyParcel")
    assert shipment.tracking_url == "https://postnl.nl/tracktrace/?B=3SABC1"
    assert shipment.key() == "1/3SABC1"


def _shipment(code="3SABC1", carrier="PostNL"):
    from apicenterd import Shipment

    return Shipment(order_number="1", tracking_code=code, carrier=carrier)


def test_shipment_patch_marks_the_order_sent_with_track_and_trace(order):
    assert mapping.shipment_patch(order, _shipment(), mail=True) == {
        "status": 5, "track_and_trace_code": "3SABC1", "track_and_trace_carrier": "PostNL", "mail": True
    }
    assert mapping.shipment_patch(order, _shipment(carrier=None), mail=False) == {
        "status": 5, "track_and_trace_code": "3SABC1", "mail": False
    }
    order["status"] = 7  # completed stays completed
    assert "status" not in mapping.shipment_patch(order, _shipment(), mail=True)


def test_shipment_patch_for_the_same_code_only_changes_the_carrier(order):
    order.update(track_and_trace_code="3SABC1", track_and_trace_carrier="PostNL")
    assert mapping.shipment_patch(order, _shipment(), mail=True) == {}
    assert mapping.shipment_patch(order, _shipment(carrier="DHL"), mail=True) == {"track_and_trace_carrier": "DHL"}
    assert mapping.shipment_patch(order, _shipment(carrier=None), mail=True) == {}


def test_a_second_code_for_an_order_is_refused_not_overwritten(order):
    order["track_and_trace_code"] = "3SFIRST"
    with pytest.raises(RecordError) as caught:
        mapping.shipment_patch(order, _shipment("3SSECOND"), mail=True)
    assert str(caught.value) == (
        "order 1 already has track & trace 3SFIRST; CCV keeps one code per order; split shipments are not supported"
    )


def test_a_cancelled_order_gets_no_shipment(order):
    order["status"] = 8
    with pytest.raises(RecordError, match="order 1 is cancelled"):
        mapping.shipment_patch(order, _shipment(), mail=True)


# -- regressions found by the fuzz tests (test_fuzz.py) -----------------------------------------


@pytest.mark.parametrize(("key", "value"), [("billingaddress", True), ("deliveryaddress", 1), ("billingaddress", "Dorpsstraat 1")])
def test_an_address_that_is_not_an_object_is_a_record_error_naming_it(order, order_row, key, value):
    order["customer"][key] = value
    with pytest.raises(RecordError, match=rf"order 1 \(id 339323562\)\.customer\.{key}: expected an object"):
        mapping.order_to_canonical(order, [order_row])


def test_an_empty_php_array_for_an_address_counts_as_empty(order, order_row):
    order["customer"]["deliveryaddress"] = []
    result = mapping.order_to_canonical(order, [order_row])
    assert result.shipping_address == result.billing_address


def test_a_customer_that_is_not_an_object_is_a_record_error(order, order_row):
    order["customer"] = ["Jan"]
    with pytest.raises(RecordError, match=r"\.customer: expected an object"):
        mapping.order_to_canonical(order, [order_row])


def test_row_attributes_that_are_not_a_list_are_ignored(order, order_row):
    order_row["attributes"] = 7
    assert mapping.order_to_canonical(order, [order_row]).lines[0].name == "Goudse kaas jong belegen"


def test_a_status_that_is_not_a_number_breaks_neither_reservations_nor_shipments(order):
    order["status"] = [5]
    assert mapping.reserves_stock(order)
    order["track_and_trace_code"] = ""
    assert mapping.shipment_patch(order, Shipment(order_number="1", tracking_code="3S1"), mail=False)["status"] == 5


def test_a_currency_the_model_rejects_is_a_record_error_naming_the_field(order, order_row):
    order["currency"] = "euro"
    with pytest.raises(RecordError, match=r"order 1 \(id 339323562\)\.customer: currency: String should match"):
        mapping.order_to_canonical(order, [order_row])
    order["customer"] = None
    with pytest.raises(RecordError, match=r"order 1 \(id 339323562\): currency: String should match"):
        mapping.order_to_canonical(order, [order_row])


def test_a_customer_language_that_is_not_text_is_left_out(order):
    assert mapping.customer_to_canonical(order["customer"], language=3).language is None


@pytest.mark.parametrize("value", [Decimal("1E+999"), "9" * 40, -1e20])
def test_an_absurdly_large_number_is_a_record_error_not_a_decimal_crash(product, value):
    product["price"] = value
    with pytest.raises(RecordError, match=r"product 123456\.price: .* out of range"):
        mapping.product_to_canonical(product)


@pytest.mark.parametrize("rate", [-100, 100, 250])
def test_a_vat_rate_outside_0_to_100_is_a_record_error(product, rate):
    product["vatrate"] = rate
    with pytest.raises(RecordError, match=r"product 123456\.vatrate: .* not a VAT percentage"):
        mapping.product_to_canonical(product)


def test_an_unreadable_row_count_is_kept_per_product_when_asked(order_row):
    rows = [order_row, {**order_row, "id": 2, "product_id": 7, "count": "twee"}]
    with pytest.raises(RecordError, match=r"order row 2\.count"):
        mapping.reserved_quantities(rows)
    errors: dict[int, str] = {}
    assert mapping.reserved_quantities(rows, errors) == {123456: Decimal(1)}
    assert errors == {7: "reserved stock unknown: order row 2.count: expected a number, got 'twee'"}


def test_a_product_read_with_its_numbers_as_text_maps_to_the_same_record():
    """read_products decodes pages with parse_float=str (faster); every number goes through
    to_decimal, so the canonical product, and the hash that decides a write, are the same."""
    import json as jsonlib
    from decimal import Decimal as D

    from apicenterd_ccv_salespos import mapping as m

    text = (
        '{"id": 7, "productnumber": "SKU-7", "name": "Kaas", "price": 12.950, "discount": 0.5, "vatrate": 9.0,'
        ' "purchaseprice": 1e1, "stockenabled": true, "stock": 42.25, "weight": 0.416, "is_active": true}'
    )
    as_decimal = m.product_to_canonical(jsonlib.loads(text, parse_float=D))
    as_text = m.product_to_canonical(jsonlib.loads(text, parse_float=str))
    assert as_text == as_decimal
    assert as_text.purchase_price == D("1E+1") and as_text.quantity == D("42.25") and as_text.tax_rate == D("9.0")

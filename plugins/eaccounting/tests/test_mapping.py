"""Pure mapping between eAccounting JSON and canonical records."""

from __future__ import annotations

from decimal import Decimal

import pytest
from apicenterd_eaccounting import mapping

from apicenterd import Address, Contact, Customer, Product, RecordError, StockLevel

CODING, UNIT, TERMS = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222", "33333333-3333-4333-8333-333333333333"


def product(**overrides) -> Product:
    """A product with every field eAccounting stores (and some it does not)."""
    values = dict(
        sku="ABC-1",
        name="Blue mug",
        price_excl_tax=Decimal("10.005"),
        price_incl_tax=Decimal("12.1"),
        purchase_price=Decimal("4.444"),
        tax_rate=Decimal(21),
        quantity=Decimal("7"),
        active=False,
        ean="8712345678906",
        description="<p>not stored</p>",
    )
    values.update(overrides)
    return Product(**values)


def test_new_article_maps_every_stored_field_with_cents():
    body = mapping.new_article(product(), coding_id=CODING, unit_id=UNIT)
    assert body == {
        "Number": "ABC-1",
        "Name": "Blue mug",
        "NetPrice": Decimal("10.01"),
        "GrossPrice": Decimal("12.10"),
        "PurchasePrice": Decimal("4.44"),
        "CodingId": CODING,
        "UnitId": UNIT,
        "IsActive": False,
        "StockBalance": Decimal("7.00"),
    }


def test_new_article_leaves_out_missing_prices_and_quantity():
    body = mapping.new_article(
        product(price_incl_tax=None, purchase_price=None, quantity=None), coding_id=CODING, unit_id=UNIT
    )
    assert "GrossPrice" not in body and "PurchasePrice" not in body and "StockBalance" not in body


def test_article_fields_only_maps_the_given_fields():
    assert mapping.article_fields(product(), {"name", "active"}) == {"Name": "Blue mug", "IsActive": False}
    assert mapping.article_fields(product(), {"tax_rate"}, coding_id=CODING) == {"CodingId": CODING}
    assert mapping.article_fields(product(), {"ean", "description", "images"}) == {}


def test_a_long_name_is_a_record_error_naming_field_and_limit():
    with pytest.raises(RecordError, match=r"article 'ABC-1': Name is 62 characters, eAccounting allows 50"):
        mapping.new_article(product(name="x" * 62), coding_id=CODING, unit_id=UNIT)


def test_truncate_names_cuts_to_50():
    body = mapping.new_article(product(name="y" * 62), coding_id=CODING, unit_id=UNIT, truncate_names=True)
    assert body["Name"] == "y" * 50


def test_a_long_sku_is_never_truncated():
    with pytest.raises(RecordError, match="Number is 41 characters, eAccounting allows 40"):
        mapping.new_article(product(sku="s" * 41), coding_id=CODING, unit_id=UNIT, truncate_names=True)


@pytest.mark.parametrize("amount", [Decimal("-0.01"), Decimal("10000000.01")])
def test_prices_outside_the_articles_range_are_record_errors(amount):
    with pytest.raises(RecordError, match=f"NetPrice is {amount}, eAccounting allows 0 to 10000000"):
        mapping.new_article(product(price_excl_tax=amount), coding_id=CODING, unit_id=UNIT)


def test_article_to_product_keeps_decimals_and_reads_the_unit():
    article = {
        "Id": "a",
        "Number": "ABC-1",
        "Name": "Blue mug",
        "NetPrice": Decimal("10.01"),
        "GrossPrice": 12,
        "PurchasePrice": None,
        "StockBalance": Decimal("3.5"),
        "IsActive": True,
        "UnitAbbreviation": "pcs",
    }
    result = mapping.article_to_product(article, vat_rate=Decimal(21), currency="SEK")
    assert result.price_excl_tax == Decimal("10.01") and isinstance(result.price_incl_tax, Decimal)
    assert (result.tax_rate, result.currency, result.quantity, result.unit) == (Decimal(21), "SEK", Decimal("3.5"), "pcs")


def test_an_article_without_number_cannot_be_read():
    with pytest.raises(RecordError, match="returned no Number"):
        mapping.article_to_product({"Id": "a", "Name": "x"})


def test_stock_reads_back_what_is_written():
    stock = mapping.article_to_stock({"Id": "a", "Number": "S", "StockBalance": 9, "StockBalanceReserved": 2})
    assert (stock.on_hand, stock.available) == (Decimal(9), Decimal(9))
    assert mapping.stock_balance(Decimal("1.005")) == Decimal("1.01")


@pytest.mark.parametrize(("given", "percent"), [(Decimal("0.25"), Decimal(25)), (25, Decimal(25)), (Decimal("0.06"), Decimal(6)), (0, Decimal(0))])
def test_vat_percent_accepts_fraction_or_percent(given, percent):
    assert mapping.vat_percent({"VatRatePercent": given}) == percent


@pytest.mark.parametrize(
    ("line", "parts"),
    [("Kerkstraat 12A", ("Kerkstraat", "12", "A")), ("Plein 1940 3", ("Plein 1940", "3", "")), ("Main Street", ("Main Street", "", ""))],
)
def test_split_street(line, parts):
    assert mapping.split_street(line) == parts


def company(**overrides) -> Customer:
    """A company customer with every field set."""
    values = dict(
        kind="company",
        name="Acme B.V.",
        email="Info@Acme.example",
        phone="020-1234567",
        contact=Contact(first_name="Jan", last_name="de Vries", email="jan@acme.example", phone="06-1"),
        billing_address=Address(street="Kerkstraat", house_number="12", house_number_suffix="A", postcode="1011AB", city="Amsterdam", country="NL"),
        shipping_address=Address(street="Dock", house_number="3", postcode="3011AA", city="Rotterdam", country="NL"),
        vat_number="NL001234567B01",
        coc_number="12345678",
        customer_number="C-100",
        language="nl-NL",
        currency="EUR",
    )
    values.update(overrides)
    return Customer(**values)


def test_new_customer_for_a_company_with_contact():
    body = mapping.new_customer(company(), terms_of_payment_id=TERMS)
    assert body["IsPrivatePerson"] is False and body["IsActive"] is True and body["TermsOfPaymentId"] == TERMS
    assert body["ContactPersonName"] == "Jan de Vries" and body["ContactPersonEmail"] == "jan@acme.example"
    assert (body["InvoiceAddress1"], body["InvoicePostalCode"], body["InvoiceCity"], body["InvoiceCountryCode"]) == (
        "Kerkstraat 12A", "1011AB", "Amsterdam", "NL")
    assert body["DeliveryCity"] == "Rotterdam" and body["EmailAddress"] == "info@acme.example"
    assert body["SalesDocumentLanguage"] == "nl" and body["CorporateIdentityNumber"] == "12345678"


def test_a_person_gets_no_contact_person():
    body = mapping.new_customer(company(kind="person", name="Jan de Vries"), terms_of_payment_id=TERMS)
    assert body["IsPrivatePerson"] is True and "ContactPersonName" not in body


def test_customer_round_trip_keeps_what_eaccounting_stores():
    original = company(language="nl")
    body = mapping.new_customer(original, terms_of_payment_id=TERMS)
    assert mapping.api_to_customer({"Id": "c", **body}) == original


def test_customer_without_city_names_the_required_property():
    customer = company(billing_address=Address(street="x", postcode="1000AA"))
    with pytest.raises(RecordError, match=r"customer 'info@acme.example': InvoiceCity is empty, eAccounting requires it"):
        mapping.new_customer(customer, terms_of_payment_id=TERMS)


def test_customer_number_over_16_is_rejected_and_none_is_not_written():
    with pytest.raises(RecordError, match="CustomerNumber is 17 characters, eAccounting allows 16"):
        mapping.customer_fields(company(customer_number="1" * 17), {"customer_number"})
    assert mapping.customer_fields(company(customer_number=None), {"customer_number"}) == {}


def test_customer_fields_clear_what_the_record_no_longer_has():
    changes = mapping.customer_fields(company(vat_number=None, contact=None), {"vat_number", "contact"})
    assert changes == {"VatNumber": None, "ContactPersonName": None, "ContactPersonEmail": None, "ContactPersonPhone": None}


def test_a_bad_language_is_a_record_error():
    with pytest.raises(RecordError, match="language 'dutch' is not a 2-letter code"):
        mapping.customer_fields(company(language="dutch"), {"language"})


def test_normalize_product_is_what_eaccounting_stores():
    normal = mapping.normalize_product(product(tax_rate=Decimal("21.00"), quantity=Decimal("2.345")))
    assert (normal.price_excl_tax, normal.price_incl_tax, normal.purchase_price) == (Decimal("10.01"), Decimal("12.10"), Decimal("4.44"))
    assert str(normal.tax_rate) == "21" and normal.quantity == Decimal("2.35") and normal.ean == "8712345678906"
    assert mapping.normalize_product(product(name="z" * 60), truncate_names=True).name == "z" * 50
    with pytest.raises(RecordError, match="Name is 60 characters"):
        mapping.normalize_product(product(name="z" * 60))


def test_normalize_customer_reads_back_like_eaccounting():
    customer = company(
        kind="person",
        language="nl-NL",
        billing_address=Address(street="Kerkstraat 12", postcode="1011AB", city="Amsterdam", region="NH", country="NL"),
        shipping_address=Address(),
    )
    normal = mapping.normalize_customer(customer)
    assert normal.contact is None and normal.language == "nl" and normal.shipping_address is None
    assert (normal.billing_address.street, normal.billing_address.house_number, normal.billing_address.region) == ("Kerkstraat", "12", "")
    assert mapping.normalize_customer(normal) == normal


# -- regressions found by the fuzz tests (test_fuzz.py) -----------------------------------------


@pytest.mark.parametrize("rate", ["NaN", float("inf"), Decimal("1E+999"), 250, -5, "abc", [21]])
def test_a_coding_rate_that_is_no_vat_percentage_reads_as_none(rate):
    assert mapping.vat_percent({"VatRatePercent": rate}) is None


def test_non_finite_numbers_read_as_absent():
    assert mapping.to_decimal(float("nan")) is None and mapping.to_decimal("Infinity") is None
    assert mapping.to_decimal(Decimal("1E+999")) == Decimal("1E+999")  # finite: the write side rejects it


def test_an_article_number_that_is_not_text_is_a_record_error():
    with pytest.raises(RecordError, match=r"article 'a': Number is not text: 12"):
        mapping.article_to_product({"Id": "a", "Number": 12})


def test_customer_properties_of_the_wrong_type_read_as_absent():
    customer = mapping.api_to_customer(
        {"Id": "c", "Name": "Acme", "InvoiceAddress1": ["Kerkstraat 1"], "InvoiceCity": 7, "InvoiceCountryCode": True,
         "CurrencyCode": 978, "SalesDocumentLanguage": False, "ContactPersonName": 1, "EmailAddress": {"a": 1}}  # fmt: skip
    )
    assert (customer.billing_address, customer.currency, customer.language, customer.contact, customer.email) == (
        Address(), None, None, None, None
    )


def test_a_customer_name_that_is_not_text_is_a_record_error():
    with pytest.raises(RecordError, match=r"customer 'c': Name is not text"):
        mapping.api_to_customer({"Id": "c", "Name": 5})


@pytest.mark.parametrize("amount", [Decimal("1E+30"), Decimal("-1E+999")])
def test_an_amount_with_too_many_digits_is_a_record_error_not_invalid_operation(amount):
    with pytest.raises(RecordError, match=r"article 'ABC-1': PurchasePrice .* out of range"):
        mapping.normalize_product(product(purchase_price=amount))
    with pytest.raises(RecordError, match=r"stock of article 'S': StockBalance .* out of range"):
        mapping.normalize_stock(StockLevel(sku="S", on_hand=amount, available=amount))


def test_lengths_count_utf16_code_units_as_dotnet_does():
    """A 50-character name ending in an emoji is 51 code units: before, it passed normalize and the
    vendor rejected it with a 400; now it is a RecordError (or cut before the emoji)."""
    from apicenterd_eaccounting.mapping import cut, length, normalize_product

    name = "x" * 49 + "\U0001F600"
    assert len(name) == 50 and length(name) == 51
    with pytest.raises(RecordError, match="Name is 51 characters, eAccounting allows 50 \\(UTF-16 code units"):
        normalize_product(Product(sku="E-1", name=name))
    assert normalize_product(Product(sku="E-1", name=name), truncate_names=True).name == "x" * 49  # never half an emoji
    assert cut("ab\U0001F600c", 3) == "ab" and cut("abc", 3) == "abc"

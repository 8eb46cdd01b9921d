"""Pure mapping of canonical orders and invoices to eAccounting sales documents and back."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from apicenterd_eaccounting import documents
from apicenterd_eaccounting.documents import Article, Debtor, Resolved

from apicenterd import Address, Customer, Invoice, InvoiceLine, Order, OrderLine, RecordError

CUSTOMER, MUG, SHIP, ITEM = (
    "c0000000-0000-4000-8000-000000000001",
    "a0000000-0000-4000-8000-000000000001",
    "a0000000-0000-4000-8000-000000000002",
    "d0000000-0000-4000-8000-000000000001",
)
ARTICLES = {
    "MUG-1": Article(MUG, "MUG-1", "Blue mug", Decimal(21)),
    "SHIP": Article(SHIP, "SHIP", "Shipping costs", Decimal(21)),
}
HOME = Address(street="Kerkstraat", house_number="1", house_number_suffix="A", postcode="1011AB", city="Amsterdam", country="NL")


def debtor(*, private: bool = False, **overrides) -> Debtor:
    """The eAccounting customer a document is for."""
    values = dict(
        id=CUSTOMER, name="Acme B.V.", is_private=private, currency="EUR", reverse_charge=False, terms_id=None,
        address=Address(street="Damrak", house_number="5", postcode="1012LG", city="Amsterdam", country="NL"), delivery=None,
    )
    values.update(overrides)
    return Debtor(**values)


def resolved(*, private: bool = False, includes_vat: bool | None = None, **overrides) -> Resolved:
    """What the connector looked up, with sensible defaults."""
    values = dict(
        debtor=debtor(private=private),
        includes_vat=private if includes_vat is None else includes_vat,
        currency="EUR",
        articles=ARTICLES,
        dimensions={(1, "WEB"): ITEM},
    )
    values.update(overrides)
    return Resolved(**values)


def order(**overrides) -> Order:
    """A shop order: one mug line (incl. VAT, with a discount), shipping and a zero discount line."""
    values = dict(
        number="WEB-1001",
        status="paid",
        created_at=datetime(2024, 5, 1, 22, 30, tzinfo=timezone.utc),
        customer=Customer(kind="company", name="Acme Shop", billing_address=HOME),
        billing_address=HOME,
        shipping_address=Address(street="Dorpsweg", house_number="9", postcode="3511AA", city="Utrecht", country="NL"),
        lines=(
            OrderLine(sku="MUG-1", name="Blue mug", quantity=Decimal(3), unit_price=Decimal("12.10"), tax_rate=Decimal(21), discount=Decimal("3.63")),
            OrderLine(kind="shipping", sku="SHIP", name="Shipping", unit_price=Decimal("6.05"), tax_rate=Decimal(21)),
        ),
        total=Decimal("38.72"),
        customer_id=CUSTOMER,
        document="order",
    )
    values.update(overrides)
    return Order(**values)


def test_a_company_order_has_prices_excl_vat_and_the_spec_required_fields():
    body = documents.order_body(order(), "order", resolved(), documents.OrderSettings(our_reference="Anna"))
    assert {k: body[k] for k in ("CustomerId", "CurrencyCode", "YourReference", "OurReference", "OrderDate", "Status", "CustomerIsPrivatePerson")} == {
        "CustomerId": CUSTOMER, "CurrencyCode": "EUR", "YourReference": "WEB-1001", "OurReference": "Anna",
        "OrderDate": "2024-05-01", "Status": 2, "CustomerIsPrivatePerson": False,
    }
    assert (body["EuThirdParty"], body["RotReducedInvoicingType"], body["ReverseChargeOnConstructionServices"]) == (False, 0, False)
    mug, ship = body["Rows"]
    # 12.10 incl. 21 % VAT is 10.00 excl.; 3.63 off 36.30 is 10 %
    assert mug == {
        "LineNumber": 1, "IsTextRow": False, "ArticleId": MUG, "Text": "Blue mug", "Quantity": Decimal(3),
        "UnitPrice": Decimal("10.00"), "DiscountPercentage": Decimal("0.1000"), "IsWorkCost": False, "EligibleForReverseChargeOnVat": False,
    }
    assert (ship["ArticleId"], ship["UnitPrice"], ship["LineNumber"]) == (SHIP, Decimal("5.00"), 2)
    # Amount incl. VAT: 27.00 + 5.67 VAT + 5.00 + 1.05 VAT
    assert (body["Amount"], body["VatAmount"], body["RoundingsAmount"]) == (Decimal("38.72"), Decimal("6.72"), Decimal(0))


def test_a_private_persons_order_keeps_prices_incl_vat():
    body = documents.order_body(order(), "order", resolved(private=True), documents.OrderSettings())
    assert body["CustomerIsPrivatePerson"] is True and "OurReference" not in body
    assert [r["UnitPrice"] for r in body["Rows"]] == [Decimal("12.10"), Decimal("6.05")]
    # VAT taken out of the gross rows: 32.67 * 21/121 = 5.67, 6.05 * 21/121 = 1.05
    assert (body["Amount"], body["VatAmount"]) == (Decimal("38.72"), Decimal("6.72"))


def test_prices_excl_vat_are_grossed_up_for_a_document_incl_vat():
    line = OrderLine(sku="MUG-1", name="Mug", unit_price=Decimal("10"), prices_include_tax=False, tax_rate=Decimal(9))
    rows = documents.rows(documents.order_lines(order(lines=(line,))), "order", resolved(includes_vat=True), "order X")
    assert rows[0]["UnitPrice"] == Decimal("10.90")


def test_the_articles_vat_converts_when_the_line_has_none():
    line = OrderLine(sku="MUG-1", name="Mug", unit_price=Decimal("12.10"))
    rows = documents.rows(documents.order_lines(order(lines=(line,))), "order", resolved(), "order X")
    assert rows[0]["UnitPrice"] == Decimal("10.00")
    unknown = Article(MUG, "MUG-1", "Mug", None)
    with pytest.raises(RecordError, match="no tax_rate to convert it"):
        documents.rows(documents.order_lines(order(lines=(line,))), "order", resolved(articles={"MUG-1": unknown}), "order X")


@pytest.mark.parametrize(
    ("discount", "expected"),
    [(Decimal("1.00"), Decimal("0.0333")), (Decimal("0"), None), (Decimal("30"), Decimal("1.0000"))],
)
def test_a_discount_amount_becomes_a_percentage_of_the_line(discount, expected):
    line = documents.Line("product", "MUG-1", "Mug", Decimal(3), Decimal(10), True, discount, None, None, None)
    assert documents.discount_percentage(line, "x") == expected


@pytest.mark.parametrize("discount", [Decimal("31"), Decimal("-1")])
def test_a_discount_beyond_the_line_is_a_record_error(discount):
    line = documents.Line("product", "MUG-1", "Mug", Decimal(3), Decimal(10), True, discount, None, None, None)
    with pytest.raises(RecordError, match="DiscountPercentage"):
        documents.discount_percentage(line, "x")


def test_a_discount_line_with_a_sku_is_a_negative_article_row_and_without_amount_a_text_row():
    lines = (
        OrderLine(kind="discount", sku="SHIP", name="Coupon", unit_price=Decimal("2.42"), tax_rate=Decimal(21)),
        OrderLine(kind="discount", name="Free gift", unit_price=Decimal(0)),
    )
    coupon, gift = documents.rows(documents.order_lines(order(lines=lines)), "invoice_draft", resolved(), "order X")
    assert (coupon["ArticleId"], coupon["UnitPrice"]) == (SHIP, Decimal("-2.00"))
    assert gift == {"LineNumber": 2, "IsTextRow": True, "Text": "Free gift", "ReversedConstructionServicesVatFree": False}


@pytest.mark.parametrize(("kind", "option"), [("shipping", "shipping_sku"), ("discount", "discount_sku")])
def test_an_amount_without_an_article_names_the_flow_option(kind, option):
    line = OrderLine(kind=kind, name="x", unit_price=Decimal("4.95"))
    with pytest.raises(RecordError, match=f"options.{option}"):
        documents.rows(documents.order_lines(order(lines=(line,))), "order", resolved(), "order X")


def test_a_product_line_needs_a_known_sku():
    with pytest.raises(RecordError, match="needs a SKU"):
        documents.rows(documents.order_lines(order(lines=(OrderLine(name="x", unit_price=Decimal(1)),))), "order", resolved(), "o")
    with pytest.raises(RecordError, match="no article with Number 'NOPE'"):
        documents.rows(documents.order_lines(order(lines=(OrderLine(sku="NOPE", unit_price=Decimal(1)),))), "order", resolved(), "o")


def test_cost_centre_and_unit_go_to_the_cost_centre_items():
    line = OrderLine(sku="MUG-1", name="Mug", unit_price=Decimal(1), tax_rate=Decimal(21), cost_centre="WEB", tax_code="V21", account="8000")
    row = documents.rows(documents.order_lines(order(lines=(line,))), "order", resolved(), "o")[0]
    assert row["CostCenterItemId1"] == ITEM and "CostCenterItemId2" not in row
    # the rows have no VAT code or account property: tax_code / account are not written
    assert not {"VatCode", "AccountNumber", "tax_code", "account"} & set(row)
    with pytest.raises(RecordError, match="cost centre 2"):
        documents.rows(documents.order_lines(order(lines=(line.model_copy(update={"cost_unit": "EAST"}),))), "order", resolved(), "o")


def test_the_orders_cost_centre_is_the_lines_default():
    lines = documents.order_lines(order(cost_centre="WEB"))
    assert {l.cost_centre for l in lines} == {"WEB"}


def test_quantity_decimals_follow_the_document():
    line = OrderLine(sku="MUG-1", name="Mug", quantity=Decimal("1.125"), unit_price=Decimal(1), tax_rate=Decimal(21))
    assert documents.rows(documents.order_lines(order(lines=(line,))), "order", resolved(), "o")[0]["Quantity"] == Decimal("1.125")
    with pytest.raises(RecordError, match="2 decimals"):
        documents.rows(documents.order_lines(order(lines=(line,))), "invoice_draft", resolved(), "o")


def test_addresses_go_to_invoice_and_delivery_properties():
    body = documents.order_body(order(), "invoice_draft", resolved(), documents.OrderSettings())
    assert {k: body[k] for k in body if k.startswith(("Invoice", "Delivery"))} == {
        "InvoiceCustomerName": "Acme Shop", "InvoiceAddress1": "Kerkstraat 1A", "InvoicePostalCode": "1011AB",
        "InvoiceCity": "Amsterdam", "InvoiceCountryCode": "NL", "InvoiceDate": "2024-05-01",
        "DeliveryCustomerName": "Acme Shop", "DeliveryAddress1": "Dorpsweg 9", "DeliveryPostalCode": "3511AA",
        "DeliveryCity": "Utrecht", "DeliveryCountryCode": "NL",
    }
    assert "Amount" not in body and "Status" not in body and "CurrencyCode" not in body


def test_an_order_without_an_address_is_sent_to_the_debtors():
    body = documents.order_body(order(billing_address=Address(), shipping_address=None, customer=None), "order", resolved(), documents.OrderSettings())
    assert (body["InvoiceCustomerName"], body["InvoiceAddress1"], body["InvoiceCity"]) == ("Acme B.V.", "Damrak 5", "Amsterdam")
    assert not any(k.startswith("Delivery") for k in body)


def test_a_missing_country_is_a_record_error_naming_the_property():
    nowhere = debtor(address=Address(postcode="1000AA", city="Amsterdam"))
    with pytest.raises(RecordError, match="InvoiceCountryCode is empty"):
        documents.order_body(order(billing_address=Address(postcode="1", city="X"), customer=None), "order", resolved(debtor=nowhere), documents.OrderSettings())
    body = documents.order_body(order(billing_address=Address(postcode="1", city="X"), customer=None), "order", resolved(debtor=nowhere, country="SE"), documents.OrderSettings())
    assert body["InvoiceCountryCode"] == "SE"


def test_an_invoice_takes_addresses_from_the_customer_and_gets_a_due_date():
    body = documents.order_body(order(), "invoice", resolved(due_date=date(2024, 5, 31)), documents.OrderSettings())
    assert not any(k.startswith(("Invoice", "Delivery")) and k != "InvoiceDate" for k in body)
    assert (body["DueDate"], body["InvoiceDate"], body["YourReference"]) == ("2024-05-31", "2024-05-01", "WEB-1001")
    assert set(body["Rows"][0]) == {"ArticleId", "Text", "Quantity", "UnitPrice", "DiscountPercentage"}


def test_delivery_method_and_term_and_the_note_row():
    res = resolved(delivery_method={"Code": "POST", "Name": "Parcel post"}, delivery_term={"Code": "FCA", "Name": "Free carrier"})
    body = documents.order_body(order(note="Leave at the door"), "order", res, documents.OrderSettings(note_as_text_row=True, order_status="draft"))
    assert (body["DeliveryMethodCode"], body["DeliveryMethodName"], body["DeliveryTermCode"], body["Status"]) == ("POST", "Parcel post", "FCA", 1)
    assert body["Rows"][-1] == {"LineNumber": 3, "IsTextRow": True, "Text": "Leave at the door", "IsWorkCost": False, "EligibleForReverseChargeOnVat": False}


def test_a_canonical_invoice_becomes_a_draft():
    invoice = Invoice(
        number="F-77", invoice_date=date(2024, 6, 1), due_date=date(2024, 6, 15), total=Decimal("24.20"), customer_id=CUSTOMER,
        lines=(InvoiceLine(sku="MUG-1", description="Mug", quantity=Decimal(2), unit_price=Decimal("12.10"), tax_rate=Decimal(21)),
               InvoiceLine(description="Consulting", unit_price=Decimal(50))),
    )
    settings = documents.InvoiceSettings(line_article="SHIP")
    body = documents.invoice_body(invoice, "invoice_draft", resolved(), settings)
    assert (body["YourReference"], body["InvoiceDate"], body["CustomerIsPrivatePerson"]) == ("F-77", "2024-06-01", False)
    assert [(r["ArticleId"], r["UnitPrice"]) for r in body["Rows"]] == [(MUG, Decimal("10.00")), (SHIP, Decimal("41.32"))]
    booked = documents.invoice_body(invoice, "invoice", resolved(), settings)
    assert booked["DueDate"] == "2024-06-15" and "InvoiceCity" not in booked
    with pytest.raises(RecordError, match="give the line a SKU"):
        documents.invoice_body(invoice, "invoice_draft", resolved(), documents.InvoiceSettings())


def test_target_fields_are_checked_against_the_settings_model():
    assert documents.order_settings(order(target_fields={"our_reference": "Anna"})).our_reference == "Anna"
    with pytest.raises(RecordError, match="store_id"):
        documents.order_settings(order(target_fields={"store_id": 1}))
    with pytest.raises(RecordError, match="our_reference"):
        documents.order_settings(order(target_fields={"our_reference": "x" * 51}))


def test_normalize_rounds_money_and_takes_the_order_date():
    line = OrderLine(sku="MUG-1", name=" Mug ", unit_price=Decimal("12.105"), discount=Decimal("0.004"))
    normal = documents.normalize_order(order(lines=(line,), total=Decimal("12.1049"), created_at=datetime(2024, 5, 1, 22, 30, tzinfo=timezone.utc)))
    assert (normal.lines[0].unit_price, normal.lines[0].discount, normal.lines[0].name) == (Decimal("12.11"), Decimal("0.00"), "Mug")
    assert normal.total == Decimal("12.10") and normal.created_at == datetime(2024, 5, 1, tzinfo=timezone.utc)
    assert normal.billing_address == HOME  # one address line splits back into the same parts
    assert documents.normalize_order(normal) == normal


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"number": "N" * 51}, "YourReference .* 51 characters, eAccounting allows 50"),
        ({"billing_address": Address(street="S" * 60, city="X")}, "InvoiceAddress1 is 6[0-9] characters, eAccounting allows 50"),
        ({"shipping_address": Address(postcode="12345678901")}, "DeliveryPostalCode is 11 characters, eAccounting allows 10"),
        ({"lines": (OrderLine(sku="A", name="x" * 2001, unit_price=Decimal(1)),)}, "Text is 2001 characters, eAccounting allows 2000"),
        ({"document": "quote"}, "cannot create a 'quote'"),
    ],
)
def test_normalize_rejects_what_eaccounting_would(overrides, message):
    with pytest.raises(RecordError, match=message):
        documents.normalize_order(order(**overrides))


def test_a_draft_reference_may_be_longer():
    assert documents.normalize_order(order(number="N" * 100, document="invoice_draft")).number == "N" * 100


def test_documents_read_back_as_orders():
    doc = {
        "Id": "x", "YourReference": "WEB-1", "CustomerId": CUSTOMER, "CurrencyCode": "EUR", "Amount": 12.1, "VatAmount": 2.1,
        "OrderDate": "2024-05-01T00:00:00", "Status": 4, "CustomerIsPrivatePerson": True,
        "InvoiceAddress1": "Kerkstraat 1A", "InvoicePostalCode": "1011AB", "InvoiceCity": "Amsterdam", "InvoiceCountryCode": "NL",
        "Rows": [
            {"LineNumber": 2, "IsTextRow": True, "Text": "note"},
            {"LineNumber": 1, "IsTextRow": False, "ArticleId": MUG, "ArticleNumber": "MUG-1", "Text": "Mug", "Quantity": 2, "UnitPrice": Decimal("6.05"), "DiscountPercentage": Decimal("0.5")},
        ],
    }
    read = documents.document_to_order(doc, "order")
    assert (read.number, read.status, read.document, read.customer_id, read.total) == ("WEB-1", "invoiced", "order", CUSTOMER, Decimal("12.1"))
    assert read.billing_address == HOME and read.shipping_address is None
    assert [(l.sku, l.quantity, l.unit_price, l.discount, l.prices_include_tax) for l in read.lines] == [("MUG-1", 2, Decimal("6.05"), Decimal("6.05"), True)]
    draft = documents.document_to_order({**doc, "IncludesVat": False, "TotalAmount": 5, "InvoiceDate": "2024-05-02"}, "invoice_draft")
    assert (draft.status, draft.created_at.date(), draft.lines[0].prices_include_tax, draft.total) == ("draft", date(2024, 5, 2), False, 5)


# -- regressions found by the fuzz tests (test_fuzz.py) -----------------------------------------

DOC = {"Id": "d1", "YourReference": "WEB-1", "OrderDate": "2024-05-01", "Amount": 5, "CustomerId": CUSTOMER,
       "Rows": [{"LineNumber": 1, "ArticleId": MUG, "ArticleNumber": "MUG-1", "Text": "Mug", "Quantity": 1, "UnitPrice": 5}]}  # fmt: skip


@pytest.mark.parametrize(("change", "message"), [
    ({"OrderDate": "01-05-2024"}, r"order 'd1': OrderDate '01-05-2024' is not an ISO date"),
    ({"Rows": "none"}, r"order 'd1': Rows is not a list of objects"),
    ({"Rows": [1, 2]}, r"order 'd1': Rows is not a list of objects"),
    ({"Rows": [{**DOC["Rows"][0], "Quantity": Decimal("1E+30"), "DiscountPercentage": Decimal("0.5")}]}, r"order 'd1': row 1: amount .* out of range"),
])  # fmt: skip
def test_a_document_eaccounting_cannot_have_sent_is_a_record_error(change, message):
    with pytest.raises(RecordError, match=message):
        documents.document_to_order({**DOC, **change}, "order")


def test_document_properties_of_the_wrong_type_read_as_absent():
    read = documents.document_to_order(
        {**DOC, "Status": [4], "YourReference": 17, "CurrencyCode": True, "CustomerId": 3, "InvoiceCity": ["x"],
         "Rows": [{**DOC["Rows"][0], "LineNumber": "2"}, {**DOC["Rows"][0], "LineNumber": None, "Text": 9}]},  # fmt: skip
        "order",
    )
    assert (read.number, read.status, read.currency, read.customer_id, read.billing_address) == ("d1", "unknown", "EUR", None, Address())
    assert [line.name for line in read.lines] == ["", "Mug"]  # LineNumber None sorts first; a Text that is no text is none


def test_a_debtor_with_properties_of_the_wrong_type_still_reads():
    debtor = Debtor.from_api({"Id": "c", "Name": 1, "CurrencyCode": 978, "InvoiceAddress1": None, "InvoiceCity": ["x"], "TermsOfPaymentId": 5})
    assert (debtor.name, debtor.currency, debtor.terms_id, debtor.address) == ("", None, None, Address())


def test_a_negative_tax_rate_is_a_record_error_not_a_division_by_zero():
    with pytest.raises(RecordError, match=r"tax_rate -100 is not a VAT percentage"):
        documents.unit_price(Decimal(10), given_incl=True, want_incl=False, rate=Decimal(-100), what="order 1: line 1")


def test_an_order_amount_with_too_many_digits_is_a_record_error():
    with pytest.raises(RecordError, match=r"order WEB-1001: amount 1E\+30 is out of range"):
        documents.normalize_order(order(total=Decimal("1E+30")))
    with pytest.raises(RecordError, match=r"line 1 \(Blue mug\): quantity .* out of range"):
        documents.normalize_order(order(lines=(OrderLine(sku="MUG-1", name="Blue mug", quantity=Decimal("1E+40"), unit_price=Decimal(1)),)))

"""Property tests: any eAccounting-shaped JSON reads as a canonical record or a RecordError, any
canonical record normalizes or is a RecordError, and any HTTP answer parses to data or an
apicenterd error (never a KeyError, TypeError, InvalidOperation, ValidationError...)."""

from __future__ import annotations

import copy
import json
from datetime import timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest
from apicenterd_eaccounting import documents, mapping
from apicenterd_eaccounting.client import EAccountingClient, cursor_of, error_from, filter_since
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apicenterd import (
    Address,
    ApicenterError,
    Contact,
    Customer,
    FatalError,
    Invoice,
    InvoiceLine,
    Order,
    OrderLine,
    Product,
    RateLimited,
    RecordError,
    StockLevel,
)

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

# Shaped like the simulator's (and the swagger's) ArticleApi, CustomerApi, OrderApi objects.
ARTICLE: dict[str, Any] = {
    "Id": "a0000000-0000-4000-8000-000000000001", "IsActive": True, "Number": "MUG-1", "Name": "Blue mug",
    "NetPrice": Decimal("10.00"), "GrossPrice": Decimal("12.10"), "PurchasePrice": Decimal("4.44"),
    "CodingId": "11111111-1111-4111-8111-111111111111", "CodingName": "Goods 21% VAT", "UnitId": "u1",
    "UnitName": "Piece", "UnitAbbreviation": "pcs", "StockBalance": Decimal("7"), "StockBalanceReserved": 0,
    "StockBalanceAvailable": Decimal("7"), "ChangedUtc": "2024-05-01T10:00:00.123Z",
}  # fmt: skip
CODING: dict[str, Any] = {"Id": "11111111-1111-4111-8111-111111111111", "Name": "Goods 21% VAT", "VatRatePercent": Decimal("0.21"), "IsActive": True}
CUSTOMER: dict[str, Any] = {
    "Id": "c0000000-0000-4000-8000-000000000001", "CustomerNumber": "1001", "Name": "Acme B.V.", "IsPrivatePerson": False,
    "EmailAddress": "info@acme.example", "Telephone": "020-1234567", "MobilePhone": "06-1234",
    "ContactPersonName": "Anna de Vries", "ContactPersonEmail": "anna@acme.example", "ContactPersonPhone": "06-1",
    "InvoiceAddress1": "Kerkstraat 1A", "InvoiceAddress2": "", "InvoicePostalCode": "1011AB", "InvoiceCity": "Amsterdam",
    "InvoiceCountryCode": "NL", "DeliveryAddress1": "Dorpsweg 9", "DeliveryPostalCode": "3511AA", "DeliveryCity": "Utrecht",
    "DeliveryCountryCode": "NL", "VatNumber": "NL123456789B01", "CorporateIdentityNumber": "12345678",
    "SalesDocumentLanguage": "NL", "CurrencyCode": "EUR", "TermsOfPaymentId": "t1",
    "ReverseChargeOnConstructionServices": False, "ChangedUtc": "2024-05-01T10:00:00Z",
}  # fmt: skip
ROW: dict[str, Any] = {
    "LineNumber": 1, "IsTextRow": False, "ArticleId": "a0000000-0000-4000-8000-000000000001", "ArticleNumber": "MUG-1",
    "Text": "Mug", "Quantity": 2, "UnitPrice": Decimal("6.05"), "DiscountPercentage": Decimal("0.5"),
}  # fmt: skip
DOCUMENT: dict[str, Any] = {
    "Id": "d1", "YourReference": "WEB-1", "Status": 4, "CustomerId": "c0000000-0000-4000-8000-000000000001",
    "CustomerIsPrivatePerson": True, "IncludesVat": True, "OrderDate": "2024-05-01", "InvoiceDate": "2024-05-02",
    "DueDate": "2024-06-01", "CreatedUtc": "2024-05-01T10:00:00Z", "CurrencyCode": "EUR", "Amount": Decimal("12.1"),
    "VatAmount": Decimal("2.1"), "TotalAmount": Decimal("12.1"), "TotalVatAmount": Decimal("2.1"), "RemainingAmount": 0,
    "InvoiceCustomerName": "Acme", "InvoiceAddress1": "Kerkstraat 1A", "InvoicePostalCode": "1011AB", "InvoiceCity": "Amsterdam",
    "InvoiceCountryCode": "NL", "DeliveryAddress1": "", "Rows": [ROW, {**ROW, "LineNumber": 2, "IsTextRow": True, "ArticleId": None}],
}  # fmt: skip

ODD_STRINGS = st.sampled_from(
    ["", " ", "NaN", "nan", "inf", "-Infinity", "1e999999", "-1e999999", "1e-999999", "9" * 60, "12,95", "0x1F",
     "１２", "2024-13-45", "2024-05-01T25:00:00Z", "01-05-2024", "2024-05-01T10:00:00+2500", "Z", "null", "true",
     "€ 12.95", "\x00", "é" * 300, "x" * 3000, "nl-NL", "EURO", "eu"]
)  # fmt: skip
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),  # json.loads gives NaN and Infinity as floats
    st.decimals(allow_nan=False, allow_infinity=True),  # other non-integers come as Decimal (parse_float)
    st.sampled_from([Decimal("NaN"), Decimal("1E+999"), Decimal("-1E+999999"), Decimal("1E-999999")]),
    st.text(max_size=40),
    ODD_STRINGS,
)
JUNK = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
ACTIONS = st.sampled_from(["keep"] * 9 + ["mutate", "drop", "junk"])
"""Most keys survive, so most examples reach deep into the mapping instead of failing at the first field."""


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """``base`` with keys dropped, values replaced by junk, nested values mutated, junk keys added."""
    if isinstance(base, dict):
        out: dict[str, Any] = {}
        for key, value in base.items():
            action = draw(ACTIONS)
            if action == "keep":
                out[key] = copy.deepcopy(value)
            elif action == "mutate":
                out[key] = draw(mutated(value))
            elif action == "junk":
                out[key] = draw(JUNK)
        out.update(draw(st.dictionaries(st.text(max_size=10), JUNK, max_size=2)))
        return out
    if isinstance(base, list):
        return [draw(mutated(item)) for item in base] + draw(st.lists(JUNK, max_size=2))
    return draw(JUNK | st.just(base))


def _only_record_errors(call, *args, **kwargs):
    """The call's result, or None after a RecordError; any other exception fails the property."""
    try:
        return call(*args, **kwargs)
    except RecordError:
        return None


# -- vendor JSON → canonical ---------------------------------------------------------------


@FUZZ
@given(mutated(ARTICLE), mutated(CODING))
def test_any_article_json_is_a_product_and_stock_or_a_record_error(article, coding):
    rate = mapping.vat_percent(coding)  # a coding's rate is read leniently: a number or None
    assert rate is None or (isinstance(rate, Decimal) and rate.is_finite())
    product = _only_record_errors(mapping.article_to_product, article, vat_rate=rate, currency="EUR")
    assert product is None or isinstance(product, Product)
    stock = _only_record_errors(mapping.article_to_stock, article)
    assert stock is None or isinstance(stock, StockLevel)


@FUZZ
@given(mutated(CUSTOMER))
def test_any_customer_json_is_a_customer_or_a_record_error(data):
    customer = _only_record_errors(mapping.api_to_customer, data)
    assert customer is None or isinstance(customer, Customer)
    debtor = _only_record_errors(documents.Debtor.from_api, data)
    assert debtor is None or isinstance(debtor.address, Address)


@FUZZ
@given(mutated(DOCUMENT), st.sampled_from(["order", "invoice_draft", "invoice"]), st.booleans())
def test_any_document_json_is_an_order_and_invoice_or_a_record_error(doc, kind, excl):
    order = _only_record_errors(documents.document_to_order, doc, kind, show_prices_excl_vat_pc=excl)
    assert order is None or isinstance(order, Order)
    if kind != "order":
        invoice = _only_record_errors(documents.document_to_invoice, doc, kind, show_prices_excl_vat_pc=excl)
        assert invoice is None or isinstance(invoice, Invoice)


@FUZZ
@given(st.one_of(JUNK, ODD_STRINGS))
def test_any_changed_utc_is_a_cursor_or_a_value_error(value):
    try:
        cursor = cursor_of(value)
    except ValueError:
        return
    assert filter_since(cursor).startswith("ChangedUtc ge ")


# -- canonical → eAccounting (normalize and request bodies) ---------------------------------

TEXT = st.one_of(st.text(max_size=60), ODD_STRINGS)
MAYBE_TEXT = st.none() | TEXT
AMOUNT = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),  # any finite Decimal a source might hand over
    st.decimals(min_value=-1000, max_value=100000, places=4),
)
ADDRESSES = st.builds(
    Address, street=TEXT, house_number=st.text(max_size=8), house_number_suffix=st.text(max_size=4), line2=TEXT,
    postcode=st.text(min_size=1, max_size=8) | st.text(max_size=14), city=st.text(min_size=1, max_size=30) | TEXT, country=st.none() | st.from_regex(r"\A[A-Z]{2}\Z"),
)  # fmt: skip
CUSTOMERS = st.builds(
    Customer, kind=st.sampled_from(["company", "person"]), name=TEXT, email=MAYBE_TEXT, phone=MAYBE_TEXT,
    contact=st.none() | st.builds(Contact, first_name=TEXT, last_name=TEXT, email=MAYBE_TEXT, phone=MAYBE_TEXT),
    billing_address=ADDRESSES, shipping_address=st.none() | ADDRESSES, vat_number=MAYBE_TEXT, coc_number=MAYBE_TEXT,
    customer_number=MAYBE_TEXT, language=MAYBE_TEXT, currency=st.none() | st.from_regex(r"\A[A-Z]{3}\Z"),
)  # fmt: skip
PRODUCTS = st.builds(
    Product, sku=st.text(min_size=1, max_size=45), name=TEXT, price_excl_tax=st.none() | AMOUNT,
    price_incl_tax=st.none() | AMOUNT, purchase_price=st.none() | AMOUNT, tax_rate=st.none() | AMOUNT,
    quantity=st.none() | AMOUNT, active=st.booleans(),
)  # fmt: skip
LINES = st.builds(
    OrderLine, kind=st.sampled_from(["product", "shipping", "discount", "fee"]), sku=st.none() | st.sampled_from(["MUG-1", "SHIP", "NOPE"]),
    name=TEXT, quantity=AMOUNT, unit_price=AMOUNT, prices_include_tax=st.booleans(), discount=AMOUNT,
    tax_rate=st.none() | AMOUNT, total=st.none() | AMOUNT, cost_centre=st.none() | st.sampled_from(["WEB", "X"]),
)  # fmt: skip
TARGET_FIELDS = st.one_of(
    st.just({}),
    st.just({}),
    st.fixed_dictionaries({}, optional={"our_reference": MAYBE_TEXT, "order_status": st.sampled_from(["draft", "ongoing", "x"]),
                                        "note_as_text_row": st.booleans(), "document": st.sampled_from(["invoice", "invoice_draft", "order"]),
                                        "line_article": MAYBE_TEXT}),  # fmt: skip
    st.dictionaries(st.text(max_size=8), JUNK, max_size=2),
)
ORDERS = st.builds(
    Order, number=st.text(min_size=1, max_size=60), status=st.text(max_size=10),
    created_at=st.datetimes(timezones=st.just(timezone.utc)), customer=st.none() | CUSTOMERS,
    billing_address=ADDRESSES, shipping_address=st.none() | ADDRESSES, lines=st.lists(LINES, max_size=4).map(tuple),
    total=AMOUNT, total_tax=st.none() | AMOUNT, note=MAYBE_TEXT, customer_id=st.just("c1"), target_fields=TARGET_FIELDS,
    document=st.none() | st.sampled_from(["quote", "order", "invoice_draft", "invoice"]),
)  # fmt: skip
INVOICES = st.builds(
    Invoice, number=st.text(min_size=1, max_size=110), invoice_date=st.dates(), due_date=st.none() | st.dates(),
    customer=st.none() | CUSTOMERS, total=AMOUNT, total_tax=st.none() | AMOUNT, prices_include_tax=st.booleans(),
    lines=st.lists(st.builds(InvoiceLine, sku=st.none() | st.sampled_from(["MUG-1", "NOPE"]), description=TEXT, quantity=AMOUNT,
                             unit_price=AMOUNT, discount=AMOUNT, tax_rate=st.none() | AMOUNT), max_size=3).map(tuple),  # fmt: skip
    target_fields=TARGET_FIELDS,
)  # fmt: skip
MUG, SHIP = "a0000000-0000-4000-8000-000000000001", "a0000000-0000-4000-8000-000000000002"
RESOLVED = st.builds(
    documents.Resolved,
    debtor=st.builds(documents.Debtor, id=st.just("c1"), name=st.text(min_size=1, max_size=40) | TEXT, is_private=st.booleans(), currency=st.just("EUR"),
                     reverse_charge=st.booleans(), terms_id=st.none(), address=ADDRESSES, delivery=st.none() | ADDRESSES),
    includes_vat=st.booleans(), currency=st.just("EUR"), country=st.none() | st.just("NL"),
    articles=st.just({"MUG-1": documents.Article(MUG, "MUG-1", "Blue mug", Decimal(21)),
                      "SHIP": documents.Article(SHIP, "SHIP", "Shipping", None)}),
    dimensions=st.just({(1, "WEB"): "d1"}),
)  # fmt: skip


@FUZZ
@given(PRODUCTS, st.booleans())
def test_any_product_normalizes_and_has_an_article_body_or_a_record_error(product, truncate):
    normal = _only_record_errors(mapping.normalize_product, product, truncate_names=truncate)
    assert normal is None or isinstance(normal, Product)
    body = _only_record_errors(mapping.new_article, product, coding_id="c", unit_id="u", truncate_names=truncate)
    assert body is None or json.dumps(body, default=float)


@FUZZ
@given(st.builds(StockLevel, sku=st.text(min_size=1), on_hand=AMOUNT, reserved=AMOUNT, available=AMOUNT))
def test_any_stock_level_normalizes_or_is_a_record_error(stock):
    normal = _only_record_errors(mapping.normalize_stock, stock)
    assert normal is None or isinstance(normal, StockLevel)


@FUZZ
@given(CUSTOMERS)
def test_any_customer_normalizes_and_has_a_body_or_a_record_error(customer):
    normal = _only_record_errors(mapping.normalize_customer, customer)
    assert normal is None or isinstance(normal, Customer)
    body = _only_record_errors(mapping.new_customer, customer, terms_of_payment_id="t")
    assert body is None or isinstance(body, dict)


@FUZZ
@given(ORDERS, RESOLVED, st.sampled_from(["order", "invoice_draft", "invoice"]))
def test_any_order_normalizes_and_has_a_document_body_or_a_record_error(order, resolved, kind):
    normal = _only_record_errors(documents.normalize_order, order)
    assert normal is None or isinstance(normal, Order)
    settings_ = _only_record_errors(documents.order_settings, order)
    if settings_ is not None:
        body = _only_record_errors(documents.order_body, order, kind, resolved, settings_)
        assert body is None or json.dumps(body, default=float)


@FUZZ
@given(INVOICES, RESOLVED, st.sampled_from(["invoice_draft", "invoice"]))
def test_any_invoice_normalizes_and_has_a_body_or_a_record_error(invoice, resolved, kind):
    normal = _only_record_errors(documents.normalize_invoice, invoice)
    assert normal is None or isinstance(normal, Invoice)
    settings_ = _only_record_errors(documents.invoice_settings, invoice)
    if settings_ is not None:
        body = _only_record_errors(documents.invoice_body, invoice, kind, resolved, settings_)
        assert body is None or json.dumps(body, default=float)


# -- the client: Meta/Data pages, error bodies ------------------------------------------------

HEADER_TEXT = st.one_of(
    ODD_STRINGS.filter(lambda s: s.isascii() and "\x00" not in s),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    st.sampled_from(["120", "-5", "1e9", "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"]),
)
HEADERS = st.dictionaries(st.sampled_from(["Retry-After", "Content-Type"]), HEADER_TEXT, max_size=2)
ERROR_BODY = st.one_of(
    mutated({"ErrorCode": 4010, "DeveloperErrorMessage": "Too many requests. Try again in 12 seconds.", "ErrorId": "e1"}),
    mutated({"ErrorCode": 2000, "DeveloperErrorMessage": "Rows[0].Quantity: The field Quantity must match; Name: too long", "ErrorId": None}),
    JUNK,
    st.binary(max_size=40),
    st.sampled_from(['{"ErrorCode": ', "<html>502</html>", "", '{"ErrorCode": null, "DeveloperErrorMessage": null}']),
)
PAGE = st.one_of(
    mutated({"Meta": {"CurrentPage": 1, "PageSize": 2, "TotalNumberOfPages": 2, "TotalNumberOfResults": 3}, "Data": [ARTICLE, ARTICLE]}),
    mutated({"Meta": {"CurrentPage": 2, "PageSize": 2, "TotalNumberOfPages": 2, "TotalNumberOfResults": 3}, "Data": [CUSTOMER]}),
    JUNK,
)


def _content(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return json.dumps(body, default=str).encode()


@FUZZ
@given(st.integers(min_value=400, max_value=599), HEADERS, ERROR_BODY)
def test_any_error_response_is_an_apicenterd_error(status, headers, body):
    request = httpx.Request("GET", "https://eaccountingapi.test/v2/articles")
    error = error_from(httpx.Response(status, headers=headers, content=_content(body), request=request), "articles")
    assert isinstance(error, ApicenterError) and str(error)
    if isinstance(error, RateLimited):
        assert error.retry_after is None or 0 <= error.retry_after <= 3600


async def _read_pages(pages: list[tuple[int, dict[str, str], Any]]) -> list[dict[str, Any]]:
    queue = list(pages)

    def answer(request: httpx.Request) -> httpx.Response:
        status, headers, body = queue.pop(0) if queue else (200, {}, {"Meta": {"TotalNumberOfPages": 1}, "Data": []})
        return httpx.Response(status, headers=headers, content=_content(body))

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="https://eaccountingapi.test")
    api = EAccountingClient(http, page_size=2)
    try:
        return await api.all("/v2/articles", what="articles")
    finally:
        await api.aclose()


@pytest.mark.anyio
@FUZZ
@given(st.lists(st.tuples(st.sampled_from([200, 200, 200, 201, 400, 401, 429, 503]), HEADERS, PAGE), min_size=1, max_size=3))
async def test_any_paged_answer_is_items_or_an_apicenterd_error(pages):
    try:
        items = await _read_pages(pages)
    except ApicenterError:
        return
    assert all(isinstance(item, dict) for item in items)


@pytest.mark.anyio
@FUZZ
@given(st.one_of(JUNK, st.binary(max_size=30)))
async def test_a_single_object_answer_is_an_object_or_a_fatal_error(body):
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=_content(body))), base_url="https://e.test")
    api = EAccountingClient(http)
    try:
        result = await api.get_object("/v2/companysettings", what="company settings")
    except FatalError:
        return
    finally:
        await api.aclose()
    assert isinstance(result, dict)




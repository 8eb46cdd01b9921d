"""Orders and invoices against mocked eAccounting responses (respx): requests sent, answers and errors."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import httpx
import pytest
import respx
from apicenterd_eaccounting import EAccountingConnector

from apicenterd import Entity, FatalError, Order, OrderLine, RateLimited, RecordError, RetryableError
from apicenterd.testing import connect

API = "https://eaccountingapi.vismaonline.com"
TOKEN_URL = "https://identity.vismaonline.com/connect/token"
SETTINGS = {"client_id": "cid", "client_secret": "secret", "refresh_token": "rt-1"}
CUSTOMER = "c0000000-0000-4000-8000-000000000001"
ARTICLE = "a0000000-0000-4000-8000-000000000001"
CODING = "11111111-1111-4111-8111-111111111111"

pytestmark = pytest.mark.anyio


def page(data):
    """A one-page eAccounting list."""
    return {"Meta": {"CurrentPage": 1, "PageSize": 100, "TotalNumberOfPages": 1 if data else 0, "TotalNumberOfResults": len(data), "ServerTimeUtc": "2024-01-01T00:00:00Z"}, "Data": data}


def vendor_error(code, message):
    """eAccounting's error body."""
    return {"ErrorCode": code, "DeveloperErrorMessage": message, "ErrorId": "e-1"}


@pytest.fixture
def mocked():
    """respx with a token endpoint, company settings, one customer, one article and its coding."""
    with respx.mock(assert_all_called=False) as router:
        router.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "at", "refresh_token": "rt-2", "expires_in": 3600}))
        router.get(f"{API}/v2/companysettings").mock(return_value=httpx.Response(200, json={"Name": "Acme", "CurrencyCode": "EUR", "CountryCode": "SE", "ShowPricesExclVatPC": False}))
        router.get(f"{API}/v2/customers/{CUSTOMER}").mock(return_value=httpx.Response(200, json={
            "Id": CUSTOMER, "Name": "Kund AB", "IsPrivatePerson": False, "InvoiceAddress1": "Storgatan 1", "InvoicePostalCode": "11122",
            "InvoiceCity": "Stockholm", "InvoiceCountryCode": "SE", "TermsOfPaymentId": "t-1"}))
        router.get(f"{API}/v2/articleaccountcodings").mock(return_value=httpx.Response(200, json=page([{"Id": CODING, "VatRatePercent": 0.25, "IsActive": True}])))
        yield router


def order(**overrides) -> Order:
    """A one-line order in SEK for the mocked customer."""
    values = dict(
        number="O'Brien-1", status="paid", created_at=datetime(2024, 5, 1, tzinfo=timezone.utc), currency="EUR", total=Decimal("12.50"),
        lines=(OrderLine(sku="ART-1", name="Thing", unit_price=Decimal("12.50"), tax_rate=Decimal(25)),), customer_id=CUSTOMER, document="order",
    )
    values.update(overrides)
    return Order(**values)


def article_route(router, found=True):
    """GET /v2/articles answering the article ART-1 (or nothing)."""
    data = [{"Id": ARTICLE, "Number": "ART-1", "Name": "Thing", "CodingId": CODING}] if found else []
    return router.get(f"{API}/v2/articles").mock(return_value=httpx.Response(200, json=page(data)))


async def test_find_quotes_the_reference_and_asks_every_document_kind(mocked):
    routes = [mocked.get(f"{API}{p}").mock(return_value=httpx.Response(200, json=page([]))) for p in ("/v2/orders", "/v2/customerinvoicedrafts", "/v2/customerinvoices")]
    async with connect(EAccountingConnector, SETTINGS) as conn:
        assert await conn.find(Entity.ORDERS, "O'Brien-1") is None
    for route in routes:
        assert route.calls.last.request.url.params["$filter"] == "YourReference eq 'O''Brien-1'"


async def test_find_takes_only_an_exact_match_and_stops_at_the_first_kind(mocked):
    mocked.get(f"{API}/v2/orders").mock(return_value=httpx.Response(200, json=page([{"Id": "o-1", "YourReference": "web-1"}])))
    drafts = mocked.get(f"{API}/v2/customerinvoicedrafts").mock(return_value=httpx.Response(200, json=page([
        {"Id": "d-1", "YourReference": "WEB-1", "CustomerId": CUSTOMER, "InvoiceDate": "2024-05-01T00:00:00", "IncludesVat": False, "TotalAmount": 10,
         "Rows": [{"LineNumber": 1, "IsTextRow": False, "ArticleId": ARTICLE, "ArticleNumber": "ART-1", "Text": "Thing", "Quantity": 1, "UnitPrice": 10}]}])))
    invoices = mocked.get(f"{API}/v2/customerinvoices").mock(return_value=httpx.Response(200, json=page([])))
    async with connect(EAccountingConnector, SETTINGS) as conn:
        found = await conn.find(Entity.ORDERS, "WEB-1")
    assert (found.id, found.record.document, found.record.lines[0].sku) == ("d-1", "invoice_draft", "ART-1")
    assert drafts.call_count == 1 and invoices.call_count == 0


async def test_create_posts_the_order_with_json_numbers_and_returns_its_id(mocked):
    article_route(mocked)
    post = mocked.post(f"{API}/v2/orders").mock(return_value=httpx.Response(200, json={"Id": "o-9", "Amount": 12.5}))
    async with connect(EAccountingConnector, SETTINGS) as conn:
        assert await conn.create(Entity.ORDERS, order()) == "o-9"
    sent = json.loads(post.calls.last.request.content)
    assert (sent["CustomerId"], sent["YourReference"], sent["InvoiceCustomerName"], sent["InvoiceCountryCode"]) == (CUSTOMER, "O'Brien-1", "Kund AB", "SE")
    assert sent["Rows"] == [{"LineNumber": 1, "IsTextRow": False, "ArticleId": ARTICLE, "Text": "Thing", "Quantity": 1, "UnitPrice": 10.0, "IsWorkCost": False, "EligibleForReverseChargeOnVat": False}]
    assert (sent["Amount"], sent["VatAmount"], sent["RoundingsAmount"]) == (12.5, 2.5, 0)
    assert b'"UnitPrice": 10.0' in post.calls.last.request.content  # a number, not a string


async def test_a_rejected_row_names_the_property(mocked):
    article_route(mocked)
    mocked.post(f"{API}/v2/orders").mock(return_value=httpx.Response(400, json=vendor_error(2000, "Rows[0].Quantity: The field Quantity allows at most 4 decimals.")))
    async with connect(EAccountingConnector, SETTINGS) as conn:
        with pytest.raises(RecordError, match=r"eAccounting rejected Rows\[0\]\.Quantity .*ErrorId e-1") as exc:
            await conn.create(Entity.ORDERS, order())
    assert exc.value.vendor_code == "2000"


@pytest.mark.parametrize(("status", "body", "kind"), [(500, {}, RetryableError), (429, vendor_error(4010, "Try again in 3 seconds."), RateLimited)])
async def test_transient_answers_to_the_post_are_retryable(mocked, status, body, kind):
    article_route(mocked)
    mocked.post(f"{API}/v2/customerinvoicedrafts").mock(return_value=httpx.Response(status, json=body))
    async with connect(EAccountingConnector, SETTINGS) as conn:
        with pytest.raises(kind):
            await conn.create(Entity.ORDERS, order(document="invoice_draft"))


async def test_a_confirmation_without_id_is_fatal(mocked):
    article_route(mocked)
    mocked.post(f"{API}/v2/orders").mock(return_value=httpx.Response(200, json={"Status": 2}))
    async with connect(EAccountingConnector, SETTINGS) as conn:
        with pytest.raises(FatalError, match="returned no Id"):
            await conn.create(Entity.ORDERS, order())


async def test_a_booked_invoice_is_found_by_reference_after_the_url_answer(mocked):
    article_route(mocked)
    mocked.post(f"{API}/v2/customerinvoices").mock(return_value=httpx.Response(200, json={"Url": "https://eaccounting.example/i/1"}))
    lookup = mocked.get(f"{API}/v2/customerinvoices").mock(side_effect=[
        httpx.Response(200, json=page([{"Id": "i-old", "YourReference": "O'Brien-1", "CreatedUtc": "2024-01-01T00:00:00Z"},
                                       {"Id": "i-new", "YourReference": "O'Brien-1", "CreatedUtc": "2024-05-01T00:00:00Z"}])),
        httpx.Response(200, json=page([])),
    ])
    async with connect(EAccountingConnector, SETTINGS) as conn:
        assert await conn.create(Entity.ORDERS, order(document="invoice")) == "i-new"
        with pytest.raises(FatalError, match=r"created the invoice \(https://eaccounting.example/i/1\) but .* does not find it"):
            await conn.create(Entity.ORDERS, order(document="invoice"))
    assert lookup.calls[0].request.url.params["$filter"] == "YourReference eq 'O''Brien-1'"


async def test_an_unknown_customer_is_a_record_error(mocked):
    mocked.get(f"{API}/v2/customers/{CUSTOMER}").mock(return_value=httpx.Response(404, json=vendor_error(3000, "ResourceNotFound")))
    article_route(mocked)
    async with connect(EAccountingConnector, SETTINGS) as conn:
        with pytest.raises(RecordError, match=f"no customer with Id '{CUSTOMER}'"):
            await conn.create(Entity.ORDERS, order())


async def test_a_missing_article_costs_no_post(mocked):
    article_route(mocked, found=False)
    post = mocked.post(f"{API}/v2/orders")
    async with connect(EAccountingConnector, SETTINGS) as conn:
        with pytest.raises(RecordError, match="SKU not in eAccounting: ART-1"):
            await conn.create(Entity.ORDERS, order())
    assert post.call_count == 0

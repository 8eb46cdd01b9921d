"""Property tests: any CCV-shaped JSON maps to a canonical record or a RecordError, and any HTTP
answer parses to data or an apicenterd error (never a KeyError, TypeError, ValidationError...)."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest
from apicenterd_ccv_salespos import mapping
from apicenterd_ccv_salespos.client import CCVClient, error_from_response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apicenterd import ApicenterError, Customer, FatalError, Order, Product, RecordError, Shipment, StockLevel

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

# The real shapes (from conftest; a test module cannot import conftest, so the fixtures are
# taken through a session fixture below and through these copies for hypothesis).
PRODUCT: dict[str, Any] = {
    "id": 123456, "is_active": True, "createdate": "2022-11-01T10:00:00Z", "modifydate": "2022-11-07T21:51:00Z",
    "productnumber": "KAAS-001", "eannumber": "8712345678906", "name": "Goudse kaas", "shortdescription": "500 g",
    "description": "<p>Romig</p>", "vatrate": 9, "taxtariff": "low a", "price": 12.95, "discount": 1,
    "purchaseprice": 6.5, "unit": "stuk", "stockenabled": True, "stock": 25, "stocklocation": "A-12",
    "weight": 0.5, "productmainphoto": "https://shop.test/photo.jpg",
}  # fmt: skip
ADDRESS: dict[str, Any] = {
    "first_name": "Jan", "last_name": "Jansen", "full_name": "Jan Jansen", "company": "Kaas B.V.",
    "address_line_1": "", "address_line_2": "", "street": "Dorpsstraat", "housenumber": 12, "housenumber_suffix": "A",
    "zipcode": "1234 AB", "city": "Gouda", "province": "", "telephone": "0182123456", "mobile": "", "comment": "",
    "country": "Nederland", "country_code": "NL",
}  # fmt: skip
ORDER: dict[str, Any] = {
    "id": 339323562, "ordernumber": 1, "ordernumber_full": "1", "create_date": "2022-11-07T21:51:00Z", "status": 1,
    "is_completed": True, "paid": False, "paymethod_id": 3, "paymethod": "BankTransfer", "paymethod_label": "Vooraf",
    "taxes_included": True, "order_row_taxes_included": True, "shipping_taxes_included": True,
    "shipping_tax_percentage": 21, "total_shipping": 6.95, "total_price": 591.95, "total_discounts": 5,
    "paymethod_costs": 1.5, "extra_costs": 2, "extra_costs_description": "Inpakken", "currency": "EUR",
    "total_tax": 102.73, "track_and_trace_code": "3SABC", "track_and_trace_carrier": "PostNL",
    "track_and_trace_deeplink": "https://track.test/3SABC", "discountcoupon": {"code": "WELKOM"},
    "orderedinlng": "nl",
    "customer": {
        "billingaddress": ADDRESS, "deliveryaddress": {**ADDRESS, "street": "Kerkweg", "company": ""},
        "email": "Jan@Example.NL", "customertype": "b2b", "btw": "NL123456789B01", "kvk": "12345678", "reference": "PO-77",
    },
}  # fmt: skip
ORDER_ROW: dict[str, Any] = {
    "id": 1, "order_id": 339323562, "product_type": "product", "product_name": "Goudse kaas", "product_number": "KAAS-001",
    "sub_sku_number": "KAAS-001-L", "product_id": 123456, "count": 1, "price": 595, "discount": 10, "tax": 9,
    "total_price": 585, "attributes": [{"option_name": "Maat", "value_name": "L"}],
}  # fmt: skip

ODD_STRINGS = st.sampled_from(
    ["", " ", "NaN", "nan", "inf", "-Infinity", "sNaN", "1e999999", "-1e999999", "1e-999999", "9" * 60, "12,95",
     "0x1F", "１２", "2022-13-45T99:99:99Z", "2022-11-07", "07-11-2022 21:51", "2022-11-07T21:51:00+2500",
     "2022-11-07T21:51:00-0000", "Z", "+0000", "null", "true", "€ 12.95", "\x00", "é" * 300, "x" * 5000]
)  # fmt: skip
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    # what json_body(parse_float=Decimal) yields (NaN/Infinity come as floats; JSON has no signalling NaN)
    st.decimals(allow_nan=False, allow_infinity=True),
    st.sampled_from([Decimal("NaN"), Decimal("1E+999"), Decimal("-1E+999999"), Decimal("1E-999999")]),
    st.text(max_size=40),
    ODD_STRINGS,
)
JUNK = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


ACTIONS = st.sampled_from(["keep"] * 9 + ["mutate", "drop", "junk"])
"""Most keys survive, so most examples reach deep into the mapping instead of failing at the first field."""


@st.composite
def mutated(draw: st.DrawFn, base: Any, depth: int = 0) -> Any:
    """``base`` with keys dropped, values replaced by junk, nested objects mutated, junk keys added."""
    if isinstance(base, dict):
        out: dict[str, Any] = {}
        for key, value in base.items():
            action = draw(ACTIONS)
            if action == "keep":
                out[key] = copy.deepcopy(value)
            elif action == "mutate":
                out[key] = draw(mutated(value, depth + 1))
            elif action == "junk":
                out[key] = draw(JUNK)
        out.update(draw(st.dictionaries(st.text(max_size=10), JUNK, max_size=2)))
        return out
    if isinstance(base, list):
        return [draw(mutated(item, depth + 1)) for item in base] + draw(st.lists(JUNK, max_size=2))
    return draw(JUNK | st.just(base))


def _only_record_errors(call, *args, **kwargs):
    """The call's result, or None after a RecordError; any other exception fails the property."""
    try:
        return call(*args, **kwargs)
    except RecordError:
        return None


@FUZZ
@given(mutated(PRODUCT), st.sampled_from([None, True, False]))
def test_any_product_json_is_a_product_or_a_record_error(item, incl):
    result = _only_record_errors(mapping.product_to_canonical, item, prices_include_tax=incl)
    assert result is None or isinstance(result, Product)


@FUZZ
@given(mutated(PRODUCT), st.decimals(min_value=-1000, max_value=1000, places=2))
def test_any_product_json_is_a_stock_level_or_a_record_error(item, reserved):
    result = _only_record_errors(mapping.stock_level, item, reserved)
    assert result is None or isinstance(result, StockLevel)


@FUZZ
@given(st.lists(mutated(ORDER_ROW), max_size=4))
def test_reserved_quantities_of_any_rows_are_decimals_or_a_record_error(rows):
    result = _only_record_errors(mapping.reserved_quantities, rows)
    assert result is None or all(isinstance(v, Decimal) for v in result.values())


@FUZZ
@given(mutated(ORDER), st.lists(mutated(ORDER_ROW), max_size=3), st.sampled_from([None, True, False]), st.booleans())
def test_any_order_json_is_an_order_or_a_record_error(order, rows, incl, variant_sku):
    result = _only_record_errors(mapping.order_to_canonical, order, rows, prices_include_tax=incl, variant_sku=variant_sku)
    assert result is None or isinstance(result, Order)


@FUZZ
@given(mutated(ORDER["customer"]), st.one_of(st.none(), JUNK), st.one_of(st.none(), JUNK))
def test_any_customer_block_is_a_customer_or_a_record_error(personal, currency, language):
    # the connector passes the order's currency and orderedinlng through as they come
    result = _only_record_errors(mapping.customer_to_canonical, personal, currency=currency, language=language)
    assert result is None or isinstance(result, Customer)


@FUZZ
@given(mutated(ORDER), st.text(min_size=1, max_size=20), st.one_of(st.none(), st.text(max_size=20)), st.booleans())
def test_any_order_json_gives_a_shipment_and_a_patch_or_a_record_error(order, code, carrier, mail):
    shipment = _only_record_errors(mapping.shipment_from_order, order)
    assert shipment is None or isinstance(shipment, Shipment)
    body = _only_record_errors(mapping.shipment_patch, order, Shipment(order_number="1", tracking_code=code, carrier=carrier), mail=mail)
    assert body is None or isinstance(body, dict)


@FUZZ
@given(st.one_of(JUNK, ODD_STRINGS))
def test_any_timestamp_parses_or_raises_value_error(value):
    try:
        moment = mapping.parse_datetime(value, "fuzz")
    except ValueError:
        return
    assert moment.tzinfo is not None and mapping.parse_datetime(mapping.format_cursor(moment)) == moment.replace(microsecond=0)


@FUZZ
@given(st.one_of(JUNK, st.text(max_size=30)))
def test_any_order_number_filter_and_cursor_is_an_int_none_or_value_error(value):
    if isinstance(value, str):
        assert mapping.ordernumber_filter(value) is None or isinstance(mapping.ordernumber_filter(value), int)
        mapping.split_shipment_key(value)
    try:
        assert isinstance(mapping.parse_order_cursor(value), int)
    except ValueError:
        pass


# -- the client: collection paging and error bodies -----------------------------------------

STATUS = st.integers(min_value=100, max_value=599)
HEADERS = st.dictionaries(
    st.sampled_from(["Retry-After", "Content-Type", "X-RateLimit-Remaining"]),
    st.one_of(ODD_STRINGS.filter(str.isascii), st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
              st.sampled_from(["120", "-5", "1e9", "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"])),
    max_size=2,
)  # fmt: skip
ERROR_BODY = st.one_of(
    mutated({"code": "429.10", "status": 429, "developermessage": "Too many requests", "moreinfo": "https://x"}),
    JUNK.map(lambda v: json.dumps(v, default=str)),
    st.binary(max_size=40),
    st.sampled_from(['{"code": ', "<html>502</html>", "", "\xff\xfe", '{"developermessage": null}']),
)
PAGE = st.one_of(
    mutated({"href": "https://shop.test/api/rest/v1/products/", "items": [PRODUCT, PRODUCT], "next": None}),
    mutated({"items": [PRODUCT], "next": "https://shop.test/api/rest/v1/products/?start=1&size=1"}),
    JUNK,
)


def _content(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return json.dumps(body, default=str).encode()


@FUZZ
@given(STATUS.filter(lambda s: s >= 400), HEADERS, ERROR_BODY)
def test_any_error_response_is_an_apicenterd_error(status, headers, body):
    request = httpx.Request("GET", "https://shop.test/api/rest/v1/products/")
    response = httpx.Response(status, headers=headers, content=_content(body), request=request)
    error = error_from_response(response, "products", now=datetime(2025, 1, 1, tzinfo=timezone.utc))
    assert isinstance(error, ApicenterError) and str(error)
    retry_after = getattr(error, "retry_after", None)
    assert retry_after is None or 0 <= retry_after <= 3600


async def _drain(pages: list[tuple[int, dict[str, str], Any]]) -> list[dict[str, Any]]:
    queue = list(pages)

    def answer(request: httpx.Request) -> httpx.Response:
        status, headers, body = queue.pop(0) if queue else (200, {}, {"items": [], "next": None})
        return httpx.Response(status, headers=headers, content=_content(body))

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="https://shop.test/api/rest/v1/")
    async with http:
        client = CCVClient(http, page_size=2)
        items = []
        async for item in client.collection("products/", what="products"):
            items.append(item)
            if len(items) > 50:
                break
        return items


@pytest.mark.anyio
@FUZZ
@given(st.lists(st.tuples(st.sampled_from([200, 200, 200, 204, 301, 404, 429, 500]), HEADERS, PAGE), min_size=1, max_size=3))
async def test_any_collection_answer_is_items_or_an_apicenterd_error(pages):
    try:
        items = await _drain(pages)
    except ApicenterError:
        return
    assert all(isinstance(item, dict) for item in items)


@FUZZ
@given(st.one_of(JUNK, st.binary(max_size=30)))
def test_a_non_object_single_resource_is_a_fatal_error(body):
    import anyio

    async def run():
        http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=_content(body))), base_url="https://shop.test/api/rest/v1/")
        async with http:
            return await CCVClient(http).order(1)

    try:
        result = anyio.run(run)
    except FatalError:
        return
    assert isinstance(result, dict)


# -- the connector: a bad item is skipped or a failed Change, never the end of the run ----------


def _fake_shop(products: list[dict[str, Any]], orders: list[dict[str, Any]], rows: list[dict[str, Any]]):
    """A minimal CCV Shop (unsigned, one page per collection) serving the fuzzed items."""

    async def app(scope, receive, send):
        path = scope["path"].removeprefix("/api/rest/v1/")
        if path == "products/":
            body: Any = {"items": products, "next": None}
        elif path == "orders/":
            body = {"items": orders, "next": None}
        elif path.startswith("orders/") and path.endswith("/orderrows/"):
            body = {"items": rows, "next": None}
        else:
            body = {"code": "404", "developermessage": "not found"}
        content = json.dumps(body, default=str).encode()
        await send({"type": "http.response.start", "status": 200 if "items" in body else 404,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": content})

    return app


def _with_envelope_keys(items: list[dict[str, Any]], **fixed: Any) -> list[dict[str, Any]]:
    """The keys the connector orders and pages by (``id``, ...) kept valid: they are the envelope."""
    return [{**item, "id": n + 1, **fixed} for n, item in enumerate(items)]


@pytest.mark.anyio
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(mutated(PRODUCT), max_size=3),
    st.lists(mutated(ORDER), max_size=3),
    st.lists(mutated(ORDER_ROW), max_size=2),
    st.sampled_from(["products", "stock", "orders", "customers"]),
)
async def test_any_items_read_as_records_or_failed_changes(products, orders, rows, entity):
    from apicenterd_ccv_salespos import CCVSalesPOSConnector

    from apicenterd import Entity
    from apicenterd.testing import connect

    products = _with_envelope_keys(products)
    orders = [{**o, "ordernumber": o["id"], "status": o.get("status") if isinstance(o.get("status"), int) else 1}
              for o in _with_envelope_keys(orders)]  # fmt: skip
    app = _fake_shop(products, orders, rows)
    base = {"base_url": "http://shop.test", "public_key": "p", "private_key": "k", "verify_response_signature": False}
    async with connect(CCVSalesPOSConnector, base, app=app, rate_limits=False) as connector:
        changes = [change async for change in connector.read(Entity(entity), None)]
    for change in changes:
        assert (change.record is None) == (change.error is not None)

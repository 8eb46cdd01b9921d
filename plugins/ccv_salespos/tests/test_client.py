"""Client tests with respx: signing, response verification, paging, and status → error classes."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
import pytest
import respx
from apicenterd_ccv_salespos import CCVSalesPOSConnector
from apicenterd_ccv_salespos.client import CCVAuth, CCVClient, error_from_response, signature

from apicenterd import AuthError, FatalError, RateLimited, RecordError, RetryableError
from apicenterd.testing import make_context

BASE = "https://myshop.ccvshop.nl"
API = BASE + "/api/rest/v1/"
NOW = datetime(2025, 1, 1, 12, 0, 30, tzinfo=timezone.utc)


def make_client(*, verify: bool = True, page_size: int = 2, private: str = "priv-key") -> CCVClient:
    """A CCVClient on the daemon's HTTP client (no client-side limits), with a fixed clock."""
    context = make_context(CCVSalesPOSConnector, rate_limits=False)
    http = context.http_client(
        base_url=API, auth=CCVAuth("pub-key", private, verify_responses=verify, clock=lambda: NOW)
    )
    return CCVClient(http, page_size=page_size)


def test_signature_matches_the_documented_formula_for_a_known_input(expected_hash):
    uri = "/api/rest/v1/products/?expand=attributecombinations&start=0&size=100"
    got = signature("secret", "public", "get", uri, "", "2025-01-01T12:00:00Z")
    assert got == expected_hash("secret", "public", "GET", uri, b"", "2025-01-01T12:00:00Z")
    assert got == got.lower() and len(got) == 128
    assert got != signature("secret", "public", "GET", uri.replace("size=100", "size=101"), "", "2025-01-01T12:00:00Z")


@pytest.mark.anyio
@respx.mock
async def test_request_is_signed_over_path_query_and_body_as_sent(sign, expected_hash):
    seen: list[httpx.Request] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return sign(request, 204)

    respx.patch(url__startswith=API + "orders/5/").mock(side_effect=reply)
    client = make_client()
    await client.request("PATCH", "orders/5/", what="order 5", json={"status": 5, "track_and_trace_code": "3SABC"})
    request = seen[0]
    assert request.headers["x-public"] == "pub-key"
    assert request.headers["x-date"] == "2025-01-01T12:00:30+00:00"
    assert request.url.raw_path == b"/api/rest/v1/orders/5/"
    body = request.content
    assert json.loads(body) == {"status": 5, "track_and_trace_code": "3SABC"}
    assert request.headers["x-hash"] == expected_hash(
        "priv-key", "pub-key", "PATCH", "/api/rest/v1/orders/5/", body, "2025-01-01T12:00:30+00:00"
    )


@pytest.mark.anyio
@respx.mock
async def test_paging_follows_next_links_signing_their_path_and_query(sign, expected_hash):
    pages = {
        "0": {"items": [{"id": 1}, {"id": 2}], "next": "https://elsewhere.example/api/rest/v1/products/?orderby=id&start=2&size=2"},
        "2": {"items": [{"id": 3}], "next": None},
    }  # fmt: skip
    sent: list[httpx.Request] = []

    def reply(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        page = pages[request.url.params["start"]]
        body = {"href": str(request.url), "start": 0, "size": 2, "first": None, "previous": None, **page}
        return sign(request, 200, body)

    respx.get(url__startswith=API + "products/").mock(side_effect=reply)
    items = [item async for item in make_client().products(orderby="id")]
    assert [i["id"] for i in items] == [1, 2, 3]
    assert [r.url.host for r in sent] == ["myshop.ccvshop.nl"] * 2  # host of the link is not trusted
    assert sent[0].url.raw_path == b"/api/rest/v1/products/?orderby=id&start=0&size=2"
    assert sent[1].url.raw_path == b"/api/rest/v1/products/?orderby=id&start=2&size=2"
    for request in sent:
        uri = request.url.raw_path.decode()
        assert request.headers["x-hash"] == expected_hash("priv-key", "pub-key", "GET", uri, b"", request.headers["x-date"])


@pytest.mark.anyio
@respx.mock
async def test_a_repeating_next_link_is_a_loop(sign):
    link = API + "products/?start=2&size=2"
    respx.get(url__startswith=API + "products/").mock(
        side_effect=lambda request: sign(request, 200, {"items": [{"id": 1}], "next": link})
    )
    with pytest.raises(FatalError, match="loops"):
        [item async for item in make_client().products()]


@pytest.mark.anyio
@respx.mock
async def test_a_next_link_outside_the_api_is_refused(sign):
    respx.get(url__startswith=API).mock(
        side_effect=lambda request: sign(request, 200, {"items": [], "next": "https://x.example/other/?start=2"})
    )
    with pytest.raises(FatalError, match="outside the API root"):
        [item async for item in make_client().products()]


@pytest.mark.anyio
@pytest.mark.parametrize("body", [[{"id": 1}], {"item": []}, {"items": {"id": 1}}, {"items": [1]}])
@respx.mock
async def test_a_wrong_collection_shape_is_fatal(sign, body):
    respx.get(url__startswith=API).mock(side_effect=lambda request: sign(request, 200, body))
    with pytest.raises(FatalError, match="products"):
        [item async for item in make_client().products()]


@pytest.mark.anyio
@respx.mock
async def test_non_json_success_is_fatal(sign):
    respx.get(url__startswith=API).mock(side_effect=lambda request: sign(request, 200, text="<html>maintenance</html>"))
    with pytest.raises(FatalError, match="not JSON"):
        await make_client().get_one("products/1/", what="product 1")


@pytest.mark.anyio
@respx.mock
async def test_response_signature_is_verified(sign):
    route = respx.get(url__startswith=API)
    route.mock(side_effect=lambda request: sign(request, 200, {"id": 1}, private="other-key"))
    with pytest.raises(FatalError, match=r"GET /api/rest/v1/products/1/: response signature"):
        await make_client().get_one("products/1/", what="product 1")
    route.mock(return_value=httpx.Response(200, json={"id": 1}))
    with pytest.raises(FatalError, match="not signed"):
        await make_client().get_one("products/1/", what="product 1")
    assert await make_client(verify=False).get_one("products/1/", what="product 1") == {"id": 1}
    route.mock(side_effect=lambda request: sign(request, 200, {"id": 1}))
    assert await make_client().get_one("products/1/", what="product 1") == {"id": 1}


def _error(status: int, body=None, headers=None, text=None) -> httpx.Response:
    request = httpx.Request("GET", API + "products/7/")
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [(401, "401.10", AuthError), (403, "403.10", AuthError), (400, "400.11", RecordError),
     (404, "404.20", RecordError), (405, "405.10", RecordError), (500, "500.10", RetryableError),
     (501, "501.20", RetryableError), (503, "503.00", RetryableError)],
)  # fmt: skip
def test_status_and_vendor_code_become_the_right_error(status, code, kind):
    error = error_from_response(_error(status, {"status": status, "code": code, "developermessage": "Nope"}), "product 7")
    assert type(error) is kind
    assert (error.status, error.vendor_code) == (status, code)
    assert "product 7: Nope" in str(error) and code in str(error) and "/api/rest/v1/products/7/" in str(error)


def test_429_10_honours_retry_after():
    body = {"status": 429, "code": "429.10", "developermessage": "Each method in each resource has a limit"}
    error = error_from_response(_error(429, body, headers={"Retry-After": "17"}), "products", now=NOW)
    assert isinstance(error, RateLimited)
    assert (error.retry_after, error.vendor_code) == (17.0, "429.10")


def test_429_11_without_retry_after_waits_for_the_next_minute():
    body = {"status": 429, "code": "429.11", "developermessage": "The API has a total limit"}
    error = error_from_response(_error(429, body), "products", now=NOW)
    assert isinstance(error, RateLimited) and error.vendor_code == "429.11"
    assert error.retry_after == pytest.approx(30.0)  # 12:00:30 → 12:01:00
    assert "total limit" in str(error)


def test_error_without_json_body_is_still_classified():
    error = error_from_response(_error(502, text="<h1>Bad gateway</h1>"), "products")
    assert type(error) is RetryableError and error.vendor_code is None
    assert "Bad gateway" in str(error)


@pytest.mark.anyio
@respx.mock
async def test_failed_requests_raise_the_classified_error():
    respx.get(url__startswith=API).mock(
        return_value=httpx.Response(429, json={"status": 429, "code": "429.10", "developermessage": "slow down"})
    )
    with pytest.raises(RateLimited) as caught:
        [item async for item in make_client().products()]
    assert caught.value.vendor_code == "429.10" and 0 < caught.value.retry_after <= 60


@pytest.mark.anyio
@respx.mock
async def test_a_404_on_a_collection_is_the_configuration_not_the_record(sign):
    """A wrong base_url: every collection 404s. That fails the run (FatalError naming the URL),
    it does not dead-letter each record; a 404 on one order stays that order's failure."""
    respx.get(url__startswith=API).mock(
        return_value=httpx.Response(404, json={"status": 404, "code": "404.20", "developermessage": "Invalid resource name"})
    )
    with pytest.raises(FatalError) as caught:
        [item async for item in make_client().products()]
    text = str(caught.value)
    assert API + "products/" in text and "base_url" in text and "Invalid resource name" in text
    assert caught.value.status == 404 and caught.value.vendor_code == "404.20"
    with pytest.raises(RecordError, match="order 5"):
        await make_client().order(5)
    with pytest.raises(RecordError, match="order 5 rows"):  # the rows of an order that is gone
        [row async for row in make_client().order_rows(5)]


@pytest.mark.anyio
@respx.mock
async def test_a_next_link_that_is_not_a_string_is_fatal(sign):
    respx.get(url__startswith=API + "products/").mock(
        side_effect=lambda request: sign(request, 200, {"items": [{"id": 1}], "next": 7})
    )
    with pytest.raises(FatalError, match="next link is not a string"):
        [item async for item in make_client().products()]


# -- orders and shipments through the connector, HTTP mocked ------------------------------------

SETTINGS = {"base_url": BASE, "public_key": "pub-key", "private_key": "priv-key", "page_size": 2}


def _collection(request: httpx.Request, items: list, next_link: str | None) -> dict:
    return {"href": str(request.url), "start": 0, "size": 2, "first": None, "previous": None, "next": next_link, "items": items}


@pytest.mark.anyio
@respx.mock
async def test_order_delta_pages_newest_first_and_stops_below_the_cursor(sign, order, order_row):
    from apicenterd import Entity
    from apicenterd.testing import connect

    def numbered(n: int) -> dict:
        return {**order, "id": 1000 + n, "ordernumber": n, "ordernumber_full": str(n)}

    pages = {"0": [numbered(12), numbered(11)], "2": [numbered(10), numbered(9)], "4": [numbered(8)]}
    listed: list[httpx.Request] = []

    def orders(request: httpx.Request) -> httpx.Response:
        listed.append(request)
        start = request.url.params["start"]
        link = API + f"orders/?orderby=ordernumber_desc&start={int(start) + 2}&size=2"
        return sign(request, 200, _collection(request, pages[start], link))

    rows_for: list[str] = []

    def rows(request: httpx.Request) -> httpx.Response:
        rows_for.append(request.url.path.split("/")[-3])
        return sign(request, 200, _collection(request, [order_row], None))

    respx.get(url__startswith=API + "orders/?").mock(side_effect=orders)
    respx.get(url__regex=r".*/orders/\d+/orderrows/.*").mock(side_effect=rows)
    async with connect(CCVSalesPOSConnector, {**SETTINGS, "order_reread_days": 0}, rate_limits=False) as connector:
        changes = [c async for c in connector.read(Entity.ORDERS, "000000000010")]
    assert [c.record.number for c in changes] == ["10", "11", "12"]
    assert [c.cursor for c in changes] == ["000000000010", "000000000011", "000000000012"]
    assert [r.url.raw_path for r in listed] == [
        b"/api/rest/v1/orders/?orderby=ordernumber_desc&start=0&size=2",
        b"/api/rest/v1/orders/?orderby=ordernumber_desc&start=2&size=2",
    ]  # order 9 is below the cursor: the third page is never asked for
    assert rows_for == ["1010", "1011", "1012"]


@pytest.mark.anyio
@respx.mock
async def test_shipment_is_a_signed_patch_of_the_order_with_track_and_trace(sign, order, expected_hash):
    from apicenterd import Entity, Shipment
    from apicenterd.testing import connect

    lookups: list[httpx.Request] = []
    patches: list[httpx.Request] = []

    def lookup(request: httpx.Request) -> httpx.Response:
        lookups.append(request)
        return sign(request, 200, _collection(request, [order], None))

    def patch(request: httpx.Request) -> httpx.Response:
        patches.append(request)
        return sign(request, 204)

    respx.get(url__startswith=API + "orders/?").mock(side_effect=lookup)
    respx.patch(API + "orders/339323562/").mock(side_effect=patch)
    shipment = Shipment(order_number="1", tracking_code="3SABC123", carrier="PostNL")
    async with connect(CCVSalesPOSConnector, SETTINGS, rate_limits=False) as connector:
        assert await connector.create(Entity.SHIPMENTS, shipment) == "339323562"
    assert lookups[0].url.raw_path == b"/api/rest/v1/orders/?ordernumber=1&start=0&size=2"
    (request,) = patches
    assert json.loads(request.content) == {
        "status": 5, "track_and_trace_code": "3SABC123", "track_and_trace_carrier": "PostNL", "mail": True
    }
    assert request.headers["x-hash"] == expected_hash(
        "priv-key", "pub-key", "PATCH", "/api/rest/v1/orders/339323562/", request.content, request.headers["x-date"]
    )


@pytest.mark.anyio
@respx.mock
async def test_shipment_patch_rejected_by_ccv_is_a_record_error(sign, order):
    from apicenterd import Entity, Shipment
    from apicenterd.testing import connect

    respx.get(url__startswith=API + "orders/?").mock(side_effect=lambda r: sign(r, 200, _collection(r, [order], None)))
    respx.patch(API + "orders/339323562/").mock(
        return_value=httpx.Response(400, json={"status": 400, "code": "400.11", "developermessage": "property 'x' is not allowed"})
    )
    async with connect(CCVSalesPOSConnector, SETTINGS, rate_limits=False) as connector:
        with pytest.raises(RecordError, match="order 339323562: property 'x' is not allowed") as caught:
            await connector.create(Entity.SHIPMENTS, Shipment(order_number="1", tracking_code="3SABC123"))
    assert caught.value.vendor_code == "400.11"

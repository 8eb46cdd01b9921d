"""Client tests with respx: signing, response verification, paging, and status → error classes."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
import pytest
import respx

from apicenterd import AuthError, FatalError, RateLimited, RecordError, RetryableError
from apicenterd.testing import make_context
from apicenterd_ccv_salespos import CCVSalesPOSConnector
from apicenterd_ccv_salespos.client import CCVAuth, CCVClient, error_from_response, signature

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

"""The Exact Online client against answers shaped like the vendor's (the spec fixtures) through respx."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from apicenterd_exact_online.client import DayBudget, ErrorGuard, ExactClient, endpoint_of, error_from, parse_odata_date
from apicenterd_exact_online.mapping import item_to_product

from apicenterd import AuthError, FatalError, RateLimited, RecordError, RetryableError

pytestmark = pytest.mark.anyio
BASE = "https://start.exactonline.nl"


def _client(**options) -> ExactClient:
    return ExactClient(httpx.AsyncClient(base_url=BASE), **options)


def _error(status: int, value: str, headers: dict | None = None, path: str = "/api/v1/1/logistics/Items") -> httpx.Response:
    body = {"error": {"code": "", "message": {"lang": "en-US", "value": value}}}
    return httpx.Response(status, json=body, headers=headers, request=httpx.Request("GET", BASE + path))


@respx.mock
async def test_items_fixture_pages_and_maps(spec_dir):
    """picqer's real list answer: d.results with __metadata; the item maps to a Product."""
    fixture = json.loads((spec_dir / "fixtures" / "picqer-items.json").read_text())
    route = respx.get(f"{BASE}/api/v1/7/logistics/Items").mock(return_value=httpx.Response(200, json=fixture))
    client = _client(division=7)
    pages = [items async for items in client.pages("logistics/Items", select=("ID", "Code"), filter="Code eq '12345678'", what="items")]
    assert route.call_count == 1
    assert route.calls[0].request.url.params["$select"] == "ID,Code"
    assert route.calls[0].request.url.params["$filter"] == "Code eq '12345678'"
    item = pages[0][0]
    assert item["__metadata"]["type"] == "Exact.Web.Api.Models.Item"
    product = item_to_product(item)
    assert product.sku == item["Code"] and product.name == item["Description"]


@respx.mock
async def test_next_links_are_followed_and_a_loop_stops():
    first = {"d": {"results": [{"ID": "a"}], "__next": f"{BASE}/api/v1/7/logistics/Items?$skiptoken=guid'1'"}}
    again = {"d": {"results": [{"ID": "b"}], "__next": f"{BASE}/api/v1/7/logistics/Items?$skiptoken=guid'1'"}}
    respx.get(f"{BASE}/api/v1/7/logistics/Items", params={"$skiptoken": "guid'1'"}).mock(return_value=httpx.Response(200, json=again))
    respx.get(f"{BASE}/api/v1/7/logistics/Items").mock(return_value=httpx.Response(200, json=first))
    client = _client(division=7)
    seen: list = []

    async def read() -> None:
        async for items in client.pages("logistics/Items", select=("ID",), filter="Code eq 'x'", what="items"):
            seen.extend(items)

    with pytest.raises(FatalError, match="loops"):
        await read()
    assert [i["ID"] for i in seen] == ["a", "b"]


@respx.mock
async def test_next_link_to_another_host_is_refused():
    body = {"d": {"results": [{"ID": "a"}], "__next": "https://evil.example/api/v1/7/logistics/Items?$skiptoken=x"}}
    respx.get(f"{BASE}/api/v1/7/logistics/Items").mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(FatalError, match="leaves"):
        async for _ in _client(division=7).pages("logistics/Items", select=("ID",), filter="Code eq 'x'", what="items"):
            pass


async def test_select_is_mandatory():
    with pytest.raises(ValueError, match="select"):
        async for _ in _client(division=7).pages("sync/Logistics/Items", select=(), what="items"):
            pass


@respx.mock
async def test_division_from_current_me():
    route = respx.get(f"{BASE}/api/v1/current/Me").mock(
        return_value=httpx.Response(200, json={"d": {"results": [{"CurrentDivision": 4242}]}})
    )
    client = _client()
    assert await client.division() == 4242
    assert await client.url("crm/Accounts") == "/api/v1/4242/crm/Accounts"
    assert route.call_count == 1  # asked once
    assert route.calls[0].request.url.params["$select"] == "CurrentDivision"


@respx.mock
async def test_current_me_without_division_is_fatal():
    respx.get(f"{BASE}/api/v1/current/Me").mock(return_value=httpx.Response(200, json={"d": {"results": []}}))
    with pytest.raises(FatalError, match="CurrentDivision"):
        await _client().division()


def test_error_body_is_read_and_classified():
    error = error_from(_error(400, "Code: 'X' already exists"), "item 'X'")
    assert isinstance(error, RecordError) and "Code: 'X' already exists" in str(error)
    assert isinstance(error_from(_error(401, "Unauthorized"), "items"), AuthError)
    assert isinstance(error_from(_error(403, "Forbidden"), "items"), AuthError)
    assert isinstance(error_from(_error(503, "Service unavailable"), "items"), RetryableError)
    # a missing collection is the configuration; a missing keyed object is the record
    assert isinstance(error_from(_error(404, "Not found"), "items"), FatalError)
    keyed = _error(404, "Not found", path="/api/v1/1/logistics/Items(guid'00000000-0000-0000-0000-000000000001')")
    assert isinstance(error_from(keyed, "item"), RecordError)


def test_a_429_waits_for_the_minutely_or_the_daily_reset():
    now = 1_000_000.0
    minutely = _error(
        429,
        "API rate limit exceeded.",
        {
            "X-RateLimit-Remaining": "4000",
            "X-RateLimit-Reset": str(int((now + 50000) * 1000)),
            "X-RateLimit-Minutely-Remaining": "0",
            "X-RateLimit-Minutely-Reset": str(int((now + 20) * 1000)),
        },
    )
    error = error_from(minutely, "items", now=now)
    assert isinstance(error, RateLimited) and error.retry_after == pytest.approx(20)
    daily = _error(
        429,
        "API rate limit exceeded.",
        {
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int((now + 1800) * 1000)),
            "X-RateLimit-Minutely-Reset": str(int((now + 20) * 1000)),
        },
    )
    assert error_from(daily, "items", now=now).retry_after == pytest.approx(1800)


@respx.mock
async def test_a_spent_day_stops_calling_until_the_reset():
    now = 2_000_000.0
    headers = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "10", "X-RateLimit-Reset": str(int((now + 7200) * 1000))}
    route = respx.get(f"{BASE}/api/v1/7/crm/Accounts").mock(return_value=httpx.Response(200, json={"d": {"results": []}}, headers=headers))
    client = _client(division=7, reserve=10, clock=lambda: now)
    await client.first("crm/Accounts", select=("ID",), filter="Code eq 'x'", what="accounts")
    with pytest.raises(RateLimited, match="daily limit") as caught:
        await client.first("crm/Accounts", select=("ID",), filter="Code eq 'x'", what="accounts")
    assert "2.0 h" in str(caught.value)
    assert 0 < caught.value.retry_after <= 7200  # capped by the core: it looks again later, without a call
    assert route.call_count == 1  # the second call never went out


@respx.mock
async def test_repeated_errors_stop_calling_the_endpoint():
    clock = [5_000.0]
    route = respx.post(f"{BASE}/api/v1/7/logistics/Items").mock(return_value=_error(400, "Mandatory: Code"))
    client = _client(division=7, error_limit=3, clock=lambda: clock[0])
    for _ in range(3):
        with pytest.raises(RecordError):
            await client.create("logistics/Items", {"Description": "x"}, what="item")
    with pytest.raises(FatalError, match="stopped calling"):
        await client.create("logistics/Items", {"Description": "x"}, what="item")
    assert route.call_count == 3
    clock[0] += 3601  # an hour later the endpoint is tried again
    with pytest.raises(RecordError):
        await client.create("logistics/Items", {"Description": "x"}, what="item")
    assert route.call_count == 4


def test_endpoint_of_drops_key_and_query():
    assert endpoint_of("https://x/api/v1/1/crm/Accounts(guid'00000000-0000-0000-0000-000000000001')?a=b") == "/api/v1/1/crm/Accounts"


def test_day_budget_ignores_unreadable_headers():
    budget = DayBudget()
    budget.observe(httpx.Response(200, headers={"X-RateLimit-Remaining": "many"}))
    assert budget.remaining is None and budget.spent(0.0) is None


def test_error_guard_refuses_a_bad_limit():
    with pytest.raises(ValueError, match="at least 1"):
        ErrorGuard(0)


def test_odata_dates():
    assert parse_odata_date("/Date(1325376000000)/").year == 2012
    assert parse_odata_date(None) is None
    with pytest.raises(ValueError, match="not an OData date"):
        parse_odata_date(12)


@respx.mock
async def test_an_answer_that_is_not_json_or_not_a_list_is_named():
    respx.get(f"{BASE}/api/v1/7/crm/Accounts").mock(return_value=httpx.Response(200, text="<html>maintenance</html>"))
    with pytest.raises(FatalError, match="not JSON"):
        await _client(division=7).first("crm/Accounts", select=("ID",), filter="Code eq 'x'", what="accounts")
    respx.get(f"{BASE}/api/v1/7/crm/Contacts").mock(return_value=httpx.Response(200, json={"value": []}))
    with pytest.raises(FatalError, match="crm/Contacts: expected Exact's list answer"):
        await _client(division=7).first("crm/Contacts", select=("ID",), filter="Email eq 'x'", what="contacts")


@respx.mock
async def test_a_bad_item_in_the_sync_feed_is_a_failed_change_not_a_gap():
    """An item without Code is yielded as a failed change (dead-lettered by the daemon); the rest read on."""
    from apicenterd_exact_online import ExactOnlineConnector

    from apicenterd import Entity
    from apicenterd.testing import connect

    items = {
        "d": {
            "results": [
                {"ID": "a", "Code": None, "Description": "x", "Timestamp": 5},
                {"ID": "b", "Code": "OK-1", "Description": "fine", "Timestamp": 6},
            ]
        }
    }
    respx.get(f"{BASE}/api/v1/7/sync/Logistics/Items").mock(return_value=httpx.Response(200, json=items))
    respx.get(f"{BASE}/api/v1/7/logistics/SalesItemPrices").mock(return_value=httpx.Response(200, json={"d": {"results": []}}))
    respx.post(f"{BASE}/api/oauth2/token").mock(
        return_value=httpx.Response(200, json={"access_token": "a", "refresh_token": "r2", "expires_in": "600"})
    )
    settings = {"client_id": "c", "client_secret": "s", "refresh_token": "r1", "division": 7}
    async with connect(ExactOnlineConnector, settings) as conn:
        changes = [c async for c in conn.source(Entity.PRODUCTS).changes(None)]
    assert [c.source_id for c in changes] == ["a", "b"]
    assert changes[0].record is None and "no Code" in str(changes[0].error)
    assert changes[1].record.sku == "OK-1" and changes[1].cursor == "6".zfill(20)

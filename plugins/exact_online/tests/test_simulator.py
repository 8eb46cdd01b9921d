"""The simulator answers as Exact Online does (envelope, paging, $select/$filter rules, limits, errors)."""

from __future__ import annotations

import httpx
import pytest
from apicenterd_exact_online import ExactOnlineConnector
from apicenterd_exact_online.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DIVISION, demo_refresh_token

from apicenterd import Entity, RateLimited
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio
ITEMS = f"/api/v1/{DIVISION}/logistics/Items"
SYNC = f"/api/v1/{DIVISION}/sync/Logistics/Items"


async def _client(app) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://exact.test")
    answer = await client.post(
        "/api/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": demo_refresh_token(),
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
        },
    )
    answer.raise_for_status()
    assert answer.json()["expires_in"] == 600
    client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return client


def _message(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert set(body["error"]["message"]) == {"lang", "value"}
    return body["error"]["message"]["value"]


async def test_basic_client_auth_is_refused_and_tokens_rotate():
    app = ExactOnlineConnector.simulator(seed=1)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://exact.test") as client:
        basic = await client.post(
            "/api/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": demo_refresh_token()},
            auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
        )
        assert basic.status_code == 401
    client = await _client(app)
    again = await client.post(
        "/api/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": demo_refresh_token(),
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
        },
    )
    assert again.status_code == 400  # a refresh token works once
    await client.aclose()


async def test_sync_pages_of_1000_with_select_and_timestamp_filter():
    app = ExactOnlineConnector.simulator(seed=1, records=1500)
    client = await _client(app)
    no_select = await client.get(SYNC, params={"$filter": "Timestamp gt 1"})
    assert no_select.status_code == 400 and "$select" in _message(no_select)
    no_filter = await client.get(SYNC, params={"$select": "ID,Code"})
    assert no_filter.status_code == 400 and "Timestamp" in _message(no_filter)
    first = await client.get(SYNC, params={"$select": "ID,Code,Timestamp", "$filter": "Timestamp gt 1"})
    d = first.json()["d"]
    assert len(d["results"]) == 1000 and "__next" in d
    assert set(d["results"][0]) == {"__metadata", "ID", "Code", "Timestamp"}
    assert d["results"][0]["__metadata"]["type"] == "Exact.Web.Api.Models.Item"
    second = (await client.get(d["__next"])).json()["d"]
    assert len(second["results"]) == 500 and "__next" not in second
    await client.aclose()


async def test_standard_endpoint_pages_of_60_and_requires_a_filter():
    app = ExactOnlineConnector.simulator(seed=1, records=70)
    client = await _client(app)
    unfiltered = await client.get(ITEMS, params={"$select": "ID"})
    assert unfiltered.status_code == 400 and "$filter" in _message(unfiltered)
    listed = await client.get(ITEMS, params={"$select": "ID,Code", "$filter": " or ".join(f"Code eq 'EX-{n:05d}'" for n in range(1, 71))})
    assert len(listed.json()["d"]["results"]) == 60 and listed.json()["d"]["__next"]
    bad = await client.get(ITEMS, params={"$select": "ID", "$filter": "substringof('x', Code)"})
    assert bad.status_code == 400
    for header in (
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "X-RateLimit-Minutely-Limit",
        "X-RateLimit-Minutely-Remaining",
        "X-RateLimit-Minutely-Reset",
    ):
        assert header in listed.headers
    await client.aclose()


async def test_minutely_limit_answers_429_with_exact_headers():
    now = [1_800_000_030.0]
    app = ExactOnlineConnector.simulator(seed=1, records=1, minutely=3, clock=lambda: now[0])
    client = await _client(app)
    answers = [await client.get(ITEMS, params={"$select": "ID", "$filter": "Code eq 'EX-00001'"}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Minutely-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert int(answers[3].headers["X-RateLimit-Minutely-Reset"]) == 1_800_000_060_000
    assert _message(answers[3])
    now[0] += 30
    assert (await client.get(ITEMS, params={"$select": "ID", "$filter": "Code eq 'EX-00001'"})).status_code == 200
    await client.aclose()


async def test_the_connector_stops_at_the_days_reserve_without_a_call():
    """The daemon's day budget (as the engine attaches it) keeps daily_reserve of what Exact reports."""
    from apicenterd.budget import DayBudget

    app = ExactOnlineConnector.simulator(seed=1, records=2, daily=6)
    sim = app.state.sim
    settings = {**ExactOnlineConnector.demo_settings("http://exact.test"), "daily_reserve": 2, "division": DIVISION}
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        limiters = conn.context.limiters
        limiters.budget = DayBudget("exact", limiters, reserve=conn.settings.daily_reserve)
        sink = conn.sink(Entity.PRODUCTS)
        await sink.find("EX-00001")  # 2 calls: items, prices
        await sink.find("EX-00002")  # 2 more: 2 left = the reserve
        calls = sim.request_count
        with pytest.raises(RateLimited, match="share of the day budget .2 of 6 calls left: daily_reserve 2"):
            await sink.find("EX-00001")
        assert sim.request_count == calls
    assert sim.refusals == 0


async def test_read_only_write_is_refused_with_exacts_error():
    app = ExactOnlineConnector.simulator(seed=1)
    client = await _client(app)
    answer = await client.post(f"/api/v1/{DIVISION}/crm/Accounts", json={"Name": "X", "IsSales": True})
    assert answer.status_code == 400 and "read-only" in _message(answer)
    created = await client.post(f"/api/v1/{DIVISION}/crm/Accounts", json={"Name": "X", "Code": "42"})
    assert created.status_code == 201 and created.json()["d"]["Code"] == "42".rjust(18)
    wrong_division = await client.get("/api/v1/999/crm/Accounts", params={"$select": "ID", "$filter": "Code eq '1'"})
    assert wrong_division.status_code == 403
    await client.aclose()


async def test_the_days_budget_left_is_a_metric():
    """The daemon's gauge apicenterd_rate_limit_remaining{limit="daily"} follows X-RateLimit-Remaining."""
    from prometheus_client import REGISTRY

    app = ExactOnlineConnector.simulator(seed=1, records=1, daily=300)
    settings = {**ExactOnlineConnector.demo_settings("http://exact.test"), "division": DIVISION}
    async with connect(ExactOnlineConnector, settings, app=app, name="exact-metric") as conn:
        await conn.sink(Entity.PRODUCTS).find("EX-00001")
    labels = {"connection": "exact-metric", "limit": "daily"}
    assert REGISTRY.get_sample_value("apicenterd_rate_limit_remaining", labels) == 298
    minutely = REGISTRY.get_sample_value("apicenterd_rate_limit_remaining", {"connection": "exact-metric", "limit": "minutely"})
    assert minutely is not None and minutely < 60  # the minute may turn between the two calls


async def test_an_invoice_is_processed_once_and_item_groups_and_free_fields_are_kept():
    app = ExactOnlineConnector.simulator(seed=2, records=1, customers=1)
    sim = app.state.sim
    client = await _client(app)
    base = f"/api/v1/{DIVISION}"
    account = next(iter(sim.data["crm/Accounts"]))
    item = next(iter(sim.data["logistics/Items"]))
    invoice = await client.post(
        f"{base}/salesinvoice/SalesInvoices",
        json={"Journal": "70", "Type": 8023, "InvoiceTo": account, "YourRef": "1", "SalesInvoiceLines": [{"Item": item, "Quantity": 1}]},
    )
    assert invoice.status_code == 201
    invoice_id = invoice.json()["d"]["InvoiceID"]
    printed = await client.post(f"{base}/salesinvoice/PrintedSalesInvoices", json={"InvoiceID": invoice_id, "InvoiceDate": "2026-05-01"})
    assert printed.status_code == 201 and sim.data["salesinvoice/SalesInvoices"][invoice_id]["Status"] == 50
    again = await client.post(f"{base}/salesinvoice/PrintedSalesInvoices", json={"InvoiceID": invoice_id})
    assert again.status_code == 400 and "already been processed" in _message(again)
    unknown = await client.post(f"{base}/salesinvoice/PrintedSalesInvoices", json={"InvoiceID": account})
    assert unknown.status_code == 400

    groups = await client.get(f"{base}/logistics/ItemGroups", params={"$select": "ID,Code", "$filter": "Code eq 'FOOD'"})
    (food,) = groups.json()["d"]["results"]
    made = await client.post(ITEMS, json={"Code": "G-1", "Description": "G", "ItemGroup": food["ID"], "FreeTextField_03": "t", "Class_02": "C"})
    assert made.status_code == 201
    stored = sim.data["logistics/Items"][made.json()["d"]["ID"]]
    assert stored["ItemGroupCode"] == "FOOD" and stored["FreeTextField_03"] == "t" and stored["Class_02"] == "C"
    bad = await client.post(ITEMS, json={"Code": "G-2", "Description": "G", "ItemGroup": account})
    assert bad.status_code == 400 and "ItemGroup" in _message(bad)
    picture = await client.post(ITEMS, json={"Code": "G-3", "Description": "G", "PictureUrl": "https://x/y.png"})
    assert picture.status_code == 400 and "read-only" in _message(picture)  # images cannot be written

    conditions = await client.get(f"{base}/cashflow/PaymentConditions", params={"$select": "Code,PaymentMethod", "$filter": "Code eq 'IN'"})
    assert [(c["Code"], c["PaymentMethod"]) for c in conditions.json()["d"]["results"]] == [("IN", "I")]
    await client.aclose()

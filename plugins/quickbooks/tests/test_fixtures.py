"""The client and the mapping against Intuit's real payloads (shared/api-specs/quickbooks), not the simulator."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from apicenterd_quickbooks import mapping
from apicenterd_quickbooks.client import QBOClient, QBOError, StaleObject, error_from, fault_of

from apicenterd import AuthError, RateLimited, RecordError, RetryableError

pytestmark = pytest.mark.anyio


def _response(status: int, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("POST", "https://quickbooks.api.intuit.com/v3/company/123/item")
    return httpx.Response(status, content=content, headers=headers or {}, request=request)


@pytest.mark.parametrize(
    ("name", "status", "kind", "code"),
    [
        ("throttle_exceeded_error.xml", 403, RateLimited, "3001"),  # older answers: 403
        ("too_many_requests_error.xml", 429, RateLimited, "3001"),
        ("generic_error.xml", 500, RetryableError, "10000"),
        ("customer_duplicate_error.xml", 400, QBOError, "6240"),
        ("query_validation_error.xml", 400, QBOError, "4001"),
    ],
)
def test_xml_and_json_faults_are_classified(name, status, kind, code, fixture_json, spec):
    raw = spec("xml-fixtures", name).read_bytes()
    as_json = json.dumps(fixture_json(name)).encode()
    for body in (raw, as_json):
        fault = fault_of(_response(status, body))
        assert fault is not None and code in fault.codes
        error = error_from(_response(status, body, {"intuit_tid": "1-abc-tid"}), "item 'X'")
        assert isinstance(error, kind), (body[:40], error)
        assert "intuit_tid 1-abc-tid" in str(error)
        assert fault.errors[0].message in str(error)
        if kind is RateLimited:
            assert error.retry_after == 60.0  # Intuit: wait 60 s; no Retry-After was sent


def test_record_errors_are_not_retried_and_auth_is_auth(fixture_json, spec):
    duplicate = error_from(_response(400, spec("xml-fixtures", "customer_duplicate_error.xml").read_bytes()), "c")
    assert isinstance(duplicate, RecordError) and not isinstance(duplicate, RetryableError)
    assert duplicate.vendor_code == "6240"
    stale = error_from(
        _response(400, b'{"Fault":{"Error":[{"Message":"Stale Object Error","Detail":"d","code":"5010"}],"type":"ValidationFault"}}'), "i"
    )
    assert isinstance(stale, StaleObject)
    auth = error_from(
        _response(
            401, b'{"Fault":{"Error":[{"Message":"message=AuthenticationFailed; errorCode=003200","code":"3200"}],"type":"AUTHENTICATION"}}'
        ),
        "i",
    )
    assert isinstance(auth, AuthError)
    garbage = error_from(_response(502, b"<html>bad gateway</html>"), "i")
    assert isinstance(garbage, RetryableError) and "bad gateway" in str(garbage)


def _client(handler) -> QBOClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="https://quickbooks.api.intuit.com")
    return QBOClient(http, realm_id="123", minorversion=75)


async def test_query_pages_by_startposition_and_maxresults_with_minorversion(fixture_json, spec):
    page = fixture_json("items.xml")  # two items
    seen: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        query = parse_qs(urlsplit(str(request.url)).query)
        seen.append(query)
        assert request.url.path == "/v3/company/123/query"
        start = int(query["query"][0].split("STARTPOSITION ")[1].split()[0])
        body = page if start == 1 else {"QueryResponse": {}, "time": "x"}
        if start == 1:
            return httpx.Response(200, json=body)
        return httpx.Response(200, json=body)

    client = _client(handler)
    pages = [p async for p in client.query("SELECT * FROM Item", entity="Item", what="items", page_size=2)]
    assert [len(p) for p in pages] == [2, 0]
    assert seen[0]["minorversion"] == ["75"]
    assert seen[0]["query"] == ["SELECT * FROM Item STARTPOSITION 1 MAXRESULTS 2"]
    assert seen[1]["query"] == ["SELECT * FROM Item STARTPOSITION 3 MAXRESULTS 2"]
    products = [mapping.item_to_product(i) for i in pages[0]]
    assert products[0].name == "Plush Baby Doll" and products[0].price_excl_tax == Decimal(50)
    assert products[0].sku == "Plush Baby Doll"  # no Sku in the fixture: the Name is the key


async def test_a_page_repeated_is_a_loop_not_an_endless_read(fixture_json, spec):
    page = fixture_json("items.xml")
    client = _client(lambda request: httpx.Response(200, json=page))
    with pytest.raises(Exception, match="repeated a page"):
        async for _ in client.query("SELECT * FROM Item", entity="Item", what="items", page_size=2):
            pass


async def test_batch_maps_each_items_fault_to_its_bid(fixture_json, spec):
    answer = fixture_json("batch_response.xml")
    sent: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json=answer)

    client = _client(handler)
    ops = [{"bId": "1a", "operation": "create", "Customer": {"DisplayName": "x"}}, {"bId": "2b", "operation": "create", "Customer": {}}]
    results = await client.batch(ops, what="customers")
    assert results["1a"].fault is not None and results["1a"].fault.codes == {"2050", "2080"}
    assert results["2b"].entity is not None and results["2b"].entity["Id"] == "19891"
    assert results["6f"].entity == {"Id": "19891"}
    assert sent[0]["BatchItemRequest"] == ops


async def test_batch_splits_into_thirty_operations_per_call():
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ops = json.loads(request.content)["BatchItemRequest"]
        calls.append(len(ops))
        return httpx.Response(200, json={"BatchItemResponse": [{"bId": o["bId"], "Item": {"Id": o["bId"]}} for o in ops]})

    client = _client(handler)
    results = await client.batch([{"bId": str(n), "operation": "create", "Item": {}} for n in range(65)], what="items")
    assert calls == [30, 30, 5] and len(results) == 65


async def test_cdc_answer_of_the_fixture_is_read(fixture_json, spec):
    answer = fixture_json("change_data_capture_response.xml")
    client = _client(lambda request: httpx.Response(200, json=answer))
    changed = await client.cdc(["Bill", "Customer"], "2016-04-01T00:00:00-07:00", what="cdc")
    assert [b["Id"] for b in changed["Bill"]] and changed["Customer"] == []


async def test_a_fault_in_a_200_answer_is_an_error(fixture_json, spec):
    client = _client(lambda request: httpx.Response(200, json=fixture_json("query_validation_error.xml")))
    with pytest.raises(QBOError, match="4001"):
        await client.request("GET", "query", what="q", params={"query": "SELECT * FROM Item"})


def test_customer_and_item_fixtures_map_to_records(fixture_json, spec):
    customer = mapping.api_to_customer(fixture_json("customer.xml"))
    assert customer.kind == "company" and customer.name == "Thrifty Meats" and customer.email == "info@thriftymeats.com"
    assert customer.contact is not None and customer.contact.first_name == "John"
    item = fixture_json("item.xml")
    product = mapping.item_to_product(item)
    assert product.name == item["Name"] and product.sku == "PBD01" and product.type == "simple"
    assert mapping.cursor_of(fixture_json("items.xml")["QueryResponse"]["Item"][0]) == "2013-11-17T01:42:03Z"


async def test_never_more_than_ten_requests_in_flight():
    import anyio

    state = {"in_flight": 0, "most": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        state["in_flight"] += 1
        state["most"] = max(state["most"], state["in_flight"])
        for _ in range(20):  # let every other task run, so all that can enter do
            await anyio.lowlevel.checkpoint()
        state["in_flight"] -= 1
        return httpx.Response(200, json={"Item": {"Id": "1"}})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="https://quickbooks.api.intuit.com")
    client = QBOClient(http, realm_id="123", minorversion=75, concurrency=10)
    async with anyio.create_task_group() as tg:
        for _ in range(25):
            tg.start_soon(lambda: client.request("GET", "item/1", what="item"))
    assert state["most"] == 10

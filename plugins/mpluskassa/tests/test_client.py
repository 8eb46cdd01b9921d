"""The SOAP client: auth on the query, faults and result codes sorted for the runner, sync-marker paging, limits."""

from __future__ import annotations

import httpx
import pytest
from apicenterd_mpluskassa import MplusKassaConnector
from apicenterd_mpluskassa.client import MplusClient, cursor_of, marker_of, result_error
from apicenterd_mpluskassa.simulator import fault_xml, response_xml

from apicenterd import AuthError, Entity, FatalError, RateLimited, RecordError, RetryableError
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio


def client_for(handler, **kw) -> MplusClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://mplus.test:34343")
    return MplusClient(http, ident="id-1", secret="s3cr3t-value", **kw)


def answer(content: bytes, status: int = 200, headers=None):
    return lambda request: httpx.Response(status, content=content, headers=headers or {})


async def test_ident_and_secret_go_on_the_query_and_soapaction_names_the_operation():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            content=response_xml("getApiVersionResponse", {"majorNumber": 1, "minorNumber": 0, "revisionNumber": 0, "inDebugMode": False}),
        )

    client = client_for(handler)
    await client.call("getApiVersion", {}, what="version")
    (request,) = seen
    assert request.method == "POST" and request.url.path == "/"
    assert dict(request.url.params) == {"ident": "id-1", "secret": "s3cr3t-value"}
    assert request.headers["SOAPAction"] == '"getApiVersion"'
    assert request.headers["Content-Type"].startswith("text/xml")
    empty = client_for(handler, soap_action="empty")
    await empty.call("getApiVersion", {}, what="version")
    assert seen[-1].headers["SOAPAction"] == '""'


@pytest.mark.parametrize(
    ("record", "error"),
    [(True, RecordError), (False, FatalError)],
)
async def test_a_client_fault_is_the_records_on_a_write_and_fatal_on_a_read(record, error):
    client = client_for(answer(fault_xml("Client", "Validation constraint violation: articleNumber"), 500))
    with pytest.raises(error, match="SOAP fault Client: Validation constraint violation") as caught:
        await client.call("createProduct", {}, what="article '1'", record=record)
    assert caught.value.vendor_code == "Client"


async def test_a_server_fault_is_retryable():
    client = client_for(answer(fault_xml("Server", "database is locked"), 500))
    with pytest.raises(RetryableError, match="database is locked"):
        await client.call("getProducts", {}, what="products")


@pytest.mark.parametrize("status", [200, 401, 500])
async def test_a_refused_ident_or_secret_is_an_auth_error(status, monkeypatch):
    from apicenterd.observe.logs import redactor

    # other tests of this process registered the word "secret" as a secret value (their dummy
    # credential): the message below would come out "[redacted]"; start from no known secrets
    monkeypatch.setattr(redactor, "_secrets", set())
    monkeypatch.setattr(redactor, "_learned", {})
    monkeypatch.setattr(redactor, "_ordered", None)
    client = client_for(answer(fault_xml("Client", "Authentication failed: unknown ident or wrong secret"), status))
    with pytest.raises(AuthError, match="ident and secret"):
        await client.call("getProducts", {}, what="products")


async def test_401_without_envelope_is_an_auth_error():
    client = client_for(answer(b"Unauthorized", 401))
    with pytest.raises(AuthError):
        await client.call("getProducts", {}, what="products")


async def test_429_is_rate_limited_with_its_retry_after():
    client = client_for(answer(b"slow down", 429, {"Retry-After": "12"}))
    with pytest.raises(RateLimited) as caught:
        await client.call("getProducts", {}, what="products")
    assert caught.value.retry_after == 12


async def test_a_5xx_html_page_is_retryable_and_a_200_non_soap_is_fatal():
    with pytest.raises(RetryableError):
        await client_for(answer(b"<html>bad gateway</html>", 502)).call("getProducts", {}, what="products")
    with pytest.raises(FatalError, match="not a SOAP 1.1 envelope"):
        await client_for(answer(b"<html>welcome</html>", 200)).call("getProducts", {}, what="products")


async def test_an_answer_for_another_operation_is_fatal():
    client = client_for(answer(response_xml("GetRelationsResponse", {"relationList": {}})))
    with pytest.raises(FatalError, match="expected getProductsResponse"):
        await client.call("getProducts", {}, what="products")


async def test_find_order_is_answered_by_get_order_response_as_the_wsdl_says():
    client = client_for(answer(response_xml("GetOrderResponse", {"result": "GET-ORDER-RESULT-NOT-FOUND"})))
    assert (await client.call("findOrder", {"extOrderId": "1"}, what="order"))["result"] == "GET-ORDER-RESULT-NOT-FOUND"


async def test_no_error_names_the_secret(app, settings):
    sim = app.state.sim
    sim.secret = "something-else"
    async with connect(MplusKassaConnector, {**settings, "secret": "the-real-secret-123"}, app=app) as conn:
        with pytest.raises(AuthError) as caught:
            await conn.check()
    assert "the-real-secret-123" not in str(caught.value)
    assert all("secret=" not in target for _, target in sim.requests)


async def test_a_timeout_is_retryable(settings):
    async def hangs_up(scope, receive, send):
        raise httpx.ReadTimeout("timed out")

    async with connect(MplusKassaConnector, settings, app=hangs_up) as conn:
        with pytest.raises(RetryableError, match="timed out"):
            await conn.check()


def test_result_codes_are_record_errors_with_the_vendors_message():
    error = result_error("UPDATE-PRODUCT-RESULT-NOT-ALLOWED", "product is locked", "article '5'")
    assert isinstance(error, RecordError)
    assert str(error) == "article '5': MplusKASSA answered UPDATE-PRODUCT-RESULT-NOT-ALLOWED: product is locked"


def test_cursors_sort_as_the_markers_and_bad_cursors_are_refused():
    assert cursor_of(9) < cursor_of(10) < cursor_of(2**62)
    assert marker_of(cursor_of(42)) == 42 and marker_of(None) is None
    with pytest.raises(FatalError, match="not a MplusKASSA sync marker"):
        marker_of("2026-01-01T00:00:00Z")


async def test_sync_pages_follow_the_marker_until_a_short_page(app, settings):
    sim = app.state.sim
    async with connect(MplusKassaConnector, {**settings, "page_size": 2}, app=app) as conn:
        sim.reset_counts()
        changes = [c async for c in conn.read(Entity.PRODUCTS, None)]
        assert [c.source_id for c in changes] == ["1000", "1001", "1002"]
        assert sim.count("POST") == 3  # the article groups, a page of 2, a short page of 1
        cursors = [c.cursor for c in changes]
        assert cursors == sorted(cursors)
        again = [c async for c in conn.read(Entity.PRODUCTS, changes[-1].cursor)]
        assert again == []


async def test_a_sync_marker_that_does_not_advance_is_a_loop():
    page = response_xml(
        "GetRelationsResponse",
        {"relationList": {"relation": [{"relationNumber": 1, "syncMarker": 5}, {"relationNumber": 2, "syncMarker": 5}]}},
    )
    client = client_for(answer(page))
    pages = client.sync_pages(
        "getRelations",
        lambda m, n: {"request": {"syncMarker": m or 0, "syncMarkerLimit": n}},
        container="relationList",
        item="relation",
        since=5,
        limit=2,
        what="relations",
    )
    with pytest.raises(FatalError, match="does not advance|repeats"):
        async for _ in pages:
            pass


async def test_calls_in_flight_never_exceed_max_concurrency():
    import anyio

    in_flight = peak = 0
    release = anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1
        return httpx.Response(200, content=response_xml("getVatGroupListResponse", {}))

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://mplus.test")
    client = MplusClient(http, ident="i", secret="s", max_concurrency=2)

    async def one() -> None:
        await client.call("getVatGroupList", {}, what="VAT groups")

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(one)
        await anyio.wait_all_tasks_blocked()  # every call is in the handler or waiting for a slot
        assert in_flight == 2
        release.set()
    assert peak == 2 and client.calls == 6

"""The connector kit: paging with loop detection, batch helpers, error classification, OAuth2 code exchange."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
import respx

from apicenterd import AuthError, FatalError, RateLimited, RecordError, RetryableError
from apicenterd.kit import (
    OAuth2Settings,
    Page,
    authorize_url,
    chunks,
    classify,
    each_item,
    exchange_code,
    link_header_next,
    not_found_by_path,
    odata_or_filters,
    odata_page,
    odata_string,
    paginate_cursor,
    paginate_next_link,
    paginate_odata,
    paginate_offset,
    paginate_page_number,
    raise_for_response,
    vendor_message,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def collect(pages):
    return [list(items) async for items in pages]


# --- offset / size ---------------------------------------------------------------------------------

DATA = list(range(7))


async def test_offset_paging_reads_until_a_short_page():
    calls = []

    async def fetch(offset, size):
        calls.append((offset, size))
        return Page(DATA[offset : offset + size])

    assert await collect(paginate_offset(fetch, endpoint="GET /items", size=3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert calls == [(0, 3), (3, 3), (6, 3)]


async def test_offset_paging_stops_at_the_total_or_when_the_vendor_says_no_more():
    async def with_total(offset, size):
        return Page(DATA[offset : offset + size], total=6)

    assert await collect(paginate_offset(with_total, endpoint="e", size=3)) == [[0, 1, 2], [3, 4, 5]]

    async def capped(offset, size):  # the vendor sends 2 although 3 were asked: its flag decides
        items = DATA[offset : offset + 2]
        return Page(items, more=offset + 2 < len(DATA))

    assert [i async for i in each_item(paginate_offset(capped, endpoint="e", size=3))] == DATA


async def test_offset_paging_that_ignores_the_offset_is_a_loop():
    async def fetch(offset, size):
        return Page([{"id": 1}, {"id": 2}])

    with pytest.raises(FatalError, match=r"GET /items: the paging loops: page 2 repeats page 1 \(2 same items\)"):
        await collect(paginate_offset(fetch, endpoint="GET /items", size=2))


# --- next link / cursor / OData -------------------------------------------------------------------


async def test_next_links_are_followed_and_one_followed_before_is_a_loop():
    pages = {None: Page([1], next="/p2"), "/p2": Page([2], next="/p3"), "/p3": Page([3])}

    async def fetch(link):
        return pages[link]

    assert await collect(paginate_next_link(fetch, endpoint="GET /orders")) == [[1], [2], [3]]
    pages["/p3"] = Page([3], next="/p2")
    with pytest.raises(FatalError, match="GET /orders: the paging loops: next link '/p2' was already followed"):
        await collect(paginate_next_link(fetch, endpoint="GET /orders"))


async def test_a_next_link_that_is_not_a_string_is_a_clear_error():
    async def fetch(link):
        return Page([1], next=42)  # type: ignore[arg-type]

    with pytest.raises(FatalError, match="next link is not a string"):
        await collect(paginate_next_link(fetch, endpoint="e"))


async def test_cursor_tokens_stop_when_none_comes_and_a_repeated_token_is_a_loop():
    seen = []

    async def fetch(after):
        seen.append(after)
        return Page([after or "first"], next={None: "a", "a": "b"}.get(after))

    assert await collect(paginate_cursor(fetch, endpoint="GET /crm/v3/objects/contacts")) == [["first"], ["a"], ["b"]]
    assert seen == [None, "a", "b"]

    async def stuck(after):
        return Page([after], next="same")

    with pytest.raises(FatalError, match="cursor token 'same' was already followed"):
        await collect(paginate_cursor(stuck, endpoint="GET /crm/v3/objects/contacts"))


async def test_hard_page_guard():
    async def endless(after):
        return Page([int(after or 0)], next=str(int(after or 0) + 1))

    with pytest.raises(FatalError, match="more than 5 pages"):
        await collect(paginate_cursor(endless, endpoint="e", max_pages=5))


def test_odata_pages_of_v2_and_v4():
    v2 = odata_page({"d": {"results": [{"ID": 1}], "__next": "https://x/api/v1/1/logistics/Items?$skiptoken=guid'1'"}}, endpoint="e")
    assert v2.items == [{"ID": 1}] and v2.next.endswith("$skiptoken=guid'1'")
    assert odata_page({"d": {"results": []}}, endpoint="e").next is None
    assert odata_page({"d": [{"ID": 2}]}, endpoint="e").items == [{"ID": 2}]
    v4 = odata_page({"value": [3], "@odata.nextLink": "n"}, endpoint="e")
    assert v4.items == [3] and v4.next == "n"
    with pytest.raises(FatalError, match="e: expected an OData list"):
        odata_page({"error": "x"}, endpoint="e")


async def test_odata_skiptoken_used_twice_is_a_loop_even_in_another_link():
    links = iter(
        [
            "https://x/api/v1/1/logistics/Items?$select=ID&$skiptoken=guid'1'",
            "https://x/api/v1/1/logistics/Items?$skiptoken=guid'1'&$select=ID",
        ]
    )

    async def fetch(link):
        return odata_page({"d": {"results": [{"ID": link}], "__next": next(links)}}, endpoint="e")

    with pytest.raises(FatalError, match="GET logistics/Items: the paging loops: \\$skiptoken \"guid'1'\" was already followed"):
        await collect(paginate_odata(fetch, endpoint="GET logistics/Items"))


def test_link_header_next():
    headers = httpx.Headers({"Link": '<https://a/x?page=1>; rel="prev", <https://a/x?page=3>; rel="next"'})
    assert link_header_next(headers) == "https://a/x?page=3"
    assert link_header_next(httpx.Headers({"Link": '<https://a/x?page=1>; rel="prev"'})) is None
    assert link_header_next(httpx.Headers()) is None


# --- page number -----------------------------------------------------------------------------------


async def test_page_numbers_follow_the_total_number_of_pages():
    asked = []

    async def fetch(number):
        asked.append(number)
        return Page([number * 10], total_pages=3, number=number)

    assert await collect(paginate_page_number(fetch, endpoint="GET /v2/articles")) == [[10], [20], [30]]
    assert asked == [1, 2, 3]


async def test_a_page_number_that_does_not_advance_is_a_loop():
    async def fetch(number):
        return Page([number], total_pages=5, number=1)

    with pytest.raises(FatalError, match="GET /v2/articles: the paging loops: page 2 says it is page 1, after page 1"):
        await collect(paginate_page_number(fetch, endpoint="GET /v2/articles"))


async def test_a_page_that_repeats_the_previous_ones_items_is_a_loop_by_key():
    async def fetch(number):
        return Page([{"Id": "a", "seen": number}], total_pages=5)

    with pytest.raises(FatalError, match="page 2 repeats page 1"):
        await collect(paginate_page_number(fetch, endpoint="e", key=lambda item: item["Id"]))


async def test_page_numbers_without_a_total_stop_at_an_empty_page():
    async def fetch(number):
        return Page([number] if number < 3 else [])

    assert await collect(paginate_page_number(fetch, endpoint="e")) == [[1], [2], []]


# --- batches ---------------------------------------------------------------------------------------


def test_chunks():
    assert list(chunks(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert list(chunks([], 3)) == []
    with pytest.raises(ValueError, match="at least 1"):
        list(chunks([1], 0))


def test_odata_or_filters_quote_dedupe_and_stay_under_the_length():
    keys = [f"SKU-{i:03d}" for i in range(40)] + ["O'Brien", "SKU-000"]
    filters = list(odata_or_filters("Number", keys, max_length=200))
    assert all(len(quote(expression, safe="")) <= 200 for expression, _ in filters)
    assert len(filters) > 2 and len(quote(filters[0][0] + " or Number eq 'SKU-099'", safe="")) > 200  # filled up
    covered = [key for _, keys_ in filters for key in keys_]
    assert covered == list(dict.fromkeys(keys))  # every key once, in order
    last, last_keys = filters[-1]
    assert "Number eq 'O''Brien'" in last and "O'Brien" in last_keys
    first, first_keys = filters[0]
    assert first == " or ".join(f"Number eq {odata_string(k)}" for k in first_keys)


def test_odata_or_filters_max_keys_and_a_key_longer_than_the_limit():
    assert [k for _, k in odata_or_filters("N", ["a", "b", "c"], max_keys=2)] == [["a", "b"], ["c"]]
    long = "x" * 300
    assert list(odata_or_filters("N", [long, "y"], max_length=50)) == [(f"N eq '{long}'", [long]), ("N eq 'y'", ["y"])]


# --- errors ----------------------------------------------------------------------------------------


def answer(status, body=None, *, url="https://api.example.com/v1/items?x=1", headers=None, text=None):
    request = httpx.Request("GET", url)
    if text is not None:
        return httpx.Response(status, text=text, request=request, headers=headers)
    return httpx.Response(status, json=body, request=request, headers=headers)


@pytest.mark.parametrize(
    "status, kind",
    [(401, AuthError), (403, AuthError), (429, RateLimited), (500, RetryableError), (503, RetryableError), (408, RetryableError),
     (400, RecordError), (409, RecordError), (422, RecordError), (404, RecordError)],
)
def test_classify_by_status(status, kind):
    error = classify(answer(status, {"message": "the vendor says why"}), "item 7")
    assert type(error) is kind and "item 7: the vendor says why" in str(error) and error.status == status


def test_classify_success_and_404_as_the_caller_says():
    assert classify(answer(200, {}), "x") is None
    assert classify(answer(404, {}), "item 7", not_found="none") is None
    error = classify(answer(404, {"message": "Not found"}), "products", not_found="config")
    assert isinstance(error, FatalError)
    assert "https://api.example.com/v1/items" in str(error) and "base_url" in str(error) and "x=1" not in str(error)
    with pytest.raises(FatalError, match="base_url"):
        raise_for_response(answer(404, None, text="nope"), "products", not_found="config")
    raise_for_response(answer(204, None, text=""), "x")  # a success raises nothing


def test_classify_rate_limited_reads_retry_after():
    error = classify(answer(429, {"message": "slow down"}, headers={"Retry-After": "17"}), "x")
    assert isinstance(error, RateLimited) and error.retry_after == 17


@pytest.mark.parametrize(
    "body, message, code",
    [
        ({"ErrorCode": 2000, "DeveloperErrorMessage": "Name: too long"}, "Name: too long", "2000"),
        ({"code": "404.20", "developermessage": "Invalid resource name"}, "Invalid resource name", "404.20"),
        ({"error": {"code": "", "message": {"lang": "en-US", "value": "Item code exists"}}}, "Item code exists", None),
        ({"error": {"code": "BadRequest", "message": "bad filter"}}, "bad filter", "BadRequest"),
        ({"Fault": {"Error": [{"Message": "Duplicate Name", "Detail": "The name supplied already exists", "code": "6240"}]}},
         "Duplicate Name: The name supplied already exists", "6240"),
        ({"errors": [{"message": "Property email is invalid", "code": "INVALID_EMAIL"}], "message": "Validation"},
         "Property email is invalid", "INVALID_EMAIL"),
        ({"error": "invalid_grant", "error_description": "expired"}, "expired", None),
        ({"error": "invalid_grant"}, "invalid_grant", None),
    ],
)
def test_vendor_message_shapes(body, message, code):
    assert vendor_message(answer(400, body)) == (message, code)


def test_vendor_message_of_a_body_that_is_not_json():
    assert vendor_message(answer(502, None, text="<html>Bad gateway</html>")) == ("<html>Bad gateway</html>", None)
    assert vendor_message(answer(503, None, text="")) == ("Service Unavailable", None)


# --- OAuth2 ----------------------------------------------------------------------------------------

TOKEN_URL = "https://id.example.com/connect/token"


def test_authorize_url():
    url = authorize_url(
        "https://id.example.com/connect/authorize", client_id="cid", redirect_uri="http://127.0.0.1:8765/cb",
        scopes=["ea:api", "offline_access"], state="s1", extra={"prompt": "consent"},
    )
    assert url == (
        "https://id.example.com/connect/authorize?client_id=cid&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcb"
        "&response_type=code&scope=ea%3Aapi+offline_access&state=s1&prompt=consent"
    )
    assert authorize_url("https://a/auth?tenant=1", client_id="c", redirect_uri="r", scopes=[], state="s").startswith(
        "https://a/auth?tenant=1&client_id=c"
    )


async def test_exchange_code_returns_the_token_set():
    with respx.mock() as router:
        route = router.post(TOKEN_URL).mock(
            return_value=httpx.Response(200, json={"access_token": "acc-1", "refresh_token": "ref-1", "expires_in": 600})
        )
        tokens = await exchange_code(
            TOKEN_URL, client_id="cid", client_secret="sec", code="C0DE", redirect_uri="http://r/cb", clock=lambda: 1000.0
        )
    assert tokens == {"access_token": "acc-1", "refresh_token": "ref-1", "expires_at": 1600.0, "expires_in": 600.0, "token_type": "Bearer"}
    sent = route.calls[0].request
    assert b"grant_type=authorization_code" in sent.content and b"code=C0DE" in sent.content
    assert sent.headers["Authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    "response, kind, text",
    [
        (httpx.Response(400, json={"error": "invalid_grant"}), AuthError, "refused the code: HTTP 400"),
        (httpx.Response(200, json={"access_token": "a"}), FatalError, "no refresh_token"),
        (httpx.Response(200, text="<html>"), FatalError, "no refresh_token"),
        (httpx.ConnectError("connection refused"), RetryableError, "token request to https://id.example.com/connect/token failed"),
    ],
)
async def test_exchange_code_errors(response, kind, text):
    with respx.mock() as router:
        route = router.post(TOKEN_URL)
        if isinstance(response, Exception):
            route.mock(side_effect=response)
        else:
            route.mock(return_value=response)
        with pytest.raises(kind, match=text):
            await exchange_code(TOKEN_URL, client_id="cid", client_secret="sec", code="C", redirect_uri="r")


def test_oauth2_settings_mixin():
    class VendorSettings(OAuth2Settings):
        token_url: str = "https://id.example.com/connect/token"

    settings = VendorSettings(base_url="https://api.example.com", client_id="cid", client_secret="s3cret")
    assert settings.client_secret.get_secret_value() == "s3cret" and "s3cret" not in repr(settings)
    assert settings.refresh_token is None and settings.scopes is None and settings.authorize_url is None
    with pytest.raises(ValueError, match="token_url"):
        VendorSettings(base_url="https://api.example.com", client_id="cid", client_secret="s", token_url="not a url")


async def test_oauth2_settings_give_a_refresh_auth_on_the_connection_token_store():
    from apicenterd.testing import MemoryTokenStore

    class VendorSettings(OAuth2Settings):
        token_url: str = TOKEN_URL

    class Context:
        name = "acme"
        tokens = MemoryTokenStore()

    settings = VendorSettings(base_url="https://api.example.com", client_id="cid", client_secret="s3cret", refresh_token="boot-1")
    with respx.mock() as router:
        route = router.post(TOKEN_URL).mock(
            return_value=httpx.Response(200, json={"access_token": "acc-9", "refresh_token": "ref-2", "expires_in": 600})
        )
        async with httpx.AsyncClient() as token_client:
            auth = settings.refresh_auth(Context(), token_client)
            assert await auth.access_token() == "acc-9"
    assert b"refresh_token=boot-1" in route.calls[0].request.content
    assert (await Context.tokens.load())["refresh_token"] == "ref-2"  # rotated and kept


def test_not_found_by_path():
    assert not_found_by_path("/api/rest/v1/products/") == "config"
    assert not_found_by_path("orders/3/orderrows/?start=0") == "record"
    assert not_found_by_path("/v2/articles?$filter=Number eq '12'") == "config"  # the query is no path
    is_guid = lambda s: s.startswith("(guid'")  # noqa: E731
    assert not_found_by_path("/api/v1/123/logistics/Items", is_id=is_guid) == "config"  # 123 is the division
    assert not_found_by_path("/api/v1/123/logistics/Items(guid'ab')", is_id=lambda s: "(guid'" in s) == "record"


async def test_exchange_code_client_secret_post():
    with respx.mock() as router:
        route = router.post(TOKEN_URL).mock(
            return_value=httpx.Response(200, json={"access_token": "acc-1", "refresh_token": "ref-1", "expires_in": 1800})
        )
        await exchange_code(TOKEN_URL, client_id="cid", client_secret="sec", code="C0DE", redirect_uri="http://r/cb", client_auth="post")
    sent = route.calls[0].request
    assert b"client_id=cid" in sent.content and b"client_secret=sec" in sent.content
    assert "Authorization" not in sent.headers

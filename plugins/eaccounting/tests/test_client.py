"""The HTTP client against mocked eAccounting responses (respx): paging, errors, OAuth."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
import respx
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_eaccounting.client import EAccountingClient, cursor_of, endpoint_key, error_from, filter_since, odata_string

from apicenterd import AuthError, FatalError, RateLimited, RecordError, RetryableError
from apicenterd.testing import MemoryTokenStore, connect

API = "https://eaccountingapi.vismaonline.com"
TOKEN_URL = "https://identity.vismaonline.com/connect/token"
GUID = "0b6c1b7e-5a7a-4f5e-9a3b-2f1d3c4e5f60"
SETTINGS = {"client_id": "cid", "client_secret": "secret", "refresh_token": "rt-1"}

pytestmark = pytest.mark.anyio


def page(data, *, current, total, size=2):
    """An eAccounting list page."""
    return {
        "Meta": {"CurrentPage": current, "PageSize": size, "TotalNumberOfPages": total, "TotalNumberOfResults": len(data), "ServerTimeUtc": "2024-01-01T00:00:00Z"},
        "Data": data,
    }


def vendor_error(code, message):
    """eAccounting's error body."""
    return {"ErrorCode": code, "DeveloperErrorMessage": message, "ErrorId": "e1d2"}


@pytest.fixture
def client():
    """A client on the production base URL (mocked by respx)."""
    return EAccountingClient(httpx.AsyncClient(base_url=API), page_size=2)


def test_endpoint_key_collapses_ids():
    assert endpoint_key(httpx.Request("GET", f"{API}/v2/articles/{GUID}")) == "/v2/articles"
    assert endpoint_key(httpx.Request("PUT", f"{API}/v2/Customers/{GUID.upper()}/")) == "/v2/customers"
    assert endpoint_key(httpx.Request("GET", f"{API}/v2/articles?$page=3")) == "/v2/articles"
    assert endpoint_key(httpx.Request("GET", f"{API}/v2/units")) != endpoint_key(httpx.Request("GET", f"{API}/v2/articles"))


def test_odata_string_doubles_quotes():
    assert odata_string("O'Brien's") == "'O''Brien''s'"


def test_cursors_sort_like_times_and_filter_floors_to_the_second():
    assert cursor_of("2024-03-01T10:00:00.5") == "2024-03-01T10:00:00.500000Z"
    assert cursor_of("2024-03-01T11:00:00+01:00") == "2024-03-01T10:00:00.000000Z"
    assert cursor_of("2024-03-01T10:00:00.25Z") < cursor_of("2024-03-01T10:00:01Z")
    assert filter_since("2024-03-01T10:00:00.999000Z") == "ChangedUtc ge 2024-03-01T10:00:00Z"
    # the floor cursor a run leaves when it settled only changes read from the beginning
    assert filter_since("0001-01-01T00:00:00.000000Z") == "ChangedUtc ge 0001-01-01T00:00:00Z"


@respx.mock
async def test_paging_follows_total_number_of_pages(client):
    route = respx.get(f"{API}/v2/articles").mock(
        side_effect=[
            httpx.Response(200, json=page([{"Id": "1"}, {"Id": "2"}], current=1, total=3)),
            httpx.Response(200, json=page([{"Id": "3"}, {"Id": "4"}], current=2, total=3)),
            httpx.Response(200, json=page([{"Id": "5"}], current=3, total=3)),
        ]
    )
    items = await client.all("/v2/articles", what="articles", params={"$filter": "IsActive eq true"})
    assert [i["Id"] for i in items] == ["1", "2", "3", "4", "5"]
    sent = [call.request.url.params for call in route.calls]
    assert [(p["$page"], p["$pagesize"], p["$filter"]) for p in sent] == [("1", "2", "IsActive eq true"), ("2", "2", "IsActive eq true"), ("3", "2", "IsActive eq true")]


@respx.mock
async def test_matching_splits_keys_into_quoted_or_filters_and_keeps_exact_matches(client):
    def reply(request):
        expression = request.url.params["$filter"]
        numbers = [term.split(" eq ", 1)[1][1:-1].replace("''", "'") for term in expression.split(" or ")]
        data = [{"Id": n, "Number": n} for n in numbers if n != "MISSING"] + [{"Id": "x", "Number": "a-1"}]  # case-insensitive server
        return httpx.Response(200, json=page(data, current=1, total=1))

    route = respx.get(f"{API}/v2/articles").mock(side_effect=reply)
    keys = ["A-1", "O'Brien", "MISSING", "A-1", "B-2"]
    found = await client.matching("/v2/articles", "Number", keys, what="articles", max_keys=2)
    assert sorted(found) == ["A-1", "B-2", "O'Brien"] and found["A-1"]["Id"] == "A-1"
    filters = [call.request.url.params["$filter"] for call in route.calls]
    assert filters == ["Number eq 'A-1' or Number eq 'O''Brien'", "Number eq 'MISSING' or Number eq 'B-2'"]


@respx.mock
async def test_a_repeated_page_is_a_loop(client):
    respx.get(f"{API}/v2/articles").mock(return_value=httpx.Response(200, json=page([{"Id": "1"}, {"Id": "2"}], current=1, total=5)))
    with pytest.raises(FatalError, match="page 2 repeats page 1"):
        await client.all("/v2/articles", what="articles")


@respx.mock
async def test_an_empty_list_stops_at_once(client):
    route = respx.get(f"{API}/v2/articles").mock(return_value=httpx.Response(200, json=page([], current=1, total=0)))
    assert await client.all("/v2/articles", what="articles") == []
    assert route.call_count == 1


@respx.mock
@pytest.mark.parametrize(
    "body",
    [[{"Id": "1"}], {"Data": []}, {"Meta": {"CurrentPage": 1}, "Data": [1]}, {"Meta": {"CurrentPage": 1}, "Data": []}],
    ids=["list", "no-meta", "not-objects", "no-total"],
)
async def test_a_wrong_envelope_is_fatal(client, body):
    respx.get(f"{API}/v2/articles").mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(FatalError):
        await client.all("/v2/articles", what="articles")


@respx.mock
async def test_non_json_success_is_fatal(client):
    respx.get(f"{API}/v2/companysettings").mock(return_value=httpx.Response(200, text="<html>maintenance</html>"))
    with pytest.raises(FatalError, match="company settings: response is not JSON.*maintenance"):
        await client.get("/v2/companysettings", what="company settings")


@respx.mock
async def test_numbers_arrive_as_decimal(client):
    respx.get(f"{API}/v2/articles/{GUID}").mock(return_value=httpx.Response(200, text='{"Id":"x","NetPrice":0.1}'))
    article = await client.get_object(f"/v2/articles/{GUID}", what="article")
    assert article["NetPrice"] == Decimal("0.1")


@respx.mock
async def test_decimals_are_sent_as_json_numbers(client):
    route = respx.post(f"{API}/v2/articles").mock(return_value=httpx.Response(200, json={"Id": "x"}))
    await client.post("/v2/articles", {"NetPrice": Decimal("19.99")}, what="article")
    assert route.calls.last.request.content == b'{"NetPrice": 19.99}'


def failed(status, body=None, headers=None, text=None):
    """A failed response to GET /v2/articles."""
    request = httpx.Request("GET", f"{API}/v2/articles")
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


def test_429_parses_try_again_from_the_body():
    error = error_from(failed(429, vendor_error(4010, "API calls quota exceeded! maximum admitted 600 per Minute. Try again in 55 seconds.")), "articles")
    assert isinstance(error, RateLimited) and error.retry_after == 55 and error.vendor_code == "4010"
    assert "Try again in 55 seconds" in str(error)


def test_429_prefers_retry_after_header():
    error = error_from(failed(429, vendor_error(4010, "Try again in 55 seconds."), headers={"Retry-After": "7"}), "articles")
    assert error.retry_after == 7


def test_error_code_4010_is_rate_limited_even_without_429():
    error = error_from(failed(400, vendor_error(4010, "API calls quota exceeded!")), "articles")
    assert isinstance(error, RateLimited) and error.retry_after is None


def test_validation_error_names_the_field():
    error = error_from(failed(400, vendor_error(2000, "Name: The field Name must be a string with a maximum length of 50.")), "article 'ABC-1'")
    assert type(error) is RecordError and error.vendor_code == "2000"
    assert str(error).startswith("article 'ABC-1': eAccounting rejected Name (eAccounting error 2000: Name: The field")
    assert "ErrorId e1d2" in str(error)


def test_conflict_is_a_record_error():
    error = error_from(failed(400, vendor_error(4000, "Conflict - an article with Number 'A' already exists.")), "article 'A'")
    assert type(error) is RecordError and "already exists" in str(error)


@pytest.mark.parametrize(("status", "kind"), [(401, AuthError), (403, AuthError), (404, FatalError), (500, RetryableError), (503, RetryableError)])
def test_status_kinds(status, kind):
    assert type(error_from(failed(status, vendor_error(4005, "denied")), "articles")) is kind


def test_a_404_on_an_item_is_the_records_on_a_list_the_configurations():
    """A wrong base_url makes every list 404: that fails the run with one error naming the URL,
    instead of dead-lettering each record; a 404 on one article is that record's failure."""
    item = httpx.Response(404, json=vendor_error(4004, "not found"), request=httpx.Request("GET", f"{API}/v2/articles/{'1' * 8}-1111-1111-1111-{'1' * 12}"))
    assert type(error_from(item, "article")) is RecordError
    error = error_from(failed(404, text="Not Found"), "articles")
    assert type(error) is FatalError and f"{API}/v2/articles" in str(error) and "base_url" in str(error)
    singleton = httpx.Response(404, request=httpx.Request("GET", f"{API}/v2/companysettings"))
    assert type(error_from(singleton, "company settings")) is FatalError
    assert type(error_from(item, "article", not_found="config")) is FatalError  # the caller knows best


def test_a_non_json_5xx_is_still_retryable():
    error = error_from(failed(502, text="<html>Bad gateway</html>"), "articles")
    assert type(error) is RetryableError and "Bad gateway" in str(error)


class RecordingStore(MemoryTokenStore):
    """Remembers every saved token set, in order."""

    def __init__(self, tokens=None):
        super().__init__(tokens)
        self.history = []

    async def save(self, tokens):
        """Record, then keep, ``tokens``."""
        self.history.append(dict(tokens))
        await super().save(tokens)


def token_response(access, refresh, expires_in=3600):
    """A token endpoint answer."""
    return httpx.Response(200, json={"access_token": access, "refresh_token": refresh, "expires_in": expires_in, "token_type": "Bearer"})


@respx.mock
async def test_rotated_refresh_token_is_stored_before_the_access_token_is_used():
    store = RecordingStore()
    token = respx.post(TOKEN_URL).mock(return_value=token_response("at-1", "rt-2"))

    def settings_call(request):
        """The API side: checks the rotated token is durable before the new access token arrives."""
        # by the time the API sees the new access token, the rotated refresh token is durable
        assert request.headers["Authorization"] == "Bearer at-1"
        assert store.tokens["refresh_token"] == "rt-2"
        return httpx.Response(200, json={"Name": "Acme", "CurrencyCode": "EUR"})

    respx.get(f"{API}/v2/companysettings").mock(side_effect=settings_call)
    async with connect(EAccountingConnector, SETTINGS, tokens=store) as connector:
        await connector.check()
    form = httpx.QueryParams(token.calls.last.request.content.decode())
    assert (form["grant_type"], form["refresh_token"]) == ("refresh_token", "rt-1")
    assert token.calls.last.request.headers["Authorization"].startswith("Basic ")  # client_secret_basic
    assert [t["refresh_token"] for t in store.history] == ["rt-2"]


@respx.mock
async def test_a_401_refreshes_once_then_is_an_auth_error():
    store = MemoryTokenStore({"access_token": "old", "refresh_token": "rt-5", "expires_at": 9e12})
    respx.post(TOKEN_URL).mock(return_value=token_response("at-6", "rt-6"))
    api = respx.get(f"{API}/v2/companysettings").mock(
        return_value=httpx.Response(401, json=vendor_error(4005, "AuthorizationException - Authorization has been denied for this request."))
    )
    async with connect(EAccountingConnector, SETTINGS, tokens=store) as connector:
        with pytest.raises(AuthError, match="Authorization has been denied"):
            await connector.check()
    assert [c.request.headers["Authorization"] for c in api.calls] == ["Bearer old", "Bearer at-6"]
    assert store.tokens["refresh_token"] == "rt-6"


@respx.mock
async def test_a_rejected_refresh_token_is_an_auth_error():
    respx.post(TOKEN_URL).mock(return_value=httpx.Response(400, json={"error": "invalid_grant"}))
    api = respx.get(f"{API}/v2/companysettings").mock(return_value=httpx.Response(200, json={"Name": "x"}))
    async with connect(EAccountingConnector, SETTINGS) as connector:
        with pytest.raises(AuthError, match="invalid_grant"):
            await connector.check()
    assert api.call_count == 0

"""oauth: refresh-token rotation that is durable before use, single flight, 401 retry, clear auth errors."""

from __future__ import annotations

import urllib.parse

import anyio
import httpx
import pytest
import respx

from apicenterd import AuthError, FatalError, OAuth2RefreshAuth, RetryableError
from apicenterd.oauth import EXPIRY_MARGIN, expiry_margin

pytestmark = pytest.mark.anyio

TOKEN_URL = "https://identity.example/connect/token"
API = "https://api.example"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingStore:
    """A TokenStore that logs each save into the shared event list; can be told to fail."""

    def __init__(self, events: list, tokens: dict | None = None):
        self.events = events
        self.tokens = dict(tokens) if tokens else None
        self.fail = 0

    async def load(self):
        return dict(self.tokens) if self.tokens else None

    async def save(self, tokens):
        await anyio.lowlevel.checkpoint()
        if self.fail:
            self.fail -= 1
            self.events.append(("save-failed", tokens["refresh_token"]))
            raise OSError("disk full")
        self.tokens = dict(tokens)
        self.events.append(("save", tokens["access_token"], tokens["refresh_token"]))


class Vendor:
    """The token endpoint: rotates refresh tokens, retires the old one, and logs calls."""

    def __init__(self, events: list, valid_refresh: str = "r0"):
        self.events = events
        self.valid = {valid_refresh}
        self.n = 0
        self.used: list[str] = []
        self.lifetime = 3600  # expires_in of the access tokens it hands out

    def token(self, request: httpx.Request) -> httpx.Response:
        form = dict(urllib.parse.parse_qsl(request.content.decode()))
        assert form["grant_type"] == "refresh_token"
        assert request.headers["Authorization"].startswith("Basic ")
        self.used.append(form["refresh_token"])
        if form["refresh_token"] not in self.valid:
            self.events.append(("refresh-rejected", form["refresh_token"]))
            return httpx.Response(400, json={"error": "invalid_grant"})
        self.valid.discard(form["refresh_token"])
        self.n += 1
        new = f"r{self.n}"
        self.valid.add(new)
        self.events.append(("refresh", form["refresh_token"]))
        return httpx.Response(
            200, json={"access_token": f"a{self.n}", "refresh_token": new, "expires_in": self.lifetime, "token_type": "Bearer"}
        )


@pytest.fixture
def events():
    return []


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def vendor(events):
    return Vendor(events)


@pytest.fixture
def mock(vendor, events):
    with respx.mock(assert_all_called=False) as router:
        router.post(TOKEN_URL).mock(side_effect=vendor.token)

        def api(request):
            events.append(("api", request.headers.get("Authorization")))
            return httpx.Response(200, json={"ok": True})

        router.route(host="api.example").mock(side_effect=api)
        yield router


def make_auth(store, clock, **kw) -> tuple[OAuth2RefreshAuth, httpx.AsyncClient]:
    token_client = httpx.AsyncClient()
    auth = OAuth2RefreshAuth(
        token_client=token_client,
        token_url=TOKEN_URL,
        client_id="cid",
        client_secret="csecret",
        tokens=store,
        initial_refresh_token=kw.pop("initial", "r0"),
        connection="eacc",
        clock=clock,
        **kw,
    )
    return auth, httpx.AsyncClient(base_url=API, auth=auth)


async def test_refresh_when_no_token_saves_before_use(mock, events, clock):
    store = RecordingStore(events)
    auth, client = make_auth(store, clock)
    async with client:
        assert (await client.get("/v2/articles")).status_code == 200
    assert events == [("refresh", "r0"), ("save", "a1", "r1"), ("api", "Bearer a1")]
    assert store.tokens["expires_at"] == clock.now + 3600


async def test_valid_token_from_store_is_used_without_refresh(mock, events, clock, vendor):
    store = RecordingStore(events, {"access_token": "stored", "refresh_token": "r0", "expires_at": clock.now + 600})
    _, client = make_auth(store, clock)
    async with client:
        await client.get("/x")
        await client.get("/y")
    assert events == [("api", "Bearer stored"), ("api", "Bearer stored")]
    assert vendor.n == 0


@pytest.mark.parametrize("left", [-10, 0, EXPIRY_MARGIN - 1])
async def test_expired_or_nearly_expired_token_is_refreshed(mock, events, clock, left):
    store = RecordingStore(events, {"access_token": "old", "refresh_token": "r0", "expires_at": clock.now + left})
    _, client = make_auth(store, clock, initial="unused")
    async with client:
        await client.get("/x")
    assert events == [("refresh", "r0"), ("save", "a1", "r1"), ("api", "Bearer a1")]


async def test_rotation_uses_the_newest_refresh_token(mock, events, clock, vendor):
    store = RecordingStore(events)
    _, client = make_auth(store, clock)
    async with client:
        for _ in range(4):
            await client.get("/x")
            clock.now += 3600  # expired again
    assert vendor.used == ["r0", "r1", "r2", "r3"]
    assert store.tokens["refresh_token"] == "r4"
    # every save came before the API saw that access token
    for i, event in enumerate(events):
        if event[0] == "api":
            token = event[1].removeprefix("Bearer ")
            assert ("save", token, f"r{token[1:]}") in events[:i]


async def test_restart_picks_up_the_rotated_token_from_the_store(mock, events, clock, vendor):
    store = RecordingStore(events)
    _, client = make_auth(store, clock)
    async with client:
        await client.get("/x")
    clock.now += 7200
    _, again = make_auth(store, clock, initial="r0")  # the configured (bootstrap) token is stale by now
    async with again:
        await again.get("/x")
    assert vendor.used == ["r0", "r1"]


async def test_single_flight(mock, events, clock, vendor):
    store = RecordingStore(events)
    _, client = make_auth(store, clock)
    async with client, anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(client.get, f"/x/{i}")
    assert vendor.n == 1
    assert [e for e in events if e[0] == "api"] == [("api", "Bearer a1")] * 20
    assert events.index(("save", "a1", "r1")) < events.index(("api", "Bearer a1"))


async def test_401_forces_one_refresh_and_retries(events, clock, vendor):
    store = RecordingStore(events, {"access_token": "revoked", "refresh_token": "r0", "expires_at": clock.now + 3600})
    with respx.mock() as router:
        router.post(TOKEN_URL).mock(side_effect=vendor.token)

        def api(request):
            auth = request.headers["Authorization"]
            events.append(("api", auth))
            return httpx.Response(401 if auth == "Bearer revoked" else 200)

        router.get(f"{API}/x").mock(side_effect=api)
        _, client = make_auth(store, clock)
        async with client:
            assert (await client.get("/x")).status_code == 200
    assert events == [
        ("api", "Bearer revoked"),
        ("refresh", "r0"),
        ("save", "a1", "r1"),
        ("api", "Bearer a1"),
    ]


async def test_401_after_refresh_is_returned_not_looped(events, clock, vendor):
    store = RecordingStore(events)
    with respx.mock() as router:
        router.post(TOKEN_URL).mock(side_effect=vendor.token)
        api = router.get(f"{API}/x").mock(return_value=httpx.Response(401))
        _, client = make_auth(store, clock)
        async with client:
            assert (await client.get("/x")).status_code == 401
    assert api.call_count == 2
    assert vendor.n == 2  # the first token, and one forced refresh — no more


async def test_concurrent_401s_share_one_forced_refresh(events, clock, vendor):
    store = RecordingStore(events, {"access_token": "revoked", "refresh_token": "r0", "expires_at": clock.now + 3600})
    with respx.mock() as router:
        router.post(TOKEN_URL).mock(side_effect=vendor.token)
        router.get(url__startswith=f"{API}/x").mock(
            side_effect=lambda r: httpx.Response(401 if r.headers["Authorization"] == "Bearer revoked" else 200)
        )
        _, client = make_auth(store, clock)
        codes = []

        async def get(i):
            codes.append((await client.get(f"/x/{i}")).status_code)

        async with client, anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(get, i)
    assert codes == [200] * 10
    assert vendor.n == 1


async def test_no_401_retry_when_turned_off(events, clock, vendor):
    store = RecordingStore(events)
    with respx.mock() as router:
        router.post(TOKEN_URL).mock(side_effect=vendor.token)
        api = router.get(f"{API}/x").mock(return_value=httpx.Response(401))
        _, client = make_auth(store, clock, refresh_on_401=False)
        async with client:
            assert (await client.get("/x")).status_code == 401
    assert api.call_count == 1 and vendor.n == 1


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(400, json={"error": "invalid_grant", "error_description": "expired"}),
        httpx.Response(401, json={"error": "invalid_client"}),
        httpx.Response(400, json=["not", "an", "object"]),
        httpx.Response(400, text="<html>Bad Request</html>"),
    ],
)
async def test_rejected_refresh_tells_to_reauthorise(events, clock, answer):
    store = RecordingStore(events)
    with respx.mock(assert_all_called=False) as router:
        router.post(TOKEN_URL).mock(return_value=answer)
        api = router.get(f"{API}/x").mock(return_value=httpx.Response(200))
        _, client = make_auth(store, clock)
        async with client:
            with pytest.raises(AuthError) as info:
                await client.get("/x")
    message = str(info.value)
    assert "connection 'eacc'" in message and "`apicenterd auth eacc`" in message
    assert info.value.status == answer.status_code
    assert not api.called and store.tokens is None


async def test_no_refresh_token_at_all(events, clock):
    with respx.mock(assert_all_called=False) as router:
        token = router.post(TOKEN_URL).mock(return_value=httpx.Response(200))
        _, client = make_auth(RecordingStore(events), clock, initial=None)
        async with client:
            with pytest.raises(AuthError, match=r"connection 'eacc' has no refresh token.*`apicenterd auth eacc`"):
                await client.get("/x")
    assert not token.called


async def test_refresh_server_error_is_retryable(events, clock):
    with respx.mock() as router:
        router.post(TOKEN_URL).mock(return_value=httpx.Response(503))
        _, client = make_auth(RecordingStore(events), clock)
        async with client:
            with pytest.raises(RetryableError, match="token refresh failed"):
                await client.get("/x")


@pytest.mark.parametrize("status", [404, 405])
async def test_a_token_url_that_is_not_a_token_endpoint_fails_the_run_not_each_record(events, clock, status):
    """A wrong token_url is the configuration's failure: FatalError naming the URL, never a
    RecordError that would dead-letter every record."""
    with respx.mock() as router:
        router.post(TOKEN_URL).mock(return_value=httpx.Response(status, text="Not here"))
        _, client = make_auth(RecordingStore(events), clock)
        async with client:
            with pytest.raises(FatalError, match="token refresh failed") as caught:
                await client.get("/x")
    assert TOKEN_URL in str(caught.value) and "token_url" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [{"token_type": "Bearer"}, {"access_token": ""}, {"access_token": "a", "expires_in": "soon"}, ["a"]],
)
async def test_unusable_token_response_is_fatal(events, clock, body):
    store = RecordingStore(events)
    with respx.mock() as router:
        router.post(TOKEN_URL).mock(return_value=httpx.Response(200, json=body))
        _, client = make_auth(store, clock)
        async with client:
            with pytest.raises(FatalError, match="connection 'eacc': token response"):
                await client.get("/x")
    assert store.tokens is None


async def test_null_expires_in_means_an_hour(events, clock):
    store = RecordingStore(events)
    with respx.mock() as router:
        router.post(TOKEN_URL).mock(
            return_value=httpx.Response(200, json={"access_token": "a", "refresh_token": "r", "expires_in": None})
        )
        router.get(f"{API}/x").mock(return_value=httpx.Response(200))
        _, client = make_auth(store, clock)
        async with client:
            await client.get("/x")
    assert store.tokens["expires_at"] == clock.now + 3600


async def test_vendor_that_does_not_rotate_keeps_the_refresh_token(events, clock):
    store = RecordingStore(events)
    with respx.mock() as router:
        router.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "a", "expires_in": 60 * 60}))
        router.get(f"{API}/x").mock(return_value=httpx.Response(200))
        _, client = make_auth(store, clock)
        async with client:
            await client.get("/x")
    assert store.tokens["refresh_token"] == "r0"


async def test_failed_save_is_retryable_and_the_token_is_not_used(mock, events, clock, vendor):
    store = RecordingStore(events)
    store.fail = 1
    _, client = make_auth(store, clock)
    async with client:
        with pytest.raises(RetryableError, match="connection 'eacc': could not persist rotated tokens: disk full"):
            await client.get("/x")
        assert events == [("refresh", "r0"), ("save-failed", "r1")]  # the API was never called
        # the next request saves that same token set (r0 is spent at the vendor) and then uses it
        assert (await client.get("/x")).status_code == 200
    assert vendor.used == ["r0"]
    assert events[2:] == [("save", "a1", "r1"), ("api", "Bearer a1")]
    assert store.tokens["refresh_token"] == "r1"


async def test_save_failing_again_still_never_uses_the_token(mock, events, clock, vendor):
    store = RecordingStore(events)
    store.fail = 2
    _, client = make_auth(store, clock)
    async with client:
        for _ in range(2):
            with pytest.raises(RetryableError):
                await client.get("/x")
    assert [e[0] for e in events] == ["refresh", "save-failed", "save-failed"]
    assert vendor.used == ["r0"]


# --- the refresh margin is a share of a short token's lifetime -----------------------------------------


@pytest.mark.parametrize(
    "tokens, margin",
    [
        ({"expires_in": 3600}, EXPIRY_MARGIN),
        ({"expires_in": 300}, EXPIRY_MARGIN),
        ({"expires_in": 30}, 6.0),
        ({"expires_in": 5}, 1.0),
        ({}, EXPIRY_MARGIN),  # saved before the lifetime was kept, or by `apicenterd auth`
        ({"expires_in": None}, EXPIRY_MARGIN),
        ({"expires_in": "soon"}, EXPIRY_MARGIN),
        ({"expires_in": float("inf")}, EXPIRY_MARGIN),
        ({"expires_in": -30}, EXPIRY_MARGIN),
    ],
)
def test_expiry_margin_is_a_share_of_a_short_lifetime(tokens, margin):
    assert expiry_margin(tokens) == pytest.approx(margin)


async def test_a_30s_token_is_used_for_most_of_its_life_not_refreshed_before_every_call(mock, events, clock, vendor):
    vendor.lifetime = 30
    store = RecordingStore(events)
    _, client = make_auth(store, clock)
    async with client:
        for _ in range(24):  # one call a second through the first 24 s of the token's 30
            await client.get("/x")
            clock.now += 1
        assert vendor.n == 1
        assert [e for e in events if e[0] == "api"] == [("api", "Bearer a1")] * 24
        await client.get("/x")  # 6 s (20 %) before its expiry: refreshed
    assert vendor.n == 2 and events[-1] == ("api", "Bearer a2")
    assert store.tokens["expires_in"] == 30  # kept with the tokens: a restart refreshes the same way


async def test_a_short_lived_token_from_the_store_is_used_until_its_margin(mock, events, clock, vendor):
    store = RecordingStore(events, {"access_token": "stored", "refresh_token": "r0", "expires_at": clock.now + 10, "expires_in": 30})
    _, client = make_auth(store, clock)
    async with client:
        await client.get("/x")  # 10 s left of 30: more than the 6 s margin
        clock.now += 5  # 5 s left: refresh
        await client.get("/x")
    assert events == [("api", "Bearer stored"), ("refresh", "r0"), ("save", "a1", "r1"), ("api", "Bearer a1")]


async def test_every_token_learned_is_redacted_from_errors_and_logs(events, clock):
    """Tokens loaded from the store and issued by a refresh are known to the redactor before use:
    a vendor error that echoes the Authorization header carries no live token."""
    import uuid

    from apicenterd.errors import RecordError
    from apicenterd.observe.logs import redactor

    stored = {"access_token": f"stored-{uuid.uuid4().hex}", "refresh_token": f"old-{uuid.uuid4().hex}", "expires_at": 0}
    issued = {"access_token": f"issued-{uuid.uuid4().hex}", "refresh_token": f"new-{uuid.uuid4().hex}"}
    with respx.mock(assert_all_called=False) as router:
        router.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={**issued, "expires_in": 3600}))
        router.get(f"{API}/thing").mock(
            side_effect=lambda request: httpx.Response(400, text=f"bad request; Authorization: {request.headers['Authorization']}")
        )
        auth, client = make_auth(RecordingStore(events, stored), clock)
        async with client:
            response = await client.get("/thing")
    assert issued["access_token"] in response.text  # the vendor did echo it
    for token in (*stored.values(), *issued.values()):
        if isinstance(token, str):
            assert redactor.scrub(f"x {token} y") == "x [redacted] y"
    error = RecordError(f"vendor: {response.text}")
    assert issued["access_token"] not in str(error)


@respx.mock
async def test_client_auth_post_and_a_fixed_margin():
    """client_auth="post" sends the client id and secret as form fields, no Basic header (Exact
    Online); margin=30 keeps a 600-second token until 30 seconds before its end."""
    clock = Clock()
    seen: list[httpx.Request] = []

    def token(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": f"a{len(seen)}", "refresh_token": f"r{len(seen)}", "expires_in": 600})

    respx.post(TOKEN_URL).mock(side_effect=token)
    store = RecordingStore([], {"access_token": "", "refresh_token": "r0", "expires_at": 0})
    async with httpx.AsyncClient() as client:
        auth = OAuth2RefreshAuth(
            token_client=client, token_url=TOKEN_URL, client_id="cid", client_secret="sec", tokens=store,
            clock=clock, client_auth="post", margin=30.0,
        )
        assert await auth.access_token() == "a1"
        form = urllib.parse.parse_qs(seen[0].content.decode())
        assert form["client_id"] == ["cid"] and form["client_secret"] == ["sec"] and form["refresh_token"] == ["r0"]
        assert "Authorization" not in seen[0].headers
        clock.now += 569  # 9.5 minutes: still the same token
        assert await auth.access_token() == "a1"
        clock.now += 2
        assert await auth.access_token() == "a2"
    with pytest.raises(ValueError, match="client_auth"):
        OAuth2RefreshAuth(token_client=client, token_url=TOKEN_URL, client_id="c", client_secret="s", tokens=store, client_auth="x")
    with pytest.raises(ValueError, match="margin"):
        OAuth2RefreshAuth(token_client=client, token_url=TOKEN_URL, client_id="c", client_secret="s", tokens=store, margin=-1)


@respx.mock
async def test_exchange_code_with_client_auth_post():
    from apicenterd.kit import exchange_code

    route = respx.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "a", "refresh_token": "r", "expires_in": 600}))
    tokens = await exchange_code(TOKEN_URL, client_id="cid", client_secret="sec", code="c1", redirect_uri="https://x/cb", client_auth="post")
    assert tokens["refresh_token"] == "r"
    form = urllib.parse.parse_qs(route.calls[0].request.content.decode())
    assert form["client_id"] == ["cid"] and form["client_secret"] == ["sec"] and form["code"] == ["c1"]
    assert "Authorization" not in route.calls[0].request.headers
    with pytest.raises(ValueError, match="client_auth"):
        await exchange_code(TOKEN_URL, client_id="c", client_secret="s", code="c", redirect_uri="u", client_auth="bearer")


async def test_client_secret_post_sends_the_credentials_as_form_fields(events, clock):
    store = RecordingStore(events)
    with respx.mock() as router:
        token = router.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "a", "expires_in": 1800}))
        router.get(f"{API}/x").mock(return_value=httpx.Response(200))
        _, client = make_auth(store, clock, client_auth="post")
        async with client:
            await client.get("/x")
    sent = token.calls[0].request
    form = dict(urllib.parse.parse_qsl(sent.content.decode()))
    assert form == {"grant_type": "refresh_token", "refresh_token": "r0", "client_id": "cid", "client_secret": "csecret"}
    assert "Authorization" not in sent.headers


async def test_a_401_is_no_refresh_signal_when_told_so(events, clock):
    store = RecordingStore(events, {"access_token": "a0", "refresh_token": "r0", "expires_at": clock.now + 1800, "expires_in": 1800})
    with respx.mock(assert_all_called=False) as router:
        token = router.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "a1", "expires_in": 1800}))
        router.get(f"{API}/x").mock(return_value=httpx.Response(401))
        _, client = make_auth(store, clock, refresh_on_401=False)
        async with client:
            assert (await client.get("/x")).status_code == 401
    assert token.calls.call_count == 0

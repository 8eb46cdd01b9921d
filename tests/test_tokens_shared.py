"""Several daemons share a connection's rotating OAuth tokens through the PostgreSQL state: one refreshes
at a time (an advisory lock per connection), and every one uses the newest set; none spends a refresh
token the vendor already retired."""

from __future__ import annotations

import itertools
import time
import urllib.parse

import anyio
import httpx
import pg_support
import pytest

from apicenterd import OAuth2RefreshAuth
from apicenterd.state.postgres import PostgresStore
from apicenterd.tokenstore import StateTokenStore

pytestmark = pytest.mark.anyio

TOKEN_URL = "https://identity.example/connect/token"


@pytest.fixture
def anyio_backend():
    return "asyncio"


class RotatingVendor:
    """A token endpoint that rotates the refresh token on every refresh and rejects a retired one; each
    refresh takes a moment (so that two daemons refreshing at once would overlap)."""

    def __init__(self):
        self.valid_refresh = "r0"
        self.numbers = itertools.count(1)
        self.refreshes: list[str] = []
        self.rejected: list[str] = []
        self.in_flight = 0
        self.overlapped = False

    async def handler(self, request: httpx.Request) -> httpx.Response:
        form = dict(urllib.parse.parse_qsl(request.content.decode()))
        self.in_flight += 1
        self.overlapped |= self.in_flight > 1
        try:
            await anyio.sleep(0.2)
            if form.get("refresh_token") != self.valid_refresh:
                self.rejected.append(form.get("refresh_token", ""))
                return httpx.Response(400, json={"error": "invalid_grant"})
            n = next(self.numbers)
            self.valid_refresh = f"r{n}"
            self.refreshes.append(f"a{n}")
            return httpx.Response(200, json={"access_token": f"a{n}", "refresh_token": f"r{n}", "expires_in": 3600})
        finally:
            self.in_flight -= 1


@pytest.fixture
async def daemons():
    """Two stores on one schema, as two daemons have (each its own pool)."""
    url, schema = pg_support.server_url(), pg_support.new_schema()
    stores = [PostgresStore(url, schema=schema), PostgresStore(url, schema=schema)]
    for store in stores:
        await store.open()
    try:
        yield stores
    finally:
        for store in stores:
            await store.close()
        pg_support.drop_schema(url, schema)


def _auth(store, vendor, clock) -> OAuth2RefreshAuth:
    client = httpx.AsyncClient(transport=httpx.MockTransport(vendor.handler))
    return OAuth2RefreshAuth(
        token_client=client,
        token_url=TOKEN_URL,
        client_id="id",
        client_secret="secret",
        tokens=StateTokenStore(store, "eaccounting"),
        initial_refresh_token="r0",
        connection="eaccounting",
        clock=clock,
    )


async def test_two_daemons_refresh_one_at_a_time_and_both_use_the_newest_tokens(daemons):
    vendor = RotatingVendor()
    now = [time.time()]
    a, b = (_auth(store, vendor, lambda: now[0]) for store in daemons)
    assert StateTokenStore(daemons[0], "eaccounting").shared

    # both start with no token at the same moment: one refreshes, the other takes its set
    tokens: dict[str, str] = {}

    async def ask(name, auth):
        tokens[name] = await auth.access_token()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, "a", a)
        tg.start_soon(ask, "b", b)
    assert vendor.refreshes == ["a1"] and vendor.rejected == []
    assert tokens == {"a": "a1", "b": "a1"}

    # the tokens expire; daemon a refreshes first (r1 -> r2), then b, holding r1 in memory, needs one:
    # it reads a's newer set instead of spending the retired r1
    now[0] += 7200
    assert await a.access_token() == "a2"
    assert await b.access_token() == "a2"
    assert vendor.refreshes == ["a1", "a2"] and vendor.rejected == []

    # the vendor says 401 to a2 on both at once: one refresh, both use its token
    now[0] += 1
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: a.access_token(force=True, stale="a2"))
        tg.start_soon(lambda: b.access_token(force=True, stale="a2"))
    assert vendor.refreshes == ["a1", "a2", "a3"] and vendor.rejected == []
    assert await a.access_token() == await b.access_token() == "a3"
    assert not vendor.overlapped  # never two refreshes in flight
    assert (await daemons[1].load_tokens("eaccounting"))["refresh_token"] == "r3"


async def test_a_store_of_one_process_takes_no_shared_lock(tmp_path):
    from apicenterd.state import SQLiteStore

    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        tokens = StateTokenStore(store, "eaccounting")
        assert not tokens.shared
        async with tokens.exclusive():
            pass
    finally:
        await store.close()

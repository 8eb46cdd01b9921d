"""The simulator toolkit (apicenterd.testing.sim): a tiny vendor built on it, gate by gate."""

from __future__ import annotations

import base64
import random
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from apicenterd.testing import Faults, with_faults
from apicenterd.testing.sim import (
    BearerAuth,
    ChangeClock,
    Collection,
    GuidIds,
    IntIds,
    RateLimitGate,
    TokenServer,
    VendorError,
    VendorSim,
    cursor_page,
    int_param,
    json_response,
    odata_page,
    offset_page,
    page_number,
    read_json,
    retry_after,
    seeded,
)

pytestmark = pytest.mark.anyio

BASIC = "Basic " + base64.b64encode(b"cid:secret").decode()


class ShopSim(VendorSim):
    """A vendor with OAuth, a per-path limit of ``limit`` calls, products with unique SKUs."""

    def __init__(self, *, limit: int = 100, now: list[float] | None = None):
        super().__init__()
        clock = (lambda: now[0]) if now is not None else None
        self.oauth = TokenServer("cid", "secret", signing_key=b"k", ttl=60, scope="shop", **({"clock": clock} if clock else {}))
        self.limit = RateLimitGate(
            limit,
            60.0,
            lambda wait, gate: VendorError(429, "LIMIT", f"max {gate.limit}", headers={"Retry-After": retry_after(wait)}),
            key=lambda request: request.url.path,
        )
        self.gates = [BearerAuth(self.oauth.valid, lambda: VendorError(401, "AUTH", "bad token")), self.limit, self.fault_gate]
        conflict = lambda field, value: VendorError(400, "DUP", f"{field} {value} exists")  # noqa: E731
        self.products = Collection(IntIds(100), unique=("sku",), conflict=conflict)

    def error_response(self, exc: VendorError) -> Response:
        return json_response({"error": {"code": exc.code, "text": exc.message}}, exc.status, exc.headers)


async def products(sim: ShopSim, request: Request) -> Response:
    if request.method == "POST":
        body = await read_json(request, lambda: VendorError(400, "JSON", "not JSON"))
        sim.products.check_unique("sku", body.get("sku"))
        return json_response(sim.products.add(body, id_field="id"), 201)
    start = int_param(request.query_params, "start", 0, lambda m: VendorError(400, "PARAM", m))
    page = offset_page(list(sim.products.values()), str(request.url), start, 2)
    return json_response({"items": page.items, "next": page.next})


def make_app(**options) -> Starlette:
    sim = ShopSim(**options)
    app = Starlette(routes=[Route("/token", sim.oauth.endpoint, methods=["POST"]), Route("/v1/products", sim.api(products), methods=["GET", "POST"])])
    app.state.sim = sim
    return app


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test")


async def token(http: httpx.AsyncClient, refresh: str) -> httpx.Response:
    return await http.post("/token", content=f"grant_type=refresh_token&refresh_token={refresh}", headers={"Authorization": BASIC})


async def bearer(http: httpx.AsyncClient, sim: ShopSim) -> dict[str, str]:
    """The Authorization header with an access token got with the demo refresh token."""
    access = (await token(http, sim.oauth.demo_refresh_token())).json()["access_token"]
    return {"Authorization": f"Bearer {access}"}


async def test_the_token_endpoint_rotates_refresh_tokens_and_checks_the_client():
    app = make_app()
    sim = app.state.sim
    async with client(app) as http:
        first = await token(http, sim.oauth.demo_refresh_token())
        assert first.status_code == 200 and first.json()["scope"] == "shop" and first.json()["expires_in"] == 60
        again = await token(http, sim.oauth.demo_refresh_token())  # used once already
        assert again.status_code == 400 and again.json() == {"error": "invalid_grant"}
        rotated = await token(http, first.json()["refresh_token"])
        assert rotated.status_code == 200
        forged = await token(http, "rt.demo.0000")
        assert forged.status_code == 400
        wrong = await http.post("/token", content="grant_type=refresh_token&refresh_token=x", headers={"Authorization": "Basic eDp5"})
        assert wrong.status_code == 401 and wrong.json() == {"error": "invalid_client"}
        code = sim.oauth.issue_code()
        by_code = await http.post("/token", content=f"grant_type=authorization_code&code={code}", headers={"Authorization": BASIC})
        assert by_code.status_code == 200
        reused = await http.post("/token", content=f"grant_type=authorization_code&code={code}", headers={"Authorization": BASIC})
        assert reused.status_code == 400
    assert sim.oauth.token_requests == 7 and sim.request_count == 0  # token calls are not API calls


async def test_gates_refuse_in_the_vendors_shape_and_log_every_call():
    now = [1000.0]
    app = make_app(limit=2, now=now)
    sim = app.state.sim
    async with client(app) as http:
        assert (await http.get("/v1/products")).json() == {"error": {"code": "AUTH", "text": "bad token"}}
        access = (await token(http, sim.oauth.demo_refresh_token())).json()["access_token"]
        auth = {"Authorization": f"Bearer {access}"}
        assert (await http.get("/v1/products", headers=auth)).status_code == 200
        now[0] += 61  # past the token's lifetime
        expired = await http.get("/v1/products", headers=auth)
        assert expired.status_code == 401
        now[0] -= 61
        assert (await http.get("/v1/products", headers=auth)).status_code == 200
        limited = await http.get("/v1/products", headers=auth)
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "LIMIT" and int(limited.headers["Retry-After"]) >= 1
    assert sim.request_count == 5 and sim.count("GET", "/v1/") == 5 and sim.count("POST") == 0
    sim.reset_counts()
    assert sim.request_count == 0 and list(sim.requests) == [] and sim.oauth.token_requests == 0


async def test_scripted_faults_pass_the_gates_before_them_and_answer_once():
    app = make_app()
    sim = app.state.sim
    async with client(app) as http:
        auth = await bearer(http, sim)
        sim.fail_next(503, "<html>down</html>", times=2, path_prefix="/v1/products")
        sim.fail_next(500, {"error": "boom"})
        # an unauthenticated call is refused by the auth gate first and leaves the faults queued
        assert (await http.get("/v1/products")).status_code == 401
        first, second, third, fourth = [await http.get("/v1/products", headers=auth) for _ in range(4)]
    assert (first.status_code, first.text, first.headers["content-type"].split(";")[0]) == (503, "<html>down</html>", "text/html")
    assert second.status_code == 503
    assert third.status_code == 500 and third.json() == {"error": "boom"}
    assert fourth.status_code == 200 and len(sim.faults) == 0


async def test_the_fault_injector_shares_the_scripted_switch():
    injector = with_faults(make_app(), Faults(), in_process=True)
    injector.fail_next(502, {"x": 1}, path_prefix="/v1/")
    async with client(injector) as http:
        failed = await http.get("/v1/products")  # before the app: no auth needed
        normal = await http.get("/v1/products")
    assert failed.status_code == 502 and failed.json() == {"x": 1} and normal.status_code == 401
    assert injector.counts["scripted"] == 1 and injector.injected == [("scripted", "GET", "/v1/products")]
    with pytest.raises(ValueError, match="times must be at least 1"):
        injector.fail_next(500, times=0)


async def test_vendor_errors_from_handlers_and_the_store():
    app = make_app()
    sim = app.state.sim
    async with client(app) as http:
        auth = await bearer(http, sim)
        created = await http.post("/v1/products", json={"sku": "A-1"}, headers=auth)
        assert created.status_code == 201 and created.json() == {"sku": "A-1", "id": 101}
        dup = await http.post("/v1/products", json={"sku": "a-1"}, headers=auth)
        assert dup.status_code == 400 and dup.json() == {"error": {"code": "DUP", "text": "sku a-1 exists"}}
        bad = await http.post("/v1/products", content=b"{", headers=auth)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "JSON"
        param = await http.get("/v1/products?start=x", headers=auth)
        assert param.status_code == 400 and "'start' must be an integer" in param.json()["error"]["text"]
        for n in range(2, 5):
            await http.post("/v1/products", json={"sku": f"A-{n}"}, headers=auth)
        page = (await http.get("/v1/products", headers=auth)).json()
        assert [p["sku"] for p in page["items"]] == ["A-1", "A-2"] and "start=2" in page["next"]
        last = (await http.get(page["next"], headers=auth)).json()
        assert [p["sku"] for p in last["items"]] == ["A-3", "A-4"] and last["next"] is None


def test_collection_indexes_follow_updates_and_deletes():
    store = Collection(GuidIds(7), unique=("Number",))
    item = store.add({"Number": "X-1"})
    with pytest.raises(KeyError, match="'number' is not indexed"):
        store.find("number", "x-1")  # field names are exact, values case-folded
    assert store.find("Number", "x-1") is item
    store[item["Id"]] = {**item, "Number": "X-2"}
    assert store.find("Number", "X-1") is None and store.find("Number", "x-2")["Id"] == item["Id"]
    store.check_unique("Number", "X-2", own_id=item["Id"])  # its own value is no conflict
    with pytest.raises(VendorError) as conflict:
        store.check_unique("Number", "x-2")
    assert conflict.value.status == 409
    del store[item["Id"]]
    assert store.find("Number", "X-2") is None and len(store) == 0


def test_ids_and_seeds_are_deterministic():
    assert [GuidIds(3)() for _ in range(2)] == [GuidIds(3)()] * 2
    guids = GuidIds(random.Random(3))
    assert guids() != guids()
    ints = IntIds(41)
    assert (ints(), ints()) == (42, 43)
    assert seeded(5, 17).random() == seeded(5, 17).random() != seeded(5, 18).random()
    assert seeded(5, "sku").random() == seeded(5, "sku").random()


def test_change_clock_never_goes_back():
    t = datetime(2025, 1, 1, 12, 0, 0, 500_000, tzinfo=timezone.utc)
    strict = ChangeClock(lambda: t, tick=timedelta(milliseconds=1))
    a, b = strict.now(), strict.now()
    assert b == a + timedelta(milliseconds=1)
    coarse = ChangeClock(lambda: t, truncate=True)
    assert coarse.now() == coarse.now() == t.replace(microsecond=0)
    coarse.seen(t + timedelta(hours=1))
    assert coarse.now() == t + timedelta(hours=1)


def test_paging_helpers():
    items = list(range(7))
    numbered = page_number(items, 3, 3)
    assert (numbered.items, numbered.total_pages, numbered.total) == ([6], 3, 7)
    with pytest.raises(ValueError, match="page and size must be 1 or more"):
        page_number(items, 0, 3)
    window, following = odata_page(items, "http://x/odata/Items?$top=3&$filter=a", 0, 3)
    assert window == [0, 1, 2] and "%24skiptoken=3" in following and "%24filter=a" in following
    assert odata_page(items, "http://x/odata/Items", 6, 3) == ([6], None)
    page, cursor = cursor_page(items, None, 3, key=str)
    assert (page, cursor) == ([0, 1, 2], "2")
    assert cursor_page(items, "5", 3, key=str) == ([6], None)
    first = offset_page(items, "http://x/p?size=3&q=1", 0, 3)
    assert first.previous is None and "q=1" in first.next and "start=3" in first.next
    assert offset_page(items, "http://x/p", 6, 3).next is None


async def test_async_gates_and_limits_for_some_methods_only():
    class Signed(VendorSim):
        def __init__(self):
            super().__init__()
            writes = RateLimitGate(1, 60.0, lambda wait, gate: VendorError(429, "W", "writes"), applies=lambda r: r.method != "GET")
            self.gates = [self.signed, writes, self.fault_gate]

        async def signed(self, request: Request) -> None:
            if await request.body() != b"signed" and request.method != "GET":
                raise VendorError(401, "SIG", "unsigned")

    async def echo(sim, request):
        return json_response({"ok": True})

    sim = Signed()
    app = Starlette(routes=[Route("/x", Signed.api(echo), methods=["GET", "POST"])])
    app.state.sim = sim
    async with client(app) as http:
        assert (await http.post("/x", content=b"nope")).json() == {"code": "SIG", "message": "unsigned"}
        assert (await http.post("/x", content=b"signed")).status_code == 200
        assert (await http.post("/x", content=b"signed")).status_code == 429  # the one write of the window is used
        assert all([(await http.get("/x")).status_code == 200 for _ in range(3)])  # GETs do not count
    assert sim.request_count == 6
    sim.request_count = 0
    assert sim.request_count == 0 and len(sim.requests) == 6  # the count restarts, the log stays


async def test_the_readme_example_runs():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Simulator toolkit") :]
    start = section.index("```python\n") + len("```python\n")
    code = section[start : section.index("```", start)]
    namespace: dict = {"Starlette": Starlette, "Route": Route}
    exec(compile(code, "README.md#simulator-toolkit", "exec"), namespace)  # noqa: S102 - our own README
    app = namespace["create_app"]()
    sim = app.state.sim
    sim.products.add({"sku": "A-1"}, id_field="id")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://acme.test") as http:
        refused = await http.get("/v1/products")
        basic = "Basic " + base64.b64encode(b"demo:demo-secret").decode()
        grant = await http.post("/oauth/token", content=f"grant_type=refresh_token&refresh_token={sim.oauth.demo_refresh_token()}", headers={"Authorization": basic})
        listed = await http.get("/v1/products", headers={"Authorization": f"Bearer {grant.json()['access_token']}"})
    assert refused.status_code == 401 and refused.json() == {"error": {"code": "AUTH", "message": "denied"}}
    assert listed.json() == {"data": [{"sku": "A-1", "id": 1001}], "pages": 1}


def test_a_scripted_json_body_may_carry_decimals():
    from decimal import Decimal

    from apicenterd.testing.faults import FaultQueue

    queue = FaultQueue()
    queue.fail_next(400, {"Amount": Decimal("12.50"), "Count": Decimal("3")}, headers={"Retry-After": "2"})
    first = queue.take("/other")  # no prefix: any path
    assert first is not None and first[1] == b'{"Amount": 12.5, "Count": 3}' and (b"retry-after", b"2") in first[2]
    assert queue.take("/other") is None
    queue.fail_next(400, {"Amount": Decimal("12.50")}, path_prefix="/v2/")
    assert queue.take("/v1/x") is None
    status, body, headers = queue.take("/v2/x")
    assert (status, body) == (400, b'{"Amount": 12.5}') and (b"content-type", b"application/json") in headers


def test_a_lazy_collection_makes_items_when_asked_and_remembers_writes():
    from apicenterd.testing.sim import LazyCollection

    made: list[int] = []

    def make(item_id: int) -> dict:
        made.append(item_id)
        return {"id": item_id, "name": f"item {item_id}", "rank": -item_id}

    def key(field: str, item_id: int):
        if field == "id":
            return item_id
        raise KeyError(field)  # other fields: make the item

    items = LazyCollection(10, 5, make, key)
    assert len(items) == 5 and list(items) == [10, 11, 12, 13, 14] and made == []
    assert items.window("id")[0:2] == [make(10), make(11)] and 12 not in made
    items[11] = {"id": 11, "name": "changed", "rank": 100}
    del items[12]
    items[99] = {"id": 99, "name": "new", "rank": 0}
    assert 12 not in items and len(items) == 5 and list(items) == [10, 11, 13, 14, 99]
    assert items[11]["name"] == "changed"
    assert [i["id"] for i in items.window("rank", desc=True)[0:10]] == [11, 99, 10, 13, 14]
    with pytest.raises(KeyError):
        items[12]

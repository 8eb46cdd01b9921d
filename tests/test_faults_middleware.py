"""The fault injector: each kind at its rate, reproducibly; writes applied before a drop or a
timeout; faults only where the filters allow them."""

from __future__ import annotations

import collections
import json

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from apicenterd.testing import FaultInjector, Faults, serve_app, with_faults

pytestmark = pytest.mark.anyio

BODY = {"Data": [{"Id": n, "Name": f"item {n}"} for n in range(10)]}


def make_app() -> Starlette:
    """A tiny vendor: GET /v2/items lists, POST /v2/items stores, PATCH answers 204, POST /connect/token issues."""

    async def items(request: Request) -> Response:
        if request.method == "POST":
            item = await request.json()
            request.app.state.items.append(item)
            return JSONResponse(item, status_code=201)
        if request.method == "PATCH":
            request.app.state.items.append({"patched": True})
            return Response(status_code=204)
        return JSONResponse(BODY)

    async def token(request: Request) -> Response:
        return JSONResponse({"access_token": "a", "expires_in": 60})

    async def other(request: Request) -> Response:
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[
            Route("/v2/items", items, methods=["GET", "POST", "PATCH"]),
            Route("/connect/token", token, methods=["POST"]),
            Route("/other", other, methods=["GET"]),
        ]
    )
    app.state.items = []
    return app


def in_process(injector: FaultInjector) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=injector), base_url="http://vendor.test")


async def test_each_kind_happens_at_its_rate():
    faults = Faults(error=0.1, timeout=0.1, drop=0.1, burst=0.1, malformed=0.1, slow=0.1, burst_length=1, timeout_delay=0, slow_delay=0, seed=3)
    injector = with_faults(make_app(), faults, in_process=True)
    n = 2000
    async with in_process(injector) as client:
        for _ in range(n):
            try:
                await client.get("/v2/items")
            except (httpx.ReadTimeout, httpx.RemoteProtocolError):
                pass
    assert injector.seen == n
    for kind in ("error", "timeout", "drop", "burst", "malformed", "slow"):
        assert 150 <= injector.counts[kind] <= 250, (kind, dict(injector.counts))  # 200 expected, sd 13
    assert sum(injector.counts.values()) == len(injector.injected)


async def test_a_seed_gives_the_same_faults():
    faults = Faults.mixed(0.5, seed=42, timeout_delay=0, slow_delay=0)

    async def sequence() -> list:
        injector = with_faults(make_app(), faults, in_process=True)
        async with in_process(injector) as client:
            for n in range(300):
                try:
                    await (client.get("/v2/items") if n % 3 else client.post("/v2/items", json={"n": n}))
                except (httpx.ReadTimeout, httpx.RemoteProtocolError):
                    pass
        return injector.injected

    first, second = await sequence(), await sequence()
    assert first == second
    assert len({kind for kind, _, _ in first}) == 6


async def test_other_seeds_give_other_faults():
    async def kinds(seed: int) -> list:
        injector = with_faults(make_app(), Faults(error=0.3, seed=seed), in_process=True)
        async with in_process(injector) as client:
            return [(await client.get("/v2/items")).status_code for _ in range(100)]

    assert await kinds(1) != await kinds(2)


async def test_a_5xx_comes_before_the_app_with_a_plain_body():
    app = make_app()
    injector = with_faults(app, Faults(error=1.0, statuses=(502,)), in_process=True)
    async with in_process(injector) as client:
        response = await client.post("/v2/items", json={"n": 1})
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/plain") and b"502 Bad Gateway" in response.content
    assert app.state.items == []  # never reached the app


async def test_a_burst_is_consecutive_429s_with_retry_after_then_normal_answers():
    injector = with_faults(make_app(), Faults(burst=1.0, burst_length=3), in_process=True)
    async with in_process(injector) as client:
        first = [await client.get("/v2/items") for _ in range(3)]
        injector.faults = Faults()  # no new burst: the answers are normal again
        after = await client.get("/v2/items")
    assert [r.status_code for r in first] == [429, 429, 429]
    assert all(r.headers["retry-after"] == "1" for r in first)
    assert after.status_code == 200 and injector.counts["burst"] == 3


async def test_a_burst_runs_its_length_even_at_a_low_rate():
    injector = with_faults(make_app(), Faults(burst=0.05, burst_length=4, seed=5), in_process=True)
    async with in_process(injector) as client:
        statuses = [(await client.get("/v2/items")).status_code for _ in range(400)]
    runs = [len(run) for run in "".join("x" if s == 429 else "." for s in statuses).split(".") if run]
    assert runs and all(length % 4 == 0 for length in runs), runs  # bursts back to back make 8, 12...


async def test_malformed_json_only_on_gets():
    app = make_app()
    injector = with_faults(app, Faults(malformed=1.0), in_process=True)
    async with in_process(injector) as client:
        got = await client.get("/v2/items")
        posted = await client.post("/v2/items", json={"n": 1})
    assert got.status_code == 200 and 0 < len(got.content) < len(json.dumps(BODY))
    with pytest.raises(json.JSONDecodeError):
        got.json()
    assert posted.status_code == 201 and posted.json() == {"n": 1}
    assert injector.counts == collections.Counter(malformed=1)


async def test_slow_answers_are_normal_answers():
    injector = with_faults(make_app(), Faults(slow=1.0, slow_delay=0.01), in_process=True)
    async with in_process(injector) as client:
        response = await client.get("/v2/items")
    assert response.status_code == 200 and response.json() == BODY and injector.counts["slow"] == 1


@pytest.mark.parametrize("kind, error", [("drop", httpx.RemoteProtocolError), ("timeout", httpx.ReadTimeout)])
async def test_in_process_the_write_is_applied_then_the_client_gets_a_transport_error(kind, error):
    app = make_app()
    injector = with_faults(app, Faults(**{kind: 1.0}, timeout_delay=0.01), in_process=True)
    async with in_process(injector) as client:
        with pytest.raises(error):
            await client.post("/v2/items", json={"n": 7})
    assert app.state.items == [{"n": 7}]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_served_a_drop_applies_the_write_then_breaks_the_connection(method):
    app = make_app()
    injector = with_faults(app, Faults(drop=1.0))
    with serve_app(injector) as url:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            # not a clean response, not a timeout: a broken connection (an incomplete body, or a
            # reset when the server closes first — which one the client sees is a race)
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                await client.request(method, "/v2/items", json={"n": 8})
            injector.enabled = False
            assert (await client.get("/v2/items")).status_code == 200  # the server is fine
    assert app.state.items == [{"n": 8} if method == "POST" else {"patched": True}]


async def test_served_a_timeout_applies_the_write_and_the_client_times_out():
    app = make_app()
    injector = with_faults(app, Faults(timeout=1.0, timeout_delay=0.5))
    with serve_app(injector) as url:
        async with httpx.AsyncClient(base_url=url, timeout=0.1) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post("/v2/items", json={"n": 9})
    assert app.state.items == [{"n": 9}]


async def test_served_a_timeout_shorter_than_the_client_is_a_late_answer():
    injector = with_faults(make_app(), Faults(timeout=1.0, timeout_delay=0.05))
    with serve_app(injector) as url:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            response = await client.get("/v2/items")
    assert response.status_code == 200 and response.json() == BODY


async def test_only_paths_under_the_prefix_get_faults():
    injector = with_faults(make_app(), Faults(error=1.0, path_prefix="/v2/"), in_process=True)
    async with in_process(injector) as client:
        assert (await client.get("/other")).status_code == 200
        assert (await client.get("/v2/items")).status_code >= 500
    assert injector.seen == 1 and injector.injected == [("error", "GET", "/v2/items")]


async def test_only_the_given_methods_get_faults():
    injector = with_faults(make_app(), Faults(error=1.0, methods=("GET",)), in_process=True)
    async with in_process(injector) as client:
        assert (await client.post("/v2/items", json={})).status_code == 201
        assert (await client.get("/v2/items")).status_code >= 500


async def test_the_token_endpoint_is_left_alone_unless_asked():
    quiet = with_faults(make_app(), Faults(error=1.0), in_process=True)
    asked = with_faults(make_app(), Faults(error=1.0, token_endpoint=True), in_process=True)
    async with in_process(quiet) as client:
        assert (await client.post("/connect/token")).status_code == 200
    async with in_process(asked) as client:
        assert (await client.post("/connect/token")).status_code >= 500
    assert quiet.counts == {} and asked.counts["error"] == 1
    assert not Faults().applies_to("/oauth2/v1/tokens/bearer") and Faults().applies_to("/v2/tokenized")


async def test_injectors_stack_and_keep_the_apps_state():
    app = make_app()
    inner = with_faults(app, Faults(error=1.0, methods=("POST",)))
    outer = with_faults(inner, Faults(burst=1.0, methods=("PATCH",)))
    assert outer.state is app.state
    outer.in_process = inner.in_process = True
    async with in_process(outer) as client:
        assert (await client.post("/v2/items", json={})).status_code >= 500
        assert (await client.patch("/v2/items")).status_code == 429
        assert (await client.get("/v2/items")).status_code == 200


def test_rates_are_checked():
    with pytest.raises(ValueError, match="more than 1"):
        Faults(error=0.6, drop=0.6)
    with pytest.raises(ValueError, match="between 0 and 1"):
        Faults(slow=-0.1)
    with pytest.raises(ValueError, match="5xx"):
        Faults(statuses=(404,))
    mixed = Faults.mixed(0.2)
    assert mixed.total == pytest.approx(0.2) and mixed.drop == pytest.approx(0.2 / 6)

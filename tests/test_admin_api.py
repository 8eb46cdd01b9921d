"""The admin API over a real engine and state store: every answer is checked against the OpenAPI
description the server serves, and the token guards everything but health, readiness, the page
and webhooks."""

from __future__ import annotations

import anyio
import jsonschema
import pytest
from admin_support import AUTH, TOKEN, admin_client, make_resolved, registry_with_hooks
from fakes import product

from apicenterd.admin import openapi
from apicenterd.config import Config, resolve
from apicenterd.errors import ConfigError

pytestmark = pytest.mark.anyio


@pytest.fixture
def hooks():
    return registry_with_hooks()


def test_openapi_document_is_valid_openapi_shaped_json_schema():
    doc = openapi()
    assert doc["openapi"].startswith("3.1")
    for schema in doc["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"], f"{method} {path} documents no response"
            params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert params == set(__import__("re").findall(r"\{([^}]+)\}", path)), path


async def test_token_guards_the_api_but_not_health_readiness_page_or_spec(tmp_path, hooks):
    resolved = make_resolved(tmp_path, hooks)
    async with admin_client(resolved, tmp_path) as (client, _backend, _engine):
        for headers, why in (({}, "Authorization: Bearer"), ({"Authorization": "Bearer wrong-token-xxxxxxxx"}, "wrong admin token"),
                             ({"Authorization": f"Basic {TOKEN}"}, "Authorization: Bearer")):  # fmt: skip
            r = await client.get("/api/v1/flows", headers=headers)
            assert r.status_code == 401 and why in r.json()["error"]
            assert r.headers["www-authenticate"].startswith("Bearer")
        r = await client.post("/api/v1/dead-letters/discard", headers={}, json={"all": True})
        assert r.status_code == 401
        assert (await client.get("/healthz", headers={})).json()["status"] == "ok"
        ready = await client.get("/readyz", headers={})
        assert ready.status_code == 200 and ready.json()["ready"] is True
        page = await client.get("/", headers={})
        assert page.status_code == 200 and "<title>apicenterd</title>" in page.text
        assert TOKEN not in page.text
        spec = await client.get("/openapi.json", headers={})
        assert spec.json()["paths"].keys() == openapi()["paths"].keys()


async def test_flows_runs_dead_letters_replay_and_the_record_story(tmp_path, hooks, memory):
    memory.put(product("A"), "1")
    memory.put(product("B"), "2")
    memory.fail_create.add("B")
    resolved = make_resolved(tmp_path, hooks)
    async with admin_client(resolved, tmp_path) as (client, _backend, _engine):
        flows = (await client.get("/api/v1/flows")).json()["flows"]
        assert [(f["name"], f["state"], f["last_run"]) for f in flows] == [("products", "idle", None), ("stock", "idle", None)]

        r = await client.post("/api/v1/flows/products/run", json={"wait": True})
        assert r.status_code == 200 and (r.json()["created"], r.json()["failed"]) == (1, 1)

        products = (await client.get("/api/v1/flows/products")).json()
        assert products["state"] == "failing" and "1 record(s) failed" in products["reason"]
        assert products["open_dead_letters"] == 1 and products["last_run"]["counts"]["created"] == 1
        assert products["next_run_at"] == pytest.approx(products["last_run"]["started_at"] + 3600)

        runs = (await client.get("/api/v1/runs?flow=products")).json()["runs"]
        assert [(r["trigger"], r["status"]) for r in runs] == [("api", "ok")]

        (letter,) = (await client.get("/api/v1/dead-letters")).json()["dead_letters"]
        assert (letter["source_id"], letter["status"]) == ("B", "open") and "name too long" in letter["error"]
        shown = (await client.get(f"/api/v1/dead-letters/{letter['id']}")).json()
        assert shown["payload"]["sku"] == "B"

        story = (await client.get("/api/v1/records/products/B")).json()
        assert [e["action"] for e in story["audit"]] == ["failed"]
        assert story["dead_letter"]["id"] == letter["id"] and story["link"] is None
        assert story["diff"]["op"] == "create" and story["diff"]["fields"]["sku"] == {"from": None, "to": "B"}

        memory.fail_create.clear()
        r = await client.post("/api/v1/dead-letters/replay", json={"ids": [letter["id"]]})
        assert r.status_code == 200 and r.json()["counts"]["created"] == 1
        assert (await client.get("/api/v1/dead-letters")).json()["dead_letters"] == []
        assert (await client.get("/api/v1/flows/products")).json()["state"] == "ok"
        story = (await client.get("/api/v1/records/products/B")).json()
        assert [e["action"] for e in story["audit"]] == ["created", "failed"] and story["link"]["target_id"]
        assert story["dead_letter"]["status"] == "resolved"

        audit = (await client.get("/api/v1/audit?flow=products&source_id=B")).json()["entries"]
        assert len(audit) == 2
        chart = (await client.get("/api/v1/chart?hours=1&buckets=4")).json()
        assert sum(chart["series"]["products"]) == 3 and chart["series"]["stock"] == [0, 0, 0, 0]


async def test_selection_mistakes_are_named_and_nothing_is_done(tmp_path, hooks, memory):
    memory.put(product("B"), "1")
    memory.fail_create.add("B")
    resolved = make_resolved(tmp_path, hooks)
    async with admin_client(resolved, tmp_path) as (client, _backend, _engine):
        await client.post("/api/v1/flows/products/run", json={"wait": True})
        (letter,) = (await client.get("/api/v1/dead-letters")).json()["dead_letters"]
        r = await client.post("/api/v1/dead-letters/discard", json={"ids": [letter["id"], 999]})
        assert r.status_code == 404 and r.json()["missing"] == [999] and "nothing done" in r.json()["error"]
        for body, message in (
            ({}, "name dead letters"),
            ({"ids": ["x"]}, "ids: expected a list"),
            ({"flow": 3}, "flow: expected a string"),
            ({"every": True}, "unknown field(s) every"),
        ):
            r = await client.post("/api/v1/dead-letters/discard", json=body)
            assert r.status_code == 400 and message in r.json()["error"], r.json()
        r = await client.post("/api/v1/dead-letters/discard", content=b"[1]", headers={**AUTH, "content-type": "application/json"})
        assert r.status_code == 400 and "expected a JSON object" in r.json()["error"]
        assert len((await client.get("/api/v1/dead-letters")).json()["dead_letters"]) == 1
        r = await client.post("/api/v1/dead-letters/discard", json={"flow": "products"})
        assert r.json() == {"discarded": 1}
        assert (await client.get("/api/v1/dead-letters?status=discarded")).json()["dead_letters"][0]["id"] == letter["id"]
        r = await client.get("/api/v1/dead-letters?status=gone")
        assert r.status_code == 400 and "status" in r.json()["error"]
        r = await client.get("/api/v1/runs?limit=0")
        assert r.status_code == 400 and "limit" in r.json()["error"]
        r = await client.get("/api/v1/flows/nope")
        assert r.status_code == 404 and "defined: products, stock" in r.json()["error"]
        r = await client.get("/api/v1/dead-letters/424242")
        assert r.status_code == 404


async def test_reset_forgets_the_cursor_and_keeps_links(tmp_path, hooks, memory):
    memory.put(product("A"), "1")
    resolved = make_resolved(tmp_path, hooks)
    async with admin_client(resolved, tmp_path) as (client, _backend, _engine):
        await client.post("/api/v1/flows/products/run", json={"wait": True})
        assert (await client.get("/api/v1/flows/products")).json()["cursor"] == "1"
        r = await client.post("/api/v1/flows/products/reset")
        assert r.json() == {"flow": "products", "cursor_was": "1", "cursor": None}
        assert (await client.get("/api/v1/flows/products")).json()["cursor"] is None
        again = (await client.post("/api/v1/flows/products/run", json={"wait": True})).json()
        assert (again["created"], again["unchanged"]) == (0, 1)  # read again from the start; linked, no write
        assert len(memory.target) == 1


async def test_background_run_paused_connection_and_connections(tmp_path, hooks, memory):
    memory.put(product("A"), "1")
    resolved = make_resolved(tmp_path, hooks)
    async with admin_client(resolved, tmp_path) as (client, backend, engine):
        ran = backend.ran
        r = await client.post("/api/v1/flows/products/run")
        assert r.status_code == 202 and r.json() == {"flow": "products", "started": True}
        await ran.wait()
        assert (await client.get("/api/v1/flows/products")).json()["last_run"]["trigger"] == "api"
        conns = {c["name"]: c for c in (await client.get("/api/v1/connections")).json()["connections"]}
        assert conns["src"]["webhooks"] is True and conns["dst"]["webhooks"] is False
        assert conns["dst"]["paused"] is False

        engine.paused["dst"] = "refresh token revoked"
        flow = (await client.get("/api/v1/flows/products")).json()
        assert flow["state"] == "paused" and "refresh token revoked" in flow["reason"] and flow["next_run_at"] is None
        r = await client.post("/api/v1/flows/products/run", json={"wait": True})
        assert r.status_code == 409 and "apicenterd auth dst" in r.json()["error"]
        conns = {c["name"]: c for c in (await client.get("/api/v1/connections")).json()["connections"]}
        assert conns["dst"]["paused_reason"] == "refresh token revoked"
        # a pause that re-authorising cannot fix (the engine keeps the connector's fix): the 409 says that fix
        engine.pause_fixes["dst"] = "fix what the reason says (re-authorising does not help), then systemctl reload apicenterd"
        r = await client.post("/api/v1/flows/products/run", json={"wait": True})
        assert r.status_code == 409 and "apicenterd auth" not in r.json()["error"] and "fix what the reason says" in r.json()["error"]


async def test_a_vendor_pause_shows_as_waiting(tmp_path, hooks, memory):
    import time

    resolved = make_resolved(tmp_path, hooks)
    async with admin_client(resolved, tmp_path) as (client, backend, _engine):
        await backend.store.save_pause("dst", time.time() + 600)
        flow = (await client.get("/api/v1/flows/products")).json()
        assert flow["state"] == "waiting" and "connection dst: waiting" in flow["reason"] and flow["waiting_until"] > time.time()


async def test_progress_of_a_run_in_flight(tmp_path, hooks, memory):
    for i in range(3):
        memory.put(product(f"P{i}"), str(i))
    resolved = make_resolved(tmp_path, hooks)
    async with admin_client(resolved, tmp_path) as (client, _backend, engine):
        gate, seen = anyio.Event(), anyio.Event()
        original = engine._process

        async def slow(run, change, *rest):
            action = await original(run, change, *rest)
            if change.source_id == "P1":
                seen.set()
                await gate.wait()
            return action

        engine._process = slow
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.run_flow, "products")
            with anyio.fail_after(60):
                await seen.wait()
            flow = (await client.get("/api/v1/flows/products")).json()
            assert flow["state"] == "running"
            # P0 counted, P1 settling (P2, in flight with it, is settled after it)
            assert flow["progress"]["done"] == 1 and flow["progress"]["counts"]["created"] == 1
            gate.set()
        assert (await client.get("/api/v1/flows/products")).json()["progress"] is None


async def test_reload_answers_with_the_outcome(tmp_path, hooks):
    outcomes = [("applied", None), ("refused", "invalid configuration: flows.x.source: ...")]

    async def reload():
        return outcomes.pop(0)

    resolved = make_resolved(tmp_path, hooks)
    async with admin_client(resolved, tmp_path, reload=reload) as (client, _backend, _engine):
        r = await client.post("/api/v1/reload")
        assert r.status_code == 200 and r.json() == {"result": "applied", "reason": None}
        r = await client.post("/api/v1/reload")
        assert r.status_code == 409 and "flows.x.source" in r.json()["reason"]


def test_admin_config_is_validated_with_every_mistake_named(tmp_path, hooks):
    with pytest.raises(ConfigError) as err:
        resolve(Config(admin={"token": "short"}), hooks, tmp_path / "a.toml")
    assert "admin.token: too short (5 characters; at least 16" in str(err.value)
    with pytest.raises(ConfigError) as err:
        resolve(Config(admin={"token": {"env": "APICENTERD_TEST_NO_SUCH_VAR"}}), hooks, tmp_path / "a.toml")
    assert "admin.token: environment variable APICENTERD_TEST_NO_SUCH_VAR is not set" in str(err.value)
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as verr:
        Config(admin={"address": "localhost", "webhook_debounce_seconds": -1, "port": 3})
    text = str(verr.value)
    assert "is not host:port" in text and "webhook_debounce_seconds" in text and "port" in text
    resolved = resolve(Config(admin={"token": {"file": str(_write(tmp_path / "t", "x" * 32))}}), hooks, tmp_path / "a.toml")
    assert resolved.admin_token == "x" * 32 and resolved.config.admin.address == "127.0.0.1:9465"
    assert resolve(Config(), hooks, tmp_path / "a.toml").admin_token is None


def _write(path, text):
    path.write_text(text)
    return path


def test_every_route_is_documented_and_every_documented_path_is_served():
    from apicenterd.admin import Backend, build_app

    app = build_app(Backend(lambda: None, None, lambda: None), TOKEN)
    served = {}
    for route in app.routes:
        path = route.path.replace("{id:int}", "{id}").replace("{source_id:path}", "{source_id}")
        served[path] = {m.lower() for m in route.methods} - {"head"}
    documented = {path: set(ops) for path, ops in openapi()["paths"].items()}
    served.pop("/")  # the dashboard page (HTML)
    served.pop("/openapi.json")
    assert served == documented


async def test_an_open_circuit_shows_the_flow_failing_with_the_error(tmp_path, hooks, memory):
    resolved = make_resolved(tmp_path, hooks)
    async with admin_client(resolved, tmp_path) as (client, _backend, engine):
        await engine.open(["dst"])
        breaker = engine.connectors["dst"].context.breaker
        for _ in range(resolved.config.daemon.circuit_failure_threshold):
            breaker.failure("503 Service Unavailable")
        flow = (await client.get("/api/v1/flows/products")).json()
        assert flow["state"] == "failing" and "connection dst: circuit breaker open (503 Service Unavailable)" in flow["reason"]
        conns = {c["name"]: c for c in (await client.get("/api/v1/connections")).json()["connections"]}
        assert conns["dst"]["circuit_open"] is True and conns["dst"]["circuit_error"] == "503 Service Unavailable"


async def test_a_live_wait_in_the_rate_limiters_shows_as_waiting(tmp_path, hooks, memory):
    resolved = make_resolved(tmp_path, hooks)
    async with admin_client(resolved, tmp_path) as (client, _backend, engine):
        await engine.open(["src"])
        engine.connectors["src"].context.limiters.pause_all(120, reason="test")
        flow = (await client.get("/api/v1/flows/stock")).json()
        assert flow["state"] == "waiting" and "connection src: waiting" in flow["reason"]


async def test_a_flow_whose_day_budget_share_is_spent_shows_as_waiting(tmp_path, hooks, memory):
    import time

    resolved = make_resolved(tmp_path, hooks)
    async with admin_client(resolved, tmp_path) as (client, _backend, engine):
        engine.budget_wait = lambda name: 3600.0 if name == "products" else 0.0  # as a spent share of a day budget says
        flow = (await client.get("/api/v1/flows/products")).json()
        assert flow["state"] == "waiting" and "share of the day budget is spent" in flow["reason"]
        assert flow["waiting_until"] > time.time() + 3000
        other = (await client.get("/api/v1/flows/stock")).json()
        assert other["state"] != "waiting"


async def test_wait_remaining_counts_full_windows_and_spent_vendor_budgets():
    import httpx

    from apicenterd import RateLimit
    from apicenterd.http import RateLimiterSet

    now = [1000.0]
    limiters = RateLimiterSet("c", [RateLimit(2, 60.0, name="per_minute")], clock=lambda: now[0], margin=0.0)
    assert limiters.wait_remaining() == 0
    request = httpx.Request("GET", "https://vendor.test/items")
    for _ in range(2):
        await limiters.acquire(request)
    assert limiters.wait_remaining() == pytest.approx(60.0)
    now[0] += 61
    assert limiters.wait_remaining() == 0


def test_the_readme_names_every_endpoint_and_the_on_call_switches():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    operate = readme[readme.index("## Operate") : readme.index("## Observe")]
    for path, ops in openapi()["paths"].items():
        shown = path.replace("{name}", "NAME").replace("{flow}", "FLOW").replace("{source_id}", "SOURCE_ID")
        shown = shown.replace("{id}", "ID").replace("{connection}", "<connection>")
        for method in ops:
            assert shown in operate, f"README Operate section does not show {method.upper()} {path}"
    for words in ("--local", "APICENTERD_ADMIN_TOKEN", "APICENTERD_ADMIN_URL", "reverse proxy", "docs/dashboard.png"):
        assert words in operate, words


async def test_daemons_lists_this_daemon_and_what_it_runs_with_sqlite_state(tmp_path, hooks):
    from apicenterd.cluster import daemon_name

    resolved = make_resolved(tmp_path, hooks)
    async with admin_client(resolved, tmp_path) as (client, _backend, engine):
        body = (await client.get("/api/v1/daemons")).json()
        assert body["mode"] == "sqlite" and body["this_daemon"] == daemon_name()
        assert [(d["name"], d["alive"], d["running"]) for d in body["daemons"]] == [(daemon_name(), True, [])]
        engine.running["products"] = object()  # as while a run of it is in progress
        body = (await client.get("/api/v1/daemons")).json()
        assert body["daemons"][0]["running"] == ["products"] and body["waiting"] == []
        assert (await client.get("/api/v1/daemons", headers={})).status_code == 401


async def test_daemons_lists_every_daemon_and_the_waiting_jobs_with_postgresql_state(tmp_path, hooks):
    """With PostgreSQL state the answer comes from the job queue: every registered daemon (alive or
    silent), the flows each runs, the runs waiting (due or not) - as `apicenterd status` shows them."""
    import time

    import pg_support

    from apicenterd.cluster import Cluster
    from apicenterd.config.schema import StateConfig
    from apicenterd.state.postgres import PostgresStore

    url, schema = pg_support.server_url(), pg_support.new_schema()
    store = PostgresStore(url, schema=schema)
    await store.open()  # migrates: the job engine's tables too
    cluster = Cluster(url, StateConfig(), schema=schema, name="host-a:1")
    await cluster.open()
    try:
        now = time.time()
        assert await cluster.defer("products", now - 5)
        assert await cluster.defer("stock", now + 600)
        worker = pg_support.raw(
            url, schema, "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now()) RETURNING id"
        )[0][0]
        pg_support.raw(
            url,
            schema,
            f"INSERT INTO daemons (worker_id, name, host, pid, version, started_at) VALUES ({worker}, 'host-b:2', 'host-b', 2, 'x', {now});"  # noqa: S608 - numbers of our own
            f"UPDATE procrastinate_jobs SET status = 'doing', worker_id = {worker} WHERE args->>'flow' = 'products'",
        )
        resolved = make_resolved(tmp_path, hooks)
        async with admin_client(resolved, tmp_path) as (client, backend, _engine):
            backend.cluster = cluster
            body = (await client.get("/api/v1/daemons")).json()
        assert body["mode"] == "postgresql" and body["this_daemon"] == "host-a:1"
        assert [(d["name"], d["alive"], d["running"]) for d in body["daemons"]] == [("host-b:2", True, ["products"])]
        assert [(w["flow"], w["overdue"]) for w in body["waiting"]] == [("stock", 0)]
        assert body["stalled"] == []
    finally:
        await cluster.close()
        await store.close()
        pg_support.drop_schema(url, schema)

"""The day budget through the engine: eAccounting's articles into an Exact Online that allows a few
calls a day, with an orders flow of a higher priority on the same connection.

The clocks (the simulator's, the engine's rate limiters' and day budget's) are one hand-moved
clock: "the next day" is a line of the test, never a wait."""

from __future__ import annotations

import collections

import httpx
import pytest
from apicenterd_exact_online import ExactOnlineConnector
from prometheus_client import REGISTRY

from apicenterd.config import Config
from apicenterd.config.resolve import resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

eaccounting = pytest.importorskip("apicenterd_eaccounting")
EAccountingConnector = eaccounting.EAccountingConnector

pytestmark = pytest.mark.anyio

DAY = 86400.0
START = 1_800_000_000.0 - (1_800_000_000.0 % DAY) + 8 * 3600  # 08:00 UTC on some day
DAILY = 36
"""Calls a day this Exact allows (the headers say so; the connector adopts the lower limit)."""


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def _resolved(tmp_path, *, articles_flow_priority: int = 0):
    raw = {
        "daemon": {"log_level": "warning", "metrics_address": "", "shutdown_timeout": 5},
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {
            "eaccounting": {"connector": "eaccounting", **EAccountingConnector.demo_settings("http://eacc.test")},
            "exact": {"connector": "exact_online", **ExactOnlineConnector.demo_settings("http://exact.test"), "daily_reserve": 3},
        },
        "flows": {
            "orders": {
                "source": "exact",
                "target": "eaccounting",
                "entity": "orders",
                "interval": "6h",
                "priority": 10,
                "options": {"statuses": ["new", "in_process", "completed"], "document": "order", "missing_products": "create"},
            },
            "products": {
                "source": "eaccounting",
                "target": "exact",
                "entity": "products",
                "interval": "1h",
                "priority": articles_flow_priority,
            },
        },
    }
    return resolve(Config(**raw), load_registry(), tmp_path / "apicenterd.toml")


async def test_a_long_sync_stops_at_its_share_and_goes_on_the_next_day_each_item_once(tmp_path):
    clock = Clock()
    eacc_app = EAccountingConnector.simulator(seed=5, records=40, customers=2)
    exact_app = ExactOnlineConnector.simulator(seed=5, records=0, daily=DAILY, clock=clock)
    sim = exact_app.state.sim
    buyer = sim.add_account(
        "Buyer BV", "orders@buyer.example", code="3001", City="Gouda", Country="NL", AddressLine1="Markt 1", Postcode="2801 JE"
    )
    sim._store("logistics/Items", {"Code": "EXO-1", "Description": "Exact product", "IsSalesItem": True})
    sim.add_order(buyer["ID"], [("EXO-1", 1, 10.0)])
    resolved = _resolved(tmp_path)
    articles = {a["Number"] for a in eacc_app.state.sim.articles.values()}
    transports = {"eaccounting": httpx.ASGITransport(eacc_app), "exact": httpx.ASGITransport(exact_app)}
    store = SQLiteStore(resolved.state_path)
    await store.open()
    engine = Engine(resolved, store, transports=transports, retry_base_delay=0.01, clock=clock, wall_clock=clock)
    results: dict[str, list] = collections.defaultdict(list)
    completions: list[int] = []
    try:
        orders = await engine.run_flow("orders")
        assert orders.status == "ok", orders.error
        results["orders"].append(orders)
        days = 0
        while True:
            first = await engine.run_flow("products")
            results["products"].append(first)
            if first.status == "ok":
                break
            assert first.status == "deferred", first.error
            assert "share of the day budget" in first.error
            reset = START - (START % DAY) + (days + 1) * DAY
            assert first.counts["resume_at"] == int(reset)
            assert first.counts["budget_left"] >= 3  # never below the reserve
            assert engine.budget_wait("products") > 0  # the scheduler leaves it until the reset
            assert engine.budget_wait("orders") == 0  # orders, of a higher priority, still have their share
            # eAccounting tells how many articles are left (Meta.TotalNumberOfResults): the expected
            # completion is after this reset, at the calls a record cost and the share a day leaves
            left = len(articles) + 1 - sum(r.counts["created"] + r.counts["updated"] for r in results["products"])
            assert first.counts["backlog"] == left  # what the runs so far did is taken off
            assert first.counts["complete_at"] > first.counts["resume_at"]
            completions.append(first.counts["complete_at"])
            gauge = REGISTRY.get_sample_value("apicenterd_flow_expected_completion_timestamp_seconds", {"flow": "products"})
            assert gauge is not None and int(gauge) == first.counts["complete_at"]  # the metric says the same
            if days == 0:
                await _admin_shows_the_budget(resolved, store, engine, first)
            # the calls left cover the orders flow's runs until the reset (4 a day, every 6 h)
            budget = engine.budgets["exact"]
            assert budget.left() - budget.reserve >= budget.needs("orders") > 0
            again = await engine.run_flow("orders")  # the next orders run fits in what was kept
            assert again.status == "ok", again.error
            days += 1
            assert days < 10, "the sync never finished"
            clock.now = reset + 60  # the next day, past Exact's reset
            assert engine.budget_wait("products") == 0
    finally:
        await engine.aclose()
        await store.close()
    assert days >= 2  # it did not fit in a day
    assert len(completions) == days
    codes = collections.Counter(item["Code"] for item in sim.data["logistics/Items"].values() if item["Code"] != "EXO-1")
    assert set(codes) == articles and set(codes.values()) == {1}  # every item, once
    assert sim.refusals == 0  # no 429: no call over the day's or the minute's budget
    created = sum(r.counts["created"] for r in results["products"])
    completed = sum(r.counts["updated"] for r in results["products"])
    # an item whose price call did not fit in the day is found the next day and gets its price (an
    # update); so is EXO-1, which the orders flow added to eAccounting and Exact already had
    assert created + completed == len(articles) + 1 and completed <= days + 1
    priced = collections.Counter(p["ItemCode"] for p in sim.data["logistics/SalesItemPrices"].values())
    assert set(priced) == articles | {"EXO-1"} and set(priced.values()) == {1}  # every price, once
    assert all(r.status == "ok" for r in results["orders"]), results["orders"]
    assert len(eacc_app.state.sim.orders) == 1, results["orders"][0].counts


async def _admin_shows_the_budget(resolved, store, engine, deferred) -> None:
    """The admin API's flow: waiting, with its day budget (the answer checked against the OpenAPI description)."""
    import jsonschema

    from apicenterd.admin import Backend, build_app, openapi

    app = build_app(Backend(lambda: resolved, store, lambda: engine), "admin-token-0123456789")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin.test") as client:
        response = await client.get("/api/v1/flows/products", headers={"Authorization": "Bearer admin-token-0123456789"})
        orders = (await client.get("/api/v1/flows/orders", headers={"Authorization": "Bearer admin-token-0123456789"})).json()
    assert response.status_code == 200, response.text
    doc = openapi()
    schema = doc["paths"]["/api/v1/flows/{name}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": doc["components"]}).validate(response.json())
    view = response.json()
    assert view["state"] == "waiting"
    assert view["budget"] == {
        "connections": ["exact"],
        "priority": 0,
        "calls_left": engine.budgets["exact"].left(),
        "deferred": True,
        "resume_at": deferred.counts["resume_at"],
        "backlog": deferred.counts["backlog"],
        "expected_completion": deferred.counts["complete_at"],
    }
    assert orders["budget"]["priority"] == 10 and orders["budget"]["deferred"] is False
    assert orders["budget"]["expected_completion"] is None


def test_flows_list_shows_the_priority_and_a_deferred_flows_budget(tmp_path, capsys):
    import json

    import anyio

    from apicenterd.cli import main

    resolved = _resolved(tmp_path)
    config = tmp_path / "apicenterd.toml"
    config.write_text(
        "\n".join(
            [
                "[daemon]",
                'metrics_address = ""',
                "[state]",
                f"path = {json.dumps(str(tmp_path / 'state.db'))}",
                "[connections.eaccounting]",
                'connector = "eaccounting"',
                *(f"{k} = {json.dumps(v)}" for k, v in EAccountingConnector.demo_settings("http://eacc.test").items()),
                "[connections.exact]",
                'connector = "exact_online"',
                *(f"{k} = {json.dumps(v)}" for k, v in ExactOnlineConnector.demo_settings("http://exact.test").items()),
                "[flows.orders]",
                'source = "exact"',
                'target = "eaccounting"',
                'entity = "orders"',
                'interval = "15m"',
                "priority = 10",
                "[flows.products]",
                'source = "eaccounting"',
                'target = "exact"',
                'entity = "products"',
                'interval = "1h"',
            ]
        ),
        encoding="utf-8",
    )
    assert main(["flows", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "PRIORITY" in out and "DAY BUDGET" in out and "no run yet" in out

    async def runs() -> None:
        store = SQLiteStore(resolved.state_path)
        await store.open()
        try:
            run = await store.start_run("products", "schedule")
            counts = {"created": 5, "budget_left": 61, "resume_at": int(START - START % DAY + DAY), "complete_at": int(START + 4 * DAY)}
            await store.finish_run(run, "deferred", counts, "spent")
            run = await store.start_run("orders", "schedule")
            await store.finish_run(run, "ok", {"created": 1}, None)
        finally:
            await store.close()

    anyio.run(runs)
    assert main(["flows", "list", "--config", str(config), "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["orders"]["priority"] == 10 and rows["orders"]["budget"] == {"last_run": "ok", "deferred": False}
    budget = rows["products"]["budget"]
    assert budget["deferred"] and budget["calls_left"] == 61
    assert budget["resumes_at"] == "2027-01-16T00:00:00Z" and budget["expected_completion"] == "2027-01-19T08:00:00Z"
    assert main(["flows", "list", "--config", str(config)]) == 0
    assert "deferred: 61 calls left, resumes 2027-01-16T00:00:00Z, done ~2027-01-19T08:00:00Z" in capsys.readouterr().out

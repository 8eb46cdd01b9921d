"""End to end through the daemon's engine: eAccounting (simulator) → Exact Online (simulator)."""

from __future__ import annotations

import collections
import time

import pytest
from apicenterd_exact_online import ExactOnlineConnector

from apicenterd.testing.settle import resolved_config, run_once

eaccounting = pytest.importorskip("apicenterd_eaccounting")
EAccountingConnector = eaccounting.EAccountingConnector

pytestmark = pytest.mark.anyio


@pytest.fixture
def servers(serve_eacc_exact):
    """Both simulators on loopback ports: (eacc_app, exact_app, eacc_url, exact_url)."""
    return serve_eacc_exact(seed=11, records=25, customers=6)


def _resolved(tmp_path, eacc_url, exact_url, *, orders: bool = False, stock: bool = False):
    connections = {
        "eaccounting": ("eaccounting", EAccountingConnector.demo_settings(eacc_url)),
        "exact": ("exact_online", ExactOnlineConnector.demo_settings(exact_url)),
    }
    flows = {
        "products": {"source": "eaccounting", "target": "exact", "entity": "products", "interval": "1h"},
        "customers": {"source": "eaccounting", "target": "exact", "entity": "customers", "interval": "1h"},
    }
    if stock:
        flows["stock"] = {"source": "exact", "target": "eaccounting", "entity": "stock", "interval": "1h"}
    if orders:
        flows = {
            "orders": {
                "source": "exact",
                "target": "eaccounting",
                "entity": "orders",
                "interval": "1h",
                "options": {"statuses": ["new", "in_process", "completed"], "document": "order", "missing_products": "create"},
            }
        }
    return resolved_config(tmp_path, connections, flows)


def _writes(exact_app) -> list[tuple[str, str]]:
    return [r for r in exact_app.state.sim.requests if r[0] in ("POST", "PUT", "DELETE")]


async def test_products_flow_creates_each_item_once_and_a_second_run_writes_nothing(tmp_path, servers):
    eacc_app, exact_app, eacc_url, exact_url = servers
    resolved = _resolved(tmp_path, eacc_url, exact_url)
    articles = {a["Number"]: a for a in eacc_app.state.sim.articles.values()}

    first = await run_once(resolved, "products")
    assert first.status == "ok", first.error
    assert first.counts["created"] == len(articles) and first.counts["failed"] == 0
    sim = exact_app.state.sim
    codes = collections.Counter(item["Code"] for item in sim.data["logistics/Items"].values())
    assert set(codes) == set(articles) and set(codes.values()) == {1}
    for item in sim.data["logistics/Items"].values():
        assert item["Description"] == articles[item["Code"]]["Name"][:60]
    assert len(sim.data["logistics/SalesItemPrices"]) == sum(1 for a in articles.values() if a.get("NetPrice") is not None)

    sim.requests.clear()
    second = await run_once(resolved, "products")
    assert second.status == "ok", second.error
    assert second.counts["created"] == 0 and second.counts["updated"] == 0
    assert _writes(exact_app) == []
    assert sim.refusals == 0  # the daemon kept to 60 calls a minute: Exact never answered 429


async def test_customers_flow_creates_accounts_once(tmp_path, servers):
    eacc_app, exact_app, eacc_url, exact_url = servers
    resolved = _resolved(tmp_path, eacc_url, exact_url)
    customers = list(eacc_app.state.sim.customers.values())

    first = await run_once(resolved, "customers")
    assert first.status == "ok", first.error
    assert first.counts["created"] + first.counts["failed"] == len(customers)
    assert first.counts["failed"] == 0
    accounts = exact_app.state.sim.data["crm/Accounts"]
    assert len(accounts) == len(customers)
    emails = {(c.get("EmailAddress") or "").lower() for c in customers}
    assert {(a.get("Email") or "").lower() for a in accounts.values()} == emails

    exact_app.state.sim.requests.clear()
    second = await run_once(resolved, "customers")
    assert second.status == "ok", second.error
    assert second.counts["created"] == 0 and second.counts["updated"] == 0
    assert _writes(exact_app) == []


async def test_orders_flow_from_exact_into_eaccounting_once(tmp_path, servers):
    eacc_app, exact_app, eacc_url, exact_url = servers
    sim = exact_app.state.sim
    for n in range(1, 4):
        sim._store("logistics/Items", {"Code": f"EXO-{n}", "Description": f"Exact product {n}", "IsSalesItem": True})
    buyer = sim.add_account(
        "Buyer BV", "orders@buyer.example", code="3001", City="Gouda", Country="NL", AddressLine1="Markt 1", Postcode="2801 JE"
    )
    sim.add_order(buyer["ID"], [("EXO-1", 2, 10.0), ("EXO-2", 1, 4.0)], your_ref="PO-7")
    sim.add_order(buyer["ID"], [("EXO-3", 3, 1.5)])
    sim.add_order(buyer["ID"], [("EXO-1", 1, 10.0)], status=45)  # cancelled: filtered out by status
    resolved = _resolved(tmp_path, eacc_url, exact_url, orders=True)

    first = await run_once(resolved, "orders")
    assert first.status == "ok", first.error
    assert first.counts["created"] == 2 and first.counts["failed"] == 0
    orders = list(eacc_app.state.sim.orders.values())
    assert len(orders) == 2
    assert {o["YourReference"] for o in orders} == {"1", "2"}
    customers = [c for c in eacc_app.state.sim.customers.values() if c.get("EmailAddress") == "orders@buyer.example"]
    assert len(customers) == 1 and all(o["CustomerId"] == customers[0]["Id"] for o in orders)

    eacc_app.state.sim.requests.clear()
    second = await run_once(resolved, "orders")
    assert second.status == "ok", second.error
    assert second.counts["created"] == 0
    assert [r for r in eacc_app.state.sim.requests if r[0] in ("POST", "PUT")] == []
    assert len(eacc_app.state.sim.orders) == 2


def test_the_example_config_passes_check(tmp_path, monkeypatch, capsys):
    """etc/eaccounting-exact.example.toml is valid with its credentials given."""
    from pathlib import Path

    from apicenterd.cli import main

    for name in ("eaccounting_client_secret", "eaccounting_refresh_token", "exact_client_secret"):
        (tmp_path / name).write_text("secret\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("EACCOUNTING_CLIENT_ID", "eacc-client")
    monkeypatch.setenv("EXACT_CLIENT_ID", "exact-client")
    example = Path(__file__).resolve().parents[3] / "etc" / "eaccounting-exact.example.toml"
    assert main(["check", "--config", str(example)]) == 0, capsys.readouterr().err
    assert "5 flows" in capsys.readouterr().out


async def test_stock_flow_from_exact_into_eaccounting(tmp_path, servers):
    """Products first (eAccounting → Exact), then Exact's stock positions back to the articles."""
    eacc_app, exact_app, eacc_url, exact_url = servers
    resolved = _resolved(tmp_path, eacc_url, exact_url, stock=True)
    assert (await run_once(resolved, "products")).status == "ok"
    articles = {a["Number"]: a for a in eacc_app.state.sim.articles.values()}
    codes = sorted(articles)[:5]
    for n, code in enumerate(codes):
        exact_app.state.sim.set_stock(code, 10 + n, 2)

    first = await run_once(resolved, "stock")
    assert first.status == "ok", first.error
    assert first.counts["updated"] + first.counts["unchanged"] == len(codes) and first.counts["failed"] == 0
    for n, code in enumerate(codes):
        assert eacc_app.state.sim.articles[articles[code]["Id"]]["StockBalance"] == 8 + n  # on hand minus reserved

    eacc_app.state.sim.requests.clear()
    second = await run_once(resolved, "stock")
    assert second.status == "ok" and second.counts["updated"] == 0
    assert [r for r in eacc_app.state.sim.requests if r[0] in ("POST", "PUT")] == []


async def test_faults_and_a_spent_minute_lose_nothing_and_create_nothing_twice(tmp_path, servers):
    """503s, a 429 from the minute limit and an answer lost after the create: every item once."""
    eacc_app, exact_app, eacc_url, exact_url = servers
    sim = exact_app.state.sim
    sim.fail_next(503, {"error": {"code": "", "message": {"lang": "en-US", "value": "Service unavailable"}}}, times=2)
    sim.fail_next(
        429,
        {"error": {"code": "", "message": {"lang": "en-US", "value": "API rate limit exceeded."}}},
        path_prefix=f"/api/v1/{sim_division()}/logistics/SalesItemPrices",
        # as Exact sends it: the budget headers with the refusal (a 429 without them makes the
        # client learn a smaller budget from the refusal itself, and go slowly for minutes)
        headers={
            "Retry-After": "0",
            "X-RateLimit-Minutely-Limit": "60",
            "X-RateLimit-Minutely-Remaining": "0",
            "X-RateLimit-Minutely-Reset": str(int(time.time() * 1000)),
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4000",
            "X-RateLimit-Reset": str(int(time.time() * 1000) + 3_600_000),
        },
    )
    resolved = _resolved(tmp_path, eacc_url, exact_url)
    articles = {a["Number"] for a in eacc_app.state.sim.articles.values()}
    runs = [await run_once(resolved, "products") for _ in range(3)]
    assert runs[-1].status == "ok", runs[-1].error
    codes = collections.Counter(item["Code"] for item in sim.data["logistics/Items"].values())
    assert set(codes) == articles and set(codes.values()) == {1}
    items_with_price = collections.Counter(p["Item"] for p in sim.data["logistics/SalesItemPrices"].values())
    assert set(items_with_price.values()) <= {1}


def sim_division() -> int:
    from apicenterd_exact_online.simulator import DIVISION

    return DIVISION


def test_the_demo_config_passes_check(monkeypatch, capsys):
    """etc/eaccounting-exact.demo.toml is valid with the simulators' demo credentials."""
    from pathlib import Path

    from apicenterd.cli import main

    for prefix, cls, url in (
        ("EACCOUNTING", EAccountingConnector, "http://127.0.0.1:8702"),
        ("EXACT", ExactOnlineConnector, "http://127.0.0.1:8703"),
    ):
        for key, value in cls.demo_settings(url).items():
            monkeypatch.setenv(f"DEMO_{prefix}_{key.upper()}", str(value))
    demo = Path(__file__).resolve().parents[3] / "etc" / "eaccounting-exact.demo.toml"
    assert main(["check", "--config", str(demo)]) == 0, capsys.readouterr().err
    assert "4 flows" in capsys.readouterr().out

"""Faults between the daemon and Exact Online / eAccounting: 5xx, 429 bursts, timeouts after the vendor
acted, answers lost after it acted. Whatever is retried, every item, account and order exists once."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from apicenterd_exact_online import ExactOnlineConnector

from apicenterd.config import Config
from apicenterd.config.resolve import resolve
from apicenterd.registry import load_registry
from apicenterd.testing import Faults, with_faults
from apicenterd.testing.settle import run_until_settled

eaccounting = pytest.importorskip("apicenterd_eaccounting")
EAccountingConnector = eaccounting.EAccountingConnector

pytestmark = pytest.mark.anyio

FAULTS = {"error": 0.05, "drop": 0.05, "timeout": 0.03, "burst": 0.02, "timeout_delay": 0.3, "retry_after": "0", "burst_length": 2}


def _resolved(tmp_path):
    raw = {
        "daemon": {"log_level": "warning", "metrics_address": ""},
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {
            # the request deadline below the injected timeout's delay: a held answer is a timeout
            "eaccounting": {"connector": "eaccounting", **EAccountingConnector.demo_settings("http://eacc.test"), "request_deadline": 0.2},
            "exact": {"connector": "exact_online", **ExactOnlineConnector.demo_settings("http://exact.test"), "request_deadline": 0.2},
        },
        "flows": {
            "products": {"source": "eaccounting", "target": "exact", "entity": "products", "interval": "1h"},
            "customers": {"source": "eaccounting", "target": "exact", "entity": "customers", "interval": "1h"},
            "orders": {
                "source": "exact",
                "target": "eaccounting",
                "entity": "orders",
                "interval": "1h",
                "options": {"statuses": ["new", "in_process", "completed"], "document": "order", "missing_products": "create"},
            },
        },
    }
    return resolve(Config(**raw), load_registry(), tmp_path / "apicenterd.toml")


async def test_5xx_429_timeouts_and_lost_answers_never_duplicate_items_accounts_or_orders(tmp_path):
    eacc_app = EAccountingConnector.simulator(seed=8, records=20, customers=6)
    exact_app = ExactOnlineConnector.simulator(seed=8, records=0, minutely=600)
    sim = exact_app.state.sim
    for n in range(1, 4):
        sim._store("logistics/Items", {"Code": f"EXO-{n}", "Description": f"Exact product {n}", "IsSalesItem": True})
    buyer = sim.add_account(
        "Buyer BV", "orders@buyer.example", code="3001", City="Gouda", Country="NL", AddressLine1="Markt 1", Postcode="2801 JE"
    )
    for n in range(1, 6):
        sim.add_order(buyer["ID"], [(f"EXO-{1 + n % 3}", n, 2.5 * n)], your_ref=f"PO-{n}")
    # faults on Exact's API (not its token endpoint) and on eAccounting's writes
    exact_faulty = with_faults(exact_app, Faults(seed=3, path_prefix="/api/v1/", **FAULTS), in_process=True)
    eacc_faulty = with_faults(eacc_app, Faults(seed=5, methods=("POST", "PUT"), **FAULTS), in_process=True)
    transports = {"eaccounting": httpx.ASGITransport(app=eacc_faulty), "exact": httpx.ASGITransport(app=exact_faulty)}
    resolved = _resolved(tmp_path)
    for flow in ("products", "customers", "orders", "products"):
        await run_until_settled(resolved, tmp_path, transports, flow, runs=20)
    faults = Counter(exact_faulty.counts) + Counter(eacc_faulty.counts)
    assert all(faults[kind] >= 1 for kind in ("error", "drop", "timeout", "burst")), faults  # every kind happened

    articles = {a["Number"] for a in eacc_app.state.sim.articles.values()}
    codes = Counter(item["Code"] for item in sim.data["logistics/Items"].values())
    assert set(codes) == articles | {"EXO-1", "EXO-2", "EXO-3"} and set(codes.values()) == {1}, codes
    priced = Counter(p["Item"] for p in sim.data["logistics/SalesItemPrices"].values())
    assert set(priced.values()) == {1}, priced
    emails = Counter((a.get("Email") or "").lower() for a in sim.data["crm/Accounts"].values())
    for customer in eacc_app.state.sim.customers.values():
        email = (customer.get("EmailAddress") or "").lower()
        if email != "orders@buyer.example":
            assert emails[email] == 1, emails
    refs = Counter(o["YourReference"] for o in eacc_app.state.sim.orders.values())
    assert set(refs) == {str(n) for n in range(1, 6)} and set(refs.values()) == {1}, refs

    # with the faults gone, a run of every flow writes nothing
    exact_faulty.faults = Faults()
    eacc_faulty.faults = Faults()
    sim.requests.clear()
    eacc_app.state.sim.requests.clear()
    for flow in ("products", "customers", "orders"):
        history = await run_until_settled(resolved, tmp_path, transports, flow, runs=1)
        assert history[0][1]["created"] == history[0][1]["updated"] == 0, history
    assert [r for r in sim.requests if r[0] in ("POST", "PUT", "DELETE")] == []
    assert [r for r in eacc_app.state.sim.requests if r[0] in ("POST", "PUT", "DELETE")] == []

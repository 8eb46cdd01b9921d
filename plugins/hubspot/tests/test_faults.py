"""Faults between the daemon and HubSpot: 5xx before HubSpot acts, answers lost after it acted and
429 bursts, on every kind of write of the eAccounting -> HubSpot flows (batch upserts and updates of
products, contacts, companies, line items, deals). Whatever is retried, every product, customer
and deal exists once in HubSpot, and every deal has exactly its lines."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_eaccounting import plugin as eacc_plugin
from apicenterd_eaccounting.sim_seed_orders import seed_orders
from apicenterd_hubspot import HubSpotConnector
from apicenterd_hubspot import plugin as hubspot_plugin

from apicenterd.config import Config, resolve
from apicenterd.registry import load_registry
from apicenterd.testing import Faults, with_faults
from apicenterd.testing.settle import run_until_settled

pytestmark = pytest.mark.anyio

FLOWS = {
    "products": {"source": "eaccounting", "target": "hubspot", "entity": "products"},
    "customers": {"source": "eaccounting", "target": "hubspot", "entity": "customers"},
    "orders": {
        "source": "eaccounting",
        "target": "hubspot",
        "entity": "orders",
        "options": {"document": "order", "missing_products": "create"},
        "target_settings": {"default_stage": "closedwon"},
    },
}


def config(tmp_path):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {
            "eaccounting": {"connector": "eaccounting", **EAccountingConnector.demo_settings("http://eaccounting.test")},
            "hubspot": {"connector": "hubspot", **HubSpotConnector.demo_settings("http://hubspot.test")},
        },
        "flows": {name: {"interval": "1h", **flow} for name, flow in FLOWS.items()},
    }
    registry = load_registry([("eaccounting", eacc_plugin), ("hubspot", hubspot_plugin)], entry_points=False)
    return resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")


async def test_lost_answers_5xx_and_429s_never_duplicate_products_customers_or_deals(tmp_path):
    eacc_app = EAccountingConnector.simulator(seed=6, records=120, customers=8)
    eacc = eacc_app.state.sim
    orders = seed_orders(eacc, 16, seed=6)
    hubspot_app = HubSpotConnector.simulator(seed=6)
    hs = hubspot_app.state.sim
    hs.ten_secondly.window.limit = 0
    faults = Faults(error=0.06, drop=0.08, burst=0.02, burst_length=2, retry_after="0", seed=13, methods=("POST", "PATCH"))
    faulty = with_faults(hubspot_app, faults, in_process=True)
    transports = {"eaccounting": httpx.ASGITransport(app=eacc_app), "hubspot": httpx.ASGITransport(app=faulty)}
    resolved = config(tmp_path)
    await run_until_settled(resolved, tmp_path, transports, "products")
    await run_until_settled(resolved, tmp_path, transports, "customers")
    for article in list(eacc.articles.values())[:60]:  # changed: batch updates through the faults
        eacc.write_article({**article, "Name": f"{article['Name']} v2"}, article["Id"])
    await run_until_settled(resolved, tmp_path, transports, "products")
    await run_until_settled(resolved, tmp_path, transports, "orders")
    assert faulty.counts["drop"] >= 1 and faulty.counts["error"] >= 1, faulty.counts  # the faults did happen
    skus = Counter(p["properties"]["apicenterd_sku"] for p in hs.objects["products"].values())
    assert set(skus) == {a["Number"] for a in eacc.articles.values()} and set(skus.values()) == {1}
    names = {p["properties"]["apicenterd_sku"]: p["properties"]["name"] for p in hs.objects["products"].values()}
    assert all(names[a["Number"]] == a["Name"] for a in eacc.articles.values())
    emails = Counter(c["properties"]["email"] for c in hs.objects["contacts"].values())
    assert set(emails) == {c["EmailAddress"].lower() for c in eacc.customers.values()} and set(emails.values()) == {1}
    companies = Counter(c["properties"]["name"] for c in hs.objects["companies"].values())
    assert set(companies) == {c["Name"] for c in eacc.customers.values() if not c["IsPrivatePerson"]} and set(companies.values()) == {1}
    deals = Counter(d["properties"]["apicenterd_order"] for d in hs.objects["deals"].values())
    assert set(deals) == {str(o["Number"]) for o in orders} and set(deals.values()) == {1}
    for order in orders:
        [deal] = [d for d in hs.objects["deals"].values() if d["properties"]["apicenterd_order"] == str(order["Number"])]
        assert len(hs.associations[("deals", "line_items")][deal["id"]]) == len(order["Rows"])

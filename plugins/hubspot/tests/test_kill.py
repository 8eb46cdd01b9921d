"""SIGKILL a `flows run` from eAccounting into HubSpot mid-run, restart, and every record is there once.

The HubSpot simulator is wrapped in the kit's :class:`~apicenterd.testing.kill.KillAtCall`, which SIGKILLs
the `apicenterd flows run` process at its n-th call of a named write (a product upsert of 100, a batch of new companies, a line-item upsert, a deal
batch create of 100): before HubSpot applies it, after it applied it but before the
answer is sent (the write the process never heard of), or right after the answer (between the
write and its settle). No timers: the kills happen at the calls the test names. Afterwards every
eAccounting article is one HubSpot product, every customer one contact (and a company one company),
every order one deal with exactly its lines.
"""

from __future__ import annotations

import collections
import contextlib
import json
from pathlib import Path

import pytest
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_eaccounting.sim_seed_orders import seed_orders
from apicenterd_hubspot import HubSpotConnector

from apicenterd.testing import serve_app
from apicenterd.testing.kill import KillAtCall, flows_run, killed_runs, write_config

pytestmark = pytest.mark.slow

PRODUCTS, CUSTOMERS, ORDERS = 250, 8, 250
UPSERT_PRODUCTS = ("POST", "/crm/v3/objects/products/batch/upsert")
CREATE_DEALS = ("POST", "/crm/v3/objects/deals/batch/create")
UPSERT_LINES = ("POST", "/crm/v3/objects/line_items/batch/upsert")
CREATE_COMPANIES = ("POST", "/crm/v3/objects/companies/batch/create")  # an orders batch's new debtors, created together
PRODUCT_KILLS = (("applied", 2), ("before", 1), ("answered", 1))
ORDER_KILLS = ((CREATE_COMPANIES, "applied", 1), (CREATE_DEALS, "applied", 2), (UPSERT_LINES, "before", 1), (CREATE_DEALS, "answered", 1))


def _config(tmp_path: Path, eacc_url: str, hubspot_url: str) -> Path:
    hubspot = {**HubSpotConnector.demo_settings(hubspot_url), "client_rate_limit": False}
    return write_config(
        tmp_path,
        {"eaccounting": ("eaccounting", EAccountingConnector.demo_settings(eacc_url)), "hubspot": ("hubspot", hubspot)},
        {
            "products": {"source": "eaccounting", "target": "hubspot", "entity": "products", "interval": "1h"},
            "orders": {
                "source": "eaccounting",
                "target": "hubspot",
                "entity": "orders",
                "interval": "1h",
                "options": {"document": "order", "missing_products": "create"},
                "target_settings": {"default_stage": "closedwon"},
            },
        },
    )


def killed_run(switch: KillAtCall, config: Path, flow: str, call: tuple[str, str], phase: str, n: int) -> None:
    """``flow`` SIGKILLed at its ``n``-th ``(method, path)`` call, in ``phase``."""
    killed_runs(switch, config, flow, [(phase, n)], lambda method, path, body: (method, path) == call)


def finished_run(config: Path, flow: str) -> dict:
    final = flows_run(config, flow)
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()[-2000:]
    return json.loads(out.decode().strip().splitlines()[-1])


def test_sigkill_mid_run_then_restart_leaves_every_product_customer_and_deal_once(tmp_path):
    eacc_app = EAccountingConnector.simulator(seed=9, records=PRODUCTS, customers=CUSTOMERS)
    eacc = eacc_app.state.sim
    orders = seed_orders(eacc, ORDERS, seed=9)
    hubspot_app = HubSpotConnector.simulator(seed=9)
    hs = hubspot_app.state.sim
    hs.ten_secondly.window.limit = 0  # the client's limit is off too (client_rate_limit = false): no waiting in a test
    switch = KillAtCall(hubspot_app)
    with contextlib.ExitStack() as stack:
        config = _config(tmp_path, stack.enter_context(serve_app(eacc_app)), stack.enter_context(serve_app(switch)))
        for k, (phase, n) in enumerate(PRODUCT_KILLS):
            killed_run(switch, config, "products", UPSERT_PRODUCTS, phase, n)
            if k == 0:
                assert 0 < len(hs.objects["products"]) < PRODUCTS, "the kill was mid-run"
        assert finished_run(config, "products")["failed"] == 0
        for k, (call, phase, n) in enumerate(ORDER_KILLS):
            killed_run(switch, config, "orders", call, phase, n)
            if k == 1:
                assert 0 < len(hs.objects["deals"]) < ORDERS, "the kill was mid-run"
        result = finished_run(config, "orders")
        assert result["failed"] == 0, result
    assert switch.fired == [phase for phase, _ in PRODUCT_KILLS] + [phase for _, phase, _ in ORDER_KILLS]
    skus = collections.Counter(p["properties"]["apicenterd_sku"] for p in hs.objects["products"].values())
    assert set(skus) == {a["Number"] for a in eacc.articles.values()} and set(skus.values()) == {1}
    deals = collections.Counter(d["properties"]["apicenterd_order"] for d in hs.objects["deals"].values())
    assert set(deals) == {str(o["Number"]) for o in orders} and set(deals.values()) == {1}, deals
    for order in orders:
        [deal] = [d for d in hs.objects["deals"].values() if d["properties"]["apicenterd_order"] == str(order["Number"])]
        lines = hs.associations[("deals", "line_items")][deal["id"]]
        assert len(lines) == len(order["Rows"]), (order["Number"], lines)
    lines = collections.Counter(li["properties"]["apicenterd_line"] for li in hs.objects["line_items"].values())
    assert len(lines) == sum(len(o["Rows"]) for o in orders) and set(lines.values()) == {1}
    buyers = {o["CustomerId"] for o in orders}
    emails = collections.Counter(c["properties"]["email"] for c in hs.objects["contacts"].values())
    assert set(emails) == {eacc.customers[c]["EmailAddress"].lower() for c in buyers} and set(emails.values()) == {1}
    companies = collections.Counter(c["properties"]["name"] for c in hs.objects["companies"].values())
    assert set(companies) == {eacc.customers[c]["Name"] for c in buyers if not eacc.customers[c]["IsPrivatePerson"]}
    assert set(companies.values()) == {1}, companies

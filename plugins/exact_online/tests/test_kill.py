"""SIGKILL a `flows run` between eAccounting and Exact Online mid-run, restart, and every record is there once.

The kit's :class:`~apicenterd.testing.kill.KillAtCall` wraps the simulator written to and SIGKILLs the
`apicenterd flows run` process at the call the test names: before the simulator sees it, after it
applied it but before the answer (the write the process never heard of), or right after the answer
(before the settle). Products and customers go into Exact (an item and then its price; an account),
orders from Exact into eAccounting.
"""

from __future__ import annotations

import collections
import contextlib

import pytest
from apicenterd_exact_online import ExactOnlineConnector

from apicenterd.testing import serve_app
from apicenterd.testing.kill import KillAtCall, flows_run, killed_runs, write_config

eaccounting = pytest.importorskip("apicenterd_eaccounting")
EAccountingConnector = eaccounting.EAccountingConnector

pytestmark = pytest.mark.slow

ARTICLES = 16
CUSTOMERS = 6


def _post(suffix: str):
    return lambda method, path, body: method == "POST" and path.endswith(suffix)


ITEM_KILLS = (("before", 3), ("applied", 2), ("answered", 4))
PRICE_KILLS = (("applied", 2), ("answered", 1))
ACCOUNT_KILLS = (("applied", 1), ("answered", 2))
ORDER_KILLS = (("applied", 1), ("answered", 1), ("before", 1))


def _final(config, flow: str) -> None:
    proc = flows_run(config, flow)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"{flow}: exit {proc.returncode}: {err.decode()[-3000:]}"


def test_sigkill_mid_run_then_restart_leaves_every_item_account_and_order_once(tmp_path):
    eacc_app = EAccountingConnector.simulator(seed=21, records=ARTICLES, customers=CUSTOMERS)
    # Exact's minute allows more than one process's 60 here: every restart is a new process whose
    # limiter would otherwise wait out the minute the last one spent (correct, but slow to test)
    exact_app = ExactOnlineConnector.simulator(seed=21, records=0, minutely=600)
    sim = exact_app.state.sim
    for n in range(1, 4):
        sim._store("logistics/Items", {"Code": f"EXO-{n}", "Description": f"Exact product {n}", "IsSalesItem": True})
    buyer = sim.add_account(
        "Buyer BV", "orders@buyer.example", code="3001", City="Gouda", Country="NL", AddressLine1="Markt 1", Postcode="2801 JE"
    )
    for n in range(1, 6):
        sim.add_order(buyer["ID"], [(f"EXO-{1 + n % 3}", n, 2.5 * n)], your_ref=f"PO-{n}")
    exact_switch, eacc_switch = KillAtCall(exact_app), KillAtCall(eacc_app)
    with contextlib.ExitStack() as stack:
        eacc_url = stack.enter_context(serve_app(eacc_switch))
        exact_url = stack.enter_context(serve_app(exact_switch))
        config = write_config(
            tmp_path,
            {
                "eaccounting": ("eaccounting", EAccountingConnector.demo_settings(eacc_url)),
                "exact": ("exact_online", ExactOnlineConnector.demo_settings(exact_url)),
            },
            {
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
        )
        killed_runs(exact_switch, config, "products", ITEM_KILLS, _post("/logistics/Items"))
        killed_runs(exact_switch, config, "products", PRICE_KILLS, _post("/logistics/SalesItemPrices"))
        assert 0 < len(sim.data["logistics/Items"]) - 3 < ARTICLES, "the kills were mid-run"
        _final(config, "products")
        killed_runs(exact_switch, config, "customers", ACCOUNT_KILLS, _post("/crm/Accounts"))
        _final(config, "customers")
        killed_runs(eacc_switch, config, "orders", ORDER_KILLS, _post("/v2/orders"))
        _final(config, "orders")
        # the products the orders flow added to eAccounting (EXO-n, with the order's price) go to
        # Exact once; then a run of every flow writes nothing
        _final(config, "products")
        sim.requests.clear()
        eacc_app.state.sim.requests.clear()
        for flow in ("products", "customers", "orders"):
            _final(config, flow)
        assert [r for r in sim.requests if r[0] in ("POST", "PUT", "DELETE")] == []
        assert [r for r in eacc_app.state.sim.requests if r[0] in ("POST", "PUT", "DELETE")] == []

    assert exact_switch.fired == [p for p, _ in ITEM_KILLS + PRICE_KILLS + ACCOUNT_KILLS]
    assert eacc_switch.fired == [p for p, _ in ORDER_KILLS]
    articles = {a["Number"] for a in eacc_app.state.sim.articles.values()}
    codes = collections.Counter(item["Code"] for item in sim.data["logistics/Items"].values())
    assert set(codes) == articles | {"EXO-1", "EXO-2", "EXO-3"} and set(codes.values()) == {1}, codes
    priced = collections.Counter(p["Item"] for p in sim.data["logistics/SalesItemPrices"].values())
    assert set(priced.values()) == {1}, priced  # never a second price for an item
    emails = collections.Counter((a.get("Email") or "").lower() for a in sim.data["crm/Accounts"].values())
    customers = {(c.get("EmailAddress") or "").lower() for c in eacc_app.state.sim.customers.values()}
    assert customers <= set(emails) and all(emails[e] == 1 for e in customers), emails
    contacts = collections.Counter(c.get("Account") for c in sim.data["crm/Contacts"].values())
    assert set(contacts.values()) <= {1}, contacts  # one contact person per account
    refs = collections.Counter(o["YourReference"] for o in eacc_app.state.sim.orders.values())
    assert set(refs) == {str(n) for n in range(1, 6)} and set(refs.values()) == {1}, refs

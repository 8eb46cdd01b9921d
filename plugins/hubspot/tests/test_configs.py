"""The eAccounting <-> HubSpot example and demo configs pass `apicenterd check`, and the demo's
flows run between the simulators as `apicenterd demo` seeds them (in process, no ports)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from apicenterd_eaccounting.sim_seed_orders import seed_orders

from apicenterd import cli
from apicenterd.config import load
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

ETC = Path(__file__).resolve().parents[3] / "etc"


@pytest.fixture
def demo_env(monkeypatch):
    """No DEMO_* variables but what the demo sets from the simulators' demo settings."""
    for var in [v for v in os.environ if v.startswith("DEMO_")]:
        monkeypatch.delenv(var)
    yield
    for var in [v for v in os.environ if v.startswith("DEMO_")]:  # set by _demo_credentials (setdefault): not left behind
        del os.environ[var]


@pytest.mark.parametrize("name", ["eaccounting-hubspot.example.toml", "eaccounting-hubspot.demo.toml"])
def test_config_passes_check(capsys, demo_env, name):
    cli._demo_credentials(ETC / name, cli._registry())
    code = cli.main(["check", "--config", str(ETC / name)])
    out, err = capsys.readouterr()
    assert code == 0, out + err


@pytest.mark.anyio
async def test_the_demo_seeds_customers_and_orders_and_moves_them_with_the_products(tmp_path, demo_env):
    """As `apicenterd demo --records 20` serves them (the demo's own demo_simulator): eAccounting
    seeded with articles, customers and orders (every entity a flow reads), HubSpot empty; one run
    of every flow moves products, customers (contacts, and companies) and orders (deals with line
    items) to HubSpot; customers and orders made in eAccounting meanwhile follow on the next runs,
    and runs after that write nothing."""
    from apicenterd.cli.demo import demo_simulator

    config = tmp_path / "demo.toml"
    text = (ETC / "eaccounting-hubspot.demo.toml").read_text(encoding="utf-8")
    config.write_text(text.replace('path = "../state/eaccounting-hubspot-demo.db"', f'path = "{tmp_path / "demo.db"}"'), encoding="utf-8")
    registry = load_registry()
    cli._demo_credentials(config, registry)
    resolved = load(config, registry)
    eacc_app = demo_simulator(registry, resolved, "eaccounting", 20)
    hubspot_app = demo_simulator(registry, resolved, "hubspot", 20)
    eacc, hs = eacc_app.state.sim, hubspot_app.state.sim
    assert (len(eacc.articles), len(eacc.customers), len(eacc.orders)) == (20, 20, 20)
    assert all(not objects for objects in hs.objects.values())  # only written to: empty
    hs.ten_secondly.window.limit = 0  # the test does not wait out HubSpot's 10 s window (the daemon would)
    hs.search_limit.window.limit = 0

    async def run_all() -> dict:
        store = SQLiteStore(resolved.state_path)
        await store.open()
        transports = {"eaccounting": httpx.ASGITransport(app=eacc_app), "hubspot": httpx.ASGITransport(app=hubspot_app)}
        engine = Engine(resolved, store, transports=transports, rate_limits=False, retry_base_delay=0)
        try:
            return {name: await engine.run_flow(name) for name in resolved.flows}
        finally:
            await engine.aclose()
            await store.close()

    first = await run_all()
    assert all(r.status == "ok" and r.counts["failed"] == 0 for r in first.values()), {n: r.failures for n, r in first.items()}
    assert first["products_to_hubspot"].counts["created"] == 20 and len(hs.objects["products"]) == 20
    assert first["customers_to_hubspot"].counts["created"] == 20 and len(hs.objects["contacts"]) == 20
    assert len(hs.objects["companies"]) == sum(1 for c in eacc.customers.values() if not c["IsPrivatePerson"]) > 0
    assert first["orders_to_hubspot"].counts["created"] == 20
    deals = {d["properties"]["apicenterd_order"]: d for d in hs.objects["deals"].values()}
    assert set(deals) == {str(o["Number"]) for o in eacc.orders.values()}
    for order in eacc.orders.values():
        deal_id = deals[str(order["Number"])]["id"]
        assert len(hs.associations[("deals", "line_items")][deal_id]) == len(order["Rows"])
        assert hs.associations[("deals", "contacts")][deal_id]
    for n in range(1, 5):  # customers and orders made in eAccounting meanwhile
        eacc.write_customer({
            "Name": f"Kund {n}", "EmailAddress": f"kund{n}@example.com", "InvoiceAddress1": f"Gatan {n}", "InvoicePostalCode": "11122",
            "InvoiceCity": "Stockholm", "InvoiceCountryCode": "SE", "TermsOfPaymentId": next(iter(eacc.terms)),
            "IsPrivatePerson": n % 2 == 0, "IsActive": True,
        })  # fmt: skip
    orders = seed_orders(eacc, 6, seed=2)
    second = await run_all()
    assert all(r.status == "ok" and r.counts["failed"] == 0 for r in second.values()), second
    assert second["customers_to_hubspot"].counts["created"] == 4 and len(hs.objects["contacts"]) == 24
    assert second["orders_to_hubspot"].counts["created"] == 6
    deals = {d["properties"]["apicenterd_order"]: d for d in hs.objects["deals"].values()}
    assert {str(o["Number"]) for o in orders} <= set(deals) and len(deals) == 26
    third = await run_all()
    assert all(r.counts["created"] + r.counts["updated"] == 0 for r in third.values()), third


def test_other_demos_seed_what_their_flows_read(demo_env):
    """The demo's seeding on a connector without ``simulator_seeds`` is ``records`` as before, and
    a connection only written to starts empty."""
    from apicenterd.cli.demo import demo_simulator

    registry = load_registry()
    cli._demo_credentials(ETC / "demo.toml", registry)
    resolved = load(ETC / "demo.toml", registry)
    ccv = demo_simulator(registry, resolved, "salespos", 7).state.sim
    eacc = demo_simulator(registry, resolved, "eaccounting", 7).state.sim
    assert len(ccv.products) == 7
    assert (len(eacc.articles), len(eacc.customers), len(eacc.orders)) == (0, 0, 0)

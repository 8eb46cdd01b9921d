"""End to end: the order process from the CCV SalesPOS simulator to the eAccounting simulator."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal

import anyio
import pytest
from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector
from apicenterd_eaccounting.connector import EAccountingConnector

from apicenterd import Entity, Product
from apicenterd.config import load
from apicenterd.engine import Engine, StateTokenStore
from apicenterd.state import store_for
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio

SERVICE_ARTICLES = {"VERZEND": "Verzendkosten", "KORTING": "Korting", "TOESLAG": "Toeslag"}
ORDER_OPTIONS = {
    "document": "invoice_draft",
    "shipping_sku": "VERZEND",
    "discount_sku": "KORTING",
    "fee_sku": "TOESLAG",
}


def orders_flow(path, **options):
    opts = {**ORDER_OPTIONS, **options}
    lines = ["", "[flows.orders]", 'source = "salespos"', 'target = "eaccounting"', 'entity = "orders"', 'interval = "1h"']
    from e2e_support import _toml_value

    lines.append(f"options = {_toml_value(opts)}")
    path.write_text(path.read_text() + "\n".join(lines) + "\n")


async def engine_run(resolved, *flows, dry_run=False):
    store = store_for(resolved.config.state.url, resolved.state_path)
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0.01, dry_run=dry_run)
    try:
        return [await engine.run_flow(f) for f in flows], engine
    finally:
        await engine.aclose()
        await store.close()


async def seed_service_articles(resolved, eacc_url):
    """The shipping, discount and fee articles a company books those lines on."""
    store = store_for(resolved.config.state.url, resolved.state_path)
    await store.open()
    try:
        async with connect(
            EAccountingConnector, EAccountingConnector.demo_settings(eacc_url), tokens=StateTokenStore(store, "eaccounting")
        ) as target:
            for sku, name in SERVICE_ARTICLES.items():
                product = Product(sku=sku, name=name, price_excl_tax=Decimal(0), price_incl_tax=Decimal(0), tax_rate=Decimal(21))
                await target.create(Entity.PRODUCTS, target.normalize(Entity.PRODUCTS, product))
    finally:
        await store.close()


async def source_orders(ccv_url):
    async with connect(CCVSalesPOSConnector, CCVSalesPOSConnector.demo_settings(ccv_url)) as source:
        return {c.record.number: c.record async for c in source.read(Entity.ORDERS, None) if c.record is not None}


def drafts_by_reference(eacc_app):
    return collections.Counter(d["YourReference"] for d in eacc_app.state.sim.invoice_drafts.values())


@pytest.fixture
def setup(simulators, config, tmp_path):
    def make(*, ccv_options=None, **options):
        ccv_app, eacc_app, ccv_url, eacc_url = simulators(products=20, ccv_options=ccv_options)
        path, _ = config(ccv_url, eacc_url)
        orders_flow(path, **options)
        from apicenterd.registry import load_registry

        resolved = load(path, load_registry())
        return ccv_app, eacc_app, ccv_url, eacc_url, path, resolved

    return make


async def test_orders_become_invoice_drafts_once_with_their_debtors(setup, state_backend):
    ccv_app, eacc_app, ccv_url, eacc_url, path, resolved = setup()
    await seed_service_articles(resolved, eacc_url)
    (products, orders), _ = await engine_run(resolved, "products", "orders")
    assert orders.status == "ok" and orders.counts["failed"] == 0, orders
    expected = await source_orders(ccv_url)
    assert orders.counts["created"] == len(expected) > 0
    assert drafts_by_reference(eacc_app) == collections.Counter(dict.fromkeys(expected, 1))

    # one debtor per e-mail address; companies as companies with their contact person
    customers = list(eacc_app.state.sim.customers.values())
    emails = collections.Counter(c["EmailAddress"] for c in customers)
    assert set(emails.values()) == {1}
    companies = [o.customer for o in expected.values() if o.customer and o.customer.kind == "company"]
    assert companies, "the seeded shop should have company orders"
    for company in companies:
        debtor = next(c for c in customers if c["EmailAddress"] == company.email)
        assert debtor["IsPrivatePerson"] is False and debtor["Name"] == company.name
        assert debtor["ContactPersonName"] == company.contact.full_name

    # re-fetched: skipped as existing, not one write
    eacc_app.state.sim.requests.clear()
    (again,), _ = await engine_run(resolved, "orders")
    assert again.counts["created"] == 0 and again.counts["failed"] == 0
    assert [r for r in eacc_app.state.sim.requests if r[0] != "GET"] == []


async def test_unknown_sku_fails_that_order_only_naming_the_sku(setup):
    from apicenterd_ccv_salespos.simulator import UNKNOWN_SKU

    ccv_app, eacc_app, ccv_url, eacc_url, path, resolved = setup(ccv_options={"unknown_sku": True})
    await seed_service_articles(resolved, eacc_url)
    (_, orders), engine = await engine_run(resolved, "products", "orders")
    assert orders.counts["failed"] == 1 and orders.counts["created"] >= 1
    (failure,) = engine.failures
    assert UNKNOWN_SKU in failure[3]
    assert failure[2] not in drafts_by_reference(eacc_app)


async def test_payment_method_missing_from_the_map_is_a_record_error_naming_it(setup):
    ccv_app, eacc_app, ccv_url, eacc_url, path, resolved = setup(payment_methods={"BankTransfer": "BANK"})
    await seed_service_articles(resolved, eacc_url)
    (_, orders), engine = await engine_run(resolved, "products", "orders")
    methods = {o.payment_method for o in (await source_orders(ccv_url)).values()}
    assert methods - {"BankTransfer"}, "the seeded shop should use more than one payment method"
    assert orders.counts["failed"] >= 1
    for _, _, _, reason in engine.failures:
        assert "payment_methods" in reason and "is not in" in reason
    other = sorted(methods - {"BankTransfer"})[0]
    assert any(repr(other) in reason for *_, reason in engine.failures)


async def test_dry_run_changes_nothing_in_the_target(setup):
    ccv_app, eacc_app, ccv_url, eacc_url, path, resolved = setup()
    await seed_service_articles(resolved, eacc_url)
    await engine_run(resolved, "products")
    sim = eacc_app.state.sim
    before = (len(sim.invoice_drafts), len(sim.customers), len(sim.articles))
    sim.requests.clear()
    (dry,), engine = await engine_run(resolved, "orders", dry_run=True)
    assert dry.counts["created"] > 0 and engine.plans
    assert {p.entity for p in engine.plans} >= {"orders", "customers"}
    assert (len(sim.invoice_drafts), len(sim.customers), len(sim.articles)) == before
    assert [r for r in sim.requests if r[0] != "GET" and "/connect/" not in r[1]] == []
    store = store_for(resolved.config.state.url, resolved.state_path)
    await store.open()
    assert await store.get_cursor("orders") is None
    await store.close()


@pytest.mark.slow
def test_sigkill_during_order_runs_gives_one_debtor_and_one_draft_each(setup, state_backend):
    ccv_app, eacc_app, ccv_url, eacc_url, path, resolved = setup(ccv_options={"rate_limit": 0})
    anyio.run(seed_service_articles, resolved, eacc_url)
    anyio.run(lambda: engine_run(resolved, "products"))
    sim = eacc_app.state.sim
    rng = random.Random(7)
    kills = 0
    for _ in range(8):
        before = len(sim.customers) + len(sim.invoice_drafts)
        proc = subprocess.Popen(
            [sys.executable, "-m", "apicenterd.cli", "flows", "run", "orders", "--config", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ},
        )
        deadline = time.monotonic() + 20
        while proc.poll() is None and len(sim.customers) + len(sim.invoice_drafts) == before and time.monotonic() < deadline:
            time.sleep(0.002)
        if proc.poll() is not None:
            break
        time.sleep(rng.uniform(0, 0.03))  # between a debtor's create and its order's, or in a write
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
    final = subprocess.run(
        [sys.executable, "-m", "apicenterd.cli", "flows", "run", "orders", "--config", str(path)], capture_output=True, timeout=120
    )
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    assert kills >= 1
    expected = anyio.run(source_orders, ccv_url)
    assert drafts_by_reference(eacc_app) == collections.Counter(dict.fromkeys(expected, 1))
    emails = collections.Counter(c["EmailAddress"] for c in sim.customers.values())
    assert set(emails.values()) == {1}


async def test_a_custom_row_without_sku_is_booked_on_the_fallback_article(setup):
    """A real CCV order carries a row without product_number (an engraving, product_id null):
    before, the whole order failed ("a product line needs a SKU"); with lines_without_sku =
    "article" (the orders example's setting) it is booked on the fallback article."""
    ccv_app, eacc_app, ccv_url, eacc_url, path, resolved = setup(lines_without_sku="article", fallback_sku="TOESLAG")
    sim = ccv_app.state.sim
    template = next(iter(sim.orderrows.values()))
    engraved = template["order_id"]
    custom = {
        **template,
        "id": 52999999,
        "href": "/api/rest/v1/orderrows/52999999/",
        "product_id": None,
        "product_href": None,
        "product_number": "",
        "product_name": "Gravure: Jan",
        "count": 1,
        "price": 7.5,
        "discount": 0.0,
        "total_price": 7.5,
    }
    sim.orderrows[custom["id"]] = custom
    await seed_service_articles(resolved, eacc_url)
    (_, orders), engine = await engine_run(resolved, "products", "orders")
    assert orders.status == "ok" and orders.counts["failed"] == 0, engine.failures
    number = next(o["ordernumber_full"] for o in sim.orders.values() if o["id"] == engraved)
    (draft,) = [d for d in eacc_app.state.sim.invoice_drafts.values() if d["YourReference"] == number]
    toeslag = next(a["Id"] for a in eacc_app.state.sim.articles.values() if a["Number"] == "TOESLAG")
    (row,) = [r for r in draft["Rows"] if r.get("Text") == "Gravure: Jan"]
    assert row["ArticleId"] == toeslag and Decimal(str(row["UnitPrice"])) > 0

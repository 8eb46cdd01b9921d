"""Flows through the daemon's engine between the simulators: CCV SalesPOS → MplusKASSA (products with
allocated article numbers, stock, web orders into the till) and MplusKASSA till orders → eAccounting.
Each flow runs twice: the second run writes nothing."""

from __future__ import annotations

import httpx
import pytest
from apicenterd_ccv_salespos import plugin as ccv_plugin
from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector
from apicenterd_eaccounting import plugin as eaccounting_plugin
from apicenterd_eaccounting.connector import EAccountingConnector
from apicenterd_mpluskassa import MplusKassaConnector
from apicenterd_mpluskassa import plugin as mplus_plugin

from apicenterd.config import Config, resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio

WRITES = ("createProduct", "updateProduct", "setStock", "createRelation", "updateRelation", "createOrderV3", "newArticleGroup")


@pytest.fixture
def registry():
    return load_registry([("ccv", ccv_plugin), ("eaccounting", eaccounting_plugin), ("mpluskassa", mplus_plugin)], entry_points=False)


@pytest.fixture
def apps(wsdl):
    return {
        "shop": CCVSalesPOSConnector.simulator(seed=2, records=12),
        "till": MplusKassaConnector.simulator(seed=2, records=4, relations=3, orders=5, wsdl=wsdl),
        "books": EAccountingConnector.simulator(seed=2, customers=1),
    }


def config(tmp_path, registry, flows: dict, till: dict | None = None):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {
            "shop": {"connector": "ccv_salespos", **CCVSalesPOSConnector.demo_settings("http://shop.test")},
            "till": {
                "connector": "mpluskassa",
                **MplusKassaConnector.demo_settings("http://till.test:34343"),
                "allocate_article_numbers": True,
                "allocation_range": [200000, 299999],
                **(till or {}),
            },
            "books": {"connector": "eaccounting", **EAccountingConnector.demo_settings("http://books.test")},
        },
        "flows": {name: {"interval": "1h", **flow} for name, flow in flows.items()},
    }
    return resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")


async def run(resolved, tmp_path, apps, name):
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0, transports={k: httpx.ASGITransport(app=v) for k, v in apps.items()})
    try:
        result = await engine.run_flow(name)
        audit = await store.audit(flow=name)
    finally:
        await engine.aclose()
        await store.close()
    return result, audit


def till_writes(apps) -> int:
    sim = apps["till"].state.sim
    return sum(1 for operation, _ in sim.received if operation in WRITES)


async def test_products_from_ccv_get_allocated_article_numbers_shown_in_the_audit(tmp_path, registry, apps):
    resolved = config(tmp_path, registry, {"products": {"source": "shop", "target": "till", "entity": "products"}})
    first, audit = await run(resolved, tmp_path, apps, "products")
    assert first.status == "ok" and first.counts["created"] == 12 and first.counts["failed"] == 0, (first.counts, first.error)
    till = apps["till"].state.sim
    created = [e for e in audit if e.action == "created"]
    for entry in created:  # the SKU (SP-...) and the number it got
        article = till.products[till.article_product[int(entry.target_id)]]["articles"]
        assert any(a["articleNumber"] == int(entry.target_id) and a.get("pluNumber") == entry.key for a in article), entry
        assert 200000 <= int(entry.target_id) <= 299999 and entry.key.startswith("SP-")
    assert len({e.target_id for e in created}) == 12
    writes = till_writes(apps)
    second, _ = await run(resolved, tmp_path, apps, "products")
    assert second.status == "ok" and second.counts["created"] == 0 and second.counts["updated"] == 0, second.counts
    assert till_writes(apps) == writes  # nothing written the second time


async def test_a_non_numeric_sku_without_allocation_fails_that_record_only(tmp_path, registry, apps):
    resolved = config(
        tmp_path,
        registry,
        {"products": {"source": "shop", "target": "till", "entity": "products"}},
        till={"allocate_article_numbers": False},
    )
    result, audit = await run(resolved, tmp_path, apps, "products")
    assert result.status == "ok" and result.counts["failed"] == 12
    assert all("is not numeric" in e.reason for e in audit if e.action == "failed")
    assert till_writes(apps) == 0


async def test_stock_from_ccv_to_the_tills_branch(tmp_path, registry, apps):
    resolved = config(
        tmp_path,
        registry,
        {
            "products": {"source": "shop", "target": "till", "entity": "products"},
            "stock": {"source": "shop", "target": "till", "entity": "stock", "options": {"manage_stock": True}},
        },
    )
    await run(resolved, tmp_path, apps, "products")
    first, audit = await run(resolved, tmp_path, apps, "stock")
    assert first.status == "ok" and first.counts["failed"] == 0, (first.counts, [e.reason for e in audit if e.action == "failed"])
    till = apps["till"].state.sim
    assert first.counts["updated"] + first.counts["unchanged"] >= 1
    assert any(branch == 1 and number >= 200000 for (branch, number) in till.stock)
    writes = till_writes(apps)
    second, _ = await run(resolved, tmp_path, apps, "stock")
    assert second.counts["updated"] == 0 and till_writes(apps) == writes


async def test_web_orders_into_the_till_once(tmp_path, registry, apps):
    till = apps["till"].state.sim
    resolved = config(
        tmp_path,
        registry,
        {
            "products": {"source": "shop", "target": "till", "entity": "products"},
            "orders": {
                "source": "shop",
                "target": "till",
                "entity": "orders",
                "options": {
                    "statuses": ["new", "in_process", "sent", "delivered", "completed", "cancelled", "on_hold", "paid", "pending"],
                    "missing_products": "create",
                    "shipping_sku": "900001",
                    "discount_sku": "900002",
                    "lines_without_sku": "text",
                    "document": "order",
                },
                "target_settings": {"employee_number": 7, "branch_number": 1, "text_article_number": 1000},
            },
        },
    )
    await run(resolved, tmp_path, apps, "products")
    seeded = len(till.orders)
    first, audit = await run(resolved, tmp_path, apps, "orders")
    assert first.status == "ok" and first.counts["created"] == 3 and first.counts["failed"] == 0, (
        first.counts,
        first.error,
        [e.reason for e in audit if e.action == "failed"],
    )
    created = [o for o in till.orders.values() if o.get("extOrderId")]
    assert len(created) == first.counts["created"] == len(till.orders) - seeded
    assert {o["employeeNumber"] for o in created} == {7}
    keys = set(till.idempotent)
    second, _ = await run(resolved, tmp_path, apps, "orders")
    assert second.counts["created"] == 0 and len(till.orders) == seeded + len(created) and set(till.idempotent) == keys


async def test_till_orders_into_eaccounting(tmp_path, registry, apps):
    books = apps["books"].state.sim
    # relation numbers become customer numbers: the books' own debtor is numbered out of their way
    debtor_id, debtor = next(iter(books.customers.items()))
    books.customers[debtor_id] = {**debtor, "CustomerNumber": "90001"}
    resolved = config(
        tmp_path,
        registry,
        {
            "orders": {
                "source": "till",
                "target": "books",
                "entity": "orders",
                "options": {
                    "statuses": ["paid", "completed"],
                    "missing_products": "create",
                    "document": "order",
                    "customer": "default_without_email",
                    "default_customer": next(iter(apps["books"].state.sim.customers)),
                },
            },
        },
    )
    first, audit = await run(resolved, tmp_path, apps, "orders")
    assert first.status == "ok" and first.counts["created"] == 5, (
        first.counts,
        first.error,
        [e.reason for e in audit if e.action == "failed"],
    )
    references = sorted(o.get("YourReference") for o in books.orders.values())
    assert len(references) == 5 and all(r and r.startswith("20") for r in references)
    second, _ = await run(resolved, tmp_path, apps, "orders")
    assert second.counts["created"] == 0 and len(books.orders) == 5

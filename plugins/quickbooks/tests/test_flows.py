"""QuickBooks in flows through the daemon's engine, against the simulators: items into eAccounting articles,
eAccounting articles into QuickBooks items (each with a second run that writes nothing)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_quickbooks import QuickBooksConnector

from apicenterd.config import Config, resolve
from apicenterd.registry import load_registry
from apicenterd.testing.settle import run_once

pytestmark = pytest.mark.anyio


async def _run(tmp_path: Path, raw: dict, transports: dict, flow: str):
    resolved = resolve(Config(**raw), load_registry(), tmp_path / "apicenterd.toml")
    return await run_once(resolved, flow, transports=transports, retry_base_delay=0, state_path=tmp_path / "state.db")


def _config(tmp_path: Path, qbo: dict, eacc: dict, flow: dict) -> dict:
    return {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"qbo": {"connector": "quickbooks", **qbo}, "eacc": {"connector": "eaccounting", **eacc}},
        "flows": {"f": {"interval": "1m", **flow}},
    }


async def test_quickbooks_items_into_eaccounting_and_a_second_run_writes_nothing(tmp_path):
    qbo_app = QuickBooksConnector.simulator(seed=3, records=45)
    eacc_app = EAccountingConnector.simulator(seed=3)
    coding = next(c["Id"] for c in eacc_app.state.sim.codings.values() if c["VatRatePercent"] == Decimal("0.25"))
    raw = _config(
        tmp_path,
        {**QuickBooksConnector.demo_settings("http://qbo.test"), "currency": "EUR", "page_size": 20},
        {**EAccountingConnector.demo_settings("http://eacc.test"), "article_coding_id": coding},
        {"source": "qbo", "target": "eacc", "entity": "products"},
    )
    transports = {"qbo": httpx.ASGITransport(app=qbo_app), "eacc": httpx.ASGITransport(app=eacc_app)}
    first = await _run(tmp_path, raw, transports, "f")
    assert first.status == "ok" and first.counts["created"] == 45, first
    numbers = {a["Number"] for a in eacc_app.state.sim.articles.values()}
    assert numbers == {f"SKU-{n:05d}" for n in range(1, 46)}
    qbo_app.state.sim.reset_counts()
    eacc_app.state.sim.reset_counts()
    second = await _run(tmp_path, raw, transports, "f")
    assert second.status == "ok" and second.counts["created"] == 0 and second.counts["updated"] == 0
    assert eacc_app.state.sim.count("POST") == 0 and eacc_app.state.sim.count("PUT") == 0


async def test_eaccounting_articles_into_quickbooks_items(tmp_path):
    qbo_app = QuickBooksConnector.simulator(seed=3)
    eacc_app = EAccountingConnector.simulator(seed=3, records=12)
    raw = _config(
        tmp_path,
        {**QuickBooksConnector.demo_settings("http://qbo.test"), "currency": "EUR"},
        EAccountingConnector.demo_settings("http://eacc.test"),
        {"source": "eacc", "target": "qbo", "entity": "products"},
    )
    transports = {"qbo": httpx.ASGITransport(app=qbo_app), "eacc": httpx.ASGITransport(app=eacc_app)}
    first = await _run(tmp_path, raw, transports, "f")
    assert first.status == "ok" and first.counts["created"] == 12, first
    skus = {i["Sku"] for i in qbo_app.state.sim.store["Item"].values()}
    assert skus == {a["Number"] for a in eacc_app.state.sim.articles.values()}
    qbo_app.state.sim.reset_counts()
    second = await _run(tmp_path, raw, transports, "f")
    assert second.counts["created"] == 0 and second.counts["updated"] == 0
    assert qbo_app.state.sim.count("POST") == 0


async def test_ccv_till_orders_into_quickbooks_sales_receipts_and_invoices(tmp_path):
    from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector

    qbo_app = QuickBooksConnector.simulator(seed=3)
    ccv_app = CCVSalesPOSConnector.simulator(seed=3, records=10)
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {
            "qbo": {"connector": "quickbooks", **QuickBooksConnector.demo_settings("http://qbo.test"), "currency": "EUR"},
            "ccv": {"connector": "ccv_salespos", **CCVSalesPOSConnector.demo_settings("http://ccv.test")},
        },
        "flows": {
            "f": {
                "source": "ccv",
                "target": "qbo",
                "entity": "orders",
                "interval": "1m",
                "options": {"customer": "default_without_email", "default_customer": "1", "missing_products": "create"},
                "target_settings": {"paid_as": "sales_receipt"},
            }
        },
    }
    transports = {"qbo": httpx.ASGITransport(app=qbo_app), "ccv": httpx.ASGITransport(app=ccv_app)}
    sim = qbo_app.state.sim
    sim.write("Customer", "create", {"DisplayName": "Walk-in customer"})
    first = await _run(tmp_path, raw, transports, "f")
    documents = len(sim.store["Invoice"]) + len(sim.store["SalesReceipt"])
    assert first.counts["created"] == documents and documents > 0, first
    assert first.status == "ok", first
    for doc in [*sim.store["Invoice"].values(), *sim.store["SalesReceipt"].values()]:
        assert doc["CustomerRef"]["value"] and doc["DocNumber"] and doc["Line"]
    sim.reset_counts()
    second = await _run(tmp_path, raw, transports, "f")
    assert second.counts["created"] == 0
    assert sim.count("POST", f"/v3/company/{sim.realm}/invoice") == 0 and sim.count("POST", f"/v3/company/{sim.realm}/salesreceipt") == 0

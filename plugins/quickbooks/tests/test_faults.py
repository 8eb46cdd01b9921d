"""Faults between the daemon and QuickBooks: 5xx before QuickBooks acts, and answers lost after it
acted (a batch of item or customer creates, a sales receipt). Whatever is retried, every item,
customer and document exists once in QuickBooks."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from apicenterd_mpluskassa import MplusKassaConnector
from apicenterd_mpluskassa import plugin as mplus_plugin
from apicenterd_quickbooks import QuickBooksConnector
from apicenterd_quickbooks import plugin as qbo_plugin

from apicenterd.config import Config, resolve
from apicenterd.registry import load_registry
from apicenterd.testing import Faults, with_faults
from apicenterd.testing.settle import run_until_settled

pytestmark = pytest.mark.anyio


def config(tmp_path, flows: dict):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {
            "books": {"connector": "quickbooks", **QuickBooksConnector.demo_settings("http://qbo.test"), "currency": "EUR"},
            "till": {"connector": "mpluskassa", **MplusKassaConnector.demo_settings("http://till.test:34343")},
        },
        "flows": {name: {"interval": "1h", "source": "till", "target": "books", **flow} for name, flow in flows.items()},
    }
    registry = load_registry([("qbo", qbo_plugin), ("mpluskassa", mplus_plugin)], entry_points=False)
    return resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")


async def test_lost_answers_and_5xx_never_duplicate_items_customers_or_receipts(tmp_path):
    till_app = MplusKassaConnector.simulator(seed=4, records=90, relations=40, orders=20)
    books_app = QuickBooksConnector.simulator(seed=4)
    books = books_app.state.sim
    books.write("Customer", "create", {"DisplayName": "Walk-in customer"})
    faulty = with_faults(books_app, Faults(error=0.05, drop=0.08, seed=11, path_prefix="/v3/"), in_process=True)
    transports = {"till": httpx.ASGITransport(app=till_app), "books": httpx.ASGITransport(app=faulty)}
    resolved = config(
        tmp_path,
        {
            "products": {"entity": "products"},
            "customers": {"entity": "customers"},
            "orders": {
                "entity": "orders",
                "options": {"customer": "default_without_email", "default_customer": "1", "missing_products": "create"},
                "target_settings": {"paid_as": "sales_receipt"},
            },
        },
    )
    for flow in ("products", "customers", "orders"):
        await run_until_settled(resolved, tmp_path, transports, flow)
    assert faulty.counts["drop"] >= 1 and faulty.counts["error"] >= 1, faulty.counts  # the faults did happen
    assert books.count("POST", f"/v3/company/{books.realm}/batch") >= 4  # items and customers went in batches
    skus = Counter(i.get("Sku") for i in books.store["Item"].values())
    assert len(skus) == 90 and set(skus.values()) == {1}, {s: c for s, c in skus.items() if c > 1}
    emails = Counter(c["PrimaryEmailAddr"]["Address"] for c in books.store["Customer"].values() if c.get("PrimaryEmailAddr"))
    assert len(emails) == 40 and set(emails.values()) == {1}, emails
    receipts = Counter(r["DocNumber"] for r in books.store["SalesReceipt"].values())
    assert len(receipts) == 20 and set(receipts.values()) == {1}, receipts

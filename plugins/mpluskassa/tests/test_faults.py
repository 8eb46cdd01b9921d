"""Faults between the daemon and the till: 5xx before the till acts and answers lost after it acted.
Whatever is retried, every product and every order exists once in MplusKASSA."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from apicenterd_ccv_salespos import plugin as ccv_plugin
from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector
from apicenterd_mpluskassa import MplusKassaConnector
from apicenterd_mpluskassa import plugin as mplus_plugin

from apicenterd.config import Config, resolve
from apicenterd.registry import load_registry
from apicenterd.testing import Faults, with_faults
from apicenterd.testing.settle import run_until_settled

pytestmark = pytest.mark.anyio


def config(tmp_path, flows: dict):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {
            "shop": {"connector": "ccv_salespos", **CCVSalesPOSConnector.demo_settings("http://shop.test")},
            "till": {
                "connector": "mpluskassa",
                **MplusKassaConnector.demo_settings("http://till.test:34343"),
                "allocate_article_numbers": True,
                "allocation_range": [200000, 299999],
            },
        },
        "flows": {name: {"interval": "1h", **flow} for name, flow in flows.items()},
    }
    registry = load_registry([("ccv", ccv_plugin), ("mpluskassa", mplus_plugin)], entry_points=False)
    return resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")


async def test_lost_answers_and_5xx_never_duplicate_products_or_orders(tmp_path, wsdl):
    shop = CCVSalesPOSConnector.simulator(seed=4, records=15)
    till_app = MplusKassaConnector.simulator(seed=4, wsdl=wsdl)
    till = till_app.state.sim
    faulty = with_faults(till_app, Faults(error=0.05, drop=0.06, seed=11), in_process=True)
    transports = {"shop": httpx.ASGITransport(app=shop), "till": httpx.ASGITransport(app=faulty)}
    resolved = config(
        tmp_path,
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
                    "document": "order",
                },
                "target_settings": {"text_article_number": 900003},
            },
        },
    )
    await run_until_settled(resolved, tmp_path, transports, "products")
    await run_until_settled(resolved, tmp_path, transports, "orders")
    assert faulty.counts["drop"] >= 1 and faulty.counts["error"] >= 1, faulty.counts  # the faults did happen
    skus = Counter(a.get("pluNumber") for p in till.products.values() for a in p["articles"] if a.get("pluNumber"))
    assert len(skus) == 15 and set(skus.values()) == {1}, skus
    numbers = [a["articleNumber"] for p in till.products.values() for a in p["articles"]]
    assert len(numbers) == len(set(numbers))
    ext = Counter(o["extOrderId"] for o in till.orders.values())
    assert len(ext) == 3 and set(ext.values()) == {1}, ext

"""SIGKILL a `flows run` into MplusKASSA mid-run, restart, and nothing is duplicated or missing.

The till simulator is wrapped in the kit's :class:`~apicenterd.testing.kill.KillAtCall`, which SIGKILLs
the `apicenterd flows run` process at its n-th ``createProduct`` or ``createOrderV3``: before the till
applies it, after it applied it but before the answer is sent (the write the process never heard of), or right after the answer
(between the write and its settle). No timers: the kills happen at the calls the test names.
Every SKU must end up as exactly one article (its allocated number never handed to another SKU),
every web order as exactly one till order.
"""

from __future__ import annotations

import collections
import contextlib
from pathlib import Path

import pytest
from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector
from apicenterd_ccv_salespos.mapping import ORDER_STATUSES
from apicenterd_mpluskassa import MplusKassaConnector

from apicenterd.testing import serve_app
from apicenterd.testing.kill import KillAtCall, flows_run, killed_runs, write_config

pytestmark = pytest.mark.slow

PRODUCTS = 40
PRODUCT_KILLS = (("before", 3), ("applied", 2), ("answered", 4), ("applied", 1))
ORDER_KILLS = (("applied", 1), ("answered", 2), ("before", 1))
STATUSES = ("new", "in_process", "sent", "delivered", "completed", "cancelled", "paid")


def _operation(operation: str):
    """A SOAP call of ``operation`` (its body element, with or without a namespace prefix)."""
    return lambda method, path, body: f":{operation}>".encode() in body or f"<{operation}>".encode() in body


def _config(tmp_path: Path, shop_url: str, till_url: str) -> Path:
    till = {**MplusKassaConnector.demo_settings(till_url), "allocate_article_numbers": True, "allocation_range": [300000, 399999]}
    return write_config(
        tmp_path,
        {"shop": ("ccv_salespos", CCVSalesPOSConnector.demo_settings(shop_url)), "till": ("mpluskassa", till)},
        {
            "products": {"source": "shop", "target": "till", "entity": "products", "interval": "1h"},
            "orders": {
                "source": "shop",
                "target": "till",
                "entity": "orders",
                "interval": "1h",
                "options": {
                    "statuses": list(STATUSES),
                    "missing_products": "create",
                    "shipping_sku": "900001",
                    "discount_sku": "900002",
                    "document": "order",
                },
                "target_settings": {"text_article_number": 900003},
            },
        },
    )


def test_sigkill_mid_run_then_restart_leaves_every_article_and_order_once(tmp_path):
    shop_app = CCVSalesPOSConnector.simulator(seed=9, records=PRODUCTS)
    till_app = MplusKassaConnector.simulator(seed=9)
    till = till_app.state.sim
    switch = KillAtCall(till_app)
    with contextlib.ExitStack() as stack:
        config = _config(tmp_path, stack.enter_context(serve_app(shop_app)), stack.enter_context(serve_app(switch)))
        killed_runs(switch, config, "products", PRODUCT_KILLS, _operation("createProduct"))
        assert 0 < sum(len(p["articles"]) for p in till.products.values()) < PRODUCTS, "the kills were mid-run"
        final = flows_run(config, "products")
        _, err = final.communicate(timeout=300)
        assert final.returncode == 0, err.decode()[-2000:]
        killed_runs(switch, config, "orders", ORDER_KILLS, _operation("createOrderV3"))
        final = flows_run(config, "orders")
        _, err = final.communicate(timeout=300)
        assert final.returncode == 0, err.decode()[-2000:]
    assert switch.fired == [phase for phase, _ in PRODUCT_KILLS + ORDER_KILLS]
    skus = collections.Counter(a.get("pluNumber") for p in till.products.values() for a in p["articles"] if a.get("pluNumber"))
    assert len(skus) == PRODUCTS and set(skus.values()) == {1}, {s: c for s, c in skus.items() if c > 1}
    numbers = [a["articleNumber"] for p in till.products.values() for a in p["articles"]]
    assert len(numbers) == len(set(numbers))
    orders = collections.Counter(o["extOrderId"] for o in till.orders.values())
    assert orders and set(orders.values()) == {1}, orders
    selected = [o for o in shop_app.state.sim.orders.values() if ORDER_STATUSES.get(o["status"]) in STATUSES]
    assert len(orders) == len(selected)

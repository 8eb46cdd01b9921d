"""SIGKILL a `flows run` into QuickBooks mid-run, restart, and nothing is duplicated or missing.

The QuickBooks simulator is wrapped in a middleware that SIGKILLs the `apicenterd flows run`
process at its n-th write of one kind (a ``batch`` of item creates, or of sales receipts, 30 a call):
before QuickBooks applies it, after it applied it but before the answer is sent (the write the
process never heard of), or right after the answer (between the write and its settle). No timers:
the kills happen at the calls the test names. MplusKASSA (the source: articles and till orders)
is served alongside. Every article must end up as exactly one item, every till order as exactly
one sales receipt.
"""

from __future__ import annotations

import collections
import contextlib
from pathlib import Path

import pytest
from apicenterd_mpluskassa import MplusKassaConnector
from apicenterd_quickbooks import QuickBooksConnector

from apicenterd.testing import kill, serve_app
from apicenterd.testing.kill import KillAtCall, flows_run, write_config

pytestmark = pytest.mark.slow

ARTICLES = 160
PRODUCT_KILLS = (("before", 2), ("applied", 1), ("answered", 2))
ORDERS = 100  # 4 batch calls of sales receipts in the first run
ORDER_KILLS = (("before", 2), ("applied", 1), ("answered", 1))  # answered last: the process may outrun it


def killed_runs(switch: KillAtCall, config: Path, flow: str, suffix: str, kills) -> None:
    """The kit's killed runs, each SIGKILLed at its n-th POST to a path ending in ``suffix`` (the kit's middleware)."""
    kill.killed_runs(switch, config, flow, kills, lambda method, path, body: method == "POST" and path.endswith(suffix))


def _config(tmp_path: Path, books_url: str, till_url: str) -> Path:
    return write_config(
        tmp_path,
        {
            "books": ("quickbooks", {**QuickBooksConnector.demo_settings(books_url), "currency": "EUR"}),
            "till": ("mpluskassa", MplusKassaConnector.demo_settings(till_url)),
        },
        {
            "products": {"source": "till", "target": "books", "entity": "products", "interval": "1h"},
            "orders": {
                "source": "till",
                "target": "books",
                "entity": "orders",
                "interval": "1h",
                "options": {"customer": "default_without_email", "default_customer": "1", "missing_products": "create"},
                "target_settings": {"paid_as": "sales_receipt"},
            },
        },
    )


def finish(config: Path, flow: str) -> None:
    final = flows_run(config, flow)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()[-2000:]


def test_sigkill_mid_run_then_restart_leaves_every_item_and_receipt_once(tmp_path):
    books_app = QuickBooksConnector.simulator(seed=9)
    till_app = MplusKassaConnector.simulator(seed=9, records=ARTICLES, relations=0, orders=ORDERS)
    books = books_app.state.sim
    books.write("Customer", "create", {"DisplayName": "Walk-in customer"})
    switch = KillAtCall(books_app)
    with contextlib.ExitStack() as stack:
        config = _config(tmp_path, stack.enter_context(serve_app(switch)), stack.enter_context(serve_app(till_app)))
        killed_runs(switch, config, "products", "/batch", PRODUCT_KILLS)
        assert 0 < len(books.store["Item"]) < ARTICLES, "the kills were mid-run"
        finish(config, "products")
        killed_runs(switch, config, "orders", "/batch", ORDER_KILLS)
        finish(config, "orders")
    assert switch.fired == [phase for phase, _ in PRODUCT_KILLS + ORDER_KILLS]
    skus = collections.Counter(i.get("Sku") for i in books.store["Item"].values())
    assert len(skus) == ARTICLES and set(skus.values()) == {1}, {s: c for s, c in skus.items() if c > 1}
    assert set(skus) == {str(n) for n in till_app.state.sim.article_product}
    receipts = collections.Counter(r["DocNumber"] for r in books.store["SalesReceipt"].values())
    assert len(receipts) == len(till_app.state.sim.orders) and set(receipts.values()) == {1}, receipts

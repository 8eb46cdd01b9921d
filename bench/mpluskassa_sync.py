"""Benchmark: MplusKASSA as a target and as a source, in-process against the simulators.

1. A first products sync of N CCV SalesPOS products into MplusKASSA (non-numeric SKUs: every
   article gets an allocated number), then an unchanged second run.
2. An orders sync of M MplusKASSA till orders into eAccounting (the order process: debtor by
   e-mail or the default debtor, articles created when missing, an order document each).

Prints records per second and MplusKASSA calls per record for each run. Client-side rate limits
and the simulators' limits are off: this measures the connector and the daemon, not a vendor's
quota (MplusKASSA documents none; the connector's own ceiling is 1,200 calls a minute, which
bounds a real first sync of N products at about N * calls-per-record / 1,200 minutes).

    .venv/bin/python bench/mpluskassa_sync.py --products 20000 --orders 5000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import anyio
import httpx
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


def config(state: Path, default_debtor: str) -> object:
    registry = load_registry([("ccv", ccv_plugin), ("eaccounting", eaccounting_plugin), ("mpluskassa", mplus_plugin)], entry_points=False)
    raw = {
        "state": {"path": str(state)},
        "connections": {
            "shop": {"connector": "ccv_salespos", **CCVSalesPOSConnector.demo_settings("http://shop.test")},
            "till": {"connector": "mpluskassa", **MplusKassaConnector.demo_settings("http://till.test:34343"),
                     "allocate_article_numbers": True, "page_size": 500, "max_concurrency": 4},
            "books": {"connector": "eaccounting", **EAccountingConnector.demo_settings("http://books.test")},
        },
        "flows": {
            "products": {"source": "shop", "target": "till", "entity": "products", "interval": "1h"},
            "orders": {"source": "till", "target": "books", "entity": "orders", "interval": "1h",
                       "options": {"statuses": ["paid", "completed"], "missing_products": "create", "document": "order",
                                   "customer": "default_without_email", "default_customer": default_debtor}},
        },
    }
    return resolve(Config(**raw), registry, state.parent / "apicenterd.toml")


async def run(resolved, state: Path, transports: dict, name: str):
    store = SQLiteStore(state)
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0, rate_limits=False, transports=transports)
    try:
        started = time.perf_counter()
        result = await engine.run_flow(name)
        return result, time.perf_counter() - started
    finally:
        await engine.aclose()
        await store.close()


async def main(products: int, orders: int) -> None:
    shop = CCVSalesPOSConnector.simulator(seed=1, records=products, rate_limit=0)
    till_app = MplusKassaConnector.simulator(seed=1, records=max(50, orders // 20), relations=200, orders=orders)
    books = EAccountingConnector.simulator(seed=1, customers=1, rate_limit=0)
    default_debtor, debtor = next(iter(books.state.sim.customers.items()))
    # relation numbers become customer numbers: the books' own debtor is numbered out of their way
    books.state.sim.customers[default_debtor] = {**debtor, "CustomerNumber": "90001"}
    till = till_app.state.sim
    transports = {"shop": httpx.ASGITransport(app=shop), "till": httpx.ASGITransport(app=till_app), "books": httpx.ASGITransport(app=books)}
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.db"
        resolved = config(state, default_debtor)
        for label in ("first", "second"):
            before = till.requests.total
            result, seconds = await run(resolved, state, transports, "products")
            calls = till.requests.total - before
            done = sum(result.counts.values())
            print(f"products {label} run: {dict(result.counts)} in {seconds:.1f} s, {done / seconds:.0f} records/s, "
                  f"{calls / max(done, 1):.3f} MplusKASSA calls per record ({calls} calls)")
        before = till.requests.total
        result, seconds = await run(resolved, state, transports, "orders")
        calls = till.requests.total - before
        done = sum(result.counts.values())
        print(f"till orders -> eAccounting: {dict(result.counts)} in {seconds:.1f} s, {done / seconds:.0f} records/s, "
              f"{calls / max(done, 1):.3f} MplusKASSA calls per order ({calls} calls)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--orders", type=int, default=500)
    args = parser.parse_args()
    anyio.run(main, args.products, args.orders)

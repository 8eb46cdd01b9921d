"""Benchmark: the QuickBooks Online ⇄ MplusKASSA pair through the engine, in-process against both simulators.

1. products: a first sync of N QuickBooks items into MplusKASSA (non-numeric SKUs: every article
   gets an allocated number), then an unchanged second run;
2. orders: M MplusKASSA till orders into QuickBooks sales receipts (the order process: customer by
   e-mail or the default debtor, items created when missing);
3. items into QuickBooks: N MplusKASSA articles as QuickBooks items, created in batches of 30
   (``create_many``): QuickBooks write calls per record.

For each: records/s, calls per record on both sides, and the wall time the vendors' limits impose
on that many calls (QuickBooks: 500 requests and 40 batches a minute per realm; MplusKASSA: the
connector's own ceiling of 1,200 calls a minute, none documented). By default the limits are off
(the daemon and the connectors are measured, the bound computed from the calls); ``--limits``
runs with the engine's rate limits and the simulators' limits on (then the wall time *is* the bound:
use a small N).

    .venv/bin/python bench/quickbooks_mpluskassa.py --products 20000 --orders 5000
    .venv/bin/python bench/quickbooks_mpluskassa.py --products 300 --orders 100 --json
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
from apicenterd_mpluskassa import MplusKassaConnector
from apicenterd_mpluskassa import plugin as mplus_plugin
from apicenterd_quickbooks import QuickBooksConnector
from apicenterd_quickbooks import plugin as qbo_plugin

from apicenterd.config import Config, resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore
from apicenterd.testing.sim import FixedWindow, RateLimitGate

QBO_PER_MINUTE, QBO_BATCHES_PER_MINUTE, MPLUS_PER_MINUTE = 500, 40, 1200


def config(state: Path) -> Any:
    registry = load_registry([("qbo", qbo_plugin), ("mpluskassa", mplus_plugin)], entry_points=False)
    books = {**QuickBooksConnector.demo_settings("http://qbo.test"), "currency": "EUR", "default_tax_rate": 21}
    till = {**MplusKassaConnector.demo_settings("http://till.test:34343"), "allocate_article_numbers": True, "page_size": 500,
            "max_concurrency": 4, "allocation_range": [900_000_000, 999_999_999]}  # fmt: skip
    orders = {"statuses": ["paid", "completed"], "missing_products": "create", "customer": "default_without_email", "default_customer": "1"}
    raw = {
        "state": {"path": str(state)},
        "connections": {"books": {"connector": "quickbooks", **books}, "till": {"connector": "mpluskassa", **till}},
        "flows": {
            "products": {"source": "books", "target": "till", "entity": "products", "interval": "1h"},
            "orders": {
                "source": "till",
                "target": "books",
                "entity": "orders",
                "interval": "1h",
                "options": orders,
                "target_settings": {"paid_as": "sales_receipt"},
            },  # fmt: skip
            "items": {"source": "till", "target": "books", "entity": "products", "interval": "1h"},
        },
    }
    return resolve(Config(**raw), registry, state.parent / "apicenterd.toml")


async def run(resolved: Any, state: Path, transports: dict, name: str, limits: bool) -> tuple[Any, float]:
    store = SQLiteStore(state)
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0, rate_limits=limits, transports=transports)
    try:
        started = time.perf_counter()
        result = await engine.run_flow(name)
        return result, time.perf_counter() - started
    finally:
        await engine.aclose()
        await store.close()


def _qbo_calls(sim: Any) -> dict[str, int]:
    realm = f"/v3/company/{sim.realm}/"
    return {
        "calls": sim.count(None, realm),
        "batches": sim.count("POST", realm + "batch"),
        "writes": sim.count("POST", realm) - sim.count("POST", realm + "query"),
    }


def _counting(refuse: Any, counter: dict[str, int]) -> Any:
    def counted(wait: float, gate: Any) -> Any:
        counter["qbo"] += 1
        return refuse(wait, gate)

    return counted


async def measure(label: str, name: str, ctx: dict) -> dict[str, Any]:
    qbo, till = ctx["qbo"], ctx["till"]
    qbo.reset_counts()
    if ctx["limits"]:  # each phase starts in a fresh vendor window, as a run an hour after the last would
        for gate in qbo.gates:
            if isinstance(gate, RateLimitGate):
                gate.window = FixedWindow(gate.limit, 60.0)
    mplus_before = till.requests.total
    throttled_before = ctx["throttled"]["qbo"]
    result, seconds = await run(ctx["resolved"], ctx["state"], ctx["transports"], name, ctx["limits"])
    if result.status != "ok" or result.counts.get("failed"):
        raise SystemExit(f"{label}: {result.status} {dict(result.counts)} {result.error}")
    q = _qbo_calls(qbo)
    mplus = till.requests.total - mplus_before
    records = max(sum(result.counts.values()), 1)
    bound = max(q["calls"] / QBO_PER_MINUTE, q["batches"] / QBO_BATCHES_PER_MINUTE, mplus / MPLUS_PER_MINUTE) * 60
    minutes = seconds / 60 if seconds else None
    # what a limiter of L calls in any 60 s allows at the earliest: the first L at once, the next L a
    # window later, ... (the last window's calls take no time); wall time against this is the efficiency
    windows = [(q["calls"], QBO_PER_MINUTE), (q["batches"], QBO_BATCHES_PER_MINUTE), (mplus, MPLUS_PER_MINUTE)]
    window_bound = max((math.ceil(n / limit) - 1) * 60 for n, limit in windows if n) if any(n for n, _ in windows) else 0
    figures = {
        "run": label,
        "records": records,
        "counts": dict(result.counts),
        "seconds": round(seconds, 2),
        "records_per_second": round(records / seconds, 1) if seconds else None,
        "quickbooks_calls": q["calls"],
        "quickbooks_calls_per_record": round(q["calls"] / records, 4),
        "quickbooks_writes_per_record": round(q["writes"] / records, 4),
        "quickbooks_writes_per_created": round(q["writes"] / max(result.counts.get("created", 0), 1), 4),
        "quickbooks_batches": q["batches"],
        "mpluskassa_calls": mplus,
        "mpluskassa_calls_per_record": round(mplus / records, 4),
        "rate_limit_bound_seconds": round(bound, 1),
        # measured: what went out per minute of wall time, against each declared limit, and the
        # 429s the simulators answered (with --limits: the engine should cause none)
        "quickbooks_calls_per_minute": round(q["calls"] / minutes, 1) if minutes else None,
        "quickbooks_batches_per_minute": round(q["batches"] / minutes, 1) if minutes else None,
        "mpluskassa_calls_per_minute": round(mplus / minutes, 1) if minutes else None,
        "window_bound_seconds": window_bound,
        "limit_efficiency": round(window_bound / seconds, 3) if seconds and window_bound else None,
        "quickbooks_429s": ctx["throttled"]["qbo"] - throttled_before,
    }
    return figures


async def main(products: int, orders: int, limits: bool, as_json: bool) -> None:
    gate = {} if limits else {"rate_limit": 0, "batch_limit": 0}
    qbo_app = QuickBooksConnector.simulator(seed=1, records=products, **gate)
    till_app = MplusKassaConnector.simulator(seed=1, records=products, relations=min(500, max(orders // 10, 1)), orders=orders)
    qbo, till = qbo_app.state.sim, till_app.state.sim
    qbo.write("Customer", "create", {"DisplayName": "Walk-in customer"})
    transports = {"books": httpx.ASGITransport(app=qbo_app), "till": httpx.ASGITransport(app=till_app)}
    throttled = {"qbo": 0}
    for gate in qbo.gates:  # count the 429s the QuickBooks simulator answers (MplusKASSA documents no limit)
        if isinstance(gate, RateLimitGate):
            gate.refuse = _counting(gate.refuse, throttled)
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.db"
        ctx = {
            "qbo": qbo,
            "till": till,
            "resolved": config(state),
            "state": state,
            "transports": transports,
            "limits": limits,
            "throttled": throttled,
        }
        out.append(await measure("products QuickBooks -> MplusKASSA, first", "products", ctx))
        out.append(await measure("products QuickBooks -> MplusKASSA, second (unchanged)", "products", ctx))
        # the till's own articles become items in batches; then its orders find them
        out.append(await measure("items MplusKASSA -> QuickBooks (batches of 30)", "items", ctx))
        out.append(await measure("till orders MplusKASSA -> QuickBooks sales receipts", "orders", ctx))
    if as_json:
        print(json.dumps(out))
        return
    for f in out:
        print(
            f"{f['run']}: {f['counts']} in {f['seconds']} s, {f['records_per_second']} records/s; QuickBooks "
            f"{f['quickbooks_calls']} calls ({f['quickbooks_calls_per_record']}/record, "
            f"writes {f['quickbooks_writes_per_created']}/created record, "
            f"{f['quickbooks_batches']} batches), MplusKASSA {f['mpluskassa_calls']} calls ({f['mpluskassa_calls_per_record']}/record); "
            f"the vendors' limits allow these calls in {f['rate_limit_bound_seconds']} s at the earliest "
            f"(measured per minute: QuickBooks {f['quickbooks_calls_per_minute']} calls of {QBO_PER_MINUTE}, "
            f"{f['quickbooks_batches_per_minute']} batches of {QBO_BATCHES_PER_MINUTE}, MplusKASSA "
            f"{f['mpluskassa_calls_per_minute']} of {MPLUS_PER_MINUTE}; a limiter of that many calls in any minute "
            f"needs {f['window_bound_seconds']} s: efficiency {f['limit_efficiency']}; "
            f"QuickBooks 429s {f['quickbooks_429s']})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--limits", action="store_true", help="the engine's and the simulators' rate limits on (small N)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON list")
    args = parser.parse_args()
    anyio.run(main, args.products, args.orders, args.limits, args.json)

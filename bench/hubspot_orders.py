"""Benchmark: eAccounting -> HubSpot, N products then M orders as deals, through the engine, with
HubSpot's 100-per-10-seconds limit on (the simulator enforces it, the daemon keeps to it).

The eAccounting simulator is seeded with N articles, C customers and M orders (one to three rows
each); the products flow runs first, then the customers flow, then the orders flow (debtors and
products found, each order a deal with its line items, associated with its contact and company). Each flow runs twice: the
second run must write nothing. Per run it prints HubSpot calls per record (all, and writes), the
wall time, and the bound the rate limit sets (calls / 100 per 10 s).

    .venv/bin/python bench/hubspot_orders.py --products 20000 --orders 5000
    .venv/bin/python bench/hubspot_orders.py --products 300 --orders 200 --json   # as the smoke test

In process (ASGI transports, no sockets), so the numbers are the daemon's and the limit's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_eaccounting.sim_seed_orders import seed_orders
from apicenterd_hubspot import HubSpotConnector

from apicenterd.config import load
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

WRITES = ("/batch/upsert", "/batch/create", "/batch/update")


def write_config(folder: Path) -> Path:
    hubspot = HubSpotConnector.demo_settings("http://hubspot.test")
    eacc = {**EAccountingConnector.demo_settings("http://eaccounting.test"), "page_size": 1000}
    lines = ["[daemon]", 'metrics_address = ""', "", "[state]", f'path = "{folder / "state.db"}"', ""]
    for name, settings in (("hubspot", hubspot), ("eaccounting", eacc)):
        lines += [f"[connections.{name}]", f'connector = "{name}"']
        lines += [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in settings.items()]
        lines.append("")
    lines += ["[flows.products]", 'source = "eaccounting"', 'target = "hubspot"', 'entity = "products"', 'interval = "1h"', ""]
    lines += ["[flows.customers]", 'source = "eaccounting"', 'target = "hubspot"', 'entity = "customers"', 'interval = "1h"', ""]
    lines += ["[flows.orders]", 'source = "eaccounting"', 'target = "hubspot"', 'entity = "orders"', 'interval = "1h"']
    lines += ['options = { document = "order", missing_products = "create" }']
    lines += ['target_settings = { stages = { ongoing = "appointmentscheduled", shipped = "contractsent", invoiced = "closedwon" } }']
    path = folder / "apicenterd.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def writes_of(hs: Any) -> int:
    """HubSpot calls that wrote: batch upserts/creates/updates, single creates and PATCHes."""
    return sum(
        1
        for method, target in hs.requests
        if method == "PATCH" or (method == "POST" and (target.endswith(WRITES) or target.rstrip("/").count("/") == 4))
    )


async def main(products: int, orders: int, customers: int, as_json: bool) -> int:
    hubspot = HubSpotConnector.simulator(seed=1)
    eacc = EAccountingConnector.simulator(seed=1, records=products, customers=customers, rate_limit=0)
    seed_orders(eacc.state.sim, orders, seed=1)
    hs = hubspot.state.sim
    refused = [0]
    refuse = hs.ten_secondly.refuse

    def counting(wait: float, gate: Any) -> Any:  # how often the daemon went over the limit (it must not)
        refused[0] += 1
        return refuse(wait, gate)

    hs.ten_secondly.refuse = counting
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        resolved = load(write_config(Path(tmp)), load_registry())
        for flow, records in (("products", products), ("customers", customers), ("orders", orders)):
            for run in ("first", "second"):
                hs.reset_counts()
                refused[0] = 0
                store = SQLiteStore(resolved.state_path)
                await store.open()
                transports = {"hubspot": httpx.ASGITransport(app=hubspot), "eaccounting": httpx.ASGITransport(app=eacc)}
                engine = Engine(resolved, store, transports=transports)
                started = time.monotonic()
                try:
                    result = await engine.run_flow(flow)
                finally:
                    await engine.aclose()
                    await store.close()
                seconds = time.monotonic() - started
                calls, writes = hs.request_count, writes_of(hs)
                failed += result.counts["failed"] + (result.status != "ok")
                row = {
                    "flow": flow,
                    "run": run,
                    "records": records,
                    "status": result.status,
                    "counts": {k: v for k, v in result.counts.items() if v},
                    "seconds": round(seconds, 1),
                    "calls": calls,
                    "calls_per_record": round(calls / records, 4),
                    "writes": writes,
                    "writes_per_record": round(writes / records, 4),
                    "bound_seconds": round(calls / 100 * 10, 1),
                    "refused_429": refused[0],
                }
                if as_json:
                    print(json.dumps(row), flush=True)
                else:
                    print(
                        f"{flow} {run} run: {result.status} {row['counts']}; {seconds:.1f} s; HubSpot calls {calls} "
                        f"({row['calls_per_record']} per record), writes {writes} ({row['writes_per_record']} per record); "
                        f"rate-limit bound {row['bound_seconds']} s; 429s {refused[0]}",
                        flush=True,
                    )
        deals = len(hs.objects["deals"])
        lines = len(hs.objects["line_items"])
        summary = {"deals": deals, "line_items": lines, "products": len(hs.objects["products"]), "contacts": len(hs.objects["contacts"])}
        print(json.dumps(summary) if as_json else f"in HubSpot: {summary}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--orders", type=int, default=5_000)
    parser.add_argument("--customers", type=int, default=500, help="eAccounting customers the orders are spread over")
    parser.add_argument("--json", action="store_true", help="one JSON object a run")
    parser.add_argument("--log-level", default="info", help="the daemon's log level (its JSON lines go to /dev/null)")
    args = parser.parse_args()
    from apicenterd.observe import logs

    # the daemon's JSON log lines at its default level, rendered as it renders them, to /dev/null:
    # their cost is counted, and no terminal's (structlog's development console renderer, which
    # an unconfigured structlog uses, cost ~2 ms a line here: a tenth of the orders run)
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        logs.configure(args.log_level, devnull)
        sys.exit(anyio.run(main, args.products, args.orders, args.customers, args.json))

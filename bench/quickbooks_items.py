"""QuickBooks items through the engine against the simulators (rate limits on): a first sync of N
eAccounting articles into QuickBooks items, then a second run; calls per record and records/s.

    .venv/bin/python bench/quickbooks_items.py --records 2000

New items are created 30 per ``batch`` call (the sink's ``create_many``); look-ups go 30 SKUs per
query (``Sku IN (...)``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import anyio
import httpx
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_quickbooks import QuickBooksConnector

from apicenterd.config import Config, resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore


async def run(records: int) -> None:
    qbo_app = QuickBooksConnector.simulator(seed=3, rate_limit=10**6)
    eacc_app = EAccountingConnector.simulator(seed=3, records=records)
    with tempfile.TemporaryDirectory() as tmp:
        raw = {
            "state": {"path": str(Path(tmp) / "state.db")},
            "connections": {
                "qbo": {"connector": "quickbooks", **QuickBooksConnector.demo_settings("http://qbo.test"), "currency": "EUR"},
                "eacc": {"connector": "eaccounting", **EAccountingConnector.demo_settings("http://eacc.test")},
            },
            "flows": {"f": {"source": "eacc", "target": "qbo", "entity": "products", "interval": "1m"}},
        }
        resolved = resolve(Config(**raw), load_registry(), Path(tmp) / "apicenterd.toml")
        transports = {"qbo": httpx.ASGITransport(app=qbo_app), "eacc": httpx.ASGITransport(app=eacc_app)}
        for label in ("first", "second"):
            qbo_app.state.sim.reset_counts()
            store = SQLiteStore(Path(tmp) / "state.db")
            await store.open()
            engine = Engine(resolved, store, retry_base_delay=0, transports=transports)
            started = time.perf_counter()
            try:
                result = await engine.run_flow("f")
            finally:
                await engine.aclose()
                await store.close()
            wall = time.perf_counter() - started
            calls = qbo_app.state.sim.request_count
            print(
                f"{label} run: {records} records, {dict(result.counts)}, QuickBooks calls {calls} "
                f"({calls / records:.3f} per record), {records / wall:.0f} records/s, {wall:.1f} s "
                f"(rate-limit bound at 500/min: {calls / 500 * 60:.0f} s)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    anyio.run(run, parser.parse_args().records)


if __name__ == "__main__":
    main()

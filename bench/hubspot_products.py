"""Benchmark: N products from the eAccounting simulator to the HubSpot simulator through the engine,
with HubSpot's 100-per-10-seconds limit on (the simulator enforces it, the daemon keeps to it).

Prints HubSpot calls per record (look-ups and writes) for a first run and an unchanged second
run, the wall time, and the bound the rate limit sets (calls / 100 per 10 s).

    .venv/bin/python bench/hubspot_products.py --products 20000

In process (ASGI transports, no sockets), so the numbers are the daemon's and the limit's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_hubspot import HubSpotConnector

from apicenterd.config import load
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore


def write_config(folder: Path) -> Path:
    hubspot = HubSpotConnector.demo_settings("http://hubspot.test")
    eacc = {**EAccountingConnector.demo_settings("http://eaccounting.test"), "page_size": 1000}
    lines = ["[daemon]", 'metrics_address = ""', "", "[state]", f'path = "{folder / "state.db"}"', ""]
    for name, settings in (("hubspot", hubspot), ("eaccounting", eacc)):
        lines += [f"[connections.{name}]", f'connector = "{name}"']
        lines += [f"{k} = {v!r}".replace("'", '"') if isinstance(v, str) else f"{k} = {v}" for k, v in settings.items()]
        lines.append("")
    lines += ["[flows.products]", 'source = "eaccounting"', 'target = "hubspot"', 'entity = "products"', 'interval = "1h"']
    path = folder / "apicenterd.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def main(products: int) -> None:
    hubspot = HubSpotConnector.simulator(seed=1)
    eacc = EAccountingConnector.simulator(seed=1, records=products, rate_limit=0)
    hs = hubspot.state.sim
    refused = [0]
    refuse = hs.ten_secondly.refuse

    def counting(wait, gate):  # how often the daemon went over the limit (it must not)
        refused[0] += 1
        return refuse(wait, gate)

    hs.ten_secondly.refuse = counting
    with tempfile.TemporaryDirectory() as tmp:
        resolved = load(write_config(Path(tmp)), load_registry())
        for run in ("first", "second"):
            hs.reset_counts()
            store = SQLiteStore(resolved.state_path)
            await store.open()
            transports = {"hubspot": httpx.ASGITransport(app=hubspot), "eaccounting": httpx.ASGITransport(app=eacc)}
            engine = Engine(resolved, store, transports=transports)
            started = time.monotonic()
            try:
                result = await engine.run_flow("products")
            finally:
                await engine.aclose()
                await store.close()
            seconds = time.monotonic() - started
            calls = hs.request_count
            writes = hs.count("POST", "/crm/v3/objects/products/batch/upsert") + hs.count("PATCH")
            bound = calls / 100 * 10
            print(
                f"{run} run: {result.status} { {k: v for k, v in result.counts.items() if v} }; "
                f"{seconds:.1f} s; HubSpot calls {calls} ({calls / products:.4f} per record), "
                f"writes {writes} ({writes / products:.4f} per record); rate-limit bound {bound:.1f} s; 429s {refused[0]}",
                flush=True,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=20_000)
    args = parser.parse_args()
    sys.exit(anyio.run(main, args.products))

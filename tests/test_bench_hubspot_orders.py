"""bench/hubspot_orders.py cannot rot: a small run prints sane, non-timing figures (batched writes,
a second run that calls nothing, no 429)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "hubspot_orders.py"
PRODUCTS, CUSTOMERS, ORDERS = 250, 30, 150


def test_the_hubspot_orders_benchmark_runs_and_prints_sane_figures():
    done = subprocess.run(
        [sys.executable, str(BENCH), "--products", str(PRODUCTS), "--customers", str(CUSTOMERS), "--orders", str(ORDERS), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    runs = {(row["flow"], row["run"]): row for row in rows if "flow" in row}
    assert set(runs) == {(f, r) for f in ("products", "customers", "orders") for r in ("first", "second")}
    assert all(row["status"] == "ok" and row["refused_429"] == 0 for row in runs.values())
    assert runs[("products", "first")]["counts"] == {"created": PRODUCTS}
    assert runs[("customers", "first")]["counts"] == {"created": CUSTOMERS}
    assert runs[("orders", "first")]["counts"] == {"created": ORDERS}
    # batches of 100: product and customer writes a few calls each; per order well under one call
    assert runs[("products", "first")]["writes"] <= 3 + 3  # 3 upserts, 3 unique properties created on setup
    assert runs[("customers", "first")]["writes"] <= 2
    assert runs[("orders", "first")]["calls_per_record"] < 0.2 and runs[("orders", "first")]["writes_per_record"] < 0.1
    for flow in ("products", "customers", "orders"):
        assert runs[(flow, "second")]["calls"] == 0 and runs[(flow, "second")]["writes"] == 0
    [summary] = [row for row in rows if "deals" in row]
    assert summary["deals"] == ORDERS and summary["products"] == PRODUCTS and summary["contacts"] == CUSTOMERS

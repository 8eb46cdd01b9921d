"""bench/quickbooks_mpluskassa.py cannot rot: a small run prints sane, non-timing figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "quickbooks_mpluskassa.py"
PRODUCTS, ORDERS = 95, 20


def test_the_pair_benchmark_runs_and_its_figures_are_sane():
    done = subprocess.run(
        [sys.executable, str(BENCH), "--products", str(PRODUCTS), "--orders", str(ORDERS), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    first, second, items, orders = json.loads(done.stdout.strip().splitlines()[-1])
    assert first["counts"]["created"] == PRODUCTS and first["quickbooks_writes_per_record"] == 0
    assert 1 <= first["mpluskassa_calls_per_record"] < 1.2  # a create each; look-ups and numbers in blocks
    assert second["counts"]["unchanged"] == PRODUCTS and second["mpluskassa_calls"] == 0  # nothing written, nothing looked up
    # the till's own articles into QuickBooks: created in batches of 30, well under 0.05 write calls per record
    assert items["counts"]["created"] == PRODUCTS and items["quickbooks_batches"] == -(-PRODUCTS // 30)
    assert items["quickbooks_writes_per_created"] <= 0.05
    assert orders["counts"]["created"] == ORDERS and orders["counts"]["failed"] == 0
    for row in (first, second, items, orders):
        assert row["rate_limit_bound_seconds"] >= 0 and row["records"] > 0

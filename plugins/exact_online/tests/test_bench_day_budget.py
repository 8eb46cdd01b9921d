"""bench/exact_day_budget.py cannot rot: a small run (a day budget of 800 calls, 600 items, 20 orders a
day) on the virtual clock keeps every promise of the full one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "exact_day_budget.py"

pytestmark = pytest.mark.slow


def test_the_day_budget_benchmark_keeps_orders_on_time_and_the_budget_and_finishes_the_items():
    done = subprocess.run(
        [sys.executable, str(BENCH), "--items", "600", "--orders", "20", "--daily", "800", "--reserve", "10", "--days", "6", "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert rows, done.stderr[-3000:]
    days, totals = rows[:-1], rows[-1]
    assert done.returncode == 0, (totals, done.stderr[-3000:])
    assert totals["refusals_429"] == 0 and totals["days_over_budget"] == [] and totals["orders_late"] == 0, totals
    assert all(day["calls"] <= 800 for day in days), days
    # 600 items at two calls each do not fit in one day's share: they finish on a later day, all of them
    assert totals["items_in_exact"] == 600 and totals["items_finished_day"] >= 2, totals
    assert all(day["orders_synced"] == day["orders_placed"] == 20 for day in days), days
    assert 2.0 <= totals["calls_per_item"] < 2.5, totals

"""bench/memory.py runs and prints the daemon's peak memory per size and flow (a smoke test:
the figures themselves depend on the machine, so only their presence and sanity are checked)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "memory.py"


def test_bench_prints_records_time_and_peak_rss_per_size_and_flow():
    result = subprocess.run(
        [sys.executable, str(BENCH), "--sizes", "150,600", "--flows", "products,stock", "--page-size", "50"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:] if line.strip()]
    assert [(r[0], r[1]) for r in rows] == [("150", "products"), ("150", "stock"), ("600", "products"), ("600", "stock")]
    for row in rows:
        seconds, peak = float(row[2]), float(row[4])
        assert seconds > 0 and 10 < peak < 400, row  # a real process's RSS, far from the old 1 GB


def test_bench_names_a_bad_size():
    result = subprocess.run([sys.executable, str(BENCH), "--sizes", "ten"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and re.search(r"--sizes: expected numbers", result.stderr), result.stderr

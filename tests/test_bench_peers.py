"""bench/peers.py cannot rot: a small run of every contender prints sane, non-timing figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "peers.py"
N = 30


def test_the_peers_benchmark_runs_and_prints_a_table_of_sane_figures():
    done = subprocess.run(
        [sys.executable, str(BENCH), "--sizes", str(N), "--repeat", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {row["contender"]: row for row in map(json.loads, (l for l in done.stdout.splitlines() if l.startswith("{")))}
    assert set(rows) == {"stdlib loop", "httpx loop", "apicenterd"}
    daemon = rows["apicenterd"]
    for plain in (rows["stdlib loop"], rows["httpx loop"]):
        # a plain loop: a GET and a POST per record, then a GET and a PUT again (plus codings and units once)
        assert plain["first_calls"] == plain["rerun_calls"] == (2 * N + 2) / N
    # apicenterd: batched look-ups, one write per record; nothing at all when nothing changed
    assert 1.0 <= daemon["first_calls"] < 1.5 and daemon["rerun_calls"] == 0
    for row in rows.values():
        assert row["size"] == N and row["first_cpu_ms"] > 0 and row["rss"] > 0 and row["first_records"] == N
    table = done.stdout[done.stdout.index("| N | contender |") :]
    assert f"| {N} | stdlib loop |" in table and f"| {N} | httpx loop |" in table and f"| {N} | **apicenterd** |" in table
    assert "Median of 1 run(s)" in table

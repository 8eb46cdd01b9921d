"""bench/scaleout.py runs (small N): three daemons on one PostgreSQL share a few flows through the job
queue and the script reports its figures. The figures themselves are the bench's business, not a test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pg_support
import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "bench" / "scaleout.py"


def test_scaleout_bench_smoke():
    server = pg_support.server_url()
    result = subprocess.run(
        [sys.executable, str(BENCH), "--flows", "6", "--interval", "2s", "--seconds", "8", "--json", "--server", server],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["flows"] == 6 and figures["daemons"] == 3
    assert figures["runs"] >= 6 and figures["flows_run"] >= 1
    assert sum(figures["runs_per_daemon"]) == figures["runs"]  # every run names a daemon of the three
    assert figures["workers_registered_at_end"] == 3
    assert figures["pg_connections_max"] >= 3
    assert len(figures["cpu_share_per_daemon"]) == 3


def test_scaleout_bench_shared_limit_smoke():
    server = pg_support.server_url()
    result = subprocess.run(
        [sys.executable, str(BENCH), "--flows", "6", "--interval", "1s", "--seconds", "8", "--warmup", "3", "--shared-limit", "--json",
         "--server", server],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["vendor_limit_per_minute"] == 150
    assert figures["vendor_calls_per_minute"] > 0  # the flows called the vendor, whose calls were counted
    assert figures["vendor_429s_in_all"] >= figures["vendor_429s_in_window"] >= 0

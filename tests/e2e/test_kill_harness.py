"""Crash safety: the products and orders flows SIGKILLed 50 times at random moments, restarted
each time; afterwards every product and order is in the target exactly once, with one debtor
per e-mail and the content a run without kills writes.

The harness is ``bench/kill_test.py`` (run it with ``--kills 200`` or more); here with a fixed
seed. Kills fall before a request is applied, after it is applied but before it is answered,
just after an answer (before the settle), and at random times.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import kill_test as harness
import pg_support

pytestmark = pytest.mark.slow

KILLS = 50


def test_fifty_kills_then_every_record_once_with_its_content():
    report = harness.run_kill_test(kills=KILLS, products=60, seed=20261201)
    summary = "\n".join(report.lines())
    assert report.kills >= KILLS, summary
    assert set(report.kills_by_phase) == set(harness.PHASES), summary  # every kind of moment was hit
    assert report.runs_completed >= 2 and report.rounds >= 1, summary  # both flows got through, and again
    assert report.failed_runs == [], report.failed_runs
    assert report.comparison.ok, report.comparison.describe()
    assert report.records >= 100, summary
    assert report.final_rerun_writes == 0, summary  # nothing left undone, nothing written twice over


def test_kills_and_postgres_restarts_with_the_state_in_postgres_leave_every_record_once():
    """The same harness with the state in PostgreSQL (a private server, never the shared cluster): SIGKILLs
    of the runs, and restarts of the server itself in the middle of runs (a request applied, its answer held
    until the server is back). Each restarted run reconnects and finishes; nothing is lost or written twice."""
    server = pg_support.PrivateServer()
    try:
        url = server.start()
        report = harness.run_kill_test(kills=12, products=30, seed=20261205, state_url=url, restart_database=server.restart, restarts=3)
    finally:
        server.close()
    summary = "\n".join(report.lines())
    assert report.kills >= 12, summary
    assert report.database_restarts == 3, summary  # every restart fell in the middle of a run
    assert report.failed_runs == [], report.failed_runs  # the restarted runs finished (exit 0)
    assert report.comparison.ok, report.comparison.describe()
    assert report.final_rerun_writes == 0, summary

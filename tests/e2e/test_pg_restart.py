"""A restart of PostgreSQL in the middle of a daemon's run: the daemon (``apicenterd run`` with the state in
PostgreSQL, a procrastinate worker) keeps running, reconnects, and the run goes on or runs again; at the end
every product, order and customer is in the target exactly once.

The server is a private one (``initdb`` into a temporary folder, tests/pg_support.py ``PrivateServer``): the
machine's shared cluster is never restarted. Nothing waits on wall time: every step waits for a condition.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pg_support
import pytest

from apicenterd.testing import serve_app

from .test_failover import Hold, _rows, _seed, _wait, harness

pytestmark = pytest.mark.slow

PRODUCTS = 60


def test_a_daemon_goes_on_after_postgres_restarts_mid_run_and_writes_every_record_once(tmp_path):
    server = pg_support.PrivateServer()
    proc: subprocess.Popen | None = None
    log_path = tmp_path / "daemon.log"
    try:
        url = server.start()
        ccv, eacc = harness.simulators(PRODUCTS)
        hold = Hold(eacc)
        with serve_app(ccv) as ccv_url, serve_app(hold) as eacc_url:
            path = harness.write_harness_config(tmp_path / "d", ccv_url, eacc_url, state_url=url)
            text = path.read_text().replace('interval = "1h"', 'interval = "2s"').replace('log_level = "warning"', 'log_level = "info"')
            text = text.replace(f'url = "{url}"', f'url = "{url}"\nworker_heartbeat_seconds = 2\nworker_stall_seconds = 12')
            Path(path).write_text(text)
            anyio.run(_seed, url, harness.resolve(path), eacc_url)
            with log_path.open("w") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "apicenterd.cli", "run", "--config", str(path)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            procs = [("daemon", proc)]
            _wait("the products run to reach the held write", hold.reached.is_set, procs=procs)
            server.restart()  # every connection of the daemon is cut while its run waits for an answer
            restarted_at = time.time()
            hold.released.set()

            def done():
                try:
                    comparison = harness.compare(ccv.state.sim, eacc.state.sim, None)
                except RuntimeError:  # the simulator's thread changed a dict while it was read: look again
                    return None
                if not comparison.ok:
                    return None
                finished = _rows(
                    url,
                    "SELECT flow FROM runs WHERE status='ok' AND finished_at > %s AND (counts::json->>'failed')::int = 0 GROUP BY flow",
                    (restarted_at,),
                )
                return comparison if {f for (f,) in finished} >= {"products", "orders"} else None

            try:
                comparison = _wait("every record in the target and both flows run after the restart", done, procs=procs)
            except AssertionError as exc:
                left = harness.compare(ccv.state.sim, eacc.state.sim, None).describe()
                raise AssertionError(f"{exc}: {left}\n{log_path.read_text()[-4000:]}") from None
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(120)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(30)
        server.close()
    log_text = log_path.read_text()
    assert code == 0, log_text[-4000:]
    assert comparison.ok, comparison.describe()
    assert comparison.records >= PRODUCTS, comparison.records
    # what the restart did is told in the daemon's structured lines, not a bare traceback
    assert "Traceback" not in log_text, log_text[-4000:]

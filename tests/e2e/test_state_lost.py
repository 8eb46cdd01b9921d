"""The daemon process notices its state file deleted under it: it logs why, alerts, rescues a copy of
the open database, and exits 74 (not restarted by systemd) instead of writing into a file that is gone."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest
from e2e_support import write_config

from apicenterd.errors import EXIT_STATE

from .test_daemon import LogReader

pytestmark = pytest.mark.slow


def test_a_state_file_deleted_under_the_daemon_stops_it_with_a_rescued_copy(simulators, tmp_path):
    _, eacc_app, ccv_url, eacc_url = simulators(products=5)
    path = write_config(tmp_path, ccv_url, eacc_url, products={"interval": "1s"})
    path.write_text(path.read_text().replace('path = "state.db"', 'path = "state.db"\nfile_check_seconds = 0.2'))
    state = tmp_path / "state.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "apicenterd.cli", "run", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    logs = LogReader(proc)
    try:
        done = logs.wait_for(lambda l: l.get("event") == "run finished" and l.get("flow") == "products", timeout=60)
        assert done["status"] == "ok" and done["created"] == 5
        state.unlink()

        lost = logs.wait_for(lambda l: l.get("event") == "state file cannot be used, stopping", timeout=60)
        assert lost["cause"] == "deleted" and lost["path"] == str(state)
        assert lost["error"].startswith(f"state file {state} was deleted while apicenterd had it open")
        alert = logs.wait_for(lambda l: l.get("event") == "alert" and l.get("kind") == "state_failed", timeout=10)
        assert "daemon stopped" in alert["subject"]
        assert proc.wait(60) == EXIT_STATE
        stderr = proc.stderr.read().decode()
        assert stderr.startswith(f"apicenterd: state file {state} was deleted") and "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (rescued,) = tmp_path.glob("state.db.rescued-*")
    assert f"saved to {rescued}" in lost["error"] and f"mv {rescued} {state}" in lost["error"]
    with sqlite3.connect(rescued) as db:  # the links survive: moved back, nothing is created twice
        assert db.execute("SELECT count(*) FROM links WHERE entity='products'").fetchone()[0] == 5
    assert not state.exists()  # nothing was recreated behind the operator's back

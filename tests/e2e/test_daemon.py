"""The daemon process: scheduled flows, metrics, JSON logs, SIGHUP reload, SIGTERM, the demo."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from e2e_support import write_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LogReader:
    """Collects a process's stdout JSON lines in a thread."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[dict] = []
        self.raw: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc):
        for line in proc.stdout:
            text = line.decode()
            self.raw.append(text)
            try:
                self.lines.append(json.loads(text))
            except ValueError:
                pass

    def wait_for(self, predicate, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                seen += 1
                if predicate(line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no such log line within {timeout}s; last lines: {self.raw[-10:]}")


def test_daemon_runs_flows_serves_metrics_reloads_and_stops_cleanly(simulators, tmp_path):
    ccv_app, eacc_app, ccv_url, eacc_url = simulators(products=15)
    path = write_config(tmp_path, ccv_url, eacc_url, products={"interval": "1s"})
    port = free_port()
    text = path.read_text().replace('metrics_address = ""', f'metrics_address = "127.0.0.1:{port}"')
    path.write_text(text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "apicenterd.cli", "run", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    logs = LogReader(proc)
    try:
        done = logs.wait_for(lambda l: l.get("event") == "run finished" and l.get("flow") == "products")
        assert done["status"] == "ok" and done["created"] > 0
        created = logs.wait_for(lambda l: l.get("event") == "record created")
        assert {"flow", "run", "source_id", "key", "target_id", "timestamp", "level"} <= set(created)

        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'apicenterd_records_total{action="created",entity="products",flow="products"}' in metrics
        assert "apicenterd_api_requests_total{" in metrics and 'connection="eaccounting"' in metrics
        assert "apicenterd_flow_last_success_timestamp_seconds" in metrics
        assert "process_resident_memory_bytes" in metrics

        # an invalid configuration is refused and the old one keeps running
        path.write_text(text.replace('entity = "stock"', 'entity = "stok"'))
        proc.send_signal(signal.SIGHUP)
        refused = logs.wait_for(lambda l: l.get("event", "").startswith("reload refused"))
        assert any("flows.stock.entity" in p for p in refused["problems"])
        n = len(logs.lines)
        logs.wait_for(lambda l: l.get("event") == "run finished" and l.get("flow") == "products" and logs.lines.index(l) > n)

        # a valid one replaces it
        path.write_text(text.replace("[flows.stock]", "[flows.stock_renamed]"))
        proc.send_signal(signal.SIGHUP)
        reloaded = logs.wait_for(lambda l: l.get("event") == "configuration reloaded")
        assert "stock_renamed" in reloaded["flows"]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        logs.wait_for(lambda l: l.get("event") == "daemon stopped", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # no secret in any log line
    from apicenterd_ccv_salespos.simulator import DEMO_PRIVATE_KEY
    from apicenterd_eaccounting.simulator import DEMO_CLIENT_SECRET

    everything = "".join(logs.raw) + proc.stderr.read().decode()
    assert DEMO_PRIVATE_KEY not in everything and DEMO_CLIENT_SECRET not in everything


def test_demo_moves_products_and_stock(tmp_path):
    for port in (8701, 8702, 9464):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"port {port} is in use; the demo needs 8701, 8702 and 9464")
    proc = subprocess.run(
        [sys.executable, "-m", "apicenterd.cli", "demo", "--duration", "12", "--records", "20"],
        cwd=ROOT,
        capture_output=True,
        timeout=90,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    events = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.startswith("{")]
    finished = [e for e in events if e.get("event") == "run finished" and e.get("status") == "ok"]
    products = [e for e in finished if e["flow"] == "products_to_eaccounting"]
    stock = [e for e in finished if e["flow"] == "stock_to_eaccounting"]
    assert products and products[0]["created"] > 0
    assert stock and stock[0]["updated"] > 0 and stock[0]["failed"] == 0
    orders = [e for e in finished if e["flow"] == "orders_to_eaccounting"]
    assert orders and orders[0]["created"] > 0 and orders[0]["failed"] == 0
    assert "metrics at http://127.0.0.1:9464/metrics" in proc.stderr.decode()


def _start_daemon(path: Path, env: dict | None = None) -> tuple[subprocess.Popen, LogReader]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "apicenterd.cli", "run", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    return proc, LogReader(proc)


def test_a_stuck_alert_receiver_holds_up_neither_the_flows_nor_the_shutdown(simulators, tmp_path):
    from trickle import TrickleReceiver

    receiver = TrickleReceiver(hold=300)
    ccv_app, eacc_app, ccv_url, eacc_url = simulators(products=5)
    path = write_config(tmp_path, ccv_url, eacc_url, products={"interval": "1s"})
    text = path.read_text() + f'\n[alerts]\nwebhook_url = "{receiver.url}"\ntimeout = 600\n'
    path.write_text(text)
    proc, logs = _start_daemon(path)
    try:
        logs.wait_for(lambda l: l.get("event") == "run finished" and l.get("flow") == "products")
        # a refused reload is alerted: the receiver takes the alert and trickles its answer for 300 s
        path.write_text(text.replace('entity = "stock"', 'entity = "stok"'))
        proc.send_signal(signal.SIGHUP)
        logs.wait_for(lambda l: l.get("event", "").startswith("reload refused"))
        assert receiver.accepted.wait(30)
        n = len(logs.lines)
        logs.wait_for(lambda l: l.get("event") == "run finished" and l.get("flow") == "products" and logs.lines.index(l) >= n)
        assert receiver.holding == 1  # the flows went on while the receiver held the alert

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0  # before: the shutdown waited for the receiver
        unsent = logs.wait_for(lambda l: l.get("event", "").startswith("alerts not sent"), timeout=5)
        assert unsent["count"] == 1 and "reload refused" in unsent["alerts"][0]
        logs.wait_for(lambda l: l.get("event") == "daemon stopped", timeout=5)
    finally:
        receiver.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_reload_command_reports_a_refused_and_an_applied_reload(simulators, tmp_path):
    ccv_app, eacc_app, ccv_url, eacc_url = simulators(products=3)
    path = write_config(tmp_path, ccv_url, eacc_url)
    text = path.read_text()
    env = {"APICENTERD_STATE__PATH": str(tmp_path / "state.db")}  # as the systemd unit sets it
    proc, logs = _start_daemon(path, env)

    def reload() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "apicenterd.cli", "reload", "--config", str(path), "--pid", str(proc.pid)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **env},
        )

    try:
        logs.wait_for(lambda l: l.get("event") == "run finished" and l.get("flow") == "products")
        path.write_text("junk = " + "[" * 5000 + "]" * 5000 + "\n" + text)  # the parser raises RecursionError
        refused = reload()
        assert refused.returncode == 1, refused.stderr
        assert "reload refused" in refused.stderr and ("RecursionError" in refused.stderr or str(path) in refused.stderr)
        assert proc.poll() is None  # before: the daemon died
        logs.wait_for(lambda l: l.get("event", "").startswith("reload refused"))

        path.write_text(text.replace("[flows.stock]", "[flows.stock_renamed]"))
        applied = reload()
        assert applied.returncode == 0, applied.stderr
        assert "configuration reloaded" in applied.stdout
        reloaded = logs.wait_for(lambda l: l.get("event") == "configuration reloaded")
        assert "stock_renamed" in reloaded["flows"]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_flows_run_stopped_by_sigterm_is_recorded_stopped_with_its_counts(tmp_path, capsys):
    from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector
    from apicenterd_eaccounting.connector import EAccountingConnector

    from apicenterd import cli
    from apicenterd.testing import Faults, serve_app, with_faults

    records = 200
    ccv_app = CCVSalesPOSConnector.simulator(seed=7, records=records)
    # every write is held 0.1 s: the run takes at least 20 s, however fast the machine
    eacc_app = with_faults(EAccountingConnector.simulator(seed=7, records=0, rate_limit=0), Faults(slow=1.0, slow_delay=0.1, methods=("POST",)))
    with serve_app(ccv_app) as ccv_url, serve_app(eacc_app) as eacc_url:
        path = write_config(tmp_path, ccv_url, eacc_url)
        proc = subprocess.Popen(
            [sys.executable, "-m", "apicenterd.cli", "flows", "run", "products", "--config", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        logs = LogReader(proc)
        try:
            logs.wait_for(lambda l: l.get("event") == "record created", timeout=60)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 128 + signal.SIGTERM  # 143: stopped by SIGTERM
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert any(": stopped: created " in line for line in logs.raw), logs.raw[-5:]
    assert cli.main(["runs", "--config", str(path), "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert run["status"] == "stopped" and run["finished_at"]  # before: "running" forever
    assert 1 <= run["counts"]["created"] < records

"""Benchmark: sync N products from the CCV SalesPOS simulator to the eAccounting simulator.

Each simulator runs in its own process (``apicenterd simulate``) so the daemon is measured
alone. Prints records per second, target API calls per record for a first run and an
unchanged second run, and the daemon's peak memory.

    .venv/bin/python bench/sync_products.py --products 10000

Client-side rate limits and the simulators' limits are off: this measures the daemon, not
the vendors' quotas (eAccounting's 600/min per endpoint would make 10,000 creates take 33 min).
"""

from __future__ import annotations

import argparse
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import anyio
from prometheus_client import REGISTRY

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from e2e_support import write_config

from apicenterd.config import load
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulator(connector: str, records: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "apicenterd.cli", "simulate", connector, "--port", str(port),
         "--records", str(records), "--seed", "1", "--no-rate-limit"],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/", timeout=1)
            break
        except urllib.error.HTTPError:
            break  # it answers (401/404): up
        except OSError:
            time.sleep(0.2)
    else:
        raise SystemExit(f"{connector} simulator did not start")
    return proc, url


def target_calls(connection: str) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "apicenterd_api_requests":
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels.get("connection") == connection:
                    total += sample.value
    return total


async def one_run(resolved, flow: str, *, reset_cursor: bool = False):
    store = SQLiteStore(resolved.state_path)
    await store.open()
    if reset_cursor:
        await store.set_cursor(flow, None)
    engine = Engine(resolved, store, rate_limits=False)
    try:
        started = time.perf_counter()
        cpu_started = time.process_time()
        result = await engine.run_flow(flow)
        return result, time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        await engine.aclose()
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    args = parser.parse_args()

    from apicenterd.observe import logs

    logs.configure("warning")
    ccv, ccv_url = start_simulator("ccv_salespos", args.products)
    eacc, eacc_url = start_simulator("eaccounting", 0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = write_config(Path(tmp), ccv_url, eacc_url)
            resolved = load(path, load_registry())
            figures = []
            runs = (("first run", False), ("second run (unchanged)", False), ("full re-read, cursor reset (unchanged)", True))
            for label, reset in runs:
                before = target_calls("eaccounting")
                result, seconds, cpu = anyio.run(lambda reset=reset: one_run(resolved, "products", reset_cursor=reset))
                calls = target_calls("eaccounting") - before
                records = sum(result.counts.values())
                if result.status != "ok":
                    raise SystemExit(f"{label} failed: {result.error}")
                figures.append((label, records, seconds, cpu, calls, result.counts))
    finally:
        ccv.terminate()
        eacc.terminate()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"products: {args.products}")
    for label, records, seconds, cpu, calls, counts in figures:
        print(
            f"{label}: {records} records in {seconds:.1f} s = {records / seconds:,.0f} records/s; "
            f"CPU {cpu:.2f} s = {cpu * 1000 / max(records, 1):.3f} ms per record; "
            f"target API calls {calls:.0f} = {calls / max(records, 1):.3f} per record; "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
        )
    print(f"peak memory (daemon process, max RSS): {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()

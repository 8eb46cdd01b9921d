"""Benchmark: the daemon's peak memory while it syncs N products (and their stock) from CCV to eAccounting.

For each size, a CCV SalesPOS simulator with N lazily generated products (each a full CCV
resource of about 4 KB with an HTML description) and an empty eAccounting simulator run in
processes of their own; the daemon's engine runs each flow (``products``, then ``stock``) in a
child process of its own, from a fresh state database, and its peak RSS is read from that
child's resource usage (``wait4``), so the simulators and this script are not counted.
Rate limits are off on both sides: this measures the daemon, not the vendors' quotas.

    .venv/bin/python bench/memory.py --sizes 10000,100000,1000000

prints one line per size and flow: records, wall time, records per second and peak RSS. The
goal is memory that does not grow with N (under 150 MB at a million records).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CCV_SERVER = """
import sys, uvicorn
from apicenterd_ccv_salespos.simulator import create_app
uvicorn.run(create_app(seed=1, records=int(sys.argv[1]), lazy=True, rate_limit=0),
            host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""
EACC_SERVER = """
import sys, uvicorn
from apicenterd_eaccounting.simulator import create_app
uvicorn.run(create_app(seed=1, records=0, rate_limit=0),
            host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(code: str, records: int, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """A simulator in its own process; returns it and its base URL once it answers."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", code, str(records), str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"simulator exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url + "/", timeout=2)
            return proc, url
        except urllib.error.HTTPError:
            return proc, url  # it answers (401/404): up
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("simulator did not start")


def write_bench_config(directory: Path, ccv_url: str, eacc_url: str, page_size: int) -> Path:
    """The products and stock flows CCV → eAccounting, logging warnings only (a log line per
    record would measure the terminal)."""
    from e2e_support import write_config

    path = write_config(directory, ccv_url, eacc_url)
    text = path.read_text().replace('log_level = "info"', 'log_level = "warning"')
    text = text.replace('connector = "ccv_salespos"\n', f'connector = "ccv_salespos"\npage_size = {page_size}\n', 1)
    path.write_text(text)
    return path


def child(config: str, flow: str, batch_size: int) -> None:
    """Run one flow once with the daemon's engine and print its result as JSON (the child process)."""
    import anyio

    from apicenterd.config import load
    from apicenterd.engine import Engine
    from apicenterd.observe import logs
    from apicenterd.registry import load_registry
    from apicenterd.state import SQLiteStore

    logs.configure("warning")
    resolved = load(Path(config), load_registry())

    async def run():
        store = SQLiteStore(resolved.state_path)
        await store.open()
        engine = Engine(resolved, store, rate_limits=False, batch_size=batch_size)
        try:
            return await engine.run_flow(flow)
        finally:
            await engine.aclose()
            await store.close()

    result = anyio.run(run)
    print(json.dumps(result.as_dict()))


def vm_hwm_mib(pid: int) -> float | None:
    """The process's peak RSS so far (``VmHWM``), where /proc has it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def settled(state: Path, flow: str) -> int:
    """Records the flow has settled so far (links and audit entries; read-only, the run goes on)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1)) as db:
            return db.execute("SELECT count(*) FROM audit WHERE flow = ?", (flow,)).fetchone()[0]
    except sqlite3.Error:
        return -1


def report_progress(proc: subprocess.Popen, state: Path, flow: str, every: float, done: threading.Event) -> None:
    """Every ``every`` seconds, on stderr: records settled and the child's peak RSS so far."""
    started = time.perf_counter()
    while not done.wait(every):
        peak = vm_hwm_mib(proc.pid)
        print(f"  ... {flow}: {time.perf_counter() - started:,.0f} s, {settled(state, flow):,} settled,"
              f" peak RSS so far {peak if peak is not None else float('nan'):.1f} MiB", file=sys.stderr, flush=True)


def measure(config: Path, flow: str, batch_size: int, progress: float = 0.0) -> dict:
    """One flow run in a child process: its result, wall time and peak RSS (MiB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(config), flow, "--batch-size", str(batch_size)],
        stdout=subprocess.PIPE,
    )
    done = threading.Event()
    if progress > 0:
        state = config.parent / "state.db"
        threading.Thread(target=report_progress, args=(proc, state, flow, progress, done), daemon=True).start()
    out = proc.stdout.read() if proc.stdout else b""
    _pid, status, usage = os.wait4(proc.pid, 0)
    done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"flow {flow} exited with {proc.returncode}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    if result["status"] != "ok":
        raise SystemExit(f"flow {flow} failed: {result['error']}")
    records = sum(result[k] for k in ("created", "updated", "unchanged", "skipped", "failed"))
    return {"flow": flow, "records": records, "seconds": seconds, "peak_mib": usage.ru_maxrss / 1024, "result": result}


def bench(size: int, flows: list[str], page_size: int, batch_size: int, progress: float = 0.0) -> list[dict]:
    """Every flow of ``flows`` once, at ``size`` source products."""
    ccv, ccv_url = start_server(CCV_SERVER, size)
    eacc, eacc_url = start_server(EACC_SERVER, 0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = write_bench_config(Path(tmp), ccv_url, eacc_url, page_size)
            return [{"size": size, **measure(config, flow, batch_size, progress)} for flow in flows]
    finally:
        for proc in (ccv, eacc):
            proc.terminate()
            proc.wait(30)


def sizes(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes: expected numbers separated by commas, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"--sizes: expected positive numbers, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=sizes, default=[10_000, 100_000, 1_000_000], help="source products per run, e.g. 10000,100000")
    parser.add_argument("--flows", default="products,stock", help="flows to run at each size, in order (default: products,stock)")
    parser.add_argument("--page-size", type=int, default=250, help="CCV page size (default 250, the API's maximum)")
    parser.add_argument("--batch-size", type=int, default=100, help="the engine's batch size (default 100)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON lines too")
    parser.add_argument("--progress", type=float, default=0.0, metavar="SECONDS",
                        help="every SECONDS, print records settled and peak RSS so far on stderr (long runs)")
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "FLOW"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.batch_size)
        return 0
    flows = [f.strip() for f in args.flows.split(",") if f.strip()]
    unknown = sorted(set(flows) - {"products", "stock"})
    if unknown:
        parser.error(f"--flows: unknown flow {unknown[0]!r} (products, stock)")
    print(f"{'records':>10} {'flow':<9} {'seconds':>9} {'records/s':>10} {'peak RSS MiB':>13}", flush=True)
    for size in args.sizes:
        for row in bench(size, flows, args.page_size, args.batch_size, args.progress):
            rate = row["records"] / row["seconds"] if row["seconds"] else 0.0
            print(f"{row['records']:>10} {row['flow']:<9} {row['seconds']:>9.1f} {rate:>10,.0f} {row['peak_mib']:>13.1f}", flush=True)
            if args.json:
                print(json.dumps(dict(row)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

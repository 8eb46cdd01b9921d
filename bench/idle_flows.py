"""Benchmark: what 1,000 configured flows with nothing to do cost the daemon, and whether they start on time.

The daemon (``apicenterd run``, a child process) runs ``--flows`` products flows from one CCV SalesPOS
simulator (no products: every run reads one empty page) to one eAccounting simulator, each
simulator in a process of its own, rate limits off. Every flow has the same schedule, so every
slot starts all of them at once (the worst case for lag):

- ``--cron "* * * * *"`` (the default: every minute, cron's finest) or ``--interval 5m``.

After the start-up round (every flow's first run) the script measures for ``--seconds`` (whole
minutes of slots with cron) and prints:

- the daemon's CPU as a share of one core over the window (user + system, from /proc), the CPU
  per unchanged run, and that cost projected to 1,000 flows at a 5-minute interval (the goal: < 5 %);
- start lag of every run in the window: its ``started_at`` in the runs table minus its cron slot
  (p50, p99, max; the goal: p99 < 1 s). With ``--interval`` the slot is not known from outside,
  so lag is measured against the first run of the same round.

    .venv/bin/python bench/idle_flows.py                                  # 1,000 flows, 3 minutes
    .venv/bin/python bench/idle_flows.py --flows 1000 --seconds 300

Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import CCV_PRIVATE_KEY, CCV_PUBLIC_KEY, STATIC_TOKEN, simulator

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def write_config(directory: Path, ccv_url: str, eacc_url: str, flows: int, schedule: str) -> Path:
    lines = [
        "[daemon]",
        'log_level = "info"',  # the default: a line per run start and end
        'metrics_address = ""',
        "",
        "[state]",
        'path = "state.db"',
        "",
        "[connections.salespos]",
        'connector = "ccv_salespos"',
        f'base_url = "{ccv_url}"',
        f'public_key = "{CCV_PUBLIC_KEY}"',
        f'private_key = "{CCV_PRIVATE_KEY}"',
        "client_rate_limit = false",
        "",
        "[connections.eaccounting]",
        'connector = "eaccounting"',
        f'base_url = "{eacc_url}"',
        f'access_token = "{STATIC_TOKEN}"',
        "client_rate_limit = false",
        "",
    ]
    for n in range(flows):
        lines += [f"[flows.products_{n:04d}]", 'source = "salespos"', 'target = "eaccounting"', 'entity = "products"', schedule, ""]
    path = directory / "apicenterd.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def runs(state: Path, since: float = 0.0) -> list[tuple[str, float, float | None]]:
    """(flow, started_at, finished_at) of every run that started at or after ``since``."""
    with contextlib.closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)) as db:
        try:
            query = "SELECT flow, started_at, finished_at FROM runs WHERE started_at >= ? ORDER BY started_at"
            return db.execute(query, (since,)).fetchall()
        except sqlite3.OperationalError as exc:  # the daemon created the file and not yet its tables
            if "no such table" in str(exc):
                return []
            raise


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=1000)
    parser.add_argument("--cron", default="* * * * *", help='the flows\' cron (default "* * * * *")')
    parser.add_argument("--interval", help="an interval instead of the cron (e.g. 5m)")
    parser.add_argument("--seconds", type=float, default=180.0, help="length of the measuring window (default 180)")
    parser.add_argument("--startup-timeout", type=float, default=600.0, help="seconds for the start-up round")
    args = parser.parse_args()
    schedule = f'interval = "{args.interval}"' if args.interval else f'cron = "{args.cron}"'
    with simulator("ccv", 0) as ccv_url, simulator("eaccounting") as eacc_url, tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        config = write_config(directory, ccv_url, eacc_url, args.flows, schedule)
        state = directory / "state.db"
        with open(directory / "daemon.log", "wb") as log:
            daemon = subprocess.Popen([sys.executable, "-m", "apicenterd.cli", "run", "--config", str(config)], stdout=log, stderr=log)
        try:
            started = time.time()
            # the start-up round: every flow's first run (they run at start, one after the other per target)
            while True:
                if daemon.poll() is not None:
                    raise SystemExit(f"daemon exited {daemon.returncode}: {(directory / 'daemon.log').read_text()[-2000:]}")
                done = {flow for flow, _, finished in runs(state) if finished is not None} if state.exists() else set()
                if len(done) >= args.flows:
                    break
                if time.time() - started > args.startup_timeout:
                    raise SystemExit(f"start-up round not done after {args.startup_timeout:g} s ({len(done)} flows ran)")
                time.sleep(1)
            startup = time.time() - started
            # the window starts on a slot boundary (cron) so it holds whole rounds
            begin = time.time()
            if not args.interval:
                begin = math.ceil(begin / 60) * 60 - 0.5
                time.sleep(max(0.0, begin - time.time()))
            cpu_before, wall_before = cpu_seconds(daemon.pid), time.time()
            time.sleep(args.seconds)
            cpu_after, wall_after = cpu_seconds(daemon.pid), time.time()
            # let the runs of the window's last round finish before reading them
            time.sleep(5)
            window = [r for r in runs(state, wall_before) if r[1] < wall_after]
        finally:
            daemon.terminate()
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
    seconds = wall_after - wall_before
    cpu = cpu_after - cpu_before
    share = cpu / seconds
    count = len(window)
    per_run_ms = 1000 * cpu / count if count else float("nan")
    projected = 1000 / 300 * per_run_ms / 1000  # 1,000 flows every 5 minutes: runs per second x CPU per run
    if args.interval:
        rounds: dict[int, float] = {}
        lags = []
        for _, at, _ in window:  # a round: runs within half an interval of its first
            key = next((k for k, first in rounds.items() if at - first < 30), None)
            if key is None:
                rounds[len(rounds)] = at
                lags.append(0.0)
            else:
                lags.append(at - rounds[key])
    else:
        lags = [at - math.floor(at / 60) * 60 for _, at, _ in window]
    print(f"flows: {args.flows}, schedule {schedule}; start-up round {startup:.0f} s")
    print(f"window: {seconds:.0f} s, {count} runs ({count / seconds:.1f} runs/s)")
    print(f"daemon CPU: {cpu:.1f} s = {100 * share:.1f} % of one core at this schedule")
    print(f"CPU per unchanged run: {per_run_ms:.1f} ms")
    print(f"projected, 1,000 flows every 5 minutes: {100 * projected:.2f} % of one core (goal < 5 %)")
    if lags:
        print(
            f"start lag: p50 {statistics.median(lags):.3f} s, p99 {percentile(lags, 0.99):.3f} s, "
            f"max {max(lags):.3f} s (goal: p99 < 1 s)"
        )


if __name__ == "__main__":
    main()

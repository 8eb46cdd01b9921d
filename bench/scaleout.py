"""Benchmark: several daemons on one PostgreSQL sharing ``--flows`` flows (procrastinate's job queue).

Three daemons (``--daemons``; ``apicenterd run``, child processes) share a database of their own
(created on the server ``--server``, default $APICENTERD_TEST_PG or postgresql://postgres@127.0.0.1:5432/test,
dropped at the end). They run ``--flows`` products flows from one CCV SalesPOS simulator (no products:
each run reads one empty page) to one eAccounting simulator (simulators in processes of their own,
rate limits off). Every flow has the same schedule, so each slot queues all of them at once (the worst
case for lag): ``--cron "* * * * *"`` (the default) or ``--interval 30s``.

After the start-up round (every flow's first run) it measures for ``--seconds`` and prints:

- start lag of every run in the window (cron only: its ``started_at`` in the runs table minus its
  slot): p50, p99, max;
- runs per daemon (how the queue spread the work) and CPU per daemon (share of one core, /proc);
- idle CPU per daemon: over the part of each minute after the round finished (cron only);
- PostgreSQL connections to the database (pg_stat_activity, sampled every second): max and mean.

    .venv/bin/python bench/scaleout.py                          # 1,000 flows, 3 daemons, 3 minutes
    .venv/bin/python bench/scaleout.py --flows 300 --seconds 120
    .venv/bin/python bench/scaleout.py --flows 6 --interval 2s --seconds 8 --json   # the CI smoke test

``--shared-limit``: the CCV SalesPOS simulator enforces its limits (150 GETs a minute per resource, the
vendor's) and the connection keeps them on the client side, shared by the daemons through PostgreSQL;
the flows want far more than that (every run reads the products resource once). After ``--warmup``
seconds it counts, over the window, the calls the simulator answered per minute against that limit
(the goal: >= 90 % of it used) and its 429s (the goal: none). The start-up round is not waited for.

    .venv/bin/python bench/scaleout.py --flows 1000 --shared-limit --seconds 180

Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg
from apicenterd_ccv_salespos.simulator import GET_LIMIT as CCV_GET_LIMIT  # GETs a minute per resource

sys.path.insert(0, str(Path(__file__).resolve().parent))
from idle_flows import cpu_seconds, percentile
from idle_flows import write_config as write_one_config
from peers import CCV_PRIVATE_KEY, counted, simulator

SERVER = os.environ.get("APICENTERD_TEST_PG") or "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def database(server: str):
    name = f"apicenterd_scaleout_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.rsplit("/", 1)[0] + "/" + name, name
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rows(url: str, query: str, args=()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, args).fetchall()


def measure(args: argparse.Namespace) -> dict:
    schedule = f'interval = "{args.interval}"' if args.interval else f'cron = "{args.cron}"'
    with (
        simulator("ccv", 0, limits=args.shared_limit) as ccv_url,
        simulator("eaccounting") as eacc_url,
        tempfile.TemporaryDirectory() as tmp,
        database(args.server) as (url, dbname),
    ):
        procs: list[subprocess.Popen] = []
        logs = []
        try:
            for n in range(args.daemons):
                directory = Path(tmp) / f"d{n}"
                directory.mkdir()
                config = write_one_config(directory, ccv_url, eacc_url, args.flows, schedule)
                text = config.read_text().replace(
                    'path = "state.db"',
                    f'path = "state.db"\nurl = "{url}"\nworker_concurrency = {args.concurrency}\n'
                    f"worker_heartbeat_seconds = {args.heartbeat}\nworker_stall_seconds = {3 * args.heartbeat}",
                )
                text = text.replace('log_level = "info"', 'log_level = "warning"')
                if args.shared_limit:  # the CCV connection keeps the vendor's limits (shared by the daemons)
                    key = f'private_key = "{CCV_PRIVATE_KEY}"'
                    if f"{key}\nclient_rate_limit = false" not in text:
                        raise SystemExit("the CCV connection of the bench's config changed: cannot turn its limits on")
                    text = text.replace(f"{key}\nclient_rate_limit = false", key)
                config.write_text(text)
                log = directory / "daemon.log"
                logs.append(log)
                command = [sys.executable, "-m", "apicenterd.cli", "run", "--config", str(config)]
                with open(log, "wb") as out:
                    procs.append(subprocess.Popen(command, stdout=out, stderr=out))
            started = time.time()

            def all_alive() -> None:
                for proc, log in zip(procs, logs, strict=True):
                    if proc.poll() is not None:
                        raise SystemExit(f"daemon exited {proc.returncode}: {log.read_text()[-2000:]}")

            while args.shared_limit:  # the warm-up: the daemons started and calling
                all_alive()
                if time.time() - started >= args.warmup:
                    break
                time.sleep(0.5)
            while not args.shared_limit:  # the start-up round: every flow's first run
                all_alive()
                with contextlib.suppress(psycopg.Error):
                    done = rows(url, "SELECT count(DISTINCT flow) FROM runs WHERE finished_at IS NOT NULL")[0][0]
                    if done >= args.flows:
                        break
                if time.time() - started > args.startup_timeout:
                    raise SystemExit(f"start-up round not done after {args.startup_timeout:g} s")
                time.sleep(0.5)
            startup = time.time() - started
            begin = time.time()
            if not args.interval:  # whole minutes of slots
                begin = math.ceil(begin / 60) * 60 - 0.5
                time.sleep(max(0.0, begin - time.time()))
            connections: list[int] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    with contextlib.suppress(psycopg.Error):
                        connections.append(rows(args.server, "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (dbname,))[0][0])
                    stop.wait(1.0)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            cpu_before = [cpu_seconds(p.pid) for p in procs]
            vendor_before = counted(ccv_url)
            wall_before = time.time()
            idle: list[list[float]] = [[] for _ in procs]
            if not args.interval:
                # idle CPU: from 25 s after each slot (the round done) to 55 s after it
                end = wall_before + args.seconds
                while time.time() + 30 < end:
                    slot = math.floor(time.time() / 60) * 60 + 60
                    time.sleep(max(0.0, slot + 25 - time.time()))
                    pending = rows(url, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'")[0][0]
                    a, t = [cpu_seconds(p.pid) for p in procs], time.time()
                    time.sleep(max(0.0, slot + 55 - time.time()))
                    b, u = [cpu_seconds(p.pid) for p in procs], time.time()
                    if pending == 0:
                        for i in range(len(procs)):
                            idle[i].append((b[i] - a[i]) / (u - t))
            time.sleep(max(0.0, wall_before + args.seconds - time.time()))
            cpu_after = [cpu_seconds(p.pid) for p in procs]
            wall_after = time.time()
            vendor_after = counted(ccv_url)
            stop.set()
            sampler.join()
            time.sleep(min(5.0, args.seconds))  # the window's last round finishes
            window = rows(
                url,
                "SELECT flow, daemon, started_at FROM runs WHERE started_at >= %s AND started_at < %s ORDER BY started_at",
                (wall_before, wall_after),
            )
            durations = [
                r[0]
                for r in rows(
                    url,
                    "SELECT finished_at - started_at FROM runs WHERE started_at >= %s AND started_at < %s AND finished_at IS NOT NULL",
                    (wall_before, wall_after),
                )
            ]
            alive = rows(url, "SELECT count(*) FROM procrastinate_workers")[0][0]
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    seconds = wall_after - wall_before
    pids = {f"{os.uname().nodename}:{p.pid}": i for i, p in enumerate(procs)}
    per_daemon = Counter(pids.get(d, -1) for _, d, _ in window)
    result: dict = {
        "flows": args.flows,
        "daemons": args.daemons,
        "schedule": schedule,
        "startup_seconds": round(startup, 1),
        "window_seconds": round(seconds, 1),
        "runs": len(window),
        "flows_run": len({f for f, _, _ in window}),
        "runs_per_daemon": [per_daemon.get(i, 0) for i in range(len(procs))],
        "cpu_share_per_daemon": [round((cpu_after[i] - cpu_before[i]) / seconds, 4) for i in range(len(procs))],
        "idle_cpu_share_per_daemon": [round(statistics.mean(v), 4) if v else None for v in idle],
        "pg_connections_max": max(connections) if connections else None,
        "pg_connections_mean": round(statistics.mean(connections), 1) if connections else None,
        "workers_registered_at_end": alive,
        "run_seconds_p50": round(statistics.median(durations), 3) if durations else None,
        "run_seconds_p99": round(percentile(durations, 0.99), 3) if durations else None,
    }
    if args.shared_limit:
        per_minute = (vendor_after["calls"] - vendor_before["calls"]) * 60 / seconds
        result |= {
            "vendor_limit_per_minute": CCV_GET_LIMIT,
            "vendor_calls_per_minute": round(per_minute, 1),
            "vendor_limit_used": round(per_minute / CCV_GET_LIMIT, 4),
            "vendor_429s_in_window": vendor_after["throttled"] - vendor_before["throttled"],
            "vendor_429s_in_all": vendor_after["throttled"],
        }
    if not args.interval and window and not args.shared_limit:
        lags = [at - math.floor(at / 60) * 60 for _, _, at in window]
        result |= {
            "lag_p50": round(statistics.median(lags), 3),
            "lag_p99": round(percentile(lags, 0.99), 3),
            "lag_max": round(max(lags), 3),
        }
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=1000)
    parser.add_argument("--daemons", type=int, default=3)
    parser.add_argument("--cron", default="* * * * *")
    parser.add_argument("--interval", help="an interval instead of the cron (e.g. 30s); no lag figures then")
    parser.add_argument("--seconds", type=float, default=180.0, help="length of the measuring window (default 180)")
    parser.add_argument("--concurrency", type=int, default=10, help="[state] worker_concurrency of each daemon")
    parser.add_argument("--heartbeat", type=float, default=5.0, help="[state] worker_heartbeat_seconds")
    parser.add_argument("--startup-timeout", type=float, default=900.0)
    parser.add_argument("--server", default=SERVER, help="a PostgreSQL URL to create the database on")
    parser.add_argument("--shared-limit", action="store_true", help="the CCV simulator's limits on, shared by the daemons")
    parser.add_argument("--warmup", type=float, default=30.0, help="--shared-limit: seconds before the window")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['flows']} flows on {result['daemons']} daemons, {result['schedule']}; start-up round {result['startup_seconds']:.0f} s")
    print(
        f"window {result['window_seconds']:.0f} s: {result['runs']} runs of {result['flows_run']} flows; "
        f"per daemon {result['runs_per_daemon']}"
    )
    if "lag_p50" in result:
        print(f"start lag (run start - slot): p50 {result['lag_p50']:.3f} s, p99 {result['lag_p99']:.3f} s, max {result['lag_max']:.3f} s")
    print("CPU per daemon (share of one core): " + ", ".join(f"{100 * c:.1f} %" for c in result["cpu_share_per_daemon"]))
    print("idle CPU per daemon: " + ", ".join("n/a" if c is None else f"{100 * c:.2f} %" for c in result["idle_cpu_share_per_daemon"]))
    print(f"run duration (start to end): p50 {result['run_seconds_p50']} s, p99 {result['run_seconds_p99']} s")
    print(f"PostgreSQL connections to the database: max {result['pg_connections_max']}, mean {result['pg_connections_mean']}")
    if "vendor_calls_per_minute" in result:
        print(
            f"shared vendor limit: {result['vendor_calls_per_minute']:.1f} calls a minute of {result['vendor_limit_per_minute']} "
            f"({100 * result['vendor_limit_used']:.1f} % used; goal >= 90 %), 429s in the window {result['vendor_429s_in_window']} "
            f"(goal 0), in all {result['vendor_429s_in_all']}"
        )


if __name__ == "__main__":
    main()

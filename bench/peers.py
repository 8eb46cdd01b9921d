"""Benchmark: apicenterd next to two plain loops, on one job — CCV SalesPOS products into eAccounting.

The contenders run the same job against the bundled simulators on loopback, each simulator in a
process of its own with its rate limits off:

``apicenterd``   ``apicenterd flows run products`` (a child process) with ``client_rate_limit = false``
                 on both connections and eAccounting signed in with a static ``access_token``; the
                 state store, hashing and the audit trail on, as in production.
``httpx loop``   a synchronous httpx loop (a child process): read every CCV product page by page, and
                 per product ``GET /v2/articles?$filter=Number eq '…'`` then ``POST`` (not found) or
                 ``PUT`` (found: a plain loop rewrites what it cannot tell is unchanged).
``stdlib loop``  the same loop on the standard library alone (``http.client`` keep-alive connections
                 and ``json``): the issue's "plain stdlib loop (GET + POST per record)".

For every size (``--sizes``) and contender, ``--repeat`` times with a fresh, empty eAccounting each
time: a first sync of N products, then an unchanged rerun. Figures per contender and size, the
median of the repeats:

- CPU ms per record: user + system CPU of the contender's process (``wait4``; interpreter start and
  imports included) divided by N, for the first sync and the rerun;
- target calls per record: requests eAccounting received (counted by the simulator process) / N;
- wall time of the first sync, and the peak RSS of the contender's process (the larger of its runs).

    .venv/bin/python bench/peers.py                             # 10k and 100k, median of 3
    .venv/bin/python bench/peers.py --sizes 10000,100000,1000000 --repeat 3

It ends with a Markdown table ready to paste into the README. ``--sizes 50 --repeat 1`` is the
CI smoke run (tests/test_bench_peers.py).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import hmac
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STATIC_TOKEN = "bench-static-access-token"
CCV_PUBLIC_KEY = "demo-public-key"
CCV_PRIVATE_KEY = "demo-private-key-not-a-secret"
PAGE_SIZE = 100
"""CCV products per page, for both contenders (the connector's default)."""

SERVER = """
import json, sys, uvicorn
kind, records, port, token = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
limits = {} if sys.argv[5:] == ["limits"] else {"rate_limit": 0}
if kind == "ccv":
    from apicenterd_ccv_salespos.simulator import create_app
    app = create_app(seed=1, records=records, lazy=True, **limits)
else:
    from apicenterd_eaccounting.simulator import create_app
    app = create_app(seed=1, records=0, static_token=token, **limits)
counts = {"calls": 0, "throttled": 0}

async def counted(scope, receive, send):
    if scope["type"] != "http":
        await app(scope, receive, send)
        return
    if scope["path"] == "/_bench/calls":
        body = json.dumps(counts).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    counts["calls"] += 1

    async def watched(message):
        if message["type"] == "http.response.start" and message["status"] == 429:
            counts["throttled"] += 1
        await send(message)

    await app(scope, receive, watched)

uvicorn.run(counted, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def simulator(kind: str, records: int = 0, timeout: float = 120.0, *, limits: bool = False) -> Iterator[str]:
    """A simulator (``ccv`` or ``eaccounting``) in its own process, its rate limits off unless ``limits``;
    yields its base URL (``/_bench/calls`` counts the calls it answered and its 429s)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, kind, str(records), str(port), STATIC_TOKEN, *(["limits"] if limits else [])])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{kind} simulator exited with {proc.returncode}")
            try:
                urllib.request.urlopen(url + "/_bench/calls", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{kind} simulator did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def calls(url: str) -> int:
    return counted(url)["calls"]


def counted(url: str) -> dict[str, int]:
    """What the simulator at ``url`` counted: ``calls`` answered, ``throttled`` (its 429s)."""
    with urllib.request.urlopen(url + "/_bench/calls", timeout=10) as response:
        return {k: int(v) for k, v in json.load(response).items()}


def write_config(directory: Path, ccv_url: str, eacc_url: str) -> Path:
    """The products flow CCV → eAccounting: rate limits off, a static eAccounting token, warnings only."""
    path = directory / "apicenterd.toml"
    path.write_text(
        f"""
[daemon]
log_level = "warning"
metrics_address = ""

[state]
path = "state.db"

[connections.salespos]
connector = "ccv_salespos"
base_url = "{ccv_url}"
public_key = "{CCV_PUBLIC_KEY}"
private_key = "{CCV_PRIVATE_KEY}"
page_size = {PAGE_SIZE}
client_rate_limit = false

[connections.eaccounting]
connector = "eaccounting"
base_url = "{eacc_url}"
access_token = "{STATIC_TOKEN}"
client_rate_limit = false

[flows.products]
source = "salespos"
target = "eaccounting"
entity = "products"
interval = "1h"
""",
        encoding="utf-8",
    )
    return path


# ---------------------------------------------------------------- the plain loop (a child process)


def plain_loop(ccv_url: str, eacc_url: str) -> dict[str, int]:
    """Every CCV product to eAccounting: GET by number, then POST or PUT. Counts what it did."""
    import httpx

    def ccv_get(client: httpx.Client, url: str) -> Any:
        uri = httpx.URL(url).raw_path.decode("ascii")
        x_date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        message = f"{CCV_PUBLIC_KEY}|GET|{uri}||{x_date}".encode()
        digest = hmac.new(CCV_PRIVATE_KEY.encode(), message, hashlib.sha512).hexdigest()
        response = client.get(url, headers={"x-public": CCV_PUBLIC_KEY, "x-date": x_date, "x-hash": digest})
        response.raise_for_status()
        return response.json()

    done = {"created": 0, "updated": 0, "failed": 0}
    auth = {"Authorization": f"Bearer {STATIC_TOKEN}", "Accept": "application/json"}
    with httpx.Client(timeout=60) as ccv, httpx.Client(base_url=eacc_url, headers=auth, timeout=60) as eacc:
        codings = eacc.get("/v2/articleaccountcodings").json()["Data"]
        coding_by_rate = {float(c["VatRatePercent"]): c["Id"] for c in codings if c.get("VatRatePercent") is not None}
        unit_id = eacc.get("/v2/units").json()["Data"][0]["Id"]
        url: str | None = f"{ccv_url}/api/rest/v1/products/?start=0&size={PAGE_SIZE}&orderby=id"
        while url:
            page = ccv_get(ccv, url)
            for product in page["items"]:
                number = product["productnumber"]
                rate = float(product.get("vatrate") or 21.0)
                gross = round(float(product["price"]) - float(product.get("discount") or 0), 2)
                article = {
                    "Number": number,
                    "Name": product["name"][:50],
                    "GrossPrice": gross,
                    "NetPrice": round(gross / (1 + rate / 100), 2),
                    "CodingId": coding_by_rate.get(rate) or codings[0]["Id"],
                    "UnitId": unit_id,
                    "IsActive": bool(product.get("is_active", True)),
                }
                quoted = number.replace("'", "''")
                found = eacc.get("/v2/articles", params={"$filter": f"Number eq '{quoted}'"}).json()["Data"]
                if found:
                    response = eacc.put(f"/v2/articles/{found[0]['Id']}", json={**found[0], **article})
                    kind = "updated"
                else:
                    response = eacc.post("/v2/articles", json=article)
                    kind = "created"
                done[kind if response.is_success else "failed"] += 1
            url = page.get("next") or None
    return done


def stdlib_loop(ccv_url: str, eacc_url: str) -> dict[str, int]:
    """The same job as :func:`plain_loop` with nothing but the standard library: ``http.client``
    (one keep-alive connection per vendor) and ``json`` (the issue's "plain stdlib loop")."""
    import http.client
    import urllib.parse

    def connect(url: str) -> http.client.HTTPConnection:
        parts = urllib.parse.urlsplit(url)
        return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)

    def call(conn: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        sent = {**headers, "Content-Type": "application/json"} if data is not None else headers
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # the server closed the idle keep-alive connection (uvicorn: after 5 s): once more, anew
            conn.close()
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
        raw = response.read()
        if response.status >= 400:
            raise SystemExit(f"{method} {path}: HTTP {response.status} {raw[:200]!r}")
        return json.loads(raw) if raw else None

    ccv, eacc = connect(ccv_url), connect(eacc_url)
    done = {"created": 0, "updated": 0, "failed": 0}
    auth = {"Authorization": f"Bearer {STATIC_TOKEN}", "Accept": "application/json"}
    codings = call(eacc, "GET", "/v2/articleaccountcodings", auth)["Data"]
    coding_by_rate = {float(c["VatRatePercent"]): c["Id"] for c in codings if c.get("VatRatePercent") is not None}
    unit_id = call(eacc, "GET", "/v2/units", auth)["Data"][0]["Id"]
    path: str | None = f"/api/rest/v1/products/?start=0&size={PAGE_SIZE}&orderby=id"
    while path:
        x_date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        message = f"{CCV_PUBLIC_KEY}|GET|{path}||{x_date}".encode()
        digest = hmac.new(CCV_PRIVATE_KEY.encode(), message, hashlib.sha512).hexdigest()
        page = call(ccv, "GET", path, {"x-public": CCV_PUBLIC_KEY, "x-date": x_date, "x-hash": digest})
        for product in page["items"]:
            number = product["productnumber"]
            rate = float(product.get("vatrate") or 21.0)
            gross = round(float(product["price"]) - float(product.get("discount") or 0), 2)
            article = {
                "Number": number,
                "Name": product["name"][:50],
                "GrossPrice": gross,
                "NetPrice": round(gross / (1 + rate / 100), 2),
                "CodingId": coding_by_rate.get(rate) or codings[0]["Id"],
                "UnitId": unit_id,
                "IsActive": bool(product.get("is_active", True)),
            }
            query = urllib.parse.urlencode({"$filter": f"Number eq '{number.replace(chr(39), chr(39) * 2)}'"})
            found = call(eacc, "GET", f"/v2/articles?{query}", auth)["Data"]
            if found:
                call(eacc, "PUT", f"/v2/articles/{found[0]['Id']}", auth, {**found[0], **article})
                done["updated"] += 1
            else:
                call(eacc, "POST", "/v2/articles", auth, article)
                done["created"] += 1
        following = page.get("next") or None
        path = urllib.parse.urlsplit(following)._replace(scheme="", netloc="").geturl() if following else None
    ccv.close()
    eacc.close()
    return done


# ---------------------------------------------------------------- measuring


def measure(argv: list[str], cwd: Path) -> dict[str, Any]:
    """Run ``argv`` as a child; its CPU seconds, wall seconds, peak RSS (MiB), exit status and stdout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    return {
        "cpu": usage.ru_utime + usage.ru_stime,
        "wall": wall,
        "rss": usage.ru_maxrss / 1024,  # KiB on Linux
        "code": proc.returncode,
        "stdout": stdout,
        "stderr": stderr,
    }


def run_contender(which: str, ccv_url: str, records: int) -> dict[str, float]:
    """One first sync and one unchanged rerun of ``which`` into a fresh eAccounting."""
    with simulator("eaccounting") as eacc_url, tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        if which == "apicenterd":
            config = write_config(directory, ccv_url, eacc_url)
            argv = [sys.executable, "-m", "apicenterd.cli", "flows", "run", "products", "--config", str(config), "--json"]
        else:
            child = "--child-stdlib" if which == "stdlib loop" else "--child-plain"
            argv = [sys.executable, str(Path(__file__).resolve()), child, ccv_url, eacc_url]
        figures: dict[str, float] = {}
        for phase in ("first", "rerun"):
            before = calls(eacc_url)
            done = measure(argv, directory)
            if done["code"] != 0:
                raise SystemExit(f"{which} {phase} run exited {done['code']}: {(done['stdout'] + done['stderr'])[-2000:]}")
            result = json.loads(done["stdout"].strip().splitlines()[-1])
            written = result.get("created", 0) + result.get("updated", 0) + result.get("unchanged", 0)
            if phase == "first" and (result.get("failed") or result.get("created") != records):
                raise SystemExit(f"{which} first sync did not create {records} articles: {result}")
            figures[f"{phase}_cpu_ms"] = 1000 * done["cpu"] / records
            figures[f"{phase}_calls"] = (calls(eacc_url) - before) / records
            figures[f"{phase}_wall"] = done["wall"]
            figures[f"{phase}_rss"] = done["rss"]
            figures[f"{phase}_records"] = written
        figures["rss"] = max(figures["first_rss"], figures["rerun_rss"])
    return figures


CONTENDERS = ("stdlib loop", "httpx loop", "apicenterd")
COLUMNS = (
    ("first_cpu_ms", "CPU ms / record, first sync", "{:.3f}"),
    ("rerun_cpu_ms", "CPU ms / record, unchanged rerun", "{:.3f}"),
    ("first_calls", "target calls / record, first sync", "{:.3f}"),
    ("rerun_calls", "target calls / record, rerun", "{:.3f}"),
    ("first_wall", "wall s, first sync", "{:.1f}"),
    ("rss", "peak RSS MiB", "{:.0f}"),
)


def markdown(rows: list[tuple[int, str, dict[str, float]]], repeat: int) -> str:
    head = "| N | contender | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    lines = [head, "| " + " | ".join(["---"] * (len(COLUMNS) + 2)) + " |"]
    for size, which, figures in rows:
        cells = [fmt.format(figures[key]) for key, _, fmt in COLUMNS]
        name = f"**{which}**" if which == "apicenterd" else which
        lines.append(f"| {size:,} | {name} | " + " | ".join(cells) + " |")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
    lines.append("")
    lines.append(f"Median of {repeat} run(s) each; {machine}; {datetime.datetime.now(datetime.UTC).date().isoformat()}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated record counts (default 10000,100000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender and size; the median is shown (default 3)")
    parser.add_argument("--only", choices=CONTENDERS, action="append", help="run this contender only (may be repeated)")
    parser.add_argument("--json", action="store_true", help="also print every figure as one JSON line per row")
    parser.add_argument("--child-plain", nargs=2, metavar=("CCV_URL", "EACC_URL"), help=argparse.SUPPRESS)
    parser.add_argument("--child-stdlib", nargs=2, metavar=("CCV_URL", "EACC_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_plain:
        print(json.dumps(plain_loop(*args.child_plain)))
        return
    if args.child_stdlib:
        print(json.dumps(stdlib_loop(*args.child_stdlib)))
        return
    try:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes: {args.sizes!r} is not a comma-separated list of numbers")
    if not sizes or any(s < 1 for s in sizes) or args.repeat < 1:
        parser.error("--sizes needs positive numbers and --repeat at least 1")
    contenders = [c for c in CONTENDERS if c in args.only] if args.only else list(CONTENDERS)
    rows: list[tuple[int, str, dict[str, float]]] = []
    for size in sizes:
        with simulator("ccv", size) as ccv_url:
            for which in contenders:
                runs = []
                for n in range(args.repeat):
                    figures = run_contender(which, ccv_url, size)
                    runs.append(figures)
                    print(
                        f"N={size:,} {which} run {n + 1}/{args.repeat}: first sync {figures['first_wall']:.1f} s, "
                        f"{figures['first_cpu_ms']:.3f} CPU ms/record, {figures['first_calls']:.3f} calls/record; "
                        f"rerun {figures['rerun_cpu_ms']:.3f} CPU ms/record, {figures['rerun_calls']:.3f} calls/record; "
                        f"peak RSS {figures['rss']:.0f} MiB",
                        file=sys.stderr,
                        flush=True,
                    )
                median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                rows.append((size, which, median))
                if args.json:
                    print(json.dumps({"size": size, "contender": which, **median}))
    print(markdown(rows, args.repeat))


if __name__ == "__main__":
    main()

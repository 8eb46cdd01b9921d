"""Kill test: SIGKILL the products and orders flows at random moments, restart, then compare.

The CCV SalesPOS and eAccounting simulators are served in this process; each flow runs as
``apicenterd flows run NAME`` in a process of its own (forked from one that imported
apicenterd already, so start-up costs no import time; ``--no-fork`` starts each as a plain
``python -m apicenterd.cli``) and is killed at a moment drawn from a seeded RNG:

* at the n-th request it makes, *before* the simulator applies it;
* at the n-th request, *after* the simulator applied it and before the answer is sent (the
  write the process never heard of);
* a few milliseconds *after* the n-th answer (between a write and its settle);
* at a random time after start (start-up, reading the state store, committing).

After a kill the flow is started again; once products and orders each finished a run, the
shop grows (new products, changed prices, new orders) and it goes round again, until the
kills are done. Then both flows run to completion and the target is compared with the
source and with a fault-free reference run on simulators seeded alike: every product and
every order present exactly once, one debtor per e-mail, the same content.

    .venv/bin/python bench/kill_test.py --kills 200
    .venv/bin/python bench/kill_test.py --kills 50 --postgres --pg-restarts 5

``--postgres`` keeps the state in a private PostgreSQL server (``initdb`` into a temporary folder, never
the machine's shared cluster); ``--pg-restarts N`` also restarts that server N times in the middle of runs
(a request applied, its answer held until the server is back): those runs must reconnect and finish.

The same harness is the test ``tests/e2e/test_kill_harness.py`` (50 kills).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.requests import ClientDisconnect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector
from apicenterd_eaccounting.connector import EAccountingConnector
from e2e_support import _toml_value, write_config

from apicenterd import Entity, Product
from apicenterd.config import Resolved, load
from apicenterd.engine import Engine, StateTokenStore
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore, store_for
from apicenterd.testing import connect, serve_app

SERVICE_ARTICLES = {"VERZEND": "Verzendkosten", "KORTING": "Korting", "TOESLAG": "Toeslag"}
ORDER_OPTIONS = {"document": "invoice_draft", "shipping_sku": "VERZEND", "discount_sku": "KORTING", "fee_sku": "TOESLAG"}
FLOWS = ("products", "orders")
SEED = 7
"""Both simulators' seed (the reference run uses the same)."""

# -- the configuration and the target's starting point ----------------------------------------


def write_harness_config(
    directory: Path, ccv_url: str, eacc_url: str, *, timeout: float | None = None, state_url: str | None = None
) -> Path:
    """A config with the products flow and the orders flow (invoice drafts) CCV → eAccounting;
    ``timeout``: each connection's HTTP timeout in seconds; ``state_url``: PostgreSQL state instead of SQLite."""
    directory.mkdir(parents=True, exist_ok=True)
    path = write_config(directory, ccv_url, eacc_url, stock={"enabled": False}, state_url=state_url)
    text = path.read_text().replace('log_level = "info"', 'log_level = "warning"')  # less for a killed process to write
    if timeout is not None:
        for connector in ("ccv_salespos", "eaccounting"):
            text = text.replace(f'connector = "{connector}"\n', f'connector = "{connector}"\ntimeout = {timeout}\n', 1)
    text += (
        '\n[flows.orders]\nsource = "salespos"\ntarget = "eaccounting"\nentity = "orders"\ninterval = "1h"\n'
        f"options = {_toml_value(ORDER_OPTIONS)}\n"
    )
    path.write_text(text)
    return path


def resolve(path: Path) -> Resolved:
    """The config at ``path``, resolved against the installed connectors."""
    return load(path, load_registry())


async def seed_service_articles(resolved: Resolved, eacc: str | Any) -> None:
    """The shipping, discount and fee articles orders book those lines on; ``eacc`` is the
    simulator's URL or the app itself. Also leaves a fresh token set in the state store."""
    store = store_for(resolved.config.state.url, resolved.state_path)
    await store.open()
    app = None if isinstance(eacc, str) else eacc
    settings = EAccountingConnector.demo_settings(eacc if isinstance(eacc, str) else "http://eaccounting.test")
    try:
        async with connect(EAccountingConnector, settings, app=app, tokens=StateTokenStore(store, "eaccounting")) as target:
            for sku, name in SERVICE_ARTICLES.items():
                product = Product(sku=sku, name=name, price_excl_tax=Decimal(0), price_incl_tax=Decimal(0), tax_rate=Decimal(21))
                await target.create(Entity.PRODUCTS, target.normalize(Entity.PRODUCTS, product))
    finally:
        await store.close()


def simulators(products: int) -> tuple[Any, Any]:
    """A seeded CCV shop with ``products`` products (and a fifth as many orders) and an empty
    eAccounting company; both without vendor rate limits (they would only add waiting)."""
    ccv = CCVSalesPOSConnector.simulator(seed=SEED, records=products, rate_limit=0)
    eacc = EAccountingConnector.simulator(seed=SEED, records=0, rate_limit=0)
    return ccv, eacc


GROWTH_EPOCH = datetime(2025, 2, 1, 9, 0, tzinfo=timezone.utc)


def grow(ccv_sim: Any, round_no: int, *, products: int = 8, orders: int = 4, price_changes: int = 4) -> None:
    """Round ``round_no`` of the shop's growth, the same for the same round: new products,
    changed prices, new orders (dated, so the reference run gets the same documents)."""
    rng = random.Random(f"grow-{round_no}")
    existing = sorted(pid for pid, p in ccv_sim.products.items() if p["productnumber"])
    for pid in rng.sample(existing, min(price_changes, len(existing))):
        ccv_sim.update_product(pid, price=float(ccv_sim.products[pid]["price"]) + rng.choice((0.5, 1.0, 2.0)))
    new = []
    for i in range(products):
        number = f"SP-R{round_no:02d}-{i:03d}"
        price = rng.choice((3.95, 7.5, 12.0))
        new.append(ccv_sim.add_product(productnumber=number, name=f"Nieuw {number}", price=price, vatrate=21.0)["id"])
    ids = sorted(ccv_sim.products)
    for i in range(orders):
        lines = [(rng.choice(new if i % 2 else ids), rng.randint(1, 3)) for _ in range(rng.randint(1, 3))]
        customer = ccv_sim._customer(rng)
        ccv_sim.add_order(lines, status=2, customer=customer, when=GROWTH_EPOCH + timedelta(days=round_no, hours=i))


# -- comparing source, target and reference -------------------------------------------------

VOLATILE = {"Id", "CreatedUtc", "ChangedUtc", "ArticleId", "CustomerId", "VatRateId", "CodingId", "UnitId", "TermsOfPaymentId"}
"""Fields that differ between two simulators holding the same content (ids, clocks)."""


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return str(value) if isinstance(value, Decimal) else value


def snapshot(eacc_sim: Any) -> dict[str, dict[str, list[Any]]]:
    """The target's content by kind and key (article Number, customer e-mail, draft
    YourReference), ids and clocks left out, a draft's debtor as its e-mail: two companies
    with the same content give the same snapshot. A key held twice has two entries."""
    emails = {cid: c.get("EmailAddress") for cid, c in eacc_sim.customers.items()}
    out: dict[str, dict[str, list[Any]]] = {"articles": {}, "customers": {}, "drafts": {}}
    for article in eacc_sim.articles.values():
        out["articles"].setdefault(article["Number"], []).append(_stable(article))
    for customer in eacc_sim.customers.values():
        out["customers"].setdefault(customer.get("EmailAddress") or "", []).append(_stable(customer))
    for draft in eacc_sim.invoice_drafts.values():
        item = _stable(draft) | {"debtor": emails.get(draft.get("CustomerId"))}
        out["drafts"].setdefault(draft.get("YourReference") or "", []).append(item)
    return out


def source_keys(ccv_sim: Any) -> dict[str, set[str]]:
    """What the source says the target must hold: product numbers, order numbers, e-mails."""
    orders = [o for o in ccv_sim.orders.values() if o["is_completed"]]
    return {
        "articles": {p["productnumber"] for p in ccv_sim.products.values() if p["productnumber"]} | set(SERVICE_ARTICLES),
        "drafts": {str(o["ordernumber"]) for o in orders},
        "customers": {o["customer"]["email"] for o in orders if o.get("customer", {}).get("email")},
    }


@dataclasses.dataclass
class Comparison:
    """Source, target and reference side by side."""

    records: int = 0
    duplicates: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    missing: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    unexpected: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    differing: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.missing or self.unexpected or self.differing)

    def count(self, what: str) -> int:
        return sum(len(v) for v in getattr(self, what).values())

    def describe(self) -> str:
        parts = [f"{name}: {value}" for name in ("duplicates", "missing", "unexpected", "differing") if (value := getattr(self, name))]
        return "; ".join(parts) or "source, target and reference agree"


def compare(ccv_sim: Any, eacc_sim: Any, reference: dict[str, dict[str, list[Any]]] | None) -> Comparison:
    """Every source record in the target exactly once, nothing else, and (with a
    ``reference`` snapshot) the same content as the reference run wrote."""
    result = Comparison()
    target = snapshot(eacc_sim)
    wanted = source_keys(ccv_sim)
    for kind, keys in wanted.items():
        held = target[kind]
        result.records += len(keys)
        if dup := {k: len(v) for k, v in held.items() if len(v) > 1}:
            result.duplicates[kind] = dup
        if missing := sorted(keys - set(held)):
            result.missing[kind] = missing
        if unexpected := sorted(set(held) - keys):
            result.unexpected[kind] = unexpected
        if reference is not None and (
            differing := sorted(k for k in keys & set(held) if k in reference[kind] and held[k][0] != reference[kind][k][0])
        ):
            result.differing[kind] = differing
    return result


async def reference_snapshot(products: int, rounds: int, tmp: Path) -> dict[str, dict[str, list[Any]]]:
    """The target after a fault-free run on simulators seeded alike: seed, products, orders,
    then per growth round products and orders again (in-process, no kills)."""
    ccv, eacc = simulators(products)
    path = write_harness_config(tmp, "http://salespos.test", "http://eaccounting.test")
    resolved = resolve(path)
    await seed_service_articles(resolved, eacc)
    transports = {"salespos": httpx.ASGITransport(app=ccv), "eaccounting": httpx.ASGITransport(app=eacc)}
    for round_no in range(rounds + 1):
        if round_no:
            grow(ccv.state.sim, round_no)
        for flow in FLOWS:
            store = SQLiteStore(resolved.state_path)
            await store.open()
            engine = Engine(resolved, store, transports=transports, retry_base_delay=0.01)
            try:
                result = await engine.run_flow(flow)
            finally:
                await engine.aclose()
                await store.close()
            if result.status != "ok" or result.counts["failed"]:
                raise RuntimeError(f"reference run of {flow} did not succeed: {result}")
    return snapshot(eacc.state.sim)


# -- killing ----------------------------------------------------------------------------------

PHASES = ("before", "applied", "answered", "timer")


@dataclasses.dataclass
class Plan:
    """When to kill one process: at its ``at``-th request in ``phase``, or ``delay`` seconds
    after start (``timer``)."""

    phase: str
    at: int = 0
    delay: float = 0.0


class KillSwitch:
    """ASGI middleware for the simulators: counts the armed process's requests and SIGKILLs
    it at the one its :class:`Plan` names. The token endpoint is never a kill point (a kill
    after the vendor rotated the refresh token, before the process stored it, loses the
    connection for good with a vendor that allows no reuse: see the report)."""

    def __init__(self, restart_database: Callable[[], None] | None = None) -> None:
        self._restart_database = restart_database
        self._lock = threading.Lock()
        self._proc: Run | None = None
        self._plan: Plan | None = None
        self._seen = 0
        self.fired: collections.Counter[str] = collections.Counter()

    def arm(self, proc: Run, plan: Plan) -> None:
        with self._lock:
            self._proc, self._plan, self._seen = proc, plan, 0

    def disarm(self) -> None:
        with self._lock:
            self._proc, self._plan = None, None

    def kill(self, phase: str) -> None:
        with self._lock:  # signalled under the lock: once disarmed, never signalled again
            proc, self._proc, self._plan = self._proc, None, None
            if proc is not None:
                proc.kill()
                self.fired[phase] += 1

    async def restart_database(self) -> None:
        """Restart the state's PostgreSQL (in a thread: the simulators keep answering meanwhile)."""
        assert self._restart_database is not None, "a restart planned without a database to restart"
        with self._lock:
            self._plan = None
        await anyio.to_thread.run_sync(self._restart_database)
        self.fired["restart"] += 1

    def _due(self) -> str | None:
        with self._lock:
            if self._plan is None or self._plan.phase == "timer":
                return None
            self._seen += 1
            return self._plan.phase if self._seen == self._plan.at else None

    def wrap(self, app: Any) -> Callable[..., Any]:
        switch = self

        async def killing(scope: Any, receive: Any, send: Any) -> None:
            try:
                await kill_point(scope, receive, send)
            except ClientDisconnect:  # a process killed while it sent its request: expected here
                pass

        async def kill_point(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["path"].endswith("/token"):
                await app(scope, receive, send)
                return
            phase = switch._due()
            if phase is None:
                await app(scope, receive, send)
            elif phase == "restart":  # the request applied, its answer held while the database restarts
                held_answer: list[Any] = []

                async def keep(message: Any) -> None:
                    held_answer.append(message)

                await app(scope, receive, keep)
                await switch.restart_database()
                for message in held_answer:
                    await send(message)
            elif phase == "before":
                switch.kill(phase)
                await _answer(send, 503, b"killed before the request was applied")
            elif phase == "applied":
                held: list[Any] = []

                async def hold(message: Any) -> None:
                    held.append(message)

                await app(scope, receive, hold)
                switch.kill(phase)
                for message in held:
                    await send(message)
            else:
                await app(scope, receive, send)
                await anyio.sleep(random.uniform(0, 0.005))
                switch.kill(phase)

        killing.state = app.state  # type: ignore[attr-defined]
        return killing


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


CLI = [sys.executable, "-m", "apicenterd.cli"]

FORK_SERVER = r"""
import json, os, sys
import apicenterd.cli, apicenterd.engine, apicenterd.registry, apicenterd.state
import apicenterd_ccv_salespos.connector, apicenterd_eaccounting.connector
apicenterd.cli.build_parser(), apicenterd.registry.load_registry()  # what a first call builds lazily
requests, replies = sys.stdin, sys.stdout
for line in requests:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the flow run: a fresh process with the imports done
        null = os.open(os.devnull, os.O_RDWR)
        err = os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(null, 0), os.dup2(null, 1), os.dup2(err, 2)
        code = 70
        try:
            code = apicenterd.cli.main(job["argv"])
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os._exit(code)
    replies.write(f"started {pid}\n"); replies.flush()
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: the pid stays taken
    code = -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status
    replies.write(f"exited {code}\n"); replies.flush()
    requests.readline()  # "reap": the harness will signal this pid no more
    os.waitpid(pid, 0)
"""
"""Forks each flow run from a process that imported apicenterd already, and reports its exit.
A run's process is only reaped when the harness says so, so its pid cannot be reused while
the harness may still signal it."""


class Run:
    """One ``apicenterd flows run`` process: its pid, SIGKILL, its exit code and stderr."""

    def __init__(
        self,
        pid: int,
        wait: Callable[[float], int],
        release: Callable[[], None],
        stderr: Callable[[], str],
        kill: Callable[[], None] | None = None,
    ):
        self.pid = pid
        self.returncode: int | None = None
        self._wait, self._release, self._stderr = wait, release, stderr
        self._kill = kill or (lambda: os.kill(pid, signal.SIGKILL))

    def kill(self) -> None:
        """SIGKILL it (harmless once it has exited: it is not reaped before :meth:`release`)."""
        if self.returncode is None:
            self._kill()

    def wait(self, timeout: float) -> int:
        """Its exit code (negative: killed by that signal)."""
        self.returncode = self._wait(timeout)
        return self.returncode

    def release(self) -> None:
        """Let it be reaped; signal it no more."""
        self._release()

    def stderr(self) -> str:
        return self._stderr()


class Spawner:
    """Starts ``apicenterd flows run`` processes. ``fork`` (the default): forked from a
    process that imported apicenterd already (``cli.main`` runs in the fork), so start-up
    costs no import time. Otherwise each is a plain ``python -m apicenterd.cli``."""

    def __init__(self, directory: Path, *, fork: bool = True):
        self._directory = directory
        self._server: subprocess.Popen | None = None
        if fork:
            self._server = subprocess.Popen(
                [sys.executable, "-c", FORK_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
            )

    def flows_run(self, config: Path, flow: str) -> Run:
        """A process running ``apicenterd flows run FLOW --config CONFIG --json``."""
        argv = ["flows", "run", flow, "--config", str(config), "--json"]
        err = self._directory / "stderr.txt"
        read = lambda: err.read_text(errors="replace") if err.exists() else ""  # noqa: E731
        if self._server is None:
            with err.open("wb") as sink:
                proc = subprocess.Popen([*CLI, *argv], stdout=subprocess.DEVNULL, stderr=sink)
            # Popen.send_signal does nothing once Popen has reaped the process
            return Run(proc.pid, lambda timeout: proc.wait(timeout), lambda: None, read, lambda: proc.send_signal(signal.SIGKILL))
        server = self._server
        assert server.stdin is not None and server.stdout is not None
        server.stdin.write(json.dumps({"argv": argv, "stderr": str(err)}) + "\n")
        word, pid = server.stdout.readline().split()
        assert word == "started", word

        def wait(timeout: float) -> int:  # the server's next line; a run that hangs fails the harness
            word, code = server.stdout.readline().split()
            assert word == "exited", word
            return int(code)

        def release() -> None:
            server.stdin.write("reap\n")

        return Run(int(pid), wait, release, read)

    def close(self) -> None:
        """Stop the fork server."""
        if self._server is not None:
            self._server.communicate(timeout=30)
            self._server = None


@dataclasses.dataclass
class Report:
    """What a kill test did and found."""

    kills: int
    kills_by_phase: dict[str, int]
    runs_completed: int
    rounds: int
    records: int
    duplicates: int
    missing: int
    unexpected: int
    differing: int
    failed_runs: list[str]
    final_rerun_writes: int
    seconds: float
    comparison: Comparison
    database_restarts: int = 0

    @property
    def ok(self) -> bool:
        return self.comparison.ok and not self.failed_runs and self.final_rerun_writes == 0

    def lines(self) -> list[str]:
        phases = ", ".join(f"{k} {v}" for k, v in sorted(self.kills_by_phase.items()))
        return [
            f"kills done:        {self.kills} ({phases})",
            f"runs completed:    {self.runs_completed} (growth rounds: {self.rounds})",
            f"records compared:  {self.records}",
            f"duplicates found:  {self.duplicates}",
            f"missing found:     {self.missing}",
            f"unexpected found:  {self.unexpected}",
            f"content differing: {self.differing}",
            f"failed runs:       {len(self.failed_runs)}",
            f"database restarts: {self.database_restarts} (mid-run, each run reconnected and finished)",
            f"final rerun writes: {self.final_rerun_writes}",
            f"wall time:         {self.seconds:.1f} s",
        ]


@contextlib.contextmanager
def _served(ccv: Any, eacc: Any, switch: KillSwitch) -> Iterator[tuple[str, str]]:
    with serve_app(switch.wrap(ccv)) as ccv_url, serve_app(switch.wrap(eacc)) as eacc_url:
        yield ccv_url, eacc_url


def run_kill_test(
    *,
    kills: int = 200,
    products: int = 100,
    seed: int = 20261201,
    max_at: int = 40,
    fork: bool = True,
    log: Callable[[str], None] | None = None,
    state_url: str | None = None,
    restart_database: Callable[[], None] | None = None,
    restarts: int = 0,
) -> Report:
    """Kill the flows ``kills`` times (see the module docstring), finish, compare; the report.

    ``state_url``: the state in that PostgreSQL database instead of a SQLite file. ``restarts``: that many
    times, spread over the kills, a run is not killed but ``restart_database`` (stops and starts the state's
    PostgreSQL server) is called at one of its requests, its answer held meanwhile: that run must reconnect
    and finish (exit 0)."""
    started = time.monotonic()
    rng = random.Random(seed)
    ccv, eacc = simulators(products)
    if restarts and restart_database is None:
        raise ValueError("restarts without restart_database: nothing to restart")
    switch = KillSwitch(restart_database)
    restart_every = max(1, kills // restarts) if restarts else 0
    restart_tries = 0  # a run that ends before its restart's request leaves the restart to the next run
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="apicenterd-kill-") as tmp, _served(ccv, eacc, switch) as (ccv_url, eacc_url):
        path = write_harness_config(Path(tmp) / "run", ccv_url, eacc_url, state_url=state_url)
        spawner = Spawner(Path(tmp), fork=fork)
        anyio.run(seed_service_articles, resolve(path), eacc_url)  # also stores the token set first
        done = completed = rounds = 0
        flow_index = 0
        while done < kills or (switch.fired["restart"] < restarts and restart_tries < 10 * restarts):
            flow = FLOWS[flow_index]
            phase = rng.choice(PHASES)
            plan = Plan(phase, at=rng.randint(1, max_at), delay=rng.uniform(0.0, 0.3 if fork else 0.9))
            restarted = switch.fired["restart"]
            if restarted < restarts and (done >= restarted * restart_every + restart_every // 2 or done >= kills):
                restart_tries += 1
                phase, plan = "restart", Plan("restart", at=rng.randint(1, 3))
            elif done >= kills:
                break
            proc = spawner.flows_run(path, flow)
            switch.arm(proc, plan)
            timer = threading.Timer(plan.delay, switch.kill, args=("timer",)) if phase == "timer" else None
            if timer is not None:
                timer.start()
            try:
                code = proc.wait(timeout=120)
            finally:
                if timer is not None:
                    timer.cancel()
                switch.disarm()
                proc.release()
            if code == -signal.SIGKILL:
                done += 1
                continue
            if code != 0:
                failed.append(f"{flow}: exit {code}: {proc.stderr()[-600:]}")
            completed += 1
            flow_index += 1
            if flow_index == len(FLOWS):  # both flows are through: the shop moves on
                flow_index = 0
                rounds += 1
                grow(ccv.state.sim, rounds)
            if log is not None and completed % 4 == 0:
                log(f"  {done} kills, {completed} runs completed, round {rounds}")
        spawner.close()
        for flow in FLOWS:  # to completion, no more kills
            final = subprocess.run([*CLI, "flows", "run", flow, "--config", str(path)], capture_output=True, timeout=300)
            if final.returncode != 0:
                failed.append(f"final {flow}: exit {final.returncode}: {final.stderr.decode(errors='replace')[-600:]}")
        writes_before = _writes(eacc.state.sim)
        for flow in FLOWS:  # and once more: nothing left to write
            subprocess.run([*CLI, "flows", "run", flow, "--config", str(path)], capture_output=True, timeout=300)
        rerun_writes = _writes(eacc.state.sim) - writes_before
        reference = anyio.run(reference_snapshot, products, rounds, Path(tmp) / "reference")
        comparison = compare(ccv.state.sim, eacc.state.sim, reference)
    return Report(
        kills=done,
        kills_by_phase={phase: n for phase, n in switch.fired.items() if phase != "restart"},
        database_restarts=switch.fired["restart"],
        runs_completed=completed,
        rounds=rounds,
        records=comparison.records,
        duplicates=sum(n - 1 for d in comparison.duplicates.values() for n in d.values()),
        missing=comparison.count("missing"),
        unexpected=comparison.count("unexpected"),
        differing=comparison.count("differing"),
        failed_runs=failed,
        final_rerun_writes=rerun_writes,
        seconds=time.monotonic() - started,
        comparison=comparison,
    )


def _writes(eacc_sim: Any) -> int:
    return sum(1 for method, path in eacc_sim.requests if method != "GET" and "/connect/" not in path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200, help="SIGKILLs to deliver (default 200)")
    parser.add_argument("--products", type=int, default=100, help="products in the seeded shop (a fifth as many orders)")
    parser.add_argument("--seed", type=int, default=20261201, help="seed of the kill moments")
    parser.add_argument("--max-at", type=int, default=40, help="kill at most at this request of a process")
    parser.add_argument("--no-fork", action="store_true", help="start each run as a plain python -m apicenterd.cli (imports and all)")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="the state in PostgreSQL: a private server (initdb into a temporary folder; PostgreSQL's binaries needed)",
    )
    parser.add_argument(
        "--pg-restarts", type=int, default=0, help="with --postgres: restart that server this many times in the middle of runs"
    )
    args = parser.parse_args(argv)
    if args.pg_restarts and not args.postgres:
        parser.error("--pg-restarts needs --postgres")
    from apicenterd.observe import logs

    logs.configure("warning", stream="stderr")  # the reference run's log lines are not the report
    print(f"kill test: {args.kills} kills, {args.products} products, seed {args.seed}", flush=True)
    server = None
    if args.postgres:
        from pg_support import PrivateServer

        server = PrivateServer()
        print(f"state: PostgreSQL at {server.start()} (private; {args.pg_restarts} restarts)", flush=True)
    try:
        report = run_kill_test(
            kills=args.kills,
            products=args.products,
            seed=args.seed,
            max_at=args.max_at,
            fork=not args.no_fork,
            log=lambda s: print(s, flush=True),
            state_url=server.url if server else None,
            restart_database=server.restart if server else None,
            restarts=args.pg_restarts,
        )
    finally:
        if server is not None:
            server.close()
    for line in report.lines():
        print(line)
    if not report.comparison.ok:
        print(report.comparison.describe())
    for failure in report.failed_runs:
        print("failed run:", failure)
    print("OK" if report.ok else "FAILED")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Under injected faults (5xx, timeouts, dropped connections after the write, 429 bursts,
malformed JSON, slow answers) a full sync completes, and every record is in the target once.

Both simulators are served on loopback behind a :class:`~apicenterd.testing.FaultInjector`
(faults on the wire, as a client meets them). The flow is run again until a run reports
ok (at most ``MAX_RUNS``); then the target is compared with the source (each product,
order and debtor exactly once) and with a fault-free reference run on simulators seeded
alike (the same content).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import kill_test as harness
import pg_support

from apicenterd.engine import Engine
from apicenterd.state import store_for
from apicenterd.testing import Faults, serve_app, with_faults

pytestmark = pytest.mark.anyio

MAX_RUNS = 30
CLIENT_TIMEOUT = 0.25
"""Seconds: the connections' ``timeout`` setting."""
TIMEOUT_DELAY = 0.4
"""Seconds a ``timeout`` fault holds its answer: past the client's timeout."""
KNOBS = dict(timeout_delay=TIMEOUT_DELAY, slow_delay=0.02, burst_length=2, retry_after="1")
"""A 429 burst is two 429s with ``Retry-After: 1``; a slow answer comes 20 ms late."""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The target after the same sync without faults, for a shop of n products (cached)."""
    cache: dict[int, dict] = {}

    async def snapshot(products: int) -> dict:
        if products not in cache:
            cache[products] = await harness.reference_snapshot(products, 0, tmp_path_factory.mktemp("reference"))
        return cache[products]

    return snapshot


async def run_until_ok(resolved, flow: str) -> list:
    """Run ``flow`` (a fresh engine each time, like a restart) until a run is ok with no failed record."""
    results = []
    for _ in range(MAX_RUNS):
        store = store_for(resolved.config.state.url, resolved.state_path)
        await store.open()
        engine = Engine(resolved, store, retry_base_delay=0.01)
        try:
            result = await engine.run_flow(flow)
        finally:
            await engine.aclose()
            await store.close()
        results.append(result)
        if result.status == "ok" and result.counts["failed"] == 0:
            return results
    raise AssertionError(f"{flow}: no ok run in {MAX_RUNS}: " + "; ".join(f"{r.status} {r.error} {r.counts}" for r in results))


async def open_dead_letters(resolved) -> list:
    store = store_for(resolved.config.state.url, resolved.state_path)
    await store.open()
    try:
        return list(await store.dead_letters())
    finally:
        await store.close()


FAULT_KINDS = ("error", "timeout", "drop", "burst", "malformed", "slow")


def _reseeded(faults: Faults, offset: int) -> Faults:
    return dataclasses.replace(faults, seed=faults.seed + offset)


def wrapped(app, layers: tuple[Faults, ...]) -> list:
    """``app`` behind one injector per layer (the first outermost); the injectors, outermost first."""
    injectors = []
    for faults in reversed(layers):
        app = with_faults(app, faults)
        app.enabled = False  # the starting point is seeded without faults
        injectors.insert(0, app)
    return injectors


@contextlib.contextmanager
def faulty_simulators(products: int, layers: tuple[Faults, ...], tmp_path: Path, state_url: str | None = None):
    """Both simulators behind their fault injectors (off until enabled); yields (ccv, eacc, resolved),
    each a list of injectors, outermost first. ``state_url``: PostgreSQL state instead of SQLite."""
    ccv_app, eacc_app = harness.simulators(products)
    ccv = wrapped(ccv_app, layers)
    eacc = wrapped(eacc_app, tuple(_reseeded(f, 100) for f in layers))
    with serve_app(ccv[0]) as ccv_url, serve_app(eacc[0]) as eacc_url:
        path = harness.write_harness_config(tmp_path, ccv_url, eacc_url, timeout=CLIENT_TIMEOUT, state_url=state_url)
        yield ccv, eacc, harness.resolve(path)


TWENTY = dict(error=0.05, timeout=0.04, drop=0.05, burst=0.015, malformed=0.025, slow=0.025)
"""20 % of requests, every kind (a 429 burst costs seconds of Retry-After, a timeout a client
timeout: fewer of those)."""
LOSES_WRITES = ("timeout", "drop")
CASES: dict[str, tuple[int, tuple[Faults, ...]]] = {
    "all kinds, 20 %": (40, (Faults(**TWENTY, seed=11, **KNOBS),)),
    "all kinds, 20 %, only reads lose answers": (
        40,
        (
            Faults(**{k: v for k, v in TWENTY.items() if k not in LOSES_WRITES}, seed=12, **KNOBS),
            Faults(**{k: TWENTY[k] for k in LOSES_WRITES}, methods=("GET",), seed=13, **KNOBS),
        ),
    ),
    "timeouts, 20 %": (20, (Faults(timeout=0.2, seed=14, **KNOBS),)),
    "dropped connections, 20 %": (20, (Faults(drop=0.2, seed=15, **KNOBS),)),
}
"""name: (products in the shop, fault layers outermost first)."""
WRITE_LOST = {"all kinds, 20 %", "timeouts, 20 %", "dropped connections, 20 %"}
"""The cases where an applied write can lose its answer (the engine looks before it creates again)."""


POSTGRES_CASES = ("all kinds, 20 %",)
"""The cases also run with the state in PostgreSQL (one: every fault kind, the store's behaviour is the same)."""


@pytest.mark.parametrize(
    ("case", "backend"),
    [(case, "sqlite") for case in CASES] + [(case, "postgresql") for case in POSTGRES_CASES],
)
async def test_full_sync_under_faults_leaves_every_record_once(case, backend, tmp_path, reference):
    products, layers = CASES[case]
    with contextlib.ExitStack() as stack:
        state_url = stack.enter_context(pg_support.state_url()) if backend == "postgresql" else None
        await _full_sync_under_faults(case, products, layers, tmp_path, reference, state_url)


async def _full_sync_under_faults(case, products, layers, tmp_path, reference, state_url) -> None:
    with faulty_simulators(products, layers, tmp_path, state_url) as (ccv, eacc, resolved):
        await harness.seed_service_articles(resolved, eacc[-1].app)  # in-process, no faults: the starting point
        for injector in ccv + eacc:
            injector.enabled = True
        runs = {flow: await run_until_ok(resolved, flow) for flow in harness.FLOWS}
        for injector in ccv + eacc:
            injector.enabled = False
        injected = [event for injector in ccv + eacc for event in injector.injected]
        letters = await open_dead_letters(resolved)

        # the faults asked for did happen (a case that loses writes' answers lost some)
        asked = {kind for faults in layers for kind in FAULT_KINDS if getattr(faults, kind)}
        assert asked <= {kind for kind, _, _ in injected}, (collections.Counter(k for k, _, _ in injected), asked)
        if case in WRITE_LOST:
            assert any(kind in LOSES_WRITES and method == "POST" for kind, method, _ in injected), "no create lost its answer"
        # no run ended in an exception nobody classified
        crashed = [r.error for results in runs.values() for r in results if (r.error or "").startswith("internal error")]
        assert crashed == []

        comparison = harness.compare(ccv[0].state.sim, eacc[0].state.sim, await reference(products))
        assert comparison.ok, comparison.describe()
        assert letters == [], [(letter.flow, letter.source_id, letter.error) for letter in letters]

"""The expected completion of a deferred Exact stock flow (Exact stock positions → CCV SalesPOS):
the stock source counts its long read once (``inventory/ItemWarehouses/$count``), the run stops at
its share of a tiny day budget, and ``apicenterd flows list`` shows the backlog's expected completion.

The clocks are one hand-moved clock; the Exact page size is cut to 5 (and the count threshold with
it) so a long read needs few records."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import anyio
import httpx
import pytest
from apicenterd_exact_online import ExactOnlineConnector
from apicenterd_exact_online import connector as exact
from apicenterd_exact_online import simulator as exact_sim

from apicenterd.cli import main
from apicenterd.config.resolve import read_config, resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

ccv = pytest.importorskip("apicenterd_ccv_salespos")
CCVSalesPOSConnector = ccv.CCVSalesPOSConnector

DAY = 86400.0
START = 1_800_000_000.0 - (1_800_000_000.0 % DAY) + 8 * 3600
DAILY = 8
ROWS = 30


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def _config(tmp_path) -> str:
    lines = [
        "[daemon]",
        'metrics_address = ""',
        'log_level = "warning"',
        "[state]",
        f"path = {json.dumps(str(tmp_path / 'state.db'))}",
        "[connections.exact]",
        'connector = "exact_online"',
        "daily_reserve = 2",
        *(f"{k} = {json.dumps(v)}" for k, v in ExactOnlineConnector.demo_settings("http://exact.test").items()),
        "[connections.shop]",
        'connector = "ccv_salespos"',
        *(f"{k} = {json.dumps(v)}" for k, v in CCVSalesPOSConnector.demo_settings("http://shop.test").items()),
        "[flows.stock]",
        'source = "exact"',
        'target = "shop"',
        'entity = "stock"',
        'interval = "1h"',
    ]
    path = tmp_path / "apicenterd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_a_deferred_stock_flow_shows_its_expected_completion_in_flows_list(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(exact_sim, "PAGE", 5)
    monkeypatch.setattr(exact, "COUNT_PAGE", 5)
    clock = Clock()
    shop_app = CCVSalesPOSConnector.simulator(seed=4, records=0)
    exact_app = ExactOnlineConnector.simulator(seed=4, records=0, daily=DAILY, clock=clock)
    sim = exact_app.state.sim
    for n in range(ROWS):
        shop_app.state.sim.add_product(name=f"P{n}", price=1.0, productnumber=f"ST-{n}", stockenabled=True, stock=0.0)
        sim._store("logistics/Items", {"Code": f"ST-{n}", "Description": f"Item {n}", "IsSalesItem": True})
        sim.set_stock(f"ST-{n}", n + 1, 0)
    path = _config(tmp_path)
    resolved = resolve(read_config(path), load_registry(), path)

    async def run():
        store = SQLiteStore(resolved.state_path)
        await store.open()
        transports = {"exact": httpx.ASGITransport(exact_app), "shop": httpx.ASGITransport(shop_app)}
        engine = Engine(resolved, store, transports=transports, retry_base_delay=0.01, clock=clock, wall_clock=clock)
        try:
            return await engine.run_flow("stock")
        finally:
            await engine.aclose()
            await store.close()

    first = anyio.run(run)
    assert first.status == "deferred", (first.status, first.error, first.counts)
    counts = [t for _m, t in sim.requests if t.endswith("ItemWarehouses/$count")]
    assert len(counts) == 1  # counted once, with the read's filter
    handled = sum(first.counts.get(k, 0) for k in ("created", "updated", "unchanged", "failed", "skipped"))
    assert handled < ROWS
    assert first.counts["backlog"] == ROWS - handled  # the count, less what the run handled
    assert first.counts["complete_at"] > first.counts["resume_at"] > START
    assert sim.refusals == 0

    capsys.readouterr()
    assert main(["flows", "list", "--config", path, "--json"]) == 0
    row = {r["name"]: r for r in json.loads(capsys.readouterr().out)}["stock"]
    budget = row["budget"]
    assert budget["deferred"] is True and budget["calls_left"] == first.counts["budget_left"]
    done = datetime.fromtimestamp(first.counts["complete_at"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert budget["expected_completion"] == done
    assert main(["flows", "list", "--config", path]) == 0
    assert f"done ~{done}" in capsys.readouterr().out

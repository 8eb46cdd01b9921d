"""End to end through the daemon's engine: Exact Online's stock positions (simulator) → CCV SalesPOS
product stock (simulator): available − reserved written once, a second run writes nothing, and
CCV's manage-stock flag (``stockenabled``) honoured (left alone, or turned on with ``stock_enable``)."""

from __future__ import annotations

import httpx
import pytest
from apicenterd_exact_online import ExactOnlineConnector

from apicenterd.config import Config
from apicenterd.config.resolve import resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

ccv = pytest.importorskip("apicenterd_ccv_salespos")
CCVSalesPOSConnector = ccv.CCVSalesPOSConnector

pytestmark = pytest.mark.anyio


async def _run(resolved, transports):
    store = SQLiteStore(resolved.state_path)
    await store.open()
    engine = Engine(resolved, store, transports=transports, retry_base_delay=0.01)
    try:
        return await engine.run_flow("stock")
    finally:
        await engine.aclose()
        await store.close()


def _setup(tmp_path, *, stock_enable: bool = False, stock_warehouse: str | None = None):
    shop_app = CCVSalesPOSConnector.simulator(seed=4, records=0)
    shop = shop_app.state.sim
    managed = [
        shop.add_product(name=f"Shop product {n}", price=9.95, productnumber=f"EXO-{n}", stockenabled=True, stock=1.0) for n in range(1, 4)
    ]
    unmanaged = shop.add_product(name="Not counted", price=1.0, productnumber="EXO-9", stockenabled=False)
    exact_app = ExactOnlineConnector.simulator(seed=4, records=0)
    sim = exact_app.state.sim
    for code in ("EXO-1", "EXO-2", "EXO-3", "EXO-9", "EXO-ONLY-IN-EXACT"):
        sim._store("logistics/Items", {"Code": code, "Description": f"Exact {code}", "IsSalesItem": True})
    for n, code in enumerate(("EXO-1", "EXO-2", "EXO-3"), 1):
        sim.set_stock(code, 10 * n, n)  # available: 9, 18, 27
    sim.set_stock("EXO-9", 5, 0)
    sim.set_stock("EXO-ONLY-IN-EXACT", 4, 0)
    shop_settings = {**CCVSalesPOSConnector.demo_settings("http://shop.test"), "stock_enable": stock_enable}
    raw = {
        "daemon": {"log_level": "warning", "metrics_address": ""},
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {
            "exact": {
                "connector": "exact_online",
                **ExactOnlineConnector.demo_settings("http://exact.test"),
                **({"stock_warehouse": stock_warehouse} if stock_warehouse else {}),
            },
            "shop": {"connector": "ccv_salespos", **shop_settings},
        },
        "flows": {"stock": {"source": "exact", "target": "shop", "entity": "stock", "interval": "1h"}},
    }
    resolved = resolve(Config(**raw), load_registry(), tmp_path / "apicenterd.toml")
    transports = {"exact": httpx.ASGITransport(exact_app), "shop": httpx.ASGITransport(shop_app)}
    return resolved, transports, shop, sim, managed, unmanaged


def _writes(shop) -> list:
    return [r for r in shop.requests if r[0] in ("POST", "PATCH", "PUT", "DELETE")]


async def test_exact_stock_reaches_the_shop_products_once_available_minus_reserved(tmp_path):
    resolved, transports, shop, sim, managed, unmanaged = _setup(tmp_path)
    first = await _run(resolved, transports)
    assert first.status == "ok", first.error
    assert [shop.products[p["id"]]["stock"] for p in managed] == [9.0, 18.0, 27.0]  # on hand − reserved
    assert shop.products[unmanaged["id"]]["stockenabled"] is False  # CCV does not manage its stock: left alone
    assert shop.products[unmanaged["id"]]["stock"] is None
    assert first.counts["failed"] == 1  # EXO-ONLY-IN-EXACT: no such product in the shop (dead-lettered)

    shop.requests.clear()
    second = await _run(resolved, transports)
    assert second.status == "ok" and second.counts["created"] == 0 and second.counts["updated"] == 0
    assert _writes(shop) == []  # a second run writes nothing

    sim.set_stock("EXO-2", 30, 5)  # a change in Exact: only that product's stock is written
    shop.requests.clear()
    third = await _run(resolved, transports)
    assert third.status == "ok" and third.counts["updated"] == 1
    assert shop.products[managed[1]["id"]]["stock"] == 25.0
    assert len(_writes(shop)) == 1


async def test_stock_enable_turns_the_manage_stock_flag_on(tmp_path):
    resolved, transports, shop, sim, managed, unmanaged = _setup(tmp_path, stock_enable=True)
    first = await _run(resolved, transports)
    assert first.status == "ok", first.error
    product = shop.products[unmanaged["id"]]
    assert product["stockenabled"] is True and product["stock"] == 5.0
    shop.requests.clear()
    second = await _run(resolved, transports)
    assert second.status == "ok" and second.counts["updated"] == 0 and _writes(shop) == []


async def test_an_item_in_two_warehouses_gets_its_summed_stock_once(tmp_path):
    """``stock_warehouse`` unset: the shop gets the item's stock over every warehouse, written once,
    and a delta that changes one warehouse still writes the sum (the other warehouse looked up)."""
    resolved, transports, shop, sim, managed, _ = _setup(tmp_path)
    sim.set_stock("EXO-1", 5, 2, warehouse="2")  # EXO-1: warehouse 1 has 10 − 1, warehouse 2 has 5 − 2
    first = await _run(resolved, transports)
    assert first.status == "ok", first.error
    assert shop.products[managed[0]["id"]]["stock"] == 12.0  # (10 + 5) − (1 + 2)
    assert len([r for r in _writes(shop) if f"/{managed[0]['id']}" in r[1]]) == 1

    sim.set_stock("EXO-1", 7, 0, warehouse="2")  # only warehouse 2's row changes
    shop.requests.clear()
    second = await _run(resolved, transports)
    assert second.status == "ok", second.error
    assert shop.products[managed[0]["id"]]["stock"] == 16.0  # (10 + 7) − 1: warehouse 1 looked up, not dropped
    assert second.counts["updated"] == 1 and len(_writes(shop)) == 1


async def test_a_configured_warehouse_keeps_only_its_own_rows(tmp_path):
    resolved, transports, shop, sim, managed, _ = _setup(tmp_path, stock_warehouse="2")
    sim.set_stock("EXO-1", 5, 2, warehouse="2")
    first = await _run(resolved, transports)
    assert first.status == "ok", first.error
    assert shop.products[managed[0]["id"]]["stock"] == 3.0  # warehouse 2 alone
    assert shop.products[managed[1]["id"]]["stock"] == 1.0  # EXO-2 has no stock in warehouse 2: left as it was


def test_the_exact_ccv_example_config_passes_check(tmp_path, monkeypatch, capsys):
    """etc/exact-ccv.example.toml is valid with its credentials given."""
    from pathlib import Path

    from apicenterd.cli import main

    for name in ("exact_client_secret", "ccv_private_key"):
        (tmp_path / name).write_text("secret\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("EXACT_CLIENT_ID", "exact-client")
    monkeypatch.setenv("CCV_PUBLIC_KEY", "ccv-public")
    example = Path(__file__).resolve().parents[3] / "etc" / "exact-ccv.example.toml"
    assert main(["check", "--config", str(example)]) == 0, capsys.readouterr().err
    assert "2 flows" in capsys.readouterr().out

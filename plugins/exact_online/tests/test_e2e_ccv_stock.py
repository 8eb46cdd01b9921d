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


def _setup(tmp_path, *, stock_enable: bool = False):
    shop_app = CCVSalesPOSConnector.simulator(seed=4, records=0)
    shop = shop_app.state.sim
    managed = [shop.add_product(name=f"Shop product {n}", price=9.95, productnumber=f"EXO-{n}", stockenabled=True, stock=1.0) for n in range(1, 4)]
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
            "exact": {"connector": "exact_online", **ExactOnlineConnector.demo_settings("http://exact.test")},
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

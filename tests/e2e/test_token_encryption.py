"""[state] token_key end to end: the daemon's rotated tokens are stored encrypted; another key
pauses the connection with a message that says what to do."""

from __future__ import annotations

import json
import sqlite3

import pytest

from apicenterd.config import load
from apicenterd.engine import Engine
from apicenterd.observe.alerts import Alerter
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio


async def run_products(resolved, alerter=None):
    store = SQLiteStore(resolved.state_path)
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0.01, alerter=alerter)
    try:
        return await engine.run_flow("products"), engine
    finally:
        await engine.aclose()
        await store.close()


async def test_rotated_tokens_are_encrypted_and_another_key_pauses_the_connection(simulators, config, tmp_path, monkeypatch):
    ccv_app, _, ccv_url, eacc_url = simulators(products=3)
    sim = ccv_app.state.sim

    def change_a_product():  # so that the next run calls the target (and needs its tokens)
        pid, product = next((pid, p) for pid, p in sim.products.items() if p["is_active"])
        sim.update_product(pid, price=float(product["price"]) + 1)

    path, _ = config(ccv_url, eacc_url)
    path.write_text(path.read_text().replace('path = "state.db"', 'path = "state.db"\ntoken_key = { env = "TEST_TOKEN_KEY" }'))
    monkeypatch.setenv("TEST_TOKEN_KEY", "first-key-0123456789abcdef")
    resolved = load(path, load_registry())

    result, _ = await run_products(resolved)
    assert result.status == "ok" and result.counts["created"] == 3
    db = sqlite3.connect(resolved.state_path)
    try:
        (row,) = db.execute("SELECT data FROM tokens WHERE connection='eaccounting'").fetchone()
    finally:
        db.close()
    envelope = json.loads(row)
    assert envelope["encrypted"] == "fernet" and "access_token" not in row and "refresh_token" not in row

    # the same key: the stored (rotated) tokens are read back and used
    change_a_product()
    result, _ = await run_products(load(path, load_registry()))
    assert result.status == "ok" and result.counts["updated"] == 1

    change_a_product()
    monkeypatch.setenv("TEST_TOKEN_KEY", "other-key-0123456789abcdef")
    alerter = Alerter()
    result, engine = await run_products(load(path, load_registry()), alerter)
    assert result.status == "failed" and "were encrypted with another key" in result.error
    assert "eaccounting" in engine.paused
    assert any(a.kind == "connection_paused" and "token_key" in a.text for a in alerter.sent)

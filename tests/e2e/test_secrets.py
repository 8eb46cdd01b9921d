"""Known secret values never reach a log line, a metric label, the audit trail, a dead letter or an error."""

from __future__ import annotations

import io
import json
import sqlite3

import pytest
from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector
from apicenterd_eaccounting.connector import EAccountingConnector
from prometheus_client import REGISTRY, generate_latest

from apicenterd.engine import Engine
from apicenterd.observe import logs
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio

CCV_PRIVATE = "ccv-private-key-0123456789-SECRET"
EACC_SECRET = "eacc-client-secret-9876543210-SECRET"


async def test_secrets_stay_out_of_logs_metrics_audit_and_errors(simulators, config, monkeypatch):
    ccv_app, eacc_app, ccv_url, eacc_url = simulators(
        products=12, ccv_options={"private_key": CCV_PRIVATE}
    )
    monkeypatch.setenv("TEST_CCV_PRIVATE", CCV_PRIVATE)
    path, resolved = config(ccv_url, eacc_url)
    text = path.read_text()
    demo_private = CCVSalesPOSConnector.demo_settings(ccv_url)["private_key"]
    text = text.replace(f'private_key = "{demo_private}"', 'private_key = { env = "TEST_CCV_PRIVATE" }')
    path.write_text(text)
    from apicenterd.config import load
    from apicenterd.registry import load_registry

    resolved = load(path, load_registry())
    # a product the target rejects: an error message and a dead letter are written too
    pid = next(iter(ccv_app.state.sim.products))
    ccv_app.state.sim.update_product(pid, name="x" * 80)

    buffer = io.StringIO()
    logs.configure("debug", stream=buffer)
    try:
        store = SQLiteStore(resolved.state_path)
        await store.open()
        engine = Engine(resolved, store, retry_base_delay=0.01)
        try:
            products = await engine.run_flow("products")
            stock = await engine.run_flow("stock")
        finally:
            await engine.aclose()
            await store.close()
    finally:
        logs.configure("info")
    assert products.status == "ok" and products.counts["failed"] == 1 and stock.status == "ok"

    tokens = {}
    db = sqlite3.connect(resolved.state_path)
    try:
        (data,) = db.execute("SELECT data FROM tokens WHERE connection='eaccounting'").fetchone()
        tokens = json.loads(data)
        dump = "\n".join(line for line in db.iterdump() if not line.startswith('INSERT INTO "tokens"'))
    finally:
        db.close()
    secrets = [CCV_PRIVATE, EAccountingConnector.demo_settings(eacc_url)["client_secret"], tokens["access_token"], tokens["refresh_token"]]
    places = {
        "logs": buffer.getvalue(),
        "metrics": generate_latest(REGISTRY).decode(),
        "state (audit, dead letters, runs, links, cursors)": dump,
        "errors": json.dumps(engine.failures) + str(products.error) + str(stock.error),
    }
    assert buffer.getvalue().count("\n") > 20, "the run should have logged"
    for where, content in places.items():
        for secret in secrets:
            assert secret not in content, f"a secret ({secret[:6]}...) is in the {where}"

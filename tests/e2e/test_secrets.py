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


def _echo_vendor(status: int, issued: list[dict]):
    """An eAccounting-like vendor whose token endpoint issues fresh tokens and whose API answers
    every call with ``status`` and an error body that echoes the request's Authorization header."""
    import uuid

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def token(request):
        tokens = {"access_token": f"live-access-{uuid.uuid4().hex}", "refresh_token": f"live-refresh-{uuid.uuid4().hex}"}
        issued.append(tokens)
        return JSONResponse({**tokens, "expires_in": 3600, "token_type": "Bearer"})

    async def api(request):
        echoed = request.headers.get("authorization", "")
        return JSONResponse(
            {"ErrorCode": 9999, "DeveloperErrorMessage": f"cannot serve this request; headers were Authorization: {echoed}"},
            status_code=status,
        )

    return Starlette(routes=[Route("/connect/token", token, methods=["POST"]), Route("/{path:path}", api, methods=["GET", "POST", "PUT"])])


def _alert_receiver(received: list[dict]):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def hook(request):
        received.append(await request.json())
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@pytest.mark.parametrize("status", [400, 401, 500])
def test_live_tokens_echoed_by_a_vendor_stay_out_of_logs_runs_alerts_and_cli(simulators, tmp_path, capsys, status):
    """A vendor error body that echoes the request's headers carries the live bearer token; it
    must reach no log line, no stored run error or dead letter, no alert and no CLI output."""
    import contextlib

    from e2e_support import write_config

    from apicenterd import cli
    from apicenterd.testing import serve_app

    _, _, ccv_url, _ = simulators(products=3)
    issued: list[dict] = []
    received: list[dict] = []
    with contextlib.ExitStack() as stack:
        vendor_url = stack.enter_context(serve_app(_echo_vendor(status, issued)))
        hook_url = stack.enter_context(serve_app(_alert_receiver(received)))
        path = write_config(tmp_path, ccv_url, vendor_url)
        path.write_text(path.read_text() + f'\n[alerts]\nwebhook_url = "{hook_url}/hook"\n')

        code = cli.main(["flows", "run", "products", "--config", str(path)])
        run_out, run_err = capsys.readouterr()
        assert code == 1, run_out + run_err
        outputs = {"flows run": run_out + run_err}
        for argv in (["runs"], ["audit"], ["dlq", "list", "--status", "any"], ["runs", "--json"], ["dlq", "list", "--json"]):
            assert cli.main([*argv, "--config", str(path)]) == 0
            out, err = capsys.readouterr()
            outputs[" ".join(argv)] = out + err

    assert issued, "the daemon should have fetched tokens"
    assert received, "the failure should have been alerted"
    db = sqlite3.connect(tmp_path / "state.db")
    try:
        dump = "\n".join(line for line in db.iterdump() if not line.startswith('INSERT INTO "tokens"'))
        (run_error,) = db.execute("SELECT error FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        db.close()
    assert "[redacted]" in run_out + run_err + dump + json.dumps(received), "the echoed header should be visible, redacted"
    places = {
        "logs and output of `flows run`": run_out + run_err,
        "state store (runs.error, audit, dead letters)": dump + str(run_error),
        "alert payloads": json.dumps(received),
        **{f"output of `{k}`": v for k, v in outputs.items()},
    }
    live = [t for tokens in issued for t in tokens.values()]
    for where, content in places.items():
        for token in live:
            assert token not in content, f"a live token ({token[:14]}...) is in the {where}"

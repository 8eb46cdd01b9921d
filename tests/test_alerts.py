"""Alerts: on the change to failing, once on recovery, for failed records, and for paused connections."""

from __future__ import annotations

import json

import httpx
import pytest
from fakes import MemorySource, product
from test_engine import make_config

from apicenterd import AuthError
from apicenterd.engine import Engine
from apicenterd.observe.alerts import Alerter, AlertsConfig
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio


class Hook:
    """A webhook receiver on an httpx MockTransport."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        return httpx.Response(204)

    def kinds(self):
        return [b["kind"] for b in self.bodies]


async def run(resolved, tmp_path, alerter, flow="products"):
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0, retry_attempts=1, alerter=alerter)
    try:
        return await engine.run_flow(flow), engine
    finally:
        await engine.aclose()
        await store.close()
        await alerter.flush(5)


@pytest.fixture
def hook():
    return Hook()


@pytest.fixture
def alerter(hook):
    return Alerter(AlertsConfig(webhook_url="https://hooks.example.test/apicenterd"), transport=hook.transport, retry_delay=0)


async def test_failing_alerts_once_then_recovery_once(tmp_path, registry, memory, hook, alerter):
    memory.put(product("A"), "1")
    memory.flaky["A"] = 10**6
    resolved = make_config(tmp_path, registry)
    await run(resolved, tmp_path, alerter)
    await run(resolved, tmp_path, alerter)
    assert hook.kinds() == ["flow_failing"]
    assert "transient failure for A" in hook.bodies[0]["text"] and hook.bodies[0]["flow"] == "products"
    memory.flaky["A"] = 0
    await run(resolved, tmp_path, alerter)
    await run(resolved, tmp_path, alerter)
    assert hook.kinds() == ["flow_failing", "flow_recovered"]


async def test_failed_records_are_named_with_their_reason(tmp_path, registry, memory, hook, alerter):
    memory.put(product("A"), "1")
    memory.put(product("B"), "2")
    memory.fail_create.add("B")
    await run(make_config(tmp_path, registry), tmp_path, alerter)
    (body,) = hook.bodies
    assert body["kind"] == "records_failed"
    assert body["records"] == [{"source_id": "B", "key": "B", "reason": "target rejects B: name too long"}]
    assert "dlq list --flow products" in body["text"]


async def test_rejected_credentials_pause_the_connection_and_alert_once(tmp_path, registry, memory, hook, alerter):
    memory.put(product("A"), "1")
    original = MemorySource.read

    async def rejected(self, entity, since):
        raise AuthError("refresh token rejected (invalid_grant)")
        yield  # pragma: no cover

    MemorySource.read = rejected
    try:
        result, engine = await run(make_config(tmp_path, registry), tmp_path, alerter)
    finally:
        MemorySource.read = original
    assert result.status == "failed" and "src" in engine.paused
    assert hook.kinds() == ["connection_paused", "flow_failing"]
    assert "apicenterd auth src" in hook.bodies[0]["text"]
    alerter.connection_paused("src", "again")
    await alerter.flush(5)
    assert hook.kinds().count("connection_paused") == 1


async def test_alert_text_never_carries_a_secret(hook, alerter):
    from apicenterd.observe.logs import redactor

    redactor.add(["s3cr3t-value-123"])
    alerter.flow_result("f", "failed", "AuthError: token s3cr3t-value-123 rejected", [])
    await alerter.flush(5)
    assert "s3cr3t-value-123" not in json.dumps(hook.bodies)


async def test_webhook_failure_is_logged_not_raised(tmp_path):
    def boom(request):
        raise httpx.ConnectError("refused")

    alerter = Alerter(AlertsConfig(webhook_url="https://hooks.example.test/x"), transport=httpx.MockTransport(boom), retry_delay=0)
    alerter.flow_result("f", "failed", "x", [])
    assert await alerter.flush(5) == []  # delivered or given up on, not left over
    assert [a.kind for a in alerter.sent] == ["flow_failing"]




async def test_circuit_open_alerts_once_and_recovery_once(hook, alerter):
    alerter.circuit("eacc", True, "HTTP 503 GET /v2/articles")
    alerter.circuit("eacc", True, "HTTP 503 GET /v2/articles")
    alerter.circuit("eacc", False, "")
    alerter.circuit("eacc", False, "")
    await alerter.flush(5)
    assert hook.kinds() == ["circuit_open", "circuit_closed"]
    assert "HTTP 503" in hook.bodies[0]["text"] and hook.bodies[0]["connection"] == "eacc"

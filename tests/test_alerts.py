"""Alerts: on the change to failing, once on recovery, for failed records, and for paused connections."""

from __future__ import annotations

import json

import httpx
import pytest
from fakes import MemorySource, product
from structlog.testing import capture_logs
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


async def test_a_credential_error_that_auth_cannot_fix_pauses_with_the_connectors_fix(tmp_path, registry, memory, hook, alerter):
    # e.g. a service app (client credentials) missing a scope: granting it in the vendor's portal is
    # the fix, which the connector's message names; `apicenterd auth` would change nothing
    memory.put(product("A"), "1")
    original = MemorySource.read
    reason = "the token lacks the scope 'erp:create'; approve it for the service app in the vendor portal"

    async def rejected(self, entity, since):
        raise AuthError(reason, status=403, reauthorize=False)
        yield  # pragma: no cover

    MemorySource.read = rejected
    try:
        with capture_logs() as logs:
            result, engine = await run(make_config(tmp_path, registry), tmp_path, alerter)
    finally:
        MemorySource.read = original
    assert result.status == "failed" and reason in engine.paused["src"]
    (paused,) = [e for e in logs if e["event"].startswith("connection paused")]
    assert paused["reason"] == engine.paused["src"] and "apicenterd auth" not in paused["fix"]
    assert "re-authorised" not in paused["event"] and "systemctl reload" in paused["fix"]
    assert engine.pause_fixes["src"] == paused["fix"]
    assert hook.kinds() == ["connection_paused", "flow_failing"]
    text = hook.bodies[0]["text"]
    assert reason in text and "apicenterd auth" not in text and "re-authorise it" not in text


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


def _metric(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _until(predicate, timeout: float = 30.0) -> None:
    import anyio

    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)


@pytest.fixture
def trickle():
    from trickle import TrickleReceiver

    receiver = TrickleReceiver(hold=300)
    yield receiver
    receiver.close()


async def test_a_trickling_receiver_never_holds_up_the_run(tmp_path, registry, memory, trickle):
    import anyio

    memory.put(product("A"), "1")
    memory.put(product("B"), "2")
    memory.fail_create.add("B")  # a records_failed alert
    alerter = Alerter(AlertsConfig(webhook_url=trickle.url, timeout=600, retries=0))
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(make_config(tmp_path, registry), store, retry_base_delay=0, alerter=alerter)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(alerter.run)
            with anyio.fail_after(60):  # before: the run waited for the receiver's answer (minutes)
                result = await engine.run_flow("products")
            await _until(lambda: trickle.holding == 1)  # the sender is in the receiver's hands...
            (row,) = await store.runs("products", 1)
            assert row.status == "ok" and row.finished_at and row.counts["failed"] == 1  # ...and the run is done
            assert result.status == "ok" and trickle.holding == 1
            dropped = _metric("apicenterd_alerts_dropped_total", reason="shutdown")
            left = await alerter.flush(0.2)  # shutdown: a bounded wait, then give up
            assert [a.kind for a in left] == ["records_failed"]
            assert _metric("apicenterd_alerts_dropped_total", reason="shutdown") == dropped + 1
            tg.cancel_scope.cancel()
    finally:
        await engine.aclose()
        await store.close()


async def test_a_trickling_answer_is_cut_off_at_the_total_deadline(trickle):
    import anyio

    # each byte arrives long before the per-read timeout: only a deadline on the whole exchange ends it
    alerter = Alerter(AlertsConfig(webhook_url=trickle.url, timeout=1.0, retries=1), retry_delay=0)
    failed = _metric("apicenterd_alert_deliveries_total", channel="webhook", outcome="failed")
    async with anyio.create_task_group() as tg:
        await tg.start(alerter.run)
        alerter.flow_result("f", "failed", "boom", [])
        # given up: counted as failed and out of the queue (the count comes a moment before the
        # alert leaves the in-flight list, so wait for both rather than cancel in between)
        await _until(
            lambda: _metric("apicenterd_alert_deliveries_total", channel="webhook", outcome="failed") > failed and alerter.pending == 0,
            120,
        )
        tg.cancel_scope.cancel()
    assert trickle.connections == 2  # the first attempt and one retry, each cut off
    assert alerter.pending == 0


async def test_a_full_queue_drops_the_oldest_and_counts_it(hook):
    alerter = Alerter(AlertsConfig(webhook_url="https://hooks.example.test/x", queue_size=2), transport=hook.transport)
    dropped = _metric("apicenterd_alerts_dropped_total", reason="queue_full")
    for connection in ("a", "b", "c"):
        alerter.connection_paused(connection, "revoked")  # no sender running: they wait
    assert alerter.pending == 2
    assert _metric("apicenterd_alerts_dropped_total", reason="queue_full") == dropped + 1
    await alerter.flush(5)
    assert [b["connection"] for b in hook.bodies] == ["b", "c"]


async def test_a_failed_delivery_is_retried_and_a_refusal_is_not():
    answers = [503, 503, 204, 404]
    seen = []

    def handle(request):
        seen.append(request.url.path)
        return httpx.Response(answers[len(seen) - 1])

    alerter = Alerter(
        AlertsConfig(webhook_url="https://hooks.example.test/x", retries=3), transport=httpx.MockTransport(handle), retry_delay=0
    )
    sent = _metric("apicenterd_alert_deliveries_total", channel="webhook", outcome="sent")
    failed = _metric("apicenterd_alert_deliveries_total", channel="webhook", outcome="failed")
    alerter.flow_result("f", "failed", "x", [])
    await alerter.flush(5)
    assert len(seen) == 3 and _metric("apicenterd_alert_deliveries_total", channel="webhook", outcome="sent") == sent + 1
    alerter.flow_result("f", "ok", None, [])
    await alerter.flush(5)
    assert len(seen) == 4  # a 404 is not worth retrying
    assert _metric("apicenterd_alert_deliveries_total", channel="webhook", outcome="failed") == failed + 1


async def test_a_stuck_mail_server_is_cut_off_at_the_deadline():
    import socket as pysocket
    import threading

    import anyio

    from apicenterd.observe.alerts import EmailConfig

    server = pysocket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # accepts the TCP connection, never says hello
    port = server.getsockname()[1]
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    email = EmailConfig.model_validate({"smtp_host": "127.0.0.1", "smtp_port": port, "from": "a@example.test", "to": ["b@example.test"]})
    alerter = Alerter(AlertsConfig(email=email, timeout=1.0, retries=0))
    failed = _metric("apicenterd_alert_deliveries_total", channel="email", outcome="failed")
    alerter.flow_result("f", "failed", "x", [])
    with anyio.fail_after(60):
        assert await alerter.flush(30) == []
    assert _metric("apicenterd_alert_deliveries_total", channel="email", outcome="failed") == failed + 1
    server.close()


def test_alerts_remembered_are_bounded():
    """``Alerter.sent`` keeps the latest alerts only: a daemon alerting for months does not grow."""
    from apicenterd.observe.alerts import SENT_KEPT, Alerter

    alerter = Alerter()
    for n in range(SENT_KEPT + 50):
        alerter.connection_paused(f"c{n}", "401")
    assert len(alerter.sent) == SENT_KEPT
    assert alerter.sent[-1].connection == f"c{SENT_KEPT + 49}"


async def test_engine_keeps_failures_per_run_only(tmp_path, registry, memory):
    """Failed records are kept per run (for its alert), not for the daemon's life."""
    from fakes import product

    from apicenterd.config import Config, resolve
    from apicenterd.engine import Engine
    from apicenterd.flowrun import FAILURES_KEPT
    from apicenterd.state import SQLiteStore

    for i in range(FAILURES_KEPT + 5):
        memory.put(product(f"F{i:04}"), f"{i:04}")
        memory.fail_create.add(f"F{i:04}")
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "memsource"}, "dst": {"connector": "memtarget"}},
        "flows": {"products": {"source": "src", "target": "dst", "entity": "products", "interval": "1m"}},
    }
    resolved = resolve(Config(**raw), registry, tmp_path / "x.toml")
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0)
    try:
        first = await engine.run_flow("products")
        second = await engine.run_flow("products")  # all waiting out their backoff: no new failures
    finally:
        await engine.aclose()
        await store.close()
    assert first.counts["failed"] == FAILURES_KEPT + 5 and len(first.failures) == FAILURES_KEPT
    assert second.counts["waiting"] == 1 and engine.failures == []  # the one at the cursor, read again
    assert engine.alerter.sent[-1].subject == f"apicenterd: {FAILURES_KEPT + 5} record(s) failed in flow products"

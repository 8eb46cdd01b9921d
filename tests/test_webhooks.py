"""Webhooks: verified by the connector's hook, answered at once, counted, and turned into one
(debounced) run of the flows that read what they announce; never a write by themselves."""

from __future__ import annotations

import json

import anyio
import anyio.lowlevel
import pytest
from admin_support import admin_client, make_resolved, registry_with_hooks, sign
from fakes import product
from prometheus_client import REGISTRY

from apicenterd import Connector, Entity, WebhookRejected, WebhookRequest
from apicenterd.admin import Debouncer

pytestmark = pytest.mark.anyio


@pytest.fixture
def hooks():
    return registry_with_hooks()


def counted(connection: str, result: str) -> float:
    return REGISTRY.get_sample_value("apicenterd_webhooks_total", {"connection": connection, "result": result}) or 0.0


class Gate:
    """A debounce delay the test ends: sleeps return once :meth:`open` was called."""

    def __init__(self):
        self.event = anyio.Event()

    async def sleep(self, _seconds: float) -> None:
        await self.event.wait()

    def open(self) -> None:
        self.event.set()


async def test_a_burst_of_100_webhooks_makes_one_run_of_the_flows_that_read_the_entity(tmp_path, hooks, memory):
    memory.put(product("A"), "1")
    gate = Gate()
    resolved = make_resolved(tmp_path, hooks)
    async with admin_client(resolved, tmp_path, sleep=gate.sleep) as (client, backend, _engine):
        before = counted("src", "accepted")
        for i in range(100):
            body = json.dumps({"entity": "products", "id": str(i)}).encode()
            r = await client.post("/webhooks/src", content=body, headers=sign(body))
            assert r.status_code == 202 and r.json() == {"accepted": 1, "flows": ["products"]}
        assert counted("src", "accepted") - before == 100
        assert memory.target == {} and backend.debouncer.started == 0  # answered at once: nothing ran yet
        assert backend.debouncer.scheduled == 1  # one delayed run for the burst
        ran = backend.ran
        gate.open()
        await ran.wait()
        runs = (await client.get("/api/v1/runs")).json()["runs"]
        assert [(r["flow"], r["trigger"], r["status"]) for r in runs] == [("products", "webhook", "ok")]
        assert [r["sku"] for r in memory.target.values()] == ["A"]  # the flow read it through the API

        # the next event after the run schedules the next run
        body = json.dumps({"entity": "products", "id": "x"}).encode()
        await client.post("/webhooks/src", content=body, headers=sign(body))
        assert backend.debouncer.scheduled == 2


async def test_unverified_malformed_unknown_and_oversized_webhooks_are_rejected_and_counted(tmp_path, hooks, memory):
    resolved = make_resolved(tmp_path, hooks, max_webhook_bytes=2048)
    async with admin_client(resolved, tmp_path) as (client, backend, _engine):
        body = json.dumps({"entity": "products", "id": "1"}).encode()
        cases = [
            ("src", body, {}, 401, "no x-signature header", "unverified"),
            ("src", body, {"x-signature": "00" * 32}, 401, "does not match", "unverified"),
            ("src", b"{not json", sign(b"{not json"), 400, "body is not an event", "malformed"),
            ("src", b"x" * 4096, sign(b"x" * 4096), 413, "larger than 2048 bytes", "too_large"),
            ("dst", body, sign(body), 404, "connector 'memtarget' takes no webhooks", "unknown"),
            ("nope", body, sign(body), 404, "no such connection", "unknown"),
        ]
        for connection, content, headers, status, message, result in cases:
            label = connection if result != "unknown" else ""
            before = counted(label, result)
            r = await client.post(f"/webhooks/{connection}", content=content, headers=headers)
            assert r.status_code == status and message in r.json()["error"], (connection, r.json())
            assert counted(label, result) == before + 1, result
        assert backend.debouncer.started == 0 and memory.target == {}


async def test_debouncer_joins_triggers_until_the_run_starts_and_takes_one_during_it():
    gate = Gate()
    started: list[str] = []
    run_gate = anyio.Event()

    async def run(flow: str) -> None:
        started.append(flow)
        await run_gate.wait()

    debouncer = Debouncer(run, 2.0, sleep=gate.sleep)
    async with anyio.create_task_group() as tg:
        await tg.start(debouncer.serve)
        assert [debouncer.trigger("a") for _ in range(5)] == [True, False, False, False, False]
        assert debouncer.trigger("b") is True
        gate.open()
        with anyio.fail_after(10):
            while len(started) < 2:
                await anyio.lowlevel.checkpoint()  # yield to the started runs; bounded by fail_after
        assert sorted(started) == ["a", "b"]
        assert debouncer.trigger("a") is True  # during a's run: one more run after it
        assert debouncer.trigger("a") is False
        run_gate.set()
        tg.cancel_scope.cancel()


async def test_the_default_hook_refuses_and_says_which_connector():
    class Plain(Connector):
        name = "plain"

    assert not Plain.takes_webhooks()
    with pytest.raises(WebhookRejected, match="connector 'plain' does not take webhooks"):
        await Plain.webhook(Plain.__new__(Plain), WebhookRequest("POST", "http://x/webhooks/p?event=a", {}, b""))
    assert WebhookRequest("POST", "http://x/webhooks/p?event=a&b=", {}, b"").query == {"event": "a", "b": ""}
    assert Entity.PRODUCTS  # the events name canonical entities

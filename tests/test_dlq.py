"""The dead-letter queue: failed records kept with payload and error, replayed through the same path."""

from __future__ import annotations

import pg_support
import pytest
from fakes import product
from test_engine import make_config

from apicenterd.engine import Engine
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True, params=["sqlite", "postgresql"])
def backend(request, tmp_path, monkeypatch):
    """Every test once per state backend: the stores with_engine opens (one after another, on the same
    state) are SQLite files at tmp_path/state.db, or PostgreSQL in a schema of this test's own."""
    if request.param == "sqlite":
        yield request.param
        return
    from apicenterd.state.postgres import PostgresStore

    url, schema = pg_support.server_url(), pg_support.new_schema()
    monkeypatch.setattr(f"{__name__}.new_store", lambda tmp_path: PostgresStore(url, schema=schema))
    try:
        yield request.param
    finally:
        pg_support.drop_schema(url, schema)


def new_store(tmp_path):
    return SQLiteStore(tmp_path / "state.db")


async def with_engine(resolved, tmp_path, fn):
    store = new_store(tmp_path)
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0)
    try:
        return await fn(engine, store)
    finally:
        await engine.aclose()
        await store.close()


async def test_failed_record_is_dead_lettered_and_replay_creates_it_once(tmp_path, registry, memory):
    memory.put(product("A"), "1")
    memory.put(product("B"), "2")
    memory.fail_create.add("B")
    resolved = make_config(tmp_path, registry)

    async def first(engine, store):
        result = await engine.run_flow("products")
        return result, await store.dead_letters()

    result, letters = await with_engine(resolved, tmp_path, first)
    assert result.counts["failed"] == 1
    (letter,) = letters
    assert (letter.flow, letter.source_id, letter.key, letter.attempts, letter.status) == ("products", "B", "B", 1, "open")
    assert "name too long" in letter.error and '"sku":"B"' in letter.payload

    async def replay_failing(engine, store):
        counts = await engine.replay(await store.dead_letters())
        return counts, await store.dead_letters()

    counts, letters = await with_engine(resolved, tmp_path, replay_failing)
    assert counts["failed"] == 1 and letters[0].attempts == 2

    memory.fail_create.discard("B")
    counts, letters = await with_engine(resolved, tmp_path, replay_failing)
    assert counts["created"] == 1 and letters == []
    assert sorted(r["sku"] for r in memory.target.values()) == ["A", "B"]
    # replaying a resolved letter again (e.g. twice from two terminals) creates nothing new
    async def replay_resolved(engine, store):
        return await engine.replay(await store.dead_letters(status="resolved"))

    counts = await with_engine(resolved, tmp_path, replay_resolved)
    assert counts["created"] == 0 and len(memory.target) == 2


async def test_a_later_success_from_the_source_resolves_the_dead_letter(tmp_path, registry, memory):
    memory.put(product("B"), "1")
    memory.fail_create.add("B")
    resolved = make_config(tmp_path, registry)
    await with_engine(resolved, tmp_path, lambda e, s: e.run_flow("products"))
    memory.fail_create.clear()
    memory.put(product("B", name="Fixed"), "2")

    async def second(engine, store):
        await engine.run_flow("products")
        return await store.dead_letters(status=None)

    (letter,) = await with_engine(resolved, tmp_path, second)
    assert letter.status == "resolved"


async def test_discard(tmp_path, registry, memory):
    memory.put(product("B"), "1")
    memory.fail_create.add("B")
    resolved = make_config(tmp_path, registry)

    async def go(engine, store):
        await engine.run_flow("products")
        letters = await store.dead_letters()
        assert await store.set_dead_letter_status([d.id for d in letters], "discarded") == 1
        return await store.dead_letters(), await store.dead_letters(status="discarded")

    open_, discarded = await with_engine(resolved, tmp_path, go)
    assert open_ == [] and len(discarded) == 1


async def test_source_record_error_is_failed_and_the_run_goes_on(tmp_path, registry, memory):
    from fakes import MemorySource

    from apicenterd import Change

    memory.put(product("A"), "1")
    original = MemorySource.read

    async def read_with_bad(self, entity, since):
        yield Change("BAD", None, "0", error="product 7 has no productnumber")
        async for change in original(self, entity, since):
            yield change

    MemorySource.read = read_with_bad
    try:
        result = await with_engine(make_config(tmp_path, registry), tmp_path, lambda e, s: e.run_flow("products"))
    finally:
        MemorySource.read = original
    assert result.counts["failed"] == 1 and result.counts["created"] == 1


async def test_a_failed_record_read_again_unchanged_costs_nothing_and_alerts_nothing(tmp_path, registry, memory):
    memory.put(product("B"), "1")  # the last record: the inclusive cursor reads it again every run
    memory.fail_create.add("B")
    resolved = make_config(tmp_path, registry)
    await with_engine(resolved, tmp_path, lambda e, s: e.run_flow("products"))
    memory.calls.clear()

    async def again(engine, store):
        result = await engine.run_flow("products")
        return result, engine.failures, await store.dead_letters()

    result, failures, letters = await with_engine(resolved, tmp_path, again)
    assert result.counts["waiting"] == 1 and result.counts["unchanged"] == 0 and failures == [] and memory.calls == []
    assert letters[0].attempts == 1


async def test_an_unchanged_failed_record_is_tried_again_after_its_backoff(tmp_path, registry, memory, monkeypatch):
    import time as real_time

    from apicenterd import engine as engine_module

    memory.put(product("B"), "1")
    memory.fail_create.add("B")
    resolved = make_config(tmp_path, registry)
    await with_engine(resolved, tmp_path, lambda e, s: e.run_flow("products"))
    memory.fail_create.clear()  # what it lacked is there now
    later = real_time.time() + engine_module.dead_letter_backoff(1) + 1
    monkeypatch.setattr(engine_module.time, "time", lambda: later)
    result = await with_engine(resolved, tmp_path, lambda e, s: e.run_flow("products"))
    assert result.counts["created"] == 1


async def test_retention_keeps_open_dead_letters_without_their_record_and_warns_once_before(tmp_path, registry, memory):
    import time

    from apicenterd.daemon import DAY, purge
    from apicenterd.errors import RecordError
    from apicenterd.observe.alerts import Alerter

    memory.put(product("B"), "1")
    memory.put(product("C"), "2")
    memory.fail_create.update({"B", "C"})
    resolved = make_config(tmp_path, registry)
    await with_engine(resolved, tmp_path, lambda e, s: e.run_flow("products"))
    memory.fail_create.discard("C")

    async def resolve_c(engine, store):
        return await engine.replay(await store.dead_letters(flow="products", ids=[2]))

    assert (await with_engine(resolved, tmp_path, resolve_c))["created"] == 1  # C: resolved; B stays open
    state = resolved.config.state
    alerter = Alerter()
    t0 = time.time()

    async def go(engine, store):
        out = {}
        out["early"] = await purge(store, state, now=t0 + (state.dead_letter_retention_days - state.dead_letter_warning_days - 1) * DAY, alerter=alerter)
        out["sent_early"] = [a.kind for a in alerter.sent]
        out["warn"] = await purge(store, state, now=t0 + (state.dead_letter_retention_days - state.dead_letter_warning_days + 0.5) * DAY, alerter=alerter)
        out["warn_again"] = await purge(store, state, now=t0 + (state.dead_letter_retention_days - 1) * DAY, alerter=alerter)
        out["kept"] = await store.dead_letters(status=None)
        out["expired"] = await purge(store, state, now=t0 + (state.dead_letter_retention_days + 1) * DAY, alerter=alerter)
        out["after"] = await store.dead_letters(status=None)
        out["audit"] = await store.audit()
        try:
            await engine.replay(out["after"])
        except RecordError as exc:
            out["replay"] = str(exc)
        out["end"] = await purge(store, state, now=t0 + 91 * DAY, alerter=alerter)
        out["runs"] = await store.runs()
        out["final"] = await store.dead_letters(status=None)
        return out

    out = await with_engine(resolved, tmp_path, go)
    assert not out["early"] and "dead_letters_expiring" not in out["sent_early"]
    assert out["warn"].warned == {"products": 1} and not out["warn"].dead_letters
    assert not out["warn_again"]  # once per letter
    expiring = [a for a in alerter.sent if a.kind == "dead_letters_expiring"]
    assert len(expiring) == 1 and expiring[0].flow == "products"
    assert "1 open dead letter(s) of flow products" in expiring[0].subject and "within 3 day(s)" in expiring[0].subject
    assert "dlq replay --flow products" in expiring[0].text
    assert [(d.source_id, d.payload is not None) for d in out["kept"]] == [("B", True), ("C", True)]

    expired = out["expired"]
    assert (expired.dead_letters, expired.dead_letter_records, expired.audit_entries) == (1, 1, 0)
    (letter,) = out["after"]  # the resolved one is gone; the open failure is still listed
    assert (letter.source_id, letter.status, letter.attempts, letter.error) == ("B", "open", 1, "target rejects B: name too long")
    assert letter.payload is None and letter.key is None and letter.purged and letter.purged_at is not None
    assert "cannot be replayed, only discarded" in out["replay"]
    assert len(out["audit"]) >= 1  # the audit trail keeps its own 90 days

    assert out["end"].audit_entries >= 1 and out["end"].runs == 2 and out["runs"] == []
    assert [d.source_id for d in out["final"]] == ["B"]  # never dropped while open


async def test_a_failed_record_waits_out_its_pause_only_while_the_flows_configuration_stays(tmp_path, registry, memory):
    memory.put(product("B"), "1")  # the last record: the inclusive cursor reads it again every run
    memory.fail_create.add("B")

    async def run(resolved):
        async def go(engine, store):
            result = await engine.run_flow("products")
            return result, await store.dead_letters()

        memory.calls.clear()
        return await with_engine(resolved, tmp_path, go)

    first, _ = await run(make_config(tmp_path, registry))
    assert first.counts["failed"] == 1
    # the schedule is not what the record failed on: it still waits out its pause, no call
    same, letters = await run(make_config(tmp_path, registry, interval="5m"))
    assert same.counts["waiting"] == 1 and memory.calls == [] and letters[0].attempts == 1
    # the mapping changed: tried again at this run, not after the pause (it fails again here)
    changed = make_config(tmp_path, registry, create_only_fields=["description"])
    again, letters = await run(changed)
    assert again.counts["failed"] == 1 and ("create", "B") in memory.calls and letters[0].attempts == 2
    # failed under the configuration as it is now: it waits again
    waiting, _ = await run(changed)
    assert waiting.counts["waiting"] == 1 and memory.calls == []
    # the configuration back as it was, and what it lacked is there: tried at once, created
    memory.fail_create.clear()
    back, _ = await run(make_config(tmp_path, registry))
    assert back.counts["created"] == 1 and back.counts["waiting"] == 0

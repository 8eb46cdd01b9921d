"""The engine: record by record, no duplicates, no needless calls, cursors that only settle."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from fakes import StockLevel, product

from apicenterd.config import Config, resolve
from apicenterd.engine import Engine
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio


def make_config(tmp_path: Path, registry, **flow):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "memsource"}, "dst": {"connector": "memtarget"}},
        "flows": {"products": {"source": "src", "target": "dst", "entity": "products", "interval": "1m", **flow}},
    }
    return resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")


async def run_once(resolved, tmp_path, flow="products", **engine_kw):
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0, **engine_kw)
    try:
        return await engine.run_flow(flow)
    finally:
        await engine.aclose()
        await store.close()


async def test_first_run_creates_second_run_costs_no_call(tmp_path, registry, memory):
    for i in range(5):
        memory.put(product(f"SKU{i}"), f"2026-01-0{i + 1}")
    resolved = make_config(tmp_path, registry)
    first = await run_once(resolved, tmp_path)
    assert first.counts["created"] == 5 and first.status == "ok"
    assert len(memory.target) == 5
    memory.calls.clear()
    second = await run_once(resolved, tmp_path)
    assert second.counts["created"] == 0 and second.counts["updated"] == 0
    # only the record at the cursor is re-read (inclusive cursor), and it costs no call
    assert second.counts["unchanged"] == 1
    assert memory.calls == []


async def test_changed_product_updates_only_fields_allowed_on_update(tmp_path, registry, memory):
    memory.put(product("A"), "1")
    memory.put(product("B"), "2")
    resolved = make_config(tmp_path, registry, create_only_fields=["description"])
    await run_once(resolved, tmp_path)
    memory.calls.clear()
    memory.put(product("A", name="Renamed", description="new long text", price_excl_tax=Decimal("12.50")), "3")
    result = await run_once(resolved, tmp_path)
    assert result.counts["updated"] == 1
    row = next(r for r in memory.target.values() if r["sku"] == "A")
    assert row["name"] == "Renamed" and row["price_excl_tax"] == Decimal("12.50")
    assert row["description"] == "long text"  # create-only: never overwritten
    assert ("update", "A") in memory.calls and ("update", "B") not in memory.calls


async def test_change_in_create_only_field_alone_costs_no_call(tmp_path, registry, memory):
    memory.put(product("A"), "1")
    resolved = make_config(tmp_path, registry, create_only_fields=["description"])
    await run_once(resolved, tmp_path)
    memory.calls.clear()
    memory.put(product("A", description="enriched elsewhere"), "2")
    result = await run_once(resolved, tmp_path)
    assert result.counts["unchanged"] == 1 and memory.calls == []


async def test_existing_target_record_is_found_by_key_not_duplicated(tmp_path, registry, memory):
    # the target already has the product (e.g. created before a crash, never linked)
    memory.target["T99"] = {"sku": "A", "name": "Product A", "description": "x", "price_excl_tax": Decimal("10.00"), "active": True}
    memory.put(product("A", description="x"), "1")
    resolved = make_config(tmp_path, registry)
    result = await run_once(resolved, tmp_path)
    assert result.counts["unchanged"] == 1 and result.counts["created"] == 0
    assert list(memory.target) == ["T99"]
    memory.put(product("A", description="x", price_excl_tax=Decimal("11")), "2")
    result = await run_once(resolved, tmp_path)
    assert result.counts["updated"] == 1 and list(memory.target) == ["T99"]


async def test_one_bad_record_fails_and_the_run_goes_on(tmp_path, registry, memory):
    for sku in ("A", "B", "C"):
        memory.put(product(sku), sku)
    memory.fail_create.add("B")
    resolved = make_config(tmp_path, registry)
    result = await run_once(resolved, tmp_path)
    assert result.counts["created"] == 2 and result.counts["failed"] == 1
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    entries = await store.audit(flow="products")
    await store.close()
    failed = [e for e in entries if e.action == "failed"]
    assert failed[0].source_id == "B" and "name too long" in failed[0].reason


async def test_transient_errors_are_retried(tmp_path, registry, memory):
    memory.put(product("A"), "1")
    memory.flaky["A"] = 2
    resolved = make_config(tmp_path, registry)
    result = await run_once(resolved, tmp_path)
    assert result.counts["created"] == 1 and len(memory.target) == 1


async def test_persistent_transient_error_fails_run_without_advancing_cursor(tmp_path, registry, memory):
    memory.put(product("A"), "1")
    memory.put(product("B"), "2")
    memory.flaky["B"] = 100
    resolved = make_config(tmp_path, registry)
    result = await run_once(resolved, tmp_path)
    assert result.status == "failed" and "transient failure for B" in result.error
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    assert await store.get_cursor("products") == "1"  # settled A, not B
    await store.close()
    memory.flaky["B"] = 0
    result = await run_once(resolved, tmp_path)
    assert result.status == "ok" and result.counts["created"] == 1
    assert sorted(r["sku"] for r in memory.target.values()) == ["A", "B"]


async def test_read_error_fails_run_keeps_settled_cursor(tmp_path, registry, memory):
    for sku in ("A", "B", "C"):
        memory.put(product(sku), sku)
    memory.read_error_after = 2
    resolved = make_config(tmp_path, registry)
    result = await run_once(resolved, tmp_path)
    assert result.status == "failed" and result.counts["created"] == 2


async def test_a_read_that_holds_its_cursor_counts_getting_further_as_progress(tmp_path, registry, memory):
    """A source that moves its cursor only with its last change (CCV products, newest first)
    is read again from the start after a failure; each attempt that gets further than any
    before is progress, so five failures at later and later places do not fail the run."""
    for i in range(10):
        memory.put(product(f"SKU{i}"), f"2026-01-{i + 10}")
    memory.hold_cursor = True
    memory.read_fail_at = [2, 4, 6, 8, 9]
    resolved = make_config(tmp_path, registry)
    result = await run_once(resolved, tmp_path)  # retry_attempts = 4
    assert result.status == "ok", result.error
    assert result.counts["created"] == 10 and len(memory.target) == 10
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        assert await store.get_cursor("products") == "2026-01-19"
    finally:
        await store.close()


async def test_a_read_that_fails_at_the_same_place_still_fails_the_run(tmp_path, registry, memory):
    for i in range(10):
        memory.put(product(f"SKU{i}"), f"2026-01-{i + 10}")
    memory.hold_cursor = True
    memory.read_fail_at = [5] * 10
    resolved = make_config(tmp_path, registry)
    result = await run_once(resolved, tmp_path)
    assert result.status == "failed" and "record 5" in result.error
    assert len(memory.read_fail_at) == 6  # four attempts, then it gave up


async def test_filters_skip_records_with_reason(tmp_path, registry, memory):
    memory.put(product("A", active=False), "1")
    memory.put(product("B"), "2")
    resolved = make_config(tmp_path, registry, filters=[{"field": "active", "op": "eq", "value": True}])
    result = await run_once(resolved, tmp_path)
    assert result.counts["skipped"] == 1 and result.counts["created"] == 1
    assert [r["sku"] for r in memory.target.values()] == ["B"]


async def test_stock_flow_available_on_hand_minus_reserved(tmp_path, registry, memory):
    memory.put(product("A"), "1")
    memory.put(product("U"), "2")
    resolved = make_config(tmp_path, registry)
    await run_once(resolved, tmp_path)
    memory.stock["A"] = StockLevel(sku="A", on_hand=Decimal(10), reserved=Decimal(3), available=Decimal(10))
    memory.stock["U"] = StockLevel(sku="U", on_hand=Decimal(0), available=Decimal(0), tracked=False)
    memory.stock["Z"] = StockLevel(sku="Z", on_hand=Decimal(1), available=Decimal(1))
    raw_flow = {"source": "src", "target": "dst", "entity": "stock", "interval": "1m"}
    cfg = Config(
        state={"path": str(tmp_path / "state.db")},
        connections={"src": {"connector": "memsource"}, "dst": {"connector": "memtarget"}},
        flows={"stock": raw_flow},
    )
    resolved = resolve(cfg, registry, tmp_path / "x.toml")
    result = await run_once(resolved, tmp_path, flow="stock")
    row = next(r for r in memory.target.values() if r["sku"] == "A")
    assert row["stock"] == Decimal(7)
    assert result.counts == {"created": 0, "updated": 1, "unchanged": 0, "waiting": 0, "skipped": 1, "failed": 1}
    memory.calls.clear()
    again = await run_once(resolved, tmp_path, flow="stock")
    # A unchanged; Z failed a moment ago exactly as it is now: it waits out its dead-letter backoff
    assert again.counts["unchanged"] == 1 and again.counts["waiting"] == 1 and ("update", "A") not in memory.calls


async def test_a_target_with_batch_look_ups_is_asked_once_per_batch(tmp_path, registry, memory):
    from decimal import Decimal as D

    for i in range(250):
        memory.put(product(f"S{i:03}"), f"{i:03}")
    memory.target["T900"] = {"sku": "S007", "name": "Product S007", "description": "long text", "price_excl_tax": D("10.00"), "active": True}
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "memsource"}, "dst": {"connector": "membatch"}},
        "flows": {"products": {"source": "src", "target": "dst", "entity": "products", "interval": "1m"}},
    }
    import fakes
    import fakes_batch

    from apicenterd.registry import load_registry

    both = load_registry([("fakes", fakes), ("fakes_batch", fakes_batch)], entry_points=False)
    resolved = resolve(Config(**raw), both, tmp_path / "x.toml")
    result = await run_once(resolved, tmp_path)
    assert result.counts["created"] == 249 and result.counts["unchanged"] == 1  # S007 found, linked
    kinds = [c[0] for c in memory.calls]
    assert kinds.count("find_many") == 3 and "find" not in kinds  # 100 + 100 + 50
    assert sorted(r["sku"] for r in memory.target.values()) == [f"S{i:03}" for i in range(250)]


async def test_a_run_cut_off_by_cancellation_is_recorded_stopped_with_its_counts(tmp_path, registry, memory, monkeypatch):
    import anyio
    from fakes import MemoryTarget

    for sku in ("A", "B", "C", "D"):
        memory.put(product(sku), sku)
    entered = anyio.Event()
    original = MemoryTarget.create

    async def create(self, entity, record):
        if record.sku == "C":  # the third record hangs (a stuck call) until the run is cut off
            entered.set()
            await anyio.sleep_forever()
        return await original(self, entity, record)

    monkeypatch.setattr(MemoryTarget, "create", create)
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(make_config(tmp_path, registry), store, retry_base_delay=0)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.run_flow, "products")
            with anyio.fail_after(30):
                await entered.wait()
            tg.cancel_scope.cancel()  # what the shutdown timeout or a second Ctrl-C does
        (row,) = await store.runs("products", 1)
        assert row.status == "stopped" and row.finished_at  # before: "ok"
        assert row.counts["created"] == 2 and engine.last_result.counts["created"] == 2
    finally:
        await engine.aclose()
        await store.close()


async def test_a_run_given_up_while_retrying_for_a_stop_is_stopped_not_failed(tmp_path, registry, memory):
    import anyio

    memory.put(product("A"), "1")
    memory.flaky["A"] = 10**6
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(make_config(tmp_path, registry), store, retry_attempts=10**6, sleep=lambda _: engine.stop() or anyio.lowlevel.checkpoint())
    try:
        result = await engine.run_flow("products")
        assert result.status == "stopped" and "transient failure for A" in result.error
        assert list(engine.alerter.sent) == []  # not announced as a failing flow
    finally:
        await engine.aclose()
        await store.close()


async def test_concurrent_flows_each_keep_their_batch_look_up(tmp_path, memory, monkeypatch):
    """A flow's batch look-up is its own: another flow's batch starting meanwhile does not throw
    it away (before, one cache was shared, cleared by every batch: one find per record after)."""
    import anyio
    import fakes
    import fakes_batch

    from apicenterd.registry import load_registry

    for i in range(5):
        memory.put(product(f"P{i}"), f"{i}")
    entered, go = anyio.Event(), anyio.Event()
    original = fakes_batch.BatchTarget.create

    async def create(self, entity, record):
        if record.key() == "P1":  # flow "products" holds here, its batch looked up, while "stock" runs
            entered.set()
            await go.wait()
        return await original(self, entity, record)

    monkeypatch.setattr(fakes_batch.BatchTarget, "create", create)
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "memsource"}, "dst": {"connector": "membatch"}},
        "flows": {
            "products": {"source": "src", "target": "dst", "entity": "products", "interval": "1m"},
            "stock": {"source": "src", "target": "dst", "entity": "stock", "interval": "1m"},
        },
    }
    both = load_registry([("fakes", fakes), ("fakes_batch", fakes_batch)], entry_points=False)
    resolved = resolve(Config(**raw), both, tmp_path / "x.toml")
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0)
    results = {}
    try:
        async with anyio.create_task_group() as tg:

            async def products():
                results["products"] = await engine.run_flow("products")

            tg.start_soon(products)
            with anyio.fail_after(30):
                await entered.wait()
            results["stock"] = await engine.run_flow("stock")
            go.set()
    finally:
        await engine.aclose()
        await store.close()
    assert results["products"].counts["created"] == 5
    finds = [c for c in memory.calls if c[0] == "find"]
    assert finds == []  # every record of the products batch was answered by its one find_many


async def test_decimals_that_differ_only_in_trailing_zeros_are_no_change():
    from apicenterd.engine import differing_fields, record_hash

    a = product("A", price_excl_tax=Decimal("13.5"))
    b = product("A", price_excl_tax=Decimal("13.50"))
    fields = frozenset({"sku", "price_excl_tax"})
    assert record_hash(a, fields) == record_hash(b, fields)
    assert differing_fields(a, b, fields) == frozenset()
    assert differing_fields(a, product("A", price_excl_tax=Decimal("13.51")), fields) == {"price_excl_tax"}
    # a hash of a decimal without trailing zeros is what it was before (no mass update after an upgrade)
    assert record_hash(a, fields) == record_hash(product("A", price_excl_tax=Decimal("13.5")), fields)


def test_no_return_break_or_continue_inside_finally():
    """A ``return`` in ``finally`` swallows cancellation and Ctrl-C (the dry-run path had one)."""
    import ast

    import apicenterd

    root = Path(apicenterd.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Try) and node.finalbody:
                for stmt in node.finalbody:
                    offenders += [f"{path.name}:{n.lineno}" for n in ast.walk(stmt) if isinstance(n, (ast.Return, ast.Break, ast.Continue))]
    assert offenders == []


async def test_an_unchanged_reread_saves_its_cursor_once_a_batch(tmp_path, registry, memory, monkeypatch):
    for i in range(250):
        memory.put(product(f"S{i:03}"), f"{i:03}")
    resolved = make_config(tmp_path, registry)
    await run_once(resolved, tmp_path)
    saved: list[str | None] = []
    real = SQLiteStore.set_cursor

    async def spy(self, flow, cursor):
        saved.append(cursor)
        await real(self, flow, cursor)

    monkeypatch.setattr(SQLiteStore, "set_cursor", spy)
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    await real(store, "products", "000")  # a full re-read of unchanged records
    await store.close()
    result = await run_once(resolved, tmp_path)
    assert result.counts["unchanged"] == 250 and result.status == "ok"
    assert saved == ["099", "199", "249"]  # batches of 100, not one write a record


async def test_unchanged_records_before_a_failed_write_keep_their_cursor(tmp_path, registry, memory):
    for i in range(5):
        memory.put(product(f"S{i}"), f"{i}")
    resolved = make_config(tmp_path, registry)
    await run_once(resolved, tmp_path)
    memory.put(product("S3", name="changed"), "3")
    memory.flaky["S3"] = 99  # its update never gets through: the run gives up there
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    await store.set_cursor("products", "0")
    await store.close()
    result = await run_once(resolved, tmp_path)
    assert result.status == "failed" and result.counts["unchanged"] == 3  # 0, 1, 2
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        assert await store.get_cursor("products") == "2"  # settled without a write, saved all the same
    finally:
        await store.close()


def test_the_one_dump_hash_is_the_hash_of_both_dumps():
    """record_hash dumps a record once (Python mode) when every value is plain; the result, so the
    hash every link keeps, is the same as from both dumps (an upgrade rewrites nothing)."""
    from datetime import UTC, datetime

    from apicenterd import compare
    from apicenterd.model import Attribute, Order, OrderLine

    def both_dumps(record, fields):
        include = set(fields)
        return compare._comparable(record.model_dump(include=include), record.model_dump(mode="json", include=include))

    records = [
        product("A", price_excl_tax=Decimal("13.50"), quantity=Decimal("0E-3"), images=("https://x/1.jpg",), categories=("a", "b")),
        product("B", price_excl_tax=None, weight_kg=Decimal("1.2300"), attributes=(Attribute(name="colour", value="red"),)),
        StockLevel(sku="S", on_hand=Decimal("5.0"), available=Decimal("3")),
        Order(number="O1", status="open", created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), lines=(OrderLine(sku="A", quantity=Decimal("2.50"), unit_price=Decimal("1.10")),), total=Decimal("2.750")),
    ]
    for record in records:
        fields = frozenset(type(record).model_fields)
        assert compare._dump(record, fields) == both_dumps(record, fields), record
    plain = compare._dump(records[0], frozenset(type(records[0]).model_fields))
    assert plain["price_excl_tax"] == "13.5" and plain["images"] == ["https://x/1.jpg"]
    with pytest.raises(compare._NotPlain):  # a datetime: only the JSON mode knows its form
        compare._plain(records[-1].model_dump())


async def test_a_batch_has_several_writes_in_flight_and_settles_them_in_the_sources_order(tmp_path, registry, memory, monkeypatch):
    import anyio
    from fakes import MemoryTarget

    for i in range(8):
        memory.put(product(f"S{i}"), f"2026-01-0{i + 1}")
    in_flight, most = 0, 0
    four_in, s3_done = anyio.Event(), anyio.Event()
    original = MemoryTarget.create

    async def create(self, entity, record):
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            if in_flight == 4:
                four_in.set()
            with anyio.fail_after(30):  # the first four wait for each other: one at a time never gets here
                await four_in.wait()
                if record.sku == "S0":  # and the first finishes after the fourth
                    await s3_done.wait()
            return await original(self, entity, record)
        finally:
            in_flight -= 1
            if record.sku == "S3":
                s3_done.set()

    monkeypatch.setattr(MemoryTarget, "create", create)
    result = await run_once(make_config(tmp_path, registry), tmp_path, writes_in_flight=4)
    assert result.status == "ok" and result.counts["created"] == 8
    assert most == 4
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        audit = list(reversed(await store.audit(flow="products")))
        assert [a.source_id for a in audit] == [f"S{i}" for i in range(8)]  # settled in the source's order
        assert await store.get_cursor("products") == "2026-01-08"
    finally:
        await store.close()


async def test_the_cursor_never_passes_a_record_in_flight_when_the_run_stops(tmp_path, registry, memory, monkeypatch):
    import anyio
    from fakes import MemoryTarget

    from apicenterd import FatalError

    for i in range(8):
        memory.put(product(f"S{i}"), f"2026-01-0{i + 1}")
    s5_done = anyio.Event()
    original = MemoryTarget.create
    broken = True

    async def create(self, entity, record):
        if broken and record.sku == "S2":  # fails for good once S3, S4 and S5 are written
            with anyio.fail_after(30):
                await s5_done.wait()
            raise FatalError("the target refuses S2")
        try:
            return await original(self, entity, record)
        finally:
            if record.sku == "S5":
                s5_done.set()

    monkeypatch.setattr(MemoryTarget, "create", create)
    resolved = make_config(tmp_path, registry)
    first = await run_once(resolved, tmp_path, writes_in_flight=4)
    assert first.status == "failed" and "refuses S2" in first.error
    assert first.counts["created"] == 2  # S0, S1: settled; S3-S7 written, not settled (S2 is before them)
    assert sorted(r["sku"] for r in memory.target.values()) == ["S0", "S1", "S3", "S4", "S5", "S6", "S7"]
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        assert await store.get_cursor("products") == "2026-01-02"  # S1's: never past S2
        links = await store.get_links("src", "products", [f"S{i}" for i in range(8)], "dst")
        assert sorted(links) == ["S0", "S1"]
    finally:
        await store.close()
    broken = False
    second = await run_once(resolved, tmp_path, writes_in_flight=4)
    assert second.status == "ok"
    assert second.counts["created"] == 1 and second.counts["unchanged"] == 6  # S1 (at the cursor) and S3-S7, found by key
    assert sorted(r["sku"] for r in memory.target.values()) == [f"S{i}" for i in range(8)]  # none written twice


async def test_a_sink_that_does_not_declare_writes_in_flight_gets_one_write_at_a_time(tmp_path, registry, memory, monkeypatch):
    """Records of different keys may share a target object (variants of one product): a sink opts in."""
    import anyio
    import anyio.lowlevel
    from fakes import MemoryTarget

    from apicenterd import Entity

    for i in range(6):
        memory.put(product(f"S{i}"), f"2026-01-0{i + 1}")
    monkeypatch.setattr(MemoryTarget.sinks[Entity.PRODUCTS], "writes_in_flight", 1)
    in_flight, most = 0, 0
    original = MemoryTarget.create

    async def create(self, entity, record):
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await anyio.lowlevel.checkpoint()  # a chance for another record to start, were it allowed
            return await original(self, entity, record)
        finally:
            in_flight -= 1

    monkeypatch.setattr(MemoryTarget, "create", create)
    result = await run_once(make_config(tmp_path, registry), tmp_path, writes_in_flight=4)
    assert result.status == "ok" and result.counts["created"] == 6
    assert most == 1


def test_writes_in_flight_must_be_at_least_one(tmp_path, registry):
    with pytest.raises(ValueError, match="writes_in_flight must be at least 1, got 0"):
        Engine(make_config(tmp_path, registry), SQLiteStore(tmp_path / "state.db"), writes_in_flight=0)


async def _most_in_flight(tmp_path, registry, memory, monkeypatch, resolved, expect: int) -> int:
    """Runs 12 creates; each waits until ``expect`` are in flight together, then the most seen."""
    import anyio
    import anyio.lowlevel
    from fakes import MemoryTarget

    for i in range(12):
        memory.put(product(f"S{i:02}"), f"2026-01-{i + 1:02}")
    in_flight, most = 0, 0
    enough = anyio.Event()
    original = MemoryTarget.create

    async def create(self, entity, record):
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            if in_flight == expect:
                enough.set()
            with anyio.fail_after(30):  # fewer at once than expected never gets past here
                await enough.wait()
            for _ in range(5):
                await anyio.lowlevel.checkpoint()  # a chance for one more to start, were it allowed
            return await original(self, entity, record)
        finally:
            in_flight -= 1

    monkeypatch.setattr(MemoryTarget, "create", create)
    result = await run_once(resolved, tmp_path)
    assert result.status == "ok" and result.counts["created"] == 12
    return most


async def test_a_flows_writes_in_flight_setting_sets_how_many_writes_are_in_flight(tmp_path, registry, memory, monkeypatch):
    resolved = make_config(tmp_path, registry, writes_in_flight=6)  # above the engine's default of 4
    assert resolved.flows["products"].writes_in_flight == 6
    assert await _most_in_flight(tmp_path, registry, memory, monkeypatch, resolved, 6) == 6


async def test_a_connections_writes_in_flight_applies_to_its_flows_and_a_flows_own_wins(tmp_path, registry, memory, monkeypatch):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "memsource"}, "dst": {"connector": "memtarget", "writes_in_flight": 2}},
        "flows": {"products": {"source": "src", "target": "dst", "entity": "products", "interval": "1m"}},
    }
    resolved = resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")
    assert await _most_in_flight(tmp_path, registry, memory, monkeypatch, resolved, 2) == 2
    raw["flows"]["products"]["writes_in_flight"] = 3
    memory.target.clear()
    (tmp_path / "state.db").unlink()
    resolved = resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")
    assert await _most_in_flight(tmp_path, registry, memory, monkeypatch, resolved, 3) == 3


@pytest.mark.parametrize("value", ["0", "33", "-1", "true", "2.5", '"many"'])
def test_a_writes_in_flight_setting_out_of_range_is_refused_naming_it(tmp_path, registry, value):
    from apicenterd.config import load
    from apicenterd.errors import ConfigError

    for flow_line, conn_line, where in ((f"writes_in_flight = {value}", "", "flows.products.writes_in_flight"),
                                        ("", f"writes_in_flight = {value}", "connections.dst.writes_in_flight")):
        path = tmp_path / "apicenterd.toml"
        path.write_text(
            f'[state]\npath = "{tmp_path / "state.db"}"\n'
            '[connections.src]\nconnector = "memsource"\n'
            f'[connections.dst]\nconnector = "memtarget"\n{conn_line}\n'
            f'[flows.products]\nsource = "src"\ntarget = "dst"\nentity = "products"\ninterval = "1m"\n{flow_line}\n'
        )
        with pytest.raises(ConfigError) as caught:
            load(path, registry)
        assert any(where in problem for problem in caught.value.problems), caught.value.problems


def test_more_than_one_write_in_flight_is_refused_for_a_sink_that_writes_one_at_a_time(tmp_path, registry, monkeypatch):
    from fakes import MemoryTarget

    from apicenterd import Entity
    from apicenterd.errors import ConfigError

    monkeypatch.setattr(MemoryTarget.sinks[Entity.PRODUCTS], "writes_in_flight", 1)
    with pytest.raises(ConfigError, match=r"flows\.products\.writes_in_flight: 4 writes at once, .* one at a time"):
        make_config(tmp_path, registry, writes_in_flight=4)
    assert make_config(tmp_path, registry, writes_in_flight=1).flows["products"].writes_in_flight == 1


async def test_runs_due_together_all_start_before_either_reads(tmp_path, registry, memory, monkeypatch):
    """A run yields once it is recorded, so a thousand flows due in one slot all start on time
    (their runs recorded) before any of them reads; before, each ran on to its first vendor call."""
    import sqlite3

    import anyio
    import fakes

    memory.put(product("A"), "1")
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "memsource"}, "dst": {"connector": "memtarget"}},
        "flows": {name: {"source": "src", "target": "dst", "entity": "products", "interval": "1m"} for name in ("one", "two", "three")},
    }
    resolved = resolve(Config(**raw), registry, tmp_path / "x.toml")
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0)
    running_at_reads: list[int] = []
    original = fakes.MemorySource._read

    def read(self, entity, since):
        with sqlite3.connect(tmp_path / "state.db") as db:
            running_at_reads.append(db.execute("SELECT count(*) FROM runs WHERE status='running'").fetchone()[0])
        return original(self, entity, since)

    try:
        for name in raw["flows"]:  # connections opened, cursors and configuration hashes kept
            await engine.run_flow(name)
        monkeypatch.setattr(fakes.MemorySource, "_read", read)
        async with anyio.create_task_group() as tg:
            for name in raw["flows"]:
                tg.start_soon(engine.run_flow, name)
    finally:
        await engine.aclose()
        await store.close()
    assert len(running_at_reads) == 3 and running_at_reads[0] == 3, running_at_reads  # the first read: all three started

"""Batched updates: a target whose sink implements ``update_many`` gets a batch's changed records
in one call, each settled in the source's order; a record it refuses fails alone; a failed call is
sent again (updates are safe to repeat); nothing is settled past an unconfirmed update."""

from __future__ import annotations

from decimal import Decimal

import fakes
import fakes_batch
import pytest

from apicenterd import Product
from apicenterd.config import Config, resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _no_refusals():
    fakes_batch.BatchUpdateTarget.refuse_update = set()
    yield
    fakes_batch.BatchUpdateTarget.refuse_update = set()


def product(sku: str, name: str | None = None) -> Product:
    return Product(sku=sku, name=name or f"Product {sku}", description="long text", price_excl_tax=Decimal("10.00"))


async def run(tmp_path):
    return await fakes_batch.run_products(tmp_path, "membatchupdate")


async def created(tmp_path, memory, count: int, prefix: str = "S"):
    """``count`` products created and linked by a first run; the calls forgotten."""
    for i in range(count):
        memory.put(product(f"{prefix}{i:03}"), f"{i:04}")
    first, links, _ = await run(tmp_path)
    assert first.status == "ok" and first.counts["created"] == count
    memory.calls.clear()
    return links


def rename(memory, skus, at_from: int = 1000):
    for n, sku in enumerate(skus):
        memory.put(product(sku, f"Renamed {sku}"), f"{at_from + n}")


def names(memory):
    return {row["sku"]: row["name"] for row in memory.target.values()}


def calls(memory, kind):
    return [c[1] for c in memory.calls if c[0] == kind]


async def test_changed_records_are_updated_100_a_call_and_settled_with_new_hashes(tmp_path, memory):
    before = await created(tmp_path, memory, 250)
    rename(memory, [f"S{i:03}" for i in range(250)])
    result, links, cursor = await run(tmp_path)
    assert result.status == "ok" and result.counts["updated"] == 250, result
    assert [len(c.split(",")) for c in calls(memory, "update_many")] == [100, 100, 50]
    assert calls(memory, "update") == [f"S{i:03}" for i in range(250)]  # each once, in the source's order
    assert all(name.startswith("Renamed") for name in names(memory).values())
    assert all(links[s].target_id == before[s].target_id and links[s].hash != before[s].hash for s in links)
    assert cursor == "1249"
    memory.calls.clear()
    again, _, _ = await run(tmp_path)
    assert again.counts["unchanged"] == 1 and calls(memory, "update_many") == [] and calls(memory, "update") == []


async def test_a_record_the_target_refuses_fails_alone_and_keeps_its_old_link(tmp_path, memory):
    before = await created(tmp_path, memory, 5, "P")
    rename(memory, [f"P{i:03}" for i in range(5)])
    fakes_batch.BatchUpdateTarget.refuse_update = {"P002"}
    result, links, cursor = await run(tmp_path)
    assert result.counts["updated"] == 4 and result.counts["failed"] == 1, result
    assert any(f[2] == "P002" and "refuses the update" in f[3] for f in result.failures)
    assert links["P002"].hash == before["P002"].hash  # not settled as written: tried again next run
    assert all(links[f"P{i:03}"].hash != before[f"P{i:03}"].hash for i in (0, 1, 3, 4))
    assert len(calls(memory, "update_many")) == 1 and cursor == "1004"


async def test_a_call_that_fails_part_way_is_sent_again_and_every_update_lands(tmp_path, memory):
    await created(tmp_path, memory, 6, "Q")
    rename(memory, [f"Q{i:03}" for i in range(6)])
    memory.flaky["Q003"] = 1  # Q000..Q002 are written, then the call fails (as if its answer was lost)
    result, links, _ = await run(tmp_path)
    assert result.status == "ok" and result.counts["updated"] == 6, result
    assert len(calls(memory, "update_many")) == 2  # the failed call, then the whole batch again
    assert all(name.startswith("Renamed") for name in names(memory).values()) and len(memory.target) == 6


async def test_updates_that_fail_for_good_settle_nothing_and_the_next_run_writes_them(tmp_path, memory):
    before = await created(tmp_path, memory, 6, "R")
    rename(memory, [f"R{i:03}" for i in range(6)])
    memory.flaky["R003"] = 10**6
    result, links, cursor = await run(tmp_path)
    assert result.status == "failed" and cursor == "0005"  # the cursor did not pass an unconfirmed update
    assert all(links[s].hash == before[s].hash for s in links)  # nothing settled as updated
    memory.flaky.clear()
    memory.calls.clear()
    again, links, cursor = await run(tmp_path)
    assert again.status == "ok" and again.counts["updated"] == 6 and cursor == "1005"
    assert all(links[s].hash != before[s].hash for s in links)


async def test_a_crash_in_the_batch_update_settles_nothing_and_a_restart_finishes_it(tmp_path, memory, monkeypatch):
    """The process dies while the update call is out (a BaseException the engine does not catch):
    no record of the batch was settled, so the next run sends the updates again."""
    before = await created(tmp_path, memory, 4, "K")
    rename(memory, [f"K{i:03}" for i in range(4)])

    class Killed(BaseException):
        pass

    original = fakes_batch.BatchUpdateTarget._update_many

    async def dies(self, entity, updates):
        await original(self, entity, updates[:2])  # half of it reached the target
        raise Killed

    monkeypatch.setattr(fakes_batch.BatchUpdateTarget, "_update_many", dies)
    with pytest.raises(Killed):
        await run(tmp_path)
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        assert await store.get_cursor("products") == "0003"
        links = {s: await store.get_link("src", "products", s, "dst") for s in memory.source}
    finally:
        await store.close()
    assert all(links[s].hash == before[s].hash for s in links)
    monkeypatch.setattr(fakes_batch.BatchUpdateTarget, "_update_many", original)
    again, links, cursor = await run(tmp_path)
    assert again.status == "ok" and again.counts["updated"] == 4 and cursor == "1003"
    assert all(name.startswith("Renamed") for name in names(memory).values())


class ListSource(fakes.Connector):
    """Reads the changes in ``ListSource.changes`` (source id, product, cursor) after the cursor."""

    name = "listsource"
    title = "A list of changes"
    Settings = fakes.SourceSettings
    sources = {fakes.Entity.PRODUCTS: fakes._source(fakes.Entity.PRODUCTS)}
    changes: list[tuple[str, Product, str]] = []

    async def _read(self, entity, since):
        for source_id, record, cursor in self.changes:
            if since is None or cursor > since:
                yield fakes.Change(source_id, record, cursor)


class _ListPlugin:
    @fakes.hookimpl
    def register_connectors(self, register):
        register(ListSource)


async def test_a_record_updated_in_a_batch_and_changed_again_in_it_gets_both_in_order(tmp_path, memory):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "listsource"}, "dst": {"connector": "membatchupdate"}},
        "flows": {"products": {"source": "src", "target": "dst", "entity": "products", "interval": "1m"}},
    }
    registry = load_registry([("fakes", fakes), ("fakes_batch", fakes_batch), ("list", _ListPlugin())], entry_points=False)

    async def once():
        store = SQLiteStore(tmp_path / "state.db")
        await store.open()
        engine = Engine(resolve(Config(**raw), registry, tmp_path / "x.toml"), store, retry_base_delay=0)
        try:
            return await engine.run_flow("products"), await store.get_link("src", "products", "X", "dst")
        finally:
            await engine.aclose()
            await store.close()

    ListSource.changes = [("X", product("A"), "1"), ("Y", product("B"), "2")]
    first, _ = await once()
    assert first.counts["created"] == 2
    memory.calls.clear()
    ListSource.changes += [("X", product("A", "first"), "3"), ("Y", product("B", "other"), "4"), ("X", product("A", "second"), "5")]
    second, link = await once()
    assert second.status == "ok" and second.counts["updated"] == 3, second
    assert calls(memory, "update_many") == ["A,B", "A"]  # the first change of X sent before its second is collected
    assert names(memory) == {"A": "second", "B": "other"} and link is not None and memory.target[link.target_id]["name"] == "second"
    ListSource.changes = []


async def test_a_target_without_update_many_is_updated_one_by_one_by_the_connector_fallback(tmp_path, memory):
    """``Connector.update_many`` over a sink without it: one ``update`` each, a refusal per record."""
    registry = load_registry([("fakes", fakes), ("fakes_batch", fakes_batch)], entry_points=False)
    cls = registry.connector("memtarget")
    target = cls(cls.Settings(), None)
    memory.target.update({"T1": {"sku": "A", "name": "a"}, "T2": {"sku": "B", "name": "b"}})
    updates = [("T1", product("A", "x"), frozenset({"name"})), ("T2", product("B", "y"), frozenset({"name"}))]
    out = await target.update_many(fakes.Entity.PRODUCTS, updates)
    assert list(out) == [None, None] and names(memory) == {"A": "x", "B": "y"}

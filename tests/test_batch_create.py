"""Batched creates: a target whose sink implements ``create_many`` gets a batch's new records in
one call, each settled in the source's order; a record it refuses fails alone; a failed call is
retried after a look-up by key, so nothing is created twice."""

from __future__ import annotations

from decimal import Decimal

import fakes
import fakes_batch
import pytest

from apicenterd import Change, Connector, Entity, Product, hookimpl
from apicenterd.config import Config, resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio


def product(sku: str) -> Product:
    return Product(sku=sku, name=f"Product {sku}", description="long text", price_excl_tax=Decimal("10.00"))


async def run(tmp_path):
    return await fakes_batch.run_products(tmp_path, "membatchcreate")


def skus_in_target(memory):
    return sorted(row["sku"] for row in memory.target.values())


async def test_new_records_are_created_100_a_call_and_settled_with_their_links(tmp_path, memory):
    for i in range(250):
        memory.put(product(f"S{i:03}"), f"{i:03}")
    result, links, cursor = await run(tmp_path)
    assert result.status == "ok" and result.counts["created"] == 250
    kinds = [c[0] for c in memory.calls]
    assert kinds.count("create_many") == 3 and kinds.count("find_many") == 3  # 100 + 100 + 50
    assert [len(c[1].split(",")) for c in memory.calls if c[0] == "create_many"] == [100, 100, 50]
    assert skus_in_target(memory) == [f"S{i:03}" for i in range(250)]
    assert all(link is not None and memory.target[link.target_id]["sku"] == sku for sku, link in links.items())
    assert cursor == "249"
    memory.calls.clear()
    again, _, _ = await run(tmp_path)
    assert again.counts["unchanged"] == 1 and not [c for c in memory.calls if c[0].startswith("create")]


async def test_a_record_the_target_refuses_fails_alone(tmp_path, memory):
    for i in range(5):
        memory.put(product(f"P{i}"), f"{i}")
    memory.fail_create.add("P2")
    result, links, cursor = await run(tmp_path)
    assert result.counts["created"] == 4 and result.counts["failed"] == 1
    assert links["P2"] is None and all(links[f"P{i}"] is not None for i in (0, 1, 3, 4))
    assert any("P2" in f[1] and "name too long" in f[3] for f in result.failures)
    assert cursor == "4"


async def test_a_call_that_fails_part_way_is_retried_without_creating_twice(tmp_path, memory):
    for i in range(6):
        memory.put(product(f"Q{i}"), f"{i}")
    memory.flaky["Q3"] = 1  # Q0..Q2 are created, then the call fails (as if its answer was lost)
    result, links, _ = await run(tmp_path)
    assert result.status == "ok" and result.counts["created"] == 6
    assert skus_in_target(memory) == [f"Q{i}" for i in range(6)]  # each once
    calls = [c for c in memory.calls if c[0] in ("create_many", "find_many")]
    assert calls[-1] == ("create_many", "Q3,Q4,Q5")  # the retry sends only what the look-up did not find
    assert all(link is not None for link in links.values())


async def test_a_batch_whose_creates_fail_for_good_settles_nothing_and_the_next_run_links_them(tmp_path, memory):
    for i in range(6):
        memory.put(product(f"R{i}"), f"{i}")
    memory.flaky["R3"] = 10**6  # R0..R2 are created, then every call fails at R3
    result, links, cursor = await run(tmp_path)
    assert result.status == "failed" and cursor is None  # the cursor did not pass an unconfirmed create
    assert all(link is None for link in links.values())
    memory.flaky.clear()
    again, links, cursor = await run(tmp_path)
    assert again.status == "ok" and again.counts["created"] == 3 and again.counts["unchanged"] == 3  # R0..R2 found by key
    assert skus_in_target(memory) == [f"R{i}" for i in range(6)] and cursor == "5"
    assert all(link is not None for link in links.values())


async def test_a_waiting_record_after_an_unconfirmed_create_does_not_move_the_cursor(tmp_path, memory):
    """A record waiting out its dead letter's backoff behind a new record whose create fails for
    good: the cursor stays where it was (the batch's settles wait for the creates, in order)."""
    memory.put(product("W"), "5")
    memory.fail_create.add("W")
    first, _, cursor = await run(tmp_path)
    assert first.counts["failed"] == 1 and cursor == "5"
    memory.put(product("N"), "6")
    memory.put(product("W"), "7")  # read again, unchanged: it waits out its backoff
    memory.flaky["N"] = 10**6
    second, links, cursor = await run(tmp_path)
    assert second.status == "failed" and cursor == "5" and links["N"] is None  # not past N's unconfirmed create
    memory.flaky.clear()
    third, links, cursor = await run(tmp_path)
    assert third.status == "ok" and third.counts["created"] == 1 and third.counts["waiting"] == 1
    assert links["N"] is not None and cursor == "7"


class TwiceSource(Connector):
    """One source record changed twice within a batch, its SKU (the key) renamed in between."""

    name = "twicesource"
    title = "A source record read twice in one batch"
    Settings = fakes.SourceSettings
    sources = {Entity.PRODUCTS: fakes._source(Entity.PRODUCTS)}

    async def _read(self, entity, since):
        if since is None:
            yield Change("X", product("OLD"), "1")
            yield Change("X", product("NEW"), "2")


class _TwicePlugin:
    @hookimpl
    def register_connectors(self, register):
        register(TwiceSource)


async def test_a_record_created_in_a_batch_and_changed_again_in_it_is_updated_not_created_twice(tmp_path, memory):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "twicesource"}, "dst": {"connector": "membatchcreate"}},
        "flows": {"products": {"source": "src", "target": "dst", "entity": "products", "interval": "1m"}},
    }
    registry = load_registry([("fakes", fakes), ("fakes_batch", fakes_batch), ("twice", _TwicePlugin())], entry_points=False)
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolve(Config(**raw), registry, tmp_path / "x.toml"), store, retry_base_delay=0)
    try:
        result = await engine.run_flow("products")
        link = await store.get_link("src", "products", "X", "dst")
    finally:
        await engine.aclose()
        await store.close()
    assert result.status == "ok" and result.counts["created"] == 1 and result.counts["updated"] == 1, result
    assert skus_in_target(memory) == ["NEW"]  # the create of OLD, then the rename: one record
    assert link is not None and memory.target[link.target_id]["sku"] == "NEW"

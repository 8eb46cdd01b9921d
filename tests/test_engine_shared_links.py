"""Links that more than one flow reads: two flows with the same source, target and entity, and the
``update_existing`` checkbox switched on after records were skipped."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from fakes import product

from apicenterd.config import Config, resolve
from apicenterd.testing import settle

pytestmark = pytest.mark.anyio


def make_config(tmp_path: Path, registry, flows: dict):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "memsource"}, "dst": {"connector": "memtarget"}},
        "flows": {name: {"source": "src", "target": "dst", "entity": "products", "interval": "1m", **flow} for name, flow in flows.items()},
    }
    return resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")


async def run_once(resolved, tmp_path, flow):
    return await settle.run_once(resolved, flow, retry_base_delay=0, state_path=tmp_path / "state.db")


async def test_two_flows_sharing_links_with_different_create_only_fields_settle(tmp_path, registry, memory):
    # e.g. an hourly flow keeping descriptions create-only and a nightly one writing them: they read
    # and write the same links, and neither may take the other's hash for a change
    for sku in ("A", "B"):
        memory.put(product(sku), sku)
    resolved = make_config(tmp_path, registry, {"hourly": {"create_only_fields": ["description"]}, "nightly": {}})
    first = await run_once(resolved, tmp_path, "hourly")
    assert first.counts["created"] == 2
    memory.calls.clear()
    for flow in ("nightly", "hourly", "nightly", "hourly"):
        memory.put(product("A"), "A")  # read again (the cursor is inclusive), unchanged
        result = await run_once(resolved, tmp_path, flow)
        assert result.counts["updated"] == 0, (flow, dict(result.counts))
    assert [c for c in memory.calls if c[0] == "update"] == []
    # a real change is still written, by either flow
    memory.put(product("A", name="Renamed"), "C")
    result = await run_once(resolved, tmp_path, "nightly")
    assert result.counts["updated"] == 1
    assert next(r for r in memory.target.values() if r["sku"] == "A")["name"] == "Renamed"
    memory.calls.clear()
    result = await run_once(resolved, tmp_path, "hourly")
    assert result.counts["updated"] == 0 and memory.calls == []


async def test_a_single_flow_keeps_its_create_only_fields_out_of_the_hash(tmp_path, registry, memory):
    memory.put(product("A"), "1")
    resolved = make_config(tmp_path, registry, {"products": {"create_only_fields": ["description"]}})
    await run_once(resolved, tmp_path, "products")
    memory.calls.clear()
    memory.put(product("A", description="enriched elsewhere"), "2")
    result = await run_once(resolved, tmp_path, "products")
    assert result.counts["unchanged"] == 1 and memory.calls == []


@pytest.mark.parametrize("linked", [True, False], ids=["linked", "found-by-key"])
async def test_a_change_skipped_by_update_existing_false_is_written_once_updates_are_on(tmp_path, registry, memory, linked):
    if linked:  # created by this flow, so linked
        memory.put(product("A"), "1")
        await run_once(make_config(tmp_path, registry, {"products": {}}), tmp_path, "products")
    else:  # already in the target, found by its SKU
        memory.target["T1"] = {
            "sku": "A",
            "name": "Product A",
            "description": "long text",
            "price_excl_tax": Decimal("10.00"),
            "active": True,
        }
    memory.put(product("A", price_excl_tax=Decimal("12.00")), "2")
    off = make_config(tmp_path, registry, {"products": {"options": {"update_existing": False}}})
    result = await run_once(off, tmp_path, "products")
    assert result.counts["skipped"] == 1
    assert next(r for r in memory.target.values() if r["sku"] == "A")["price_excl_tax"] != Decimal("12.00")
    memory.calls.clear()
    memory.put(product("A", price_excl_tax=Decimal("12.00")), "3")  # read again, updates still off: no call
    result = await run_once(off, tmp_path, "products")
    assert result.counts["updated"] == 0 and [c for c in memory.calls if c[0] != "find"] == []
    # the checkbox switched on: the change the skip kept back is written now
    memory.put(product("A", price_excl_tax=Decimal("12.00")), "4")
    on = make_config(tmp_path, registry, {"products": {}})
    result = await run_once(on, tmp_path, "products")
    assert result.counts["updated"] == 1, dict(result.counts)
    assert next(r for r in memory.target.values() if r["sku"] == "A")["price_excl_tax"] == Decimal("12.00")
    memory.calls.clear()
    memory.put(product("A", price_excl_tax=Decimal("12.00")), "5")
    result = await run_once(on, tmp_path, "products")
    assert result.counts["updated"] == 0 and memory.calls == []

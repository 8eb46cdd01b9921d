"""The audit trail keeps, per record, what went to the target: each write with its field diff —
old and new value where the target's record was read, the value written otherwise."""

from __future__ import annotations

from decimal import Decimal

import fakes
import pytest
import test_batch_create
from test_cli import memory_products_config
from test_engine import make_config, run_once
from test_orders import config as orders_config
from test_orders import order, seed_products
from test_orders import run as run_orders

from apicenterd import Customer, cli
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio


async def entries(tmp_path, flow):
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        return list(reversed(await store.audit(flow=flow)))
    finally:
        await store.close()


async def test_creates_and_updates_keep_their_field_diffs(tmp_path, registry, memory):
    memory.put(fakes.product("A", name="Chair"), "1")
    # B is in the target already (not linked): found by key, only what differs is written
    memory.target[memory.new_id()] = {"sku": "B", "name": "Old desk", "description": "long text", "price_excl_tax": Decimal("10.00"), "active": True}
    memory.put(fakes.product("B", name="Desk"), "2")
    resolved = make_config(tmp_path, registry)
    await run_once(resolved, tmp_path)
    a, b = await entries(tmp_path, "products")
    ((create,),) = [a.writes()]
    assert a.action == "created" and create["op"] == "create" and create["entity"] == "products" and create["target_id"] == a.target_id
    assert create["fields"]["sku"] == {"to": "A"} and create["fields"]["name"] == {"to": "Chair"}
    ((update,),) = [b.writes()]
    assert b.action == "updated" and update["op"] == "update"
    assert update["fields"] == {"name": {"from": "Old desk", "to": "Desk"}}  # only what differed, old and new

    memory.put(fakes.product("A", name="Armchair"), "3")  # linked: updated without reading the target
    await run_once(resolved, tmp_path)
    last = (await entries(tmp_path, "products"))[-1]
    ((update,),) = [last.writes()]
    assert last.source_id == "A" and last.action == "updated"
    assert update["fields"]["name"] == {"to": "Armchair"} and "from" not in update["fields"]["name"]


async def test_an_order_keeps_its_debtor_update_and_its_document(tmp_path, registry, memory):
    seed_products("A")
    memory.customers["C9"] = Customer(kind="person", name="Old Name", email="jan@example.com")
    memory.orders["1001"] = order("1001")
    await run_orders(orders_config(tmp_path, registry), tmp_path)
    (entry,) = await entries(tmp_path, "orders")
    customer, document = entry.writes()
    assert (customer["op"], customer["entity"], customer["target_id"]) == ("update", "customers", "C9")
    assert customer["fields"]["name"] == {"from": "Old Name", "to": "Jan Jansen"}
    assert (document["op"], document["entity"], document["target_id"]) == ("create", "orders", entry.target_id)
    assert document["fields"]["number"] == {"to": "1001"} and document["fields"]["customer_id"] == {"to": "C9"}


async def test_batched_creates_keep_their_fields_too(tmp_path, memory):
    for sku in ("S1", "S2"):
        memory.put(test_batch_create.product(sku), sku)
    await test_batch_create.run(tmp_path)
    for entry in await entries(tmp_path, "products"):
        ((write,),) = [entry.writes()]
        assert write["op"] == "create" and write["fields"]["sku"] == {"to": entry.source_id}


async def test_unchanged_and_failed_records_wrote_nothing(tmp_path, registry, memory):
    memory.put(fakes.product("A"), "1")
    memory.put(fakes.product("BAD"), "2")
    memory.fail_create.add("BAD")
    await run_once(make_config(tmp_path, registry), tmp_path)
    by_id = {e.source_id: e for e in await entries(tmp_path, "products")}
    assert by_id["BAD"].action == "failed" and by_id["BAD"].writes() == [] and by_id["BAD"].diff is None


def test_audit_diff_prints_old_and_new_values(tmp_path, registry, memory, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    memory.target[memory.new_id()] = {"sku": "B", "name": "Old desk", "description": "long text", "price_excl_tax": Decimal("10.00"), "active": True}
    memory.put(fakes.product("B", name="Desk"), "1")
    cfg = str(memory_products_config(tmp_path))
    assert cli.main(["flows", "run", "products", "--config", cfg]) == 0
    capsys.readouterr()
    assert cli.main(["audit", "--config", cfg, "--diff"]) == 0
    out = capsys.readouterr().out
    assert "update products" in out and "(name)" in out  # the WRITTEN column
    assert '    ~ name: "Old desk" -> "Desk"' in out.splitlines()
    import json

    assert cli.main(["audit", "--config", cfg, "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["writes"][0]["fields"] == {"name": {"from": "Old desk", "to": "Desk"}} and "diff" not in entry

"""The items source's backlog: counted once with ``logistics/Items/$count`` when a read is long (its
first sync page is full), then told without a call (the day budget may be spent by then)."""

from __future__ import annotations

import pytest
from apicenterd_exact_online import ExactOnlineConnector
from apicenterd_exact_online import connector as exact

from apicenterd import Entity
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio


def _counts(sim) -> list[str]:
    return [target for _method, target in sim.requests if "/$count" in target]


async def test_a_long_read_counts_its_items_once_and_the_backlog_costs_no_call(app, sim, settings, monkeypatch):
    monkeypatch.setattr(exact, "COUNT_FROM", 3)  # a "full first page" of 3 instead of 1,000
    for n in range(5):
        sim._store("logistics/Items", {"Code": f"B-{n}", "Description": f"Item {n}", "IsSalesItem": True})
    total = len(sim.data["logistics/Items"])
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        source = conn.source(Entity.PRODUCTS)
        assert await source.backlog(None) is None  # nothing counted yet: unknown, and no call to find out
        read = [change async for change in source.changes(None)]
        assert len(read) == total
        assert len(_counts(sim)) == 1
        sim.requests.clear()
        assert await source.backlog(None) == total
        assert sim.requests == []  # told from what the read counted
        # a short read (a delta of one item) is not counted
        sim._store("logistics/Items", {"Code": "B-NEW", "Description": "New", "IsSalesItem": True})
        cursor = read[-1].cursor
        assert [c.record.sku async for c in source.changes(cursor)] == ["B-NEW"]
        assert _counts(sim) == [] and await source.backlog(cursor) is None


async def test_the_simulator_counts_with_the_mandatory_filter(app, sim, settings):
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        client = conn.client
        assert await client.count("logistics/Items", filter="Modified ge datetime'1900-01-01T00:00:00'", what="items") == len(
            sim.data["logistics/Items"]
        )
        with pytest.raises(Exception, match="mandatory"):
            await client.request("GET", f"{await client.url('logistics/Items')}/$count", what="items without a filter")

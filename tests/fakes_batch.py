"""A fake target that answers many look-ups in one call (a plugin of its own, for the batch tests)."""

from __future__ import annotations

from fakes import PRODUCT_FIELDS, STOCK_FIELDS, MemoryStore, MemoryTarget, _sink

from apicenterd import Entity, Found, Product, hookimpl


class BatchTarget(MemoryTarget):
    """MemoryTarget that also answers many look-ups in one call."""

    name = "membatch"
    title = "Memory target with batch look-ups"
    sinks = {
        **MemoryTarget.sinks,
        Entity.PRODUCTS: _sink(Entity.PRODUCTS, PRODUCT_FIELDS, batch=True),
        Entity.STOCK: _sink(Entity.STOCK, STOCK_FIELDS, batch=True),
    }

    async def _find_many(self, entity, keys):
        MemoryStore.calls.append(("find_many", ",".join(keys)))
        found = {}
        for key in keys:
            for tid, row in MemoryStore.target.items():
                if row["sku"] == key:
                    found[key] = Found(tid, Product(**{k: v for k, v in row.items() if k != "stock"}))
        return found


@hookimpl
def register_connectors(register):
    register(BatchTarget)

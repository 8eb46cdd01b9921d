"""A fake target that answers many look-ups in one call (a plugin of its own, for the batch tests)."""

from __future__ import annotations

import sys

import fakes
from fakes import PRODUCT_FIELDS, STOCK_FIELDS, MemoryStore, MemoryTarget, OrderSettings, _document_sink, _sink

from apicenterd import Entity, Found, Product, RecordError, RetryableError, hookimpl
from apicenterd.config import Config, resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore


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


def _batch_create_sink(entity: Entity):
    base = _sink(entity, PRODUCT_FIELDS, batch=True)

    class MemoryBatchCreateSink(base):  # type: ignore[misc,valid-type]
        async def create_many(self, records):
            return await self.connector._create_many(entity, records)

    return MemoryBatchCreateSink


class BatchCreateTarget(BatchTarget):
    """BatchTarget that also creates many products in one call (``create_many``)."""

    name = "membatchcreate"
    title = "Memory target with batch look-ups and batch creates"
    sinks = {**BatchTarget.sinks, Entity.PRODUCTS: _batch_create_sink(Entity.PRODUCTS)}

    async def _create_many(self, entity, records):
        MemoryStore.calls.append(("create_many", ",".join(r.key() for r in records)))
        results = []
        for record in records:  # a transient failure part-way raises for the whole call, as a lost answer would
            try:
                results.append(await self._create(entity, record))
            except RecordError as exc:
                results.append(exc)
        return results


def _batch_update_sink(entity: Entity):
    base = _batch_create_sink(entity)

    class MemoryBatchUpdateSink(base):  # type: ignore[misc,valid-type]
        async def update_many(self, updates):
            return await self.connector._update_many(entity, updates)

    return MemoryBatchUpdateSink


class BatchUpdateTarget(BatchCreateTarget):
    """BatchCreateTarget that also updates many products in one call (``update_many``); the SKUs in
    ``refuse_update`` are refused one by one, as a 207 answer would."""

    name = "membatchupdate"
    title = "Memory target with batch look-ups, creates and updates"
    sinks = {**BatchTarget.sinks, Entity.PRODUCTS: _batch_update_sink(Entity.PRODUCTS)}
    refuse_update: set[str] = set()

    async def _update_many(self, entity, updates):
        MemoryStore.calls.append(("update_many", ",".join(r.key() for _, r, _ in updates)))
        results = []
        for target_id, record, fields in updates:  # a transient failure part-way raises for the whole call
            if record.key() in self.refuse_update:
                results.append(RecordError(f"target refuses the update of {record.key()}"))
                continue
            await self._update(entity, target_id, record, fields)
            results.append(None)
        return results


def _batch_document_sink():
    base = _document_sink(Entity.ORDERS, OrderSettings)

    class MemoryBatchDocumentSink(base):  # type: ignore[misc,valid-type]
        async def find_many(self, numbers):
            MemoryStore.calls.append(("find_many_orders", ",".join(numbers)))
            return {o.number: Found(tid, o) for tid, o in MemoryStore.target_orders.items() if o.number in numbers}

        async def create_many(self, requests):
            MemoryStore.calls.append(("create_many_orders", ",".join(r.record.number for r in requests)))
            results = []
            for request in requests:  # a transient failure part-way raises for the whole call, as a lost answer would
                number = request.record.number
                if number in BatchDocumentTarget.refuse:
                    results.append(RecordError(f"target refuses order {number}"))
                    continue
                left = MemoryStore.flaky.get(number, 0)
                if left:
                    MemoryStore.flaky[number] = left - 1
                    raise RetryableError(f"transient failure at order {number}")
                results.append(await self.connector._create(Entity.ORDERS, request.record))
            return results

    return MemoryBatchDocumentSink


def _customer_batch_sink():
    base = _sink(Entity.CUSTOMERS, None, batch=True)

    class MemoryCustomerBatchSink(base):  # type: ignore[misc,valid-type]
        async def find_many(self, keys):
            MemoryStore.calls.append(("find_many_customers", ",".join(keys)))
            return {c.email: Found(tid, c) for tid, c in MemoryStore.customers.items() if c.email in keys}

    return MemoryCustomerBatchSink


class BatchDocumentTarget(BatchTarget):
    """BatchTarget whose order sink looks up and creates many orders in one call, and whose
    customer sink looks up many e-mails in one call; the numbers in ``refuse`` are refused."""

    name = "membatchdocs"
    title = "Memory target with batch document creates"
    sinks = {**BatchTarget.sinks, Entity.ORDERS: _batch_document_sink(), Entity.CUSTOMERS: _customer_batch_sink()}
    refuse: set[str] = set()


def _customer_batch_create_sink():
    base = _customer_batch_sink()

    class MemoryCustomerBatchCreateSink(base):  # type: ignore[misc,valid-type]
        async def create_many(self, records):
            MemoryStore.calls.append(("create_many_customers", ",".join(r.key() for r in records)))
            results = []
            for record in records:
                if record.key() in BatchDebtorTarget.refuse_debtors:
                    results.append(RecordError(f"target refuses customer {record.key()}"))
                    continue
                left = MemoryStore.flaky.get(record.key(), 0)
                if left:  # a transient failure part-way raises for the whole call, as a lost answer would
                    MemoryStore.flaky[record.key()] = left - 1
                    raise RetryableError(f"transient failure at customer {record.key()}")
                results.append(await self.connector._create(Entity.CUSTOMERS, record))
            return results

    return MemoryCustomerBatchCreateSink


class BatchDebtorTarget(BatchDocumentTarget):
    """BatchDocumentTarget whose customer sink also creates many debtors in one call; the e-mails in
    ``refuse_debtors`` are refused one by one."""

    name = "membatchdebtors"
    title = "Memory target with batch document and debtor creates"
    sinks = {**BatchDocumentTarget.sinks, Entity.CUSTOMERS: _customer_batch_create_sink()}
    refuse_debtors: set[str] = set()


@hookimpl
def register_connectors(register):
    register(BatchTarget)
    register(BatchCreateTarget)
    register(BatchUpdateTarget)
    register(BatchDocumentTarget)
    register(BatchDebtorTarget)


async def run_products(tmp_path, target: str):
    """One run of a ``products`` flow from ``memsource`` to the fake ``target`` (state in
    ``tmp_path``): the result, every source product's link and the cursor after it."""
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "memsource"}, "dst": {"connector": target}},
        "flows": {"products": {"source": "src", "target": "dst", "entity": "products", "interval": "1m"}},
    }
    both = load_registry([("fakes", fakes), ("fakes_batch", sys.modules[__name__])], entry_points=False)
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolve(Config(**raw), both, tmp_path / "x.toml"), store, retry_base_delay=0)
    try:
        result = await engine.run_flow("products")
        links = {sku: await store.get_link("src", "products", sku, "dst") for sku in MemoryStore.source}
        return result, links, await store.get_cursor("products")
    finally:
        await engine.aclose()
        await store.close()

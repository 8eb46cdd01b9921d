"""Fake connectors for engine tests: a source and a target that keep their data in memory."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from apicenterd import (
    Change,
    Connector,
    ConnectorSettings,
    Customer,
    DocumentSink,
    Entity,
    Found,
    Order,
    Product,
    RecordError,
    RetryableError,
    Sink,
    Source,
    StockLevel,
    hookimpl,
)


class Crash(BaseException):
    """Stands for the process dying: nothing in the engine catches it."""


class MemoryStore:
    """Data of the fake systems, shared by every instance (like a real vendor's database)."""

    source: ClassVar[dict[str, Product]] = {}
    stock: ClassVar[dict[str, StockLevel]] = {}
    cursors: ClassVar[dict[str, str]] = {}
    target: ClassVar[dict[str, dict]] = {}
    calls: ClassVar[list[tuple[str, str]]] = []
    fail_create: ClassVar[set[str]] = set()
    flaky: ClassVar[dict[str, int]] = {}
    read_error_after: ClassVar[int | None] = None
    read_fail_at: ClassVar[list[int]] = []
    """Positions in a products read that fail once each (the first listed first)."""
    hold_cursor: ClassVar[bool] = False
    """Products read like a source that pages in another order: every change carries ``since``, the last the newest."""
    orders: ClassVar[dict[str, Order]] = {}
    customers: ClassVar[dict[str, Customer]] = {}
    target_orders: ClassVar[dict[str, Order]] = {}
    crash_on_order: ClassVar[set[str]] = set()
    target_invoices: ClassVar[dict[str, Any]] = {}
    shipments: ClassVar[dict[str, Any]] = {}
    source_customers: ClassVar[dict[str, Customer]] = {}
    _next_id: ClassVar[int] = 0

    @classmethod
    def reset(cls) -> None:
        """Forget everything."""
        cls.source, cls.stock, cls.cursors, cls.target, cls.calls = {}, {}, {}, {}, []
        cls.fail_create, cls.flaky, cls.read_error_after, cls._next_id = set(), {}, None, 0
        cls.read_fail_at, cls.hold_cursor = [], False
        cls.orders, cls.customers, cls.target_orders, cls.crash_on_order = {}, {}, {}, set()
        cls.target_invoices, cls.source_customers, cls.shipments = {}, {}, {}

    @classmethod
    def put(cls, product: Product, at: str) -> None:
        """Add or change a source product; ``at`` is its change time (the cursor)."""
        cls.source[product.sku] = product
        cls.cursors[product.sku] = at

    @classmethod
    def new_id(cls) -> str:
        cls._next_id += 1
        return f"T{cls._next_id}"


class SourceSettings(ConnectorSettings):
    base_url: str = "memory://source"


def _source(entity: Entity) -> type[Source[Any]]:
    """A source of ``entity`` that reads through its connector's ``_read``."""

    class MemoryEntitySource(Source[Any]):
        def changes(self, since):
            return self.connector._read(entity, since)

    MemoryEntitySource.__qualname__ = f"MemorySource[{entity}]"
    return MemoryEntitySource


def _sink(entity: Entity, written: frozenset[str] | None = None, batch: bool = False) -> type[Sink[Any]]:
    """A sink of ``entity`` that writes through its connector's ``_find``/``_create``/``_update``."""

    class MemoryEntitySink(Sink[Any]):
        written_fields = written
        writes_in_flight = 4  # records of different keys are independent here

        async def find(self, key):
            return await self.connector._find(entity, key)

        async def create(self, record):
            return await self.connector._create(entity, record)

        async def update(self, target_id, record, fields):
            return await self.connector._update(entity, target_id, record, fields)

    if batch:

        class MemoryBatchSink(MemoryEntitySink):
            async def find_many(self, keys):
                return await self.connector._find_many(entity, keys)

        return MemoryBatchSink
    return MemoryEntitySink


def _document_sink(entity: Entity, settings: type[BaseModel] | None = None) -> type[DocumentSink[Any]]:
    """A document sink of ``entity`` (orders, invoices) over the connector's ``_find``/``_create``."""

    class MemoryDocumentSink(DocumentSink[Any]):
        documents = frozenset({"order", "invoice"})

        async def find(self, number):
            return await self.connector._find(entity, number)

        async def create(self, request):
            return await self.connector._create(entity, request.record)

    MemoryDocumentSink.settings = settings
    return MemoryDocumentSink


class MemorySource(Connector):
    """Reads products and stock from MemoryStore.source, ordered by change time."""

    name = "memsource"
    title = "Memory source"
    Settings = SourceSettings
    sources = {e: _source(e) for e in (Entity.PRODUCTS, Entity.STOCK, Entity.ORDERS, Entity.CUSTOMERS, Entity.SHIPMENTS)}

    async def _read(self, entity, since):
        if entity is Entity.SHIPMENTS:
            for key, shipment in sorted(MemoryStore.shipments.items()):
                yield Change(key, shipment, key)
            return
        if entity is Entity.CUSTOMERS:
            for email, customer in sorted(MemoryStore.source_customers.items()):
                yield Change(email, customer, email)
            return
        if entity is Entity.ORDERS:
            for number, order in sorted(MemoryStore.orders.items()):
                yield Change(number, order, number)
            return
        if entity is Entity.STOCK:
            for sku, level in sorted(MemoryStore.stock.items()):
                yield Change(sku, level, "0")
            return
        items = sorted(MemoryStore.source.items(), key=lambda kv: (MemoryStore.cursors[kv[0]], kv[0]))
        wanted = [sku for sku, _ in items if since is None or MemoryStore.cursors[sku] >= since]
        for n, (sku, product) in enumerate(items):
            cursor = MemoryStore.cursors[sku]
            if since is not None and cursor < since:
                continue
            if MemoryStore.read_error_after is not None and n >= MemoryStore.read_error_after:
                raise RetryableError("source went away")
            position = wanted.index(sku)  # in this read
            if MemoryStore.read_fail_at and MemoryStore.read_fail_at[0] == position:
                MemoryStore.read_fail_at.pop(0)
                raise RetryableError(f"source went away at record {position}")
            if MemoryStore.hold_cursor and position < len(wanted) - 1:
                cursor = since or ""
            yield Change(sku, product, cursor)


class OrderSettings(BaseModel):
    """What the fake target needs on every order, MplusKASSA style."""

    model_config = ConfigDict(extra="forbid")
    branch_id: str
    employee_number: str = "999999"


class TargetSettings(ConnectorSettings):
    base_url: str = "memory://target"


PRODUCT_FIELDS = frozenset({"sku", "name", "description", "price_excl_tax", "active"})
STOCK_FIELDS = frozenset({"sku", "available"})


class MemoryTarget(Connector):
    """Writes products (by SKU) and stock into MemoryStore.target, counting every call."""

    name = "memtarget"
    title = "Memory target"
    Settings = TargetSettings
    sinks = {
        Entity.PRODUCTS: _sink(Entity.PRODUCTS, PRODUCT_FIELDS),
        Entity.STOCK: _sink(Entity.STOCK, STOCK_FIELDS),
        Entity.CUSTOMERS: _sink(Entity.CUSTOMERS),
        Entity.ORDERS: _document_sink(Entity.ORDERS, OrderSettings),
        Entity.INVOICES: _document_sink(Entity.INVOICES),
    }

    def _flake(self, sku: str) -> None:
        left = MemoryStore.flaky.get(sku, 0)
        if left:
            MemoryStore.flaky[sku] = left - 1
            raise RetryableError(f"transient failure for {sku}")

    async def _find(self, entity, key):
        MemoryStore.calls.append(("find", key))
        if entity is Entity.CUSTOMERS:
            for tid, customer in MemoryStore.customers.items():
                if customer.email == key:
                    return Found(tid, customer)
            return None
        if entity is Entity.INVOICES:
            for tid, invoice in MemoryStore.target_invoices.items():
                if invoice.number == key:
                    return Found(tid, invoice)
            return None
        if entity is Entity.ORDERS:
            for tid, order in MemoryStore.target_orders.items():
                if order.number == key:
                    return Found(tid, order)
            return None
        for tid, row in MemoryStore.target.items():
            if row["sku"] == key:
                if entity is Entity.STOCK:
                    return Found(tid, None)
                return Found(tid, Product(**{k: v for k, v in row.items() if k != "stock"}))
        return None

    async def _create(self, entity, record):
        MemoryStore.calls.append(("create", record.key()))
        if entity is Entity.CUSTOMERS:
            tid = MemoryStore.new_id()
            MemoryStore.customers[tid] = record
            return tid
        if entity is Entity.INVOICES:
            tid = MemoryStore.new_id()
            MemoryStore.target_invoices[tid] = record
            return tid
        if entity is Entity.ORDERS:
            if record.number in MemoryStore.crash_on_order:
                MemoryStore.crash_on_order.discard(record.number)
                raise Crash(record.number)
            if record.customer_id is None:
                raise RecordError("order without customer_id")
            tid = MemoryStore.new_id()
            MemoryStore.target_orders[tid] = record
            return tid
        if entity is Entity.STOCK:
            raise RecordError(f"no product {record.sku} in target")
        if record.sku in MemoryStore.fail_create:
            raise RecordError(f"target rejects {record.sku}: name too long")
        self._flake(record.sku)
        tid = MemoryStore.new_id()
        MemoryStore.target[tid] = record.model_dump(include=set(PRODUCT_FIELDS))
        return tid

    async def _update(self, entity, target_id, record, fields):
        MemoryStore.calls.append(("update", record.key()))
        if entity is Entity.CUSTOMERS:
            current = MemoryStore.customers[target_id]
            MemoryStore.customers[target_id] = current.model_copy(update={f: getattr(record, f) for f in fields})
            return
        self._flake(record.key())
        row = MemoryStore.target[target_id]
        if entity is Entity.STOCK:
            row["stock"] = record.available
            return
        for field in fields:
            row[field] = getattr(record, field)


@hookimpl
def register_connectors(register):
    register(MemorySource)
    register(MemoryTarget)


def product(sku: str, **kw) -> Product:
    """A product with sensible defaults."""
    data = {"sku": sku, "name": f"Product {sku}", "price_excl_tax": Decimal("10.00"), "description": "long text"}
    data.update(kw)
    return Product(**data)

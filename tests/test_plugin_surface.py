"""The plugin surface: sources and sinks per entity, what follows from them, and the registry's checks by type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from apicenterd import (
    Change,
    Connector,
    Customer,
    DocumentRequest,
    DocumentSink,
    Entity,
    Found,
    Order,
    PluginError,
    Product,
    RecordError,
    Sink,
    Source,
)
from apicenterd.context import Context
from apicenterd.registry import validate_connector

pytestmark = pytest.mark.anyio


class Products(Source[Product]):
    field_map = {"sku": "code"}

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        yield self.mapped("1", "c1", lambda: Product(sku="A", name="a"))
        yield self.mapped("2", "c2", lambda: Product(sku="", name="no sku"))  # cannot be mapped


class ProductSink(Sink[Product]):
    written_fields = frozenset({"sku", "name"})
    field_map = {"name": "title"}

    async def find(self, key: str) -> Found | None:
        return Found("p-" + key, None, {"code": key}) if key == "A" else None

    async def create(self, record: Product) -> str:
        return "new"

    async def update(self, target_id: str, record: Product, fields: frozenset[str]) -> None:
        return None


class Orders(DocumentSink[Order]):
    documents = frozenset({"order", "invoice"})
    created: list[DocumentRequest[Order]] = []

    async def find(self, number: str) -> Found | None:
        return None

    async def create(self, request: DocumentRequest[Order]) -> str:
        self.created.append(request)
        return "o1"


class Acme(Connector):
    name = "acme"
    sources = {Entity.PRODUCTS: Products}
    sinks = {Entity.PRODUCTS: ProductSink, Entity.ORDERS: Orders}


def test_declarations_follow_from_sources_and_sinks():
    assert Acme.reads == {Entity.PRODUCTS}
    assert Acme.writes == {Entity.PRODUCTS, Entity.ORDERS}
    assert Acme.written_fields == {Entity.PRODUCTS: frozenset({"sku", "name"})}
    assert Acme.field_map == {Entity.PRODUCTS: {"sku": "code", "name": "title"}}
    assert Acme.documents == {"order", "invoice"}
    validate_connector(Acme)


async def test_unmappable_item_is_a_failed_change_not_a_gap():
    conn = Acme(Acme.Settings(base_url="http://x"), Context("acme"))
    changes = [c async for c in conn.read(Entity.PRODUCTS, None)]
    assert [c.source_id for c in changes] == ["1", "2"]
    assert changes[1].record is None and "sku" in changes[1].error
    assert changes[1].cursor == "c2"


async def test_entity_door_hands_calls_to_the_parts():
    conn = Acme(Acme.Settings(base_url="http://x"), Context("acme"))
    assert (await conn.find(Entity.PRODUCTS, "A")).vendor == {"code": "A"}
    assert await conn.find_many(Entity.PRODUCTS, ["A", "B"]) == {"A": Found("p-A", None, {"code": "A"})}
    with pytest.raises(RecordError, match="cannot write customers"):
        await conn.find(Entity.CUSTOMERS, "x")
    with pytest.raises(RecordError, match="expected a Product"):
        await conn.create(Entity.PRODUCTS, Customer(kind="person", name="x"))
    with pytest.raises(RecordError, match="does not change sales documents"):
        await conn.update(Entity.ORDERS, "1", Order.model_construct(number="1"), frozenset())


def _connector(**parts):
    return type("Bad", (Connector,), {"name": "bad", **parts})


def test_registry_names_the_missing_methods():
    class Half(Sink[Product]):
        async def find(self, key: str) -> Found | None:
            return None

    with pytest.raises(PluginError, match=r"does not implement create\(\), update\(\)"):
        validate_connector(_connector(sinks={Entity.PRODUCTS: Half}))


def test_registry_checks_the_record_type_of_each_part():
    with pytest.raises(PluginError, match="handles Product, but customers are Customer"):
        validate_connector(_connector(sinks={Entity.CUSTOMERS: ProductSink}))
    with pytest.raises(PluginError, match="must be a subclass of apicenterd.DocumentSink"):
        validate_connector(_connector(sinks={Entity.ORDERS: ProductSink}))
    with pytest.raises(PluginError, match="must be a subclass of apicenterd.Source"):
        validate_connector(_connector(sources={Entity.PRODUCTS: ProductSink}))


def test_registry_refuses_a_connector_without_parts():
    with pytest.raises(PluginError, match="no sources and no sinks"):
        validate_connector(_connector())


async def test_the_connection_says_its_circuit_and_takes_a_pause():
    """What the engine took with getattr(context, "breaker"/"limiters") is the context's own API."""
    from apicenterd.circuit import CircuitBreaker

    breaker = CircuitBreaker("acme", failure_threshold=1, recovery_timeout=60)
    context = Context("acme", breaker=breaker, retry_after_cap=30)
    assert context.circuit() == (False, "") and context.retry_after_cap == 30
    breaker.failure("503 from the vendor")
    assert context.circuit() == (True, "503 from the vendor")
    await context.pause(120, reason="429")  # capped at retry_after_cap
    assert 0 < context.limiters.pause_remaining() <= 30
    assert Context("bare", breaker=None).circuit() == (False, "")


@pytest.mark.parametrize(
    "convert, reason",
    [
        (lambda: {}["sku"], "the vendor's item has no field 'sku'"),
        (lambda: Decimal("n/a"), "a number cannot be read (InvalidOperation)"),
        (lambda: len(None), "has no len()"),  # type: ignore[arg-type]
        (lambda: int("x"), "invalid literal"),
    ],
)
def test_mapped_turns_what_a_bad_item_raises_into_a_failed_change(convert, reason):
    """A vendor item that cannot be converted fails that record (audited, dead-lettered), never the read."""
    change = Source.mapped("17", "c1", convert)
    assert change.record is None and change.source_id == "17" and change.cursor == "c1"
    assert change.error is not None and reason in change.error

"""Product characteristics (and a sales order's payment method read back): the canonical product's attributes that ``item_attributes`` maps go to
Visma.net as ``attributeLines`` and come back from ``attributes``; a found item with the same
characteristics is unchanged, a changed one is updated with only its attribute lines."""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from apicenterd_visma_net import VismaNetConnector
from apicenterd_visma_net.mapping import order_from

from apicenterd import Attribute, Entity, Product, RecordError
from apicenterd.compare import differing_fields
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio

MAP = {"Colour": "COLOR", "Size": "SIZE"}


def product(**attributes: str) -> Product:
    return Product(
        sku="TS-1", name="T-shirt", price_excl_tax=Decimal("10.00"), tax_rate=Decimal(21), currency="EUR",
        attributes=tuple(Attribute(name=k, value=v) for k, v in attributes.items()),
    )  # fmt: skip


async def test_mapped_characteristics_are_written_read_back_and_compared(app, sim, settings):
    async with connect(VismaNetConnector, {**settings, "item_attributes": MAP}, app=app) as conn:
        record = conn.normalize(Entity.PRODUCTS, product(Size="L", Colour="Red", Brand="Acme"))
        assert [a.name for a in record.attributes] == ["Colour", "Size"]  # Brand is not mapped: not carried
        await conn.create(Entity.PRODUCTS, record)
        stored = sim.inventory["TS-1"]["attributes"]
        assert [(a["id"], a["value"]) for a in stored] == [("COLOR", "Red"), ("SIZE", "L")]
        found = await conn.find(Entity.PRODUCTS, "TS-1")
        fields = conn.sink(Entity.PRODUCTS).written_fields
        assert differing_fields(record, found.record, fields) == frozenset()
        changed = conn.normalize(Entity.PRODUCTS, product(Size="XL", Colour="Red"))
        assert differing_fields(changed, found.record, fields) == frozenset({"attributes"})
        sim.requests.clear()
        await conn.update(Entity.PRODUCTS, "TS-1", changed, frozenset({"attributes"}))
        assert [r[0] for r in sim.requests] == ["PUT"]
        assert {a["id"]: a["value"] for a in sim.inventory["TS-1"]["attributes"]} == {"COLOR": "Red", "SIZE": "XL"}


async def test_without_a_map_characteristics_are_not_carried_and_an_unknown_attribute_id_is_refused(app, sim, settings):
    async with connect(VismaNetConnector, settings, app=app) as conn:
        record = conn.normalize(Entity.PRODUCTS, product(Colour="Red"))
        assert record.attributes == ()
        await conn.create(Entity.PRODUCTS, record)
        assert "attributes" not in sim.inventory["TS-1"]
    async with connect(VismaNetConnector, {**settings, "item_attributes": {"Colour": "NOPE"}}, app=app) as conn:
        with pytest.raises(RecordError, match="Attribute 'NOPE' does not exist"):
            await conn.create(Entity.PRODUCTS, conn.normalize(Entity.PRODUCTS, product(Colour="Red").model_copy(update={"sku": "TS-2"})))


@pytest.mark.parametrize("sent", ["CARD", {"id": "CARD", "description": "Card"}])
def test_a_sales_orders_payment_method_is_read_in_either_shape(sent):
    item = {"orderType": "SO", "orderNo": "1", "date": "2024-05-01T10:00:00", "paymentMethod": sent, "lines": []}
    assert order_from(item, zone=ZoneInfo("UTC"), customer=None).payment_method == "CARD"

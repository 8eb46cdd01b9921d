"""The HubSpot connector against its simulator: products, customers, deals; batches, 207s, search paging."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from apicenterd_hubspot import HubSpotConnector

from apicenterd import Contact, Customer, Entity, Found, Order, OrderLine, Product, RecordError
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio


def product(sku: str, **kw) -> Product:
    return Product(sku=sku, name=kw.pop("name", f"Name {sku}"), price_excl_tax=kw.pop("price", Decimal("12.50")), **kw)


async def test_product_created_by_upsert_on_the_unique_property_and_found_by_it(app, sim, settings):
    async with connect(HubSpotConnector, settings, app=app) as hs:
        assert await hs.find(Entity.PRODUCTS, "SKU-1") is None
        created = await hs.create(Entity.PRODUCTS, product("SKU-1"))
        found = await hs.find(Entity.PRODUCTS, "SKU-1")
    assert found is not None and found.id == created
    assert found.record == hs.normalize(Entity.PRODUCTS, product("SKU-1"))
    stored = sim.objects["products"][created]["properties"]
    assert stored["apicenterd_sku"] == "SKU-1" and stored["hs_sku"] == "SKU-1" and stored["price"] == "12.50"
    assert sim.properties["products"]["apicenterd_sku"]["hasUniqueValue"] is True
    assert sim.count("POST", "/crm/v3/objects/products/batch/upsert") == 1


async def test_update_writes_only_the_changed_fields(app, sim, settings):
    async with connect(HubSpotConnector, settings, app=app) as hs:
        pid = await hs.create(Entity.PRODUCTS, product("SKU-1", description="old"))
        await hs.update(Entity.PRODUCTS, pid, product("SKU-1", price=Decimal("9.99"), description="new"), frozenset({"price_excl_tax"}))
    props = sim.objects["products"][pid]["properties"]
    assert props["price"] == "9.99" and props["description"] == "old"


async def test_find_many_reads_100_a_call_and_leaves_the_missing_out(app, sim, settings):
    for n in range(150):
        sim.create("products", {"name": f"P{n}", "hs_sku": f"S{n}"})
    async with connect(HubSpotConnector, settings, app=app) as hs:
        await hs.setup()
        for item in list(sim.objects["products"].values()):
            item["properties"]["apicenterd_sku"] = item["properties"]["hs_sku"]
        sim.reset_counts()
        found = await hs.find_many(Entity.PRODUCTS, [f"S{n}" for n in range(150)] + ["NOPE"])
    assert sorted(found) == sorted(f"S{n}" for n in range(150))
    assert sim.count("POST", "/crm/v3/objects/products/batch/read") == 2


async def test_a_207_fails_only_the_inputs_it_names(app, sim, settings):
    sim.create("products", {"name": "taken", "hs_sku": "x"})
    async with connect(HubSpotConnector, settings, app=app) as hs:
        await hs.setup()
        inputs = [
            {"properties": {"name": "ok", "price": "1"}},
            {"properties": {"name": "bad", "price": "not-a-number"}},
            {"properties": {"nope": "1"}},
        ]
        outcome = await hs.client.batch("products", "create", inputs, ["a", "b", "c"], what="products")
    assert sorted(outcome.results) == ["a"]
    assert "INVALID_DECIMAL" in outcome.errors["b"] and "PROPERTY_DOESNT_EXIST" in outcome.errors["c"]


async def test_batches_never_exceed_100_inputs(app, sim, settings):
    async with connect(HubSpotConnector, settings, app=app) as hs:
        outcome = await hs.client.batch(
            "products", "create", [{"properties": {"name": f"P{n}"}} for n in range(250)], [f"k{n}" for n in range(250)], what="products"
        )
    assert len(outcome.results) == 250 and not outcome.errors
    assert sim.count("POST", "/crm/v3/objects/products/batch/create") == 3


async def test_unknown_property_is_a_record_error_with_category_and_correlation_id(app, sim, settings):
    async with connect(HubSpotConnector, settings, app=app) as hs:
        with pytest.raises(RecordError, match=r"PROPERTY_DOESNT_EXIST.*\[VALIDATION_ERROR, correlationId [0-9a-f-]{36}\]"):
            await hs.client.json("POST", "/crm/v3/objects/products", "product", json={"properties": {"nope": "1"}})


async def test_source_reads_past_the_search_window_by_restarting_at_the_last_stamp(app, sim, settings):
    sim.search_window = 400  # the real one is 10,000: the same logic at a test's size
    sim.search_limit.window.limit = 0  # the client's own limiter is off too: no waiting in a test
    for n in range(1000):
        sim.create("products", {"name": f"P{n}", "hs_sku": f"S{n:04d}"})
    async with connect(HubSpotConnector, settings, app=app, rate_limits=False) as hs:
        import apicenterd_hubspot.client as client_module

        original = client_module.SEARCH_WINDOW
        client_module.SEARCH_WINDOW = 400
        try:
            changes = [c async for c in hs.read(Entity.PRODUCTS, None)]
        finally:
            client_module.SEARCH_WINDOW = original
    skus = [c.record.sku for c in changes]
    assert len(skus) == len(set(skus)) == 1000
    cursors = [c.cursor for c in changes]
    assert cursors == sorted(cursors)


async def test_source_from_a_cursor_reads_what_changed_since(app, sim, settings):
    for n in range(5):
        sim.create("products", {"name": f"P{n}", "hs_sku": f"S{n}"})
    async with connect(HubSpotConnector, settings, app=app) as hs:
        first = [c async for c in hs.read(Entity.PRODUCTS, None)]
        sim.update("products", next(iter(sim.objects["products"])), {"name": "renamed"})
        again = [c async for c in hs.read(Entity.PRODUCTS, first[-1].cursor)]
    assert [c.record.name for c in again] == ["P4", "renamed"]  # the last one (same stamp) again, then the change


async def test_customer_company_with_contact_created_and_found_by_email(app, sim, settings):
    customer = Customer(kind="company", name="Acme AB", email="Info@Acme.example", contact=Contact(first_name="Anna", last_name="Berg"))
    async with connect(HubSpotConnector, settings, app=app) as hs:
        target = await hs.create(Entity.CUSTOMERS, hs.normalize(Entity.CUSTOMERS, customer))
        found = await hs.find(Entity.CUSTOMERS, "info@acme.example")
    assert found is not None and found.id == target and target.startswith("company:")
    assert found.record.kind == "company" and found.record.name == "Acme AB" and found.record.contact.first_name == "Anna"


async def test_deal_with_line_items_and_associations_and_skipped_when_it_exists(app, sim, settings):
    order = Order(
        number="1001",
        status="open",
        created_at=datetime(2026, 5, 1, tzinfo=timezone.utc),
        currency="SEK",
        total=Decimal("250.00"),
        customer=Customer(kind="person", name="Per Son", email="per@example.com"),
        lines=(
            OrderLine(sku="SKU-1", name="Thing", quantity=Decimal(2), unit_price=Decimal("100")),
            OrderLine(kind="shipping", name="Frakt", unit_price=Decimal("50")),
        ),
    )
    from apicenterd_hubspot.connector import DealSettings

    from apicenterd import DocumentRequest

    async with connect(HubSpotConnector, settings, app=app) as hs:
        pid = await hs.create(Entity.PRODUCTS, product("SKU-1"))
        cid = await hs.create(Entity.CUSTOMERS, hs.normalize(Entity.CUSTOMERS, order.customer))
        request = DocumentRequest(order, "order", Found(cid), {"SKU-1": Found(pid)}, DealSettings(stages={"open": "appointmentscheduled"}))
        deal_id = await hs.document_sink(Entity.ORDERS).create(request)
        assert (await hs.document_sink(Entity.ORDERS).find("1001")).id == deal_id
    deal = sim.objects["deals"][deal_id]["properties"]
    assert deal["apicenterd_order"] == "1001" and deal["dealstage"] == "appointmentscheduled" and deal["amount"] == "250"
    lines = sim.associations[("deals", "line_items")][deal_id]
    assert len(lines) == 2 and all(ids == {19} for ids in lines.values())
    products = sorted(sim.objects["line_items"][i]["properties"].get("hs_product_id") or "-" for i in lines)
    assert products == sorted([pid, "-"])
    refs = sorted(sim.objects["line_items"][i]["properties"]["apicenterd_line"] for i in lines)
    assert refs == ["1001/1", "1001/2"]
    assert set(sim.associations[("deals", "contacts")][deal_id]) == {cid.split(":")[1]}


async def test_status_without_stage_fails_the_order(app, settings):
    from apicenterd_hubspot.connector import DealSettings

    from apicenterd import DocumentRequest

    order = Order(number="1", status="weird", created_at=datetime(2026, 1, 1, tzinfo=timezone.utc), total=Decimal(1))
    async with connect(HubSpotConnector, settings, app=app) as hs:
        with pytest.raises(RecordError, match="status 'weird' has no deal stage"):
            await hs.document_sink(Entity.ORDERS).create(DocumentRequest(order, "order", None, {}, DealSettings()))


async def test_new_contacts_get_the_configured_lifecycle_stage_and_a_refused_one_fails_the_record(app, sim, settings):
    people = [Customer(kind="person", name=f"P {n}", email=f"p{n}@example.com") for n in range(3)]
    async with connect(HubSpotConnector, {**settings, "lifecycle_stage": "customer"}, app=app) as hs:
        ids = await hs.create_many(Entity.CUSTOMERS, [hs.normalize(Entity.CUSTOMERS, p) for p in people])
    assert all(isinstance(i, str) for i in ids) and sim.count("POST", "/crm/v3/objects/contacts/batch/upsert") == 1
    assert {c["properties"]["lifecyclestage"] for c in sim.objects["contacts"].values()} == {"customer"}
    async with connect(HubSpotConnector, {**settings, "lifecycle_stage": "not-a-stage"}, app=app) as hs:
        [refused] = await hs.create_many(
            Entity.CUSTOMERS, [hs.normalize(Entity.CUSTOMERS, Customer(kind="person", name="Q", email="q@example.com"))]
        )
    assert isinstance(refused, RecordError) and "INVALID_OPTION" in str(refused) and "q@example.com" in str(refused)


async def test_a_product_without_sku_is_a_failed_change_not_a_gap(app, sim, settings):
    sim.create("products", {"name": "no sku"})
    sim.create("products", {"name": "ok", "hs_sku": "OK-1"})
    sim.create("products", {"name": "bad price", "hs_sku": "BAD-1"})
    sim.objects["products"][max(sim.objects["products"])]["properties"]["price"] = "n/a"  # as a damaged answer would carry
    async with connect(HubSpotConnector, settings, app=app) as hs:
        changes = [c async for c in hs.read(Entity.PRODUCTS, None)]
    assert [c.record.sku if c.record else None for c in changes] == [None, "OK-1", None]
    assert "no SKU" in changes[0].error and "'n/a' is not a number" in changes[2].error


async def test_a_search_answer_without_results_is_a_clear_error(app, sim, settings):
    from apicenterd import FatalError

    sim.fail_next(200, {"total": 0}, path_prefix="/crm/v3/objects/products/search")
    async with connect(HubSpotConnector, settings, app=app) as hs:
        with pytest.raises(FatalError, match="the search answered without a results list"):
            [c async for c in hs.read(Entity.PRODUCTS, None)]

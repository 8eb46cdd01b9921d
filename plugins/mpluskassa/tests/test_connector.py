"""The entities against the (validating) simulator: products and numbering, variants, categories,
stock per branch, relations, till orders as a source, and orders into the till."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from apicenterd_mpluskassa import MplusKassaConnector
from apicenterd_mpluskassa.numbers import STORE_KEY
from apicenterd_mpluskassa.orders import TillOrderSettings
from apicenterd_mpluskassa.simulator import response_xml

from apicenterd import (
    Address,
    Attribute,
    Contact,
    Customer,
    DocumentRequest,
    Entity,
    FatalError,
    Found,
    Order,
    OrderLine,
    Product,
    RecordError,
    RetryableError,
    StockLevel,
)
from apicenterd.testing import MemoryTokenStore, connect

pytestmark = pytest.mark.anyio


def product(sku: str, name: str = "Mok", **kw) -> Product:
    kw.setdefault("tax_rate", Decimal(21))
    return Product(sku=sku, name=name, price_incl_tax=Decimal("12.10"), **kw)


async def write(conn, record: Product) -> str:
    normalized = conn.normalize(Entity.PRODUCTS, record)
    return await conn.create(Entity.PRODUCTS, normalized)


# ---------------------------------------------------------------- products and article numbers


async def test_a_numeric_sku_is_the_article_number_and_reads_back_unchanged(app, settings):
    async with connect(MplusKassaConnector, settings, app=app) as conn:
        record = conn.normalize(Entity.PRODUCTS, product("4711", ean="8712345678906", description="Groot"))
        assert record.price_excl_tax == Decimal("10.00")  # both prices, as MplusKASSA keeps both
        assert await conn.create(Entity.PRODUCTS, record) == "4711"
        found = await conn.find(Entity.PRODUCTS, "4711")
    assert found.id == "4711" and found.record == record
    assert 4711 in app.state.sim.article_product


async def test_a_non_numeric_sku_is_a_record_error_by_default(app, settings):
    async with connect(MplusKassaConnector, settings, app=app) as conn:
        with pytest.raises(RecordError, match=r"SKU 'MUG-RED' is not numeric.*allocate_article_numbers = true"):
            conn.normalize(Entity.PRODUCTS, product("MUG-RED"))
        assert await conn.find(Entity.PRODUCTS, "MUG-RED") is None


async def test_allocated_numbers_are_persisted_never_reallocated_and_never_collide(app, settings):
    sim = app.state.sim
    tokens = MemoryTokenStore()
    config = {**settings, "allocate_article_numbers": True, "allocation_range": [500, 600]}
    sim._store_product({"description": "taken"}, [{"articleNumber": 500, "description": "already there"}])
    async with connect(MplusKassaConnector, config, app=app, tokens=tokens) as conn:
        first = await write(conn, product("MUG-RED"))
        second = await write(conn, product("MUG-BLUE"))
    assert (first, second) == ("501", "502")  # 500 was taken in MplusKASSA
    assert (await tokens.load())[STORE_KEY]["next_article"] > 502  # saved before use
    article = sim.products[sim.article_product[501]]["articles"][0]
    assert article["pluNumber"] == "MUG-RED"  # the SKU stays on the article: found again by it
    # a new connection (after a restart) finds the SKU by its pluNumber and allocates nothing
    async with connect(MplusKassaConnector, config, app=app, tokens=tokens) as conn:
        found = await conn.find(Entity.PRODUCTS, "MUG-RED")
        assert found.id == "501" and found.record.sku == "MUG-RED"
        # an article deleted in the till: its number is not handed to another SKU
        del sim.products[sim.article_product.pop(502)]
        green = int(await write(conn, product("MUG-GREEN")))
    assert green > 502 and green <= 600


async def test_the_range_used_up_is_a_clear_fatal_error(app, settings):
    config = {**settings, "allocate_article_numbers": True, "allocation_range": [700, 700]}
    async with connect(MplusKassaConnector, config, app=app) as conn:
        await write(conn, product("A-1"))
        with pytest.raises(FatalError, match="700..700 is used up; widen allocation_range"):
            await write(conn, product("A-2"))


async def test_variants_by_parent_sku_are_one_product_with_attributes_and_features(app, settings):
    sim = app.state.sim
    config = {**settings, "variant_grouping": "parent_sku", "feature_fields": {"country of origin": "Herkomst"}}
    attributes = (
        Attribute(name="colour", value="rood"),
        Attribute(name="size", value="M"),
        Attribute(name="country of origin", value="PT"),
        Attribute(name="material", value="katoen"),
    )
    async with connect(MplusKassaConnector, config, app=app) as conn:
        red = conn.normalize(Entity.PRODUCTS, product("6001", "T-shirt rood M", parent_sku="6000", attributes=attributes))
        assert [a.name for a in red.attributes] == ["colour", "size", "country of origin"]  # what the article keeps
        await conn.create(Entity.PRODUCTS, red)
        await write(conn, product("6002", "T-shirt blauw M", parent_sku="6000", attributes=(Attribute(name="colour", value="blauw"),)))
        assert set(sim.products) >= {6000}
        articles = sim.products[6000]["articles"]
        assert [a["articleNumber"] for a in articles] == [6001, 6002]
        assert articles[0]["colour"] == "rood" and articles[0]["size"] == "M"
        assert articles[0]["customFieldList"]["customField"]["fieldName"] == "Herkomst"
        found = await conn.find(Entity.PRODUCTS, "6001")
        assert found.record.attributes == red.attributes and found.record.type == "variant" and found.record.parent_sku == "6000"
        read = {c.source_id: c.record async for c in conn.read(Entity.PRODUCTS, None)}
    assert read["6002"].parent_sku == "6000"


async def test_a_numeric_group_key_never_takes_the_tills_own_product_and_keeps_its_number(app, settings):
    sim = app.state.sim
    tokens = MemoryTokenStore()
    till_own = sim._store_product({"description": "the till's own"}, [{"articleNumber": 7001, "description": "koffie"}], 7000)
    assert till_own["productNumber"] == 7000
    strict = {**settings, "variant_grouping": "parent_sku"}
    async with connect(MplusKassaConnector, strict, app=app, tokens=tokens) as conn:
        with pytest.raises(RecordError, match=r"variant group '7000': product number 7000 is already another product's"):
            await write(conn, product("7101", parent_sku="7000"))
    assert [a["articleNumber"] for a in sim.products[7000]["articles"]] == [7001]  # untouched
    allocating = {**strict, "allocate_article_numbers": True, "allocation_range": [7000, 7999]}
    async with connect(MplusKassaConnector, allocating, app=app, tokens=tokens) as conn:
        a = int(await write(conn, product("7101", parent_sku="7000")))
        b = int(await write(conn, product("7102", parent_sku="7000")))
        free_group = int(await write(conn, product("7201", parent_sku="7500")))  # a free numeric key is itself
    group_product = sim.article_product[a]
    assert group_product == sim.article_product[b] and group_product not in (7000, 7500)
    assert 7000 < group_product <= 7999 and sim.article_product[free_group] == 7500
    assert [a["articleNumber"] for a in sim.products[7000]["articles"]] == [7001]
    # after a restart the group keeps its number, even once the till's product is gone
    del sim.products[7000]
    async with connect(MplusKassaConnector, allocating, app=app, tokens=tokens) as conn:
        c = int(await write(conn, product("7103", parent_sku="7000")))
        other = int(await write(conn, product("7301", parent_sku="ABC")))  # an allocated group never takes a claimed number
    assert sim.article_product[c] == group_product and len(sim.products[group_product]["articles"]) == 3
    assert sim.article_product[other] not in (7000, 7500, group_product)
    assert (await tokens.load())[STORE_KEY]["groups"] == {"7000": group_product, "7500": 7500, "ABC": sim.article_product[other]}


async def test_variants_by_sku_pattern_and_an_allocated_product_number(app, settings):
    sim = app.state.sim
    config = {
        **settings,
        "variant_grouping": "sku_pattern",
        "variant_sku_pattern": r"^(?P<product>[A-Z]+)-",
        "allocate_article_numbers": True,
        "allocation_range": [800, 899],
    }
    async with connect(MplusKassaConnector, config, app=app) as conn:
        a = await write(conn, product("SOK-40"))
        b = await write(conn, product("SOK-42"))
    (number,) = {sim.article_product[int(a)], sim.article_product[int(b)]}
    assert 800 <= number <= 899 and len(sim.products[number]["articles"]) == 2


def test_a_pattern_without_a_product_group_is_a_config_error():
    with pytest.raises(ValueError, match="group named product"):
        MplusKassaConnector.Settings.model_validate(
            {**MplusKassaConnector.demo_settings("http://x.test"), "variant_sku_pattern": r"^(\d+)-"}
        )


async def test_categories_become_article_groups_created_once(app, settings):
    sim = app.state.sim
    async with connect(MplusKassaConnector, settings, app=app) as conn:
        await write(conn, product("7001", categories=("Keuken", "Algemeen")))
        await write(conn, product("7002", categories=("keuken",)))
        found = await conn.find(Entity.PRODUCTS, "7001")
    names = sorted(g["name"] for g in sim.groups.values())
    assert names == ["Algemeen", "Keuken"]
    assert found.record.categories == ("Keuken", "Algemeen")


async def test_update_writes_the_fields_and_keeps_the_other_articles(app, settings):
    sim = app.state.sim
    config = {**settings, "variant_grouping": "parent_sku"}
    async with connect(MplusKassaConnector, config, app=app) as conn:
        await write(conn, product("9001", "Rood", parent_sku="9000", ean="8712345678906"))
        await write(conn, product("9002", "Blauw", parent_sku="9000"))
        changed = conn.normalize(Entity.PRODUCTS, product("9001", "Rood nieuw", parent_sku="9000", ean="1"))
        await conn.update(Entity.PRODUCTS, "9001", changed, frozenset({"name"}))
        found = await conn.find(Entity.PRODUCTS, "9001")
    assert found.record.name == "Rood nieuw" and found.record.ean == "8712345678906"  # ean was not asked for
    assert [a["articleNumber"] for a in sim.products[9000]["articles"]] == [9001, 9002]


async def test_a_vat_rate_the_till_does_not_have_is_a_record_error(app, settings):
    async with connect(MplusKassaConnector, settings, app=app) as conn:
        with pytest.raises(RecordError, match=r"no VAT group of 6% \(there are: 0, 9, 21\)"):
            await write(conn, product("8001", tax_rate=Decimal(6)))
        with pytest.raises(RecordError, match="not a whole percentage"):
            conn.normalize(Entity.PRODUCTS, product("8002", tax_rate=Decimal("5.5")))


async def test_prices_in_another_currency_are_a_record_error(app, settings):
    async with connect(MplusKassaConnector, settings, app=app) as conn:
        with pytest.raises(RecordError, match="prices are in USD, the till's in EUR"):
            conn.normalize(Entity.PRODUCTS, product("8200", currency="USD"))
        assert conn.normalize(Entity.PRODUCTS, Product(sku="8201", name="no price", currency="USD")).currency == "EUR"


async def test_a_failed_result_code_is_a_record_error_with_the_vendors_message(app, settings):
    sim = app.state.sim
    async with connect(MplusKassaConnector, settings, app=app) as conn:
        await write(conn, product("8100"))  # VAT groups and article groups are read (and kept) by now
        sim.fail_next(
            200,
            response_xml(
                "CreateProductResponse",
                {"result": "CREATE-PRODUCT-RESULT-FAILED", "productNumber": 0, "errorMessage": "turnover group missing"},
            ).decode(),
        )
        with pytest.raises(RecordError, match="CREATE-PRODUCT-RESULT-FAILED: turnover group missing"):
            await write(conn, product("8101"))


# ---------------------------------------------------------------- stock


async def test_stock_goes_to_the_configured_branch(app, settings):
    sim = app.state.sim
    async with connect(MplusKassaConnector, {**settings, "stock_branch": 2}, app=app) as conn:
        found = await conn.find(Entity.STOCK, "1000")
        await conn.update(
            Entity.STOCK, found.id, StockLevel(sku="1000", on_hand=Decimal("4.5"), available=Decimal("4.5")), frozenset({"available"})
        )
        again = await conn.find(Entity.STOCK, "1000")
    assert sim.stock[(2, 1000)] == (45, 1) and again.record.available == Decimal("4.5")


async def test_stock_split_over_branches_by_share_with_the_remainder_to_the_first(app, settings):
    sim = app.state.sim
    config = {**settings, "stock_branch": None, "stock_split": {"1": "0.7", "2": "0.3"}}
    async with connect(MplusKassaConnector, config, app=app) as conn:
        await conn.update(
            Entity.STOCK, "1001", StockLevel(sku="1001", on_hand=Decimal(11), available=Decimal(11)), frozenset({"available"})
        )
        found = await conn.find(Entity.STOCK, "1001")
    assert (sim.stock[(1, 1001)], sim.stock[(2, 1001)]) == ((8, 0), (3, 0))
    assert found.record.available == Decimal(11)  # read back as the sum over the branches


async def test_stock_settings_and_results_are_clear_errors(app, settings):
    with pytest.raises(ValueError, match="stock_branch or stock_split, not both"):
        MplusKassaConnector.Settings.model_validate({**settings, "stock_split": {"1": "1"}})
    async with connect(MplusKassaConnector, {**settings, "stock_branch": None}, app=app) as conn:
        with pytest.raises(FatalError, match="neither stock_branch nor stock_split"):
            await conn.find(Entity.STOCK, "1000")
    async with connect(MplusKassaConnector, {**settings, "stock_branch": 9}, app=app) as conn:
        with pytest.raises(FatalError, match="branch 9 does not exist"):
            await conn.update(
                Entity.STOCK, "1000", StockLevel(sku="1000", on_hand=Decimal(1), available=Decimal(1)), frozenset({"available"})
            )
        with pytest.raises(RecordError, match="sync products first"):
            await conn.create(Entity.STOCK, StockLevel(sku="5", on_hand=Decimal(1), available=Decimal(1)))


async def test_stock_is_read_by_stock_id_summed_over_the_branches(app, settings):
    config = {
        **settings,
        "stock_branch": None,
        "stock_split": {"1": "1", "2": "1"},
        "allocate_article_numbers": True,
        "allocation_range": [600, 699],
    }
    async with connect(MplusKassaConnector, config, app=app) as conn:
        first = [c async for c in conn.read(Entity.STOCK, None)]
        assert [c.source_id for c in first] == ["1000", "1001", "1002"] and all(c.record.sku == c.source_id for c in first)
        cursors = [c.cursor for c in first]
        assert cursors == sorted(cursors)
        assert [c async for c in conn.read(Entity.STOCK, first[-1].cursor)] == []
        number = await write(conn, product("MUG-RED"))
        await conn.update(
            Entity.STOCK, number, StockLevel(sku="MUG-RED", on_hand=Decimal(9), available=Decimal(9)), frozenset({"available"})
        )
        later = [c async for c in conn.read(Entity.STOCK, first[-1].cursor)]
    assert [(c.source_id, c.record.sku, c.record.available) for c in later] == [(number, "MUG-RED", Decimal(9))]


# ---------------------------------------------------------------- relations


async def test_relations_by_email_company_and_person_and_an_update_keeps_what_it_does_not_map(app, settings):
    sim = app.state.sim
    company = Customer(
        kind="company",
        name="Bakkerij BV",
        email="Info@Bakkerij.example",
        phone="0182-123456",
        contact=Contact(first_name="Piet", last_name="de Bruin"),
        billing_address=Address(street="Markt", house_number="12", house_number_suffix="a", postcode="2801 AB", city="Gouda", country="NL"),
    )
    async with connect(MplusKassaConnector, settings, app=app) as conn:
        normalized = conn.normalize(Entity.CUSTOMERS, company)
        number = await conn.create(Entity.CUSTOMERS, normalized)
        found = await conn.find(Entity.CUSTOMERS, "info@bakkerij.example")
        assert found.id == number and {f: getattr(found.record, f) for f in conn.written_fields[Entity.CUSTOMERS]} == {
            f: getattr(normalized, f) for f in conn.written_fields[Entity.CUSTOMERS]
        }
        assert sim.relations[int(number)]["companyName"] == "Bakkerij BV" and sim.relations[int(number)]["address"] == "Markt 12a"
        sim.relations[int(number)]["points"] = 40  # kept by the till, not by apicenterd
        await conn.update(Entity.CUSTOMERS, number, normalized.model_copy(update={"phone": "0182-999999"}), frozenset({"phone"}))
        assert await conn.find(Entity.CUSTOMERS, "nobody@example.com") is None
    assert sim.relations[int(number)]["telephone"] == "0182-999999" and str(sim.relations[int(number)]["points"]) == "40"


# ---------------------------------------------------------------- till orders as a source


async def test_till_orders_with_status_relation_and_sync_marker_cursors(app, settings):
    sim = app.state.sim
    (first_id, _) = list(sim.orders)
    sim.orders[first_id]["cancelState"] = "ORDER-CANCEL-STATE-COMPLETE"
    async with connect(MplusKassaConnector, settings, app=app) as conn:
        changes = [c async for c in conn.read(Entity.ORDERS, None)]
        assert all(c.error is None for c in changes)
        first, second = (c.record for c in changes)
        assert first.status == "cancelled" and second.status == "paid" and second.paid
        assert first.lines and all(line.sku and line.sku.isdigit() for line in first.lines)
        assert first.total == sum(line.unit_price * line.quantity for line in first.lines)
        assert first.custom_fields["branch_number"] == 1 and first.custom_fields["order_id"] == changes[0].source_id
        with_relation = [o for o in (first, second) if o.customer is not None]
        assert all(o.customer.email and o.customer.email.endswith("@example.com") for o in with_relation)
        later = [c async for c in conn.read(Entity.ORDERS, changes[0].cursor)]
    assert [c.source_id for c in later] == [changes[1].source_id]


async def test_a_till_order_that_cannot_be_read_fails_alone(app, settings):
    sim = app.state.sim
    first_id = next(iter(sim.orders))
    sim.orders[first_id]["lines"][0]["data"] = {"price": 100}  # no quantity
    async with connect(MplusKassaConnector, settings, app=app) as conn:
        changes = [c async for c in conn.read(Entity.ORDERS, None)]
    assert changes[0].record is None and "without data.quantity" in changes[0].error
    assert changes[1].record is not None


# ---------------------------------------------------------------- orders into the till


def web_order(number: str = "WEB-1001", **kw) -> Order:
    kw.setdefault("lines", (OrderLine(sku="1000", name="Artikel", quantity=Decimal(2), unit_price=Decimal("12.10")),))
    return Order(number=number, status="paid", created_at=datetime(2026, 2, 1, 10, tzinfo=timezone.utc), total=Decimal("24.20"), **kw)


def request_for(order: Order, settings=None, articles=None) -> DocumentRequest:
    return DocumentRequest(order, "order", None, articles if articles is not None else {"1000": Found("1000")}, settings)


async def test_an_order_into_the_till_gets_employee_999999_and_is_found_by_its_number(app, settings):
    sim = app.state.sim
    async with connect(MplusKassaConnector, settings, app=app) as conn:
        sink = conn.document_sink(Entity.ORDERS)
        order_id = await sink.create(request_for(web_order()))
        found = await sink.find("WEB-1001")
        other = await sink.create(request_for(web_order("WEB-1002"), TillOrderSettings(employee_number=42, branch_number=2)))
    assert found.id == order_id
    assert sim.orders[order_id]["employeeNumber"] == 999999 and sim.orders[order_id]["extOrderId"] == "WEB-1001"
    assert sim.orders[other]["employeeNumber"] == 42 and sim.orders[other]["entryBranchNumber"] == 2


async def test_a_retried_create_after_a_lost_answer_never_duplicates(app, settings):
    sim = app.state.sim
    lost = {"left": 1}

    async def loses_one_answer(scope, receive, send):
        body = []

        async def keep():
            message = await receive()
            body.append(message.get("body", b""))
            return message

        if lost["left"]:

            async def swallow(message):
                if message["type"] == "http.response.body" and b"createOrderV3" in b"".join(body) and lost["left"]:
                    lost["left"] -= 1
                    raise OSError("connection reset after the till stored the order")
                await send(message)

            await app(scope, keep, swallow)
        else:
            await app(scope, keep, send)

    async with connect(MplusKassaConnector, settings, app=loses_one_answer) as conn:
        sink = conn.document_sink(Entity.ORDERS)
        await conn.check()
        with pytest.raises((RetryableError, OSError)):
            await sink.create(request_for(web_order()))
        assert len(sim.orders) == 3  # the till has it (two seeded + this one)
        order_id = await sink.create(request_for(web_order()))  # the retry: same idempotencyKey, replayed
    assert len(sim.orders) == 3 and sim.orders[order_id]["extOrderId"] == "WEB-1001"


async def test_an_existing_external_order_id_is_found_not_duplicated(app, settings):
    sim = app.state.sim
    async with connect(MplusKassaConnector, settings, app=app) as conn:
        sink = conn.document_sink(Entity.ORDERS)
        first = await sink.create(request_for(web_order()))
        again = await sink.create(request_for(web_order(), TillOrderSettings(idempotency_prefix="other-")))
    assert again == first and len(sim.orders) == 3


async def test_a_line_without_sku_needs_a_text_article(app, settings):
    order = web_order(lines=(OrderLine(name="Gravering", quantity=Decimal(1), unit_price=Decimal(0), kind="text"),))
    async with connect(MplusKassaConnector, settings, app=app) as conn:
        sink = conn.document_sink(Entity.ORDERS)
        with pytest.raises(RecordError, match="'Gravering' has no SKU.*text_article_number"):
            await sink.create(request_for(order, articles={}))
        assert await sink.create(request_for(order, TillOrderSettings(text_article_number=1002), articles={}))


def test_the_till_order_settings_refuse_unknown_keys():
    with pytest.raises(ValueError, match="extra"):
        TillOrderSettings.model_validate({"employee": 1})

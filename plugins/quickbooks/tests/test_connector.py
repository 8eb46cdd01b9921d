"""The connector against the QuickBooks simulator: items, stock, customers, documents, SyncToken, limits, tokens."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from apicenterd_quickbooks import QuickBooksConnector
from apicenterd_quickbooks.connector import OrderSettings, QuickBooksSettings

from apicenterd import Customer, DocumentRequest, Entity, FatalError, Found, Order, OrderLine, Product, RateLimited, RecordError, StockLevel
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio


def product(sku: str = "SKU-1", **changes) -> Product:
    return Product(**{"sku": sku, "name": f"Name {sku}", "price_excl_tax": Decimal("10.00"), "currency": "USD", **changes})


async def test_items_are_created_found_by_sku_and_updated_sparse_with_the_synctoken(app, sim, settings):
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.PRODUCTS)
        new_id = await sink.create(product())
        found = await sink.find("SKU-1")
        assert found is not None and found.id == new_id and found.record.price_excl_tax == Decimal("10.00")
        assert await sink.find("SKU-2") is None
        await sink.update(new_id, product(price_excl_tax=Decimal("12.50")), frozenset({"price_excl_tax"}))
        stored = sim.store["Item"][int(new_id)]
        assert stored["UnitPrice"] == Decimal("12.5") and stored["SyncToken"] == "1" and stored["Name"] == "Name SKU-1"
        many = await sink.find_many(["SKU-1", "NOPE"])
        assert set(many) == {"SKU-1"}
    posts = [t for m, t in sim.requests if m == "POST"]
    assert len(posts) == 2  # the create and one sparse update


async def test_a_stale_synctoken_is_read_again_and_retried_once(app, sim, settings):
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.PRODUCTS)
        item_id = await sink.create(product())
        original_write = sim.write
        calls = {"n": 0}

        def racing(entity, operation, body):
            if operation == "update" and calls["n"] == 0:  # someone else saves first
                calls["n"] += 1
                original_write(
                    entity,
                    "update",
                    {
                        "Id": body["Id"],
                        "SyncToken": sim.store[entity][int(body["Id"])]["SyncToken"],
                        "sparse": True,
                        "Description": "theirs",
                    },
                )
            return original_write(entity, operation, body)

        sim.write = racing
        await sink.update(item_id, product(price_excl_tax=Decimal("11.00")), frozenset({"price_excl_tax"}))
        stored = sim.store["Item"][int(item_id)]
        assert stored["UnitPrice"] == Decimal("11") and stored["Description"] == "theirs" and stored["SyncToken"] == "2"


async def test_duplicate_name_on_create_is_a_lookup_not_a_failure(app, sim, settings):
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        customers = conn.sink(Entity.CUSTOMERS)
        first = await customers.create(Customer(kind="company", name="Acme BV", email="info@acme.test"))
        again = await customers.create(Customer(kind="company", name="Acme BV", email="info@acme.test"))
        assert again == first and len(sim.store["Customer"]) == 1
        found = await customers.find("INFO@acme.test")
        assert found is not None and found.id == first
        items = conn.sink(Entity.PRODUCTS)
        await items.create(product("A"))
        with pytest.raises(RecordError, match="another item already has the Name"):
            await items.create(product("B", name="Name A"))


async def test_stock_is_qtyonhand_of_a_tracked_item(app, sim, settings):
    async with connect(
        QuickBooksConnector, {**settings, "inventory_items": True, "expense_account_id": "80", "asset_account_id": "81"}, app=app
    ) as conn:
        item_id = await conn.sink(Entity.PRODUCTS).create(product(quantity=Decimal(3)))
        stock = conn.sink(Entity.STOCK)
        found = await stock.find("SKU-1")
        assert found is not None and found.record.available == Decimal(3)
        await stock.update(item_id, StockLevel(sku="SKU-1", on_hand=Decimal(7), available=Decimal(7)), frozenset({"available"}))
        assert sim.store["Item"][int(item_id)]["QtyOnHand"] == Decimal(7)
        with pytest.raises(RecordError, match="sync products first"):
            await stock.create(StockLevel(sku="X", on_hand=Decimal(1), available=Decimal(1)))


async def test_stock_on_an_untracked_item_is_a_record_error(app, settings):
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        item_id = await conn.sink(Entity.PRODUCTS).create(product())
        with pytest.raises(RecordError, match="TrackQtyOnHand"):
            await conn.sink(Entity.STOCK).update(
                item_id, StockLevel(sku="SKU-1", on_hand=Decimal(7), available=Decimal(7)), frozenset({"available"})
            )


async def test_item_source_reads_active_and_inactive_with_a_rising_cursor(app, sim, settings):
    async with connect(QuickBooksConnector, {**settings, "page_size": 2}, app=app) as conn:
        sink = conn.sink(Entity.PRODUCTS)
        ids = [await sink.create(product(f"S{n}")) for n in range(5)]
        await sink.update(ids[0], product("S0", active=False), frozenset({"active"}))
        changes = [c async for c in conn.source(Entity.PRODUCTS).changes(None)]
        assert sorted(c.record.sku for c in changes) == [f"S{n}" for n in range(5)]
        assert [c.cursor for c in changes] == sorted(c.cursor for c in changes)
        assert any(not c.record.active for c in changes)
        again = [c async for c in conn.source(Entity.PRODUCTS).changes(changes[-1].cursor)]
        assert again and all(c.cursor >= changes[-1].cursor for c in again)


async def test_customer_source_uses_cdc_within_30_days_and_a_query_before(app, sim, settings):
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        await conn.sink(Entity.CUSTOMERS).create(Customer(kind="person", name="Jan Jansen", email="jan@example.test"))
        source = conn.source(Entity.CUSTOMERS)
        full = [c async for c in source.changes(None)]
        assert [c.record.email for c in full] == ["jan@example.test"]
        sim.reset_counts()
        recent = datetime.now(timezone.utc).strftime("%Y-%m-%dT00:00:00Z")
        delta = [c async for c in source.changes(recent)]
        assert [c.record.email for c in delta] == ["jan@example.test"]
        assert sim.count("GET", f"/v3/company/{sim.realm}/cdc") == 1
        sim.reset_counts()
        [c async for c in source.changes("2001-01-01T00:00:00Z")]
        assert sim.count("GET", f"/v3/company/{sim.realm}/cdc") == 0  # too old for cdc: a full read


def _order(number: str, *, paid: bool, sku: str = "SKU-1") -> Order:
    return Order(
        number=number,
        status="paid" if paid else "new",
        created_at=datetime(2026, 5, 1, tzinfo=timezone.utc),
        total=Decimal("12.10"),
        paid=paid,
        payment_method="cash",
        currency="USD",
        lines=(OrderLine(sku=sku, name="line", unit_price=Decimal("12.10"), tax_rate=Decimal(21), tax_code="TAX", account="41"),),
    )


async def test_orders_become_sales_receipts_or_invoices_and_are_found_by_docnumber(app, sim, settings):
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        item = Found(id=await conn.sink(Entity.PRODUCTS).create(product()), record=None)
        customer = Found(id=await conn.sink(Entity.CUSTOMERS).create(Customer(kind="person", name="P Q", email="p@q.test")), record=None)
        sink = conn.document_sink(Entity.ORDERS)
        settings_model = OrderSettings(payment_methods={"cash": "1"}, deposit_account_id="35")
        paid = await sink.create(
            DocumentRequest(
                record=_order("1001", paid=True), kind="order", customer=customer, articles={"SKU-1": item}, settings=settings_model
            )
        )
        unpaid = await sink.create(
            DocumentRequest(
                record=_order("1002", paid=False), kind="order", customer=customer, articles={"SKU-1": item}, settings=settings_model
            )
        )
        quote = await sink.create(
            DocumentRequest(record=_order("1003", paid=False), kind="quote", customer=customer, articles={"SKU-1": item})
        )
        assert paid.startswith("SalesReceipt:") and unpaid.startswith("Invoice:") and quote.startswith("Estimate:")
        receipt = sim.store["SalesReceipt"][int(paid.split(":")[1])]
        line = receipt["Line"][0]
        assert line["Amount"] == Decimal("10.00") and line["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "TAX"}
        assert receipt["PaymentMethodRef"] == {"value": "1"} and receipt["DepositToAccountRef"] == {"value": "35"}
        found = await sink.find("1002")
        assert found is not None and found.id == unpaid
        assert await sink.find("9999") is None


async def test_throttle_is_rate_limited_with_intuits_wait(app, sim, settings):
    async with connect(QuickBooksConnector, settings, app=app, rate_limits=False) as conn:
        sim.fail_next(
            429,
            {
                "Fault": {
                    "Error": [{"Message": "message=ThrottleExceeded; errorCode=003001; statusCode=429", "code": "3001"}],
                    "type": "SERVICE",
                }
            },
        )
        with pytest.raises(RateLimited) as caught:
            await conn.sink(Entity.PRODUCTS).find("SKU-1")
        assert caught.value.retry_after == 60.0


async def test_a_refresh_token_rotates_and_the_new_one_is_stored(app, sim, settings):
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        await conn.check()
        stored = await conn.context.tokens.load()
        assert stored["refresh_token"] != settings["refresh_token"]
        sim.expire_access_tokens()
        await conn.check()
        assert (await conn.context.tokens.load())["refresh_token"] != stored["refresh_token"]
    assert sim.token_requests == 2


def test_settings_pick_the_base_url_by_environment_and_check_realm():
    base = {"realm_id": "123", "client_id": "c", "client_secret": "s"}
    assert QuickBooksSettings.model_validate(base).api_url() == "https://quickbooks.api.intuit.com"
    assert QuickBooksSettings.model_validate({**base, "environment": "sandbox"}).api_url() == "https://sandbox-quickbooks.api.intuit.com"
    with pytest.raises(ValueError, match="realm_id"):
        QuickBooksSettings.model_validate({**base, "realm_id": "abc"})


async def test_a_new_item_without_income_account_is_a_config_error(app, settings):
    async with connect(QuickBooksConnector, {**settings, "income_account_id": None}, app=app) as conn:
        with pytest.raises(FatalError, match="income_account_id"):
            await conn.sink(Entity.PRODUCTS).create(product())


async def test_batch_write_maps_faults_to_records(app, sim, settings):
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        writes = [(str(n), "create", {"Name": f"B{n}", "Sku": f"B{n}", "IncomeAccountRef": {"value": "1"}}) for n in range(40)]
        writes.append(("dup", "create", {"Name": "B1", "IncomeAccountRef": {"value": "1"}}))
        results = await conn.batch_write("Item", writes, what="items")
        assert isinstance(results["dup"], RecordError) and "6240" in str(results["dup"])
        assert all(isinstance(results[str(n)], str) for n in range(40))
    assert sim.count("POST", f"/v3/company/{sim.realm}/batch") == 2


async def test_categories_are_not_products_and_sub_items_are_grouped(app, sim, settings):
    category = sim.write("Item", "create", {"Name": "Shirts", "Type": "Category", "FullyQualifiedName": "Shirts"})
    parent = sim.write("Item", "create", {"Name": "Polo", "Sku": "POLO", "IncomeAccountRef": {"value": "1"}})
    sim.write(
        "Item",
        "create",
        {
            "Name": "Tee",
            "Sku": "TEE",
            "SubItem": True,
            "ParentRef": {"value": category["Id"], "name": "Shirts"},
            "IncomeAccountRef": {"value": "1"},
        },
    )
    sim.write(
        "Item",
        "create",
        {
            "Name": "Polo M",
            "Sku": "POLO-M",
            "SubItem": True,
            "ParentRef": {"value": parent["Id"], "name": "Polo"},
            "IncomeAccountRef": {"value": "1"},
            "Description": "M",
        },
    )
    async with connect(QuickBooksConnector, {**settings, "group_fields": ["Description"]}, app=app) as conn:
        products = {c.record.sku: c.record async for c in conn.source(Entity.PRODUCTS).changes(None)}
    assert set(products) == {"POLO", "TEE", "POLO-M"}
    assert products["TEE"].categories == ("Shirts",) and products["TEE"].type == "simple"
    assert products["POLO-M"].type == "variant" and products["POLO-M"].parent_sku == "Polo"
    assert [(a.name, a.value) for a in products["POLO-M"].attributes] == [("Description", "M")]


async def test_a_duplicate_document_number_links_the_existing_document(app, sim, settings):
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        item = Found(id=await conn.sink(Entity.PRODUCTS).create(product()), record=None)
        customer = Found(id=await conn.sink(Entity.CUSTOMERS).create(Customer(kind="person", name="P Q", email="p@q.test")), record=None)
        sink = conn.document_sink(Entity.ORDERS)
        request = DocumentRequest(record=_order("2001", paid=False), kind="order", customer=customer, articles={"SKU-1": item})
        first = await sink.create(request)
        assert await sink.create(request) == first and len(sim.store["Invoice"]) == 1


def test_webhook_signature_is_base64_hmac_sha256_of_the_raw_body():
    import base64
    import hashlib
    import hmac

    from apicenterd_quickbooks.client import verify_webhook

    body = b'{"eventNotifications":[{"realmId":"1","dataChangeEvent":{"entities":[{"name":"Item","id":"1","operation":"Update"}]}}]}'
    good = base64.b64encode(hmac.new(b"verifier", body, hashlib.sha256).digest()).decode()
    assert verify_webhook("verifier", body, good)
    assert not verify_webhook("verifier", body + b" ", good)
    assert not verify_webhook("other", body, good)
    assert not verify_webhook("verifier", body, None)


async def test_a_full_cdc_answer_falls_back_to_a_query_since_the_cursor(app, sim, settings, monkeypatch):
    from apicenterd_quickbooks import connector as module

    monkeypatch.setattr(module, "CDC_MAX", 2)
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        for n in range(3):
            await conn.sink(Entity.CUSTOMERS).create(Customer(kind="person", name=f"P {n}", email=f"p{n}@x.test"))
        recent = datetime.now(timezone.utc).strftime("%Y-%m-%dT00:00:00Z")
        sim.reset_counts()
        changes = [c async for c in conn.source(Entity.CUSTOMERS).changes(recent)]
        assert sorted(c.record.email for c in changes) == ["p0@x.test", "p1@x.test", "p2@x.test"]
        assert sim.count("GET", f"/v3/company/{sim.realm}/cdc") == 1 and sim.count("GET", f"/v3/company/{sim.realm}/query") == 1


async def test_create_many_sends_batches_of_30_and_a_fault_fails_only_its_item(app, sim, settings):
    sim.write("Item", "create", {"Name": "Name SKU-7", "Sku": "OTHER-7", "IncomeAccountRef": {"value": "1"}})  # takes SKU-7's name
    mine = sim.write("Item", "create", {"Name": "Name SKU-8", "IncomeAccountRef": {"value": "1"}})  # SKU-8's name, no Sku: linked
    records = [product(f"SKU-{n}") for n in range(1, 66)]
    records[2] = product("SKU-3", name="x" * 101)  # refused before any call (QuickBooks takes 100 characters)
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.PRODUCTS)
        assert sink.batch_create
        sim.reset_counts()
        results = await sink.create_many(records)
    assert sim.count("POST", f"/v3/company/{sim.realm}/batch") == 3  # 64 creates: 30 + 30 + 4
    assert isinstance(results[2], RecordError) and "at most 100" in str(results[2])
    assert isinstance(results[6], RecordError) and "another item already has the Name 'Name SKU-7'" in str(results[6])
    assert results[7] == mine["Id"]
    created = {r.sku: results[n] for n, r in enumerate(records) if n not in (2, 6, 7)}
    assert all(isinstance(i, str) and sim.store["Item"][int(i)]["Sku"] == sku for sku, i in created.items())


async def test_customer_create_many_links_a_duplicate_display_name(app, sim, settings):
    taken = sim.write("Customer", "create", {"DisplayName": "Bakker BV"})
    records = [
        Customer(kind="company", name="Bakker BV", email="info@bakker.example"),
        Customer(kind="person", name="Jan Smit", email="jan@smit.example"),
    ]
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.CUSTOMERS)
        results = await sink.create_many([sink.normalize(r) for r in records])
        found = await sink.find_many(["jan@smit.example", "JAN@smit.example", "nobody@example.com"])
    assert results[0] == taken["Id"] and sim.store["Customer"][int(results[1])]["DisplayName"] == "Jan Smit"
    assert set(found) == {"jan@smit.example", "JAN@smit.example"} and found["jan@smit.example"].id == results[1]


async def test_items_read_carry_the_vat_rate_of_their_tax_code_and_parents_can_be_left_out(app, sim, settings):
    parent = sim.write("Item", "create", {"Name": "T-shirt", "Sku": "TS", "IncomeAccountRef": {"value": "1"}})
    sim.write("Item", "create", {"Name": "T-shirt M", "Sku": "TS-M", "IncomeAccountRef": {"value": "1"}, "SubItem": True,
                                 "ParentRef": {"value": parent["Id"], "name": "T-shirt"}, "SalesTaxCodeRef": {"value": "4"},
                                 "PurchaseDesc": "red"})  # fmt: skip
    sim.write("Item", "create", {"Name": "Mug", "Sku": "MUG", "IncomeAccountRef": {"value": "1"}, "SalesTaxCodeRef": {"value": "9"}})
    config = {
        **settings,
        "tax_rates": {"4": 9},
        "default_tax_rate": 21,
        "skip_parent_items": True,
        "group_fields": {"colour": "PurchaseDesc"},
    }
    async with connect(QuickBooksConnector, config, app=app) as conn:
        read = {c.record.sku: c.record async for c in conn.read(Entity.PRODUCTS, None)}
    assert set(read) == {"TS-M", "MUG"}  # the parent item is the group, not a product
    assert read["TS-M"].tax_rate == Decimal(9) and read["MUG"].tax_rate == Decimal(21)
    assert read["TS-M"].parent_sku == "T-shirt" and [(a.name, a.value) for a in read["TS-M"].attributes] == [("colour", "red")]


def test_group_fields_with_an_empty_path_is_a_config_error(settings):
    with pytest.raises(ValueError, match="both must be non-empty"):
        QuickBooksSettings(**{**settings, "group_fields": {"colour": "Purchase..Desc"}})


async def test_documents_are_created_30_per_batch_and_found_many_per_type(app, sim, settings):
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        item = Found(id=await conn.sink(Entity.PRODUCTS).create(product()), record=None)
        customer = Found(id=await conn.sink(Entity.CUSTOMERS).create(Customer(kind="person", name="P Q", email="p@q.test")), record=None)
        sink = conn.document_sink(Entity.ORDERS)
        assert sink.batch_create and sink.batch_lookup
        existing = await sink.create(
            DocumentRequest(record=_order("3000", paid=False), kind="order", customer=customer, articles={"SKU-1": item})
        )
        # the simulator checks numbers as a company may: a second Invoice 3000 is refused with 6140
        requests = [
            DocumentRequest(
                record=_order(f"3{n:03}", paid=n % 2 == 1), kind="quote" if n == 7 else "order", customer=customer, articles={"SKU-1": item}
            )  # fmt: skip
            for n in range(40)
        ]
        requests.append(DocumentRequest(record=_order("X" * 22, paid=True), kind="order", customer=customer, articles={"SKU-1": item}))
        sim.reset_counts()
        results = await sink.create_many(requests)
        assert sim.count("POST", f"/v3/company/{sim.realm}/batch") == 2  # 40 operations: 30 + 10
        assert isinstance(results[-1], RecordError) and "21 characters" in str(results[-1])  # refused before sending, alone
        assert results[0] == existing  # 3000 existed: linked, not created twice
        assert results[7].startswith("Estimate:") and results[1].startswith("SalesReceipt:") and results[2].startswith("Invoice:")
        assert len(set(results[:40])) == 40 and all(isinstance(r, str) for r in results[:40])
        numbers = [sim.store[r.split(":")[0]][int(r.split(":")[1])]["DocNumber"] for r in results[:40]]
        assert numbers == [f"3{n:03}" for n in range(40)]
        sim.reset_counts()
        found = await sink.find_many([f"3{n:03}" for n in range(40)] + ["NOPE"])
        assert {k: f.id for k, f in found.items()} == {f"3{n:03}": results[n] for n in range(40)}
        # per type (Invoice, SalesReceipt, Estimate) one query of at most 30 numbers for those not yet found
        assert 3 <= sim.count("GET", f"/v3/company/{sim.realm}/query") <= 6


async def test_a_signed_webhook_announces_its_companys_items_and_customers(app, settings):
    import base64
    import hashlib
    import hmac

    from apicenterd import WebhookEvent, WebhookRejected, WebhookRequest

    def signed(body: bytes, token: str = "verifier") -> dict[str, str]:
        return {"intuit-signature": base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()}

    realm = settings["realm_id"]
    entities = [{"name": "Item", "id": "7", "operation": "Update"}, {"name": "Customer", "id": "3", "operation": "Create"},
                {"name": "Invoice", "id": "9", "operation": "Create"}]  # fmt: skip
    body = json_bytes({"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": entities}},
                                              {"realmId": "999", "dataChangeEvent": {"entities": entities}}]})  # fmt: skip
    url = "https://sync.example.com/webhooks/books"
    assert QuickBooksConnector.takes_webhooks()
    async with connect(QuickBooksConnector, settings, app=app) as conn:  # no verifier token: every delivery refused
        with pytest.raises(WebhookRejected, match="no webhook verifier token") as info:
            await conn.webhook(WebhookRequest("POST", url, signed(body), body))
        assert not info.value.malformed
    async with connect(QuickBooksConnector, {**settings, "webhook_verifier_token": "verifier"}, app=app) as conn:
        events = await conn.webhook(WebhookRequest("POST", url, signed(body), body))
        assert events == [WebhookEvent(Entity.PRODUCTS, "7", "Update"), WebhookEvent(Entity.STOCK, "7", "Update"),
                          WebhookEvent(Entity.CUSTOMERS, "3", "Create")]  # fmt: skip
        for headers in ({}, signed(body, "other"), signed(body + b" ")):
            with pytest.raises(WebhookRejected, match="intuit-signature") as info:
                await conn.webhook(WebhookRequest("POST", url, headers, body))
            assert not info.value.malformed
        for broken in (b"not json", b"[]", json_bytes({"eventNotifications": [{"realmId": realm, "dataChangeEvent": {}}]})):
            with pytest.raises(WebhookRejected) as info:
                await conn.webhook(WebhookRequest("POST", url, signed(broken), broken))
            assert info.value.malformed, broken


def json_bytes(value) -> bytes:
    import json

    return json.dumps(value).encode()


async def test_update_many_reads_synctokens_30_a_query_and_sends_sparse_updates_30_a_batch(app, sim, settings):
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.PRODUCTS)
        assert sink.batch_update and conn.sink(Entity.CUSTOMERS).batch_update
        ids = await sink.create_many([product(f"U{n}") for n in range(35)])
        assert all(isinstance(i, str) for i in ids)
        # someone else saves item 3 after its SyncToken was read: 5010 in the batch, read again and retried once
        original_write = sim.write
        raced: list[str] = []

        def racing(entity, operation, body):
            if operation == "update" and body.get("Id") == ids[3] and not raced:
                raced.append(body["Id"])
                original_write(
                    entity, "update", {"Id": body["Id"], "SyncToken": body["SyncToken"], "sparse": True, "Description": "theirs"}
                )
            return original_write(entity, operation, body)

        sim.write = racing
        sim.reset_counts()
        fields = frozenset({"price_excl_tax"})
        updates = [(ids[n], product(f"U{n}", price_excl_tax=Decimal("11.00")), fields) for n in range(35)]
        updates[5] = (ids[5], product("U5"), fields)  # unchanged: nothing sent for it
        updates.append(("99999", product("GONE", price_excl_tax=Decimal(1)), fields))  # not in QuickBooks: fails alone
        results = await sink.update_many(updates)
        assert results[:35] == [None] * 35
        assert isinstance(results[35], RecordError) and "99999" in str(results[35])
        realm = f"/v3/company/{sim.realm}/"
        assert sim.count("POST", realm + "batch") == 2  # 34 changed items: 30 + 4
        assert sim.count("GET", realm + "query") == 2  # 36 ids: 30 + 6
        assert raced == [ids[3]] and sim.count("POST", realm + "item") == 1  # the stale one, again on its own
        for n in range(35):
            stored = sim.store["Item"][int(ids[n])]
            assert stored["UnitPrice"] == (Decimal("10.00") if n == 5 else Decimal("11.00")), n
        assert sim.store["Item"][int(ids[3])]["Description"] == "theirs"  # their change kept: sparse, not overwritten


async def test_stock_update_many_sets_qtyonhand_30_a_batch_with_the_synctoken(app, sim, settings):
    inventory = {**settings, "inventory_items": True, "expense_account_id": "80", "asset_account_id": "81"}
    untracked = sim.write("Item", "create", {"Name": "Plain", "Sku": "PLAIN", "Type": "NonInventory", "IncomeAccountRef": {"value": "1"}})[
        "Id"
    ]
    async with connect(QuickBooksConnector, inventory, app=app) as conn:
        ids = await conn.sink(Entity.PRODUCTS).create_many([product(f"S{n}", quantity=Decimal(1)) for n in range(33)])
        assert all(isinstance(i, str) for i in ids)
        stock = conn.sink(Entity.STOCK)
        assert stock.batch_update
        original_write = sim.write
        raced: list[str] = []

        def racing(entity, operation, body):  # someone saves item 2 after its SyncToken was read: 5010, read again, retried
            if operation == "update" and body.get("Id") == ids[2] and not raced:
                raced.append(body["Id"])
                original_write(
                    entity, "update", {"Id": body["Id"], "SyncToken": body["SyncToken"], "sparse": True, "Description": "theirs"}
                )
            return original_write(entity, operation, body)

        sim.write = racing
        sim.reset_counts()
        fields = frozenset({"available"})
        updates = [(ids[n], StockLevel(sku=f"S{n}", on_hand=Decimal(n + 5), available=Decimal(n + 5)), fields) for n in range(33)]
        updates.append((untracked, StockLevel(sku="PLAIN", on_hand=Decimal(4), available=Decimal(4)), fields))
        updates.append((ids[0], StockLevel(sku="S0", on_hand=Decimal(9), available=Decimal(9), tracked=False), fields))
        results = await stock.update_many(updates)
        assert results[:33] == [None] * 33 and results[34] is None  # an unmanaged level writes nothing
        assert isinstance(results[33], RecordError) and "TrackQtyOnHand" in str(results[33])
        realm = f"/v3/company/{sim.realm}/"
        assert sim.count("POST", realm + "batch") == 2  # 33 quantities: 30 + 3
        assert raced == [ids[2]] and sim.count("POST", realm + "item") == 1  # the stale one, again on its own
        for n in range(33):
            assert sim.store["Item"][int(ids[n])]["QtyOnHand"] == Decimal(n + 5), n
        assert sim.store["Item"][int(ids[2])]["Description"] == "theirs"

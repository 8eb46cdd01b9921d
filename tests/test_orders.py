"""The order process with fake connectors: every step and every setting of the orders flow."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from fakes import Crash, MemoryStore

from apicenterd import Address, Contact, Customer, Order, OrderLine
from apicenterd.config import Config, resolve
from apicenterd.engine import Engine
from apicenterd.errors import ConfigError
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio


def order(number: str, *, email: str | None = "jan@example.com", company: str | None = None, status: str = "paid", paid: bool = True, lines=None, country="NL", payment_method="ideal", **kw) -> Order:
    address = Address(street="Kerkstraat", house_number="12", postcode="1234 AB", city="Utrecht", country=country)
    if company:
        customer = Customer(kind="company", name=company, email=email, contact=Contact(first_name="Jan", last_name="Jansen", email=email), billing_address=address)
    else:
        customer = Customer(kind="person", name="Jan Jansen", email=email, billing_address=address)
    return Order(
        number=number,
        status=status,
        paid=paid,
        created_at=datetime(2026, 11, 30, 12, tzinfo=timezone.utc),
        customer=customer,
        billing_address=address,
        lines=tuple(lines or (OrderLine(sku="A", name="Product A", quantity=Decimal(2), unit_price=Decimal("12.10"), tax_rate=Decimal(21)),)),
        total=Decimal("24.20"),
        payment_method=payment_method,
        **kw,
    )


def config(tmp_path, registry, options=None, target_settings=None, **flow):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "memsource"}, "dst": {"connector": "memtarget"}},
        "flows": {
            "orders": {
                "source": "src", "target": "dst", "entity": "orders", "interval": "1m",
                "options": options or {}, "target_settings": {"branch_id": "B1"} if target_settings is None else target_settings,
                **flow,
            }
        },
    }
    return resolve(Config(**raw), registry, tmp_path / "x.toml")


async def run(resolved, tmp_path, **kw):
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0, **kw)
    try:
        result = await engine.run_flow("orders")
        return result, engine, store
    finally:
        await engine.aclose()
        await store.close()


async def audit(tmp_path):
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        return {e.source_id: e for e in reversed(await store.audit(flow="orders"))}
    finally:
        await store.close()


def seed_products(*skus):
    for sku in skus:
        MemoryStore.target[MemoryStore.new_id()] = {"sku": sku, "name": sku, "description": "", "price_excl_tax": Decimal(1), "active": True}


async def test_order_created_once_with_customer_enrichment_and_document(tmp_path, registry, memory):
    seed_products("A")
    memory.orders["1001"] = order("1001")
    resolved = config(tmp_path, registry, options={"document": "invoice"}, target_settings={"branch_id": "B7"})
    result, *_ = await run(resolved, tmp_path)
    assert result.counts["created"] == 1, result
    (created,) = memory.target_orders.values()
    assert created.document == "invoice"
    assert created.target_fields == {"branch_id": "B7", "employee_number": "999999"}
    (cid, customer), = memory.customers.items()
    assert created.customer_id == cid and customer.kind == "person" and customer.email == "jan@example.com"


async def test_refetched_order_is_skipped_as_existing(tmp_path, registry, memory):
    seed_products("A")
    memory.orders["1001"] = order("1001")
    resolved = config(tmp_path, registry)
    await run(resolved, tmp_path)
    memory.calls.clear()
    result, *_ = await run(resolved, tmp_path)
    assert result.counts == {"created": 0, "updated": 0, "unchanged": 0, "waiting": 0, "skipped": 1, "failed": 0}
    assert memory.calls == []  # linked: not even a look-up
    assert (await audit(tmp_path))["1001"].reason.startswith("exists")
    assert len(memory.target_orders) == 1


async def test_order_already_in_target_without_link_is_found_and_skipped(tmp_path, registry, memory):
    seed_products("A")
    memory.target_orders["T50"] = order("1001", customer_id="C1")
    memory.orders["1001"] = order("1001")
    result, *_ = await run(config(tmp_path, registry), tmp_path)
    assert result.counts["skipped"] == 1 and len(memory.target_orders) == 1
    assert (await audit(tmp_path))["1001"].target_id == "T50"


async def test_crash_between_customer_and_order_create_gives_one_of_each(tmp_path, registry, memory):
    seed_products("A")
    memory.orders["1001"] = order("1001")
    memory.crash_on_order.add("1001")
    resolved = config(tmp_path, registry)
    with pytest.raises(Crash):
        await run(resolved, tmp_path)
    assert len(memory.customers) == 1 and memory.target_orders == {}
    result, *_ = await run(resolved, tmp_path)
    assert result.counts["created"] == 1
    assert len(memory.customers) == 1 and len(memory.target_orders) == 1


async def test_unknown_sku_fails_that_order_naming_the_sku_others_go_through(tmp_path, registry, memory):
    seed_products("A")
    memory.orders["1001"] = order("1001", lines=[OrderLine(sku="NOPE", name="x", unit_price=Decimal(1)), OrderLine(sku="A", unit_price=Decimal(1))])
    memory.orders["1002"] = order("1002", email="piet@example.com")
    result, *_ = await run(config(tmp_path, registry), tmp_path)
    assert result.counts["created"] == 1 and result.counts["failed"] == 1
    entry = (await audit(tmp_path))["1001"]
    assert entry.action == "failed" and "NOPE" in entry.reason and "A," not in entry.reason


async def test_missing_products_can_be_created(tmp_path, registry, memory):
    memory.orders["1001"] = order("1001", lines=[OrderLine(sku="NEW-1", name="Fresh", unit_price=Decimal("5"), tax_rate=Decimal(9))])
    result, *_ = await run(config(tmp_path, registry, options={"missing_products": "create"}), tmp_path)
    assert result.counts["created"] == 1
    assert [r["sku"] for r in memory.target.values()] == ["NEW-1"]


async def test_company_order_creates_company_debtor_with_contact(tmp_path, registry, memory):
    seed_products("A")
    memory.orders["1001"] = order("1001", company="Bakkerij Jansen BV")
    await run(config(tmp_path, registry), tmp_path)
    (customer,) = memory.customers.values()
    assert customer.kind == "company" and customer.name == "Bakkerij Jansen BV"
    assert customer.contact.full_name == "Jan Jansen"


async def test_existing_debtor_found_by_email_is_updated_not_duplicated(tmp_path, registry, memory):
    seed_products("A")
    memory.customers["C9"] = Customer(kind="person", name="J. Jansen (old)", email="jan@example.com")
    memory.orders["1001"] = order("1001", email="JAN@example.com")
    resolved = config(tmp_path, registry, options={"customer_create_only_fields": ["phone"]})
    await run(resolved, tmp_path)
    assert list(memory.customers) == ["C9"] and memory.customers["C9"].name == "Jan Jansen"
    assert next(iter(memory.target_orders.values())).customer_id == "C9"


async def test_default_debtor_for_orders_without_email(tmp_path, registry, memory):
    seed_products("A")
    memory.orders["1001"] = order("1001", email=None)
    memory.orders["1002"] = order("1002")
    resolved = config(tmp_path, registry, options={"customer": "default_without_email", "default_customer": "D1"})
    await run(resolved, tmp_path)
    by_number = {o.number: o for o in memory.target_orders.values()}
    assert by_number["1001"].customer_id == "D1" and by_number["1002"].customer_id != "D1"


async def test_order_without_email_and_no_default_fails_with_reason(tmp_path, registry, memory):
    seed_products("A")
    memory.orders["1001"] = order("1001", email=None)
    result, *_ = await run(config(tmp_path, registry), tmp_path)
    assert result.counts["failed"] == 1
    assert "default_customer" in (await audit(tmp_path))["1001"].reason


async def test_status_filter_and_require_paid(tmp_path, registry, memory):
    seed_products("A")
    memory.orders["1"] = order("1", status="paid")
    memory.orders["2"] = order("2", status="new", paid=False)
    memory.orders["3"] = order("3", status="completed", paid=False)
    resolved = config(tmp_path, registry, options={"statuses": ["paid", "completed"], "require_paid": True})
    result, *_ = await run(resolved, tmp_path)
    assert result.counts["created"] == 1 and result.counts["skipped"] == 2
    reasons = {k: e.reason for k, e in (await audit(tmp_path)).items()}
    assert "status 'new'" in reasons["2"] and "not paid" in reasons["3"]


async def test_payment_method_missing_from_map_is_a_record_error_naming_it(tmp_path, registry, memory):
    seed_products("A")
    memory.orders["1"] = order("1", payment_method="ideal")
    memory.orders["2"] = order("2", payment_method="bitcoin", email="b@example.com")
    resolved = config(tmp_path, registry, options={"payment_methods": {"ideal": "IDEAL"}, "payment_terms": {"ideal": "14"}})
    result, *_ = await run(resolved, tmp_path)
    assert result.counts["created"] == 1 and result.counts["failed"] == 1
    reason = (await audit(tmp_path))["2"].reason
    assert "'bitcoin'" in reason and "payment_methods" in reason
    (created,) = memory.target_orders.values()
    assert created.payment_method == "IDEAL" and created.payment_terms == "14"


async def test_tax_codes_accounts_shipping_and_discount_lines(tmp_path, registry, memory):
    seed_products("A", "SHIP", "DISC")
    lines = [
        OrderLine(sku="A", unit_price=Decimal("10"), tax_rate=Decimal("21")),
        OrderLine(kind="shipping", name="Verzending", unit_price=Decimal("4.95"), tax_rate=Decimal("21")),
        OrderLine(kind="discount", name="Korting", unit_price=Decimal("-2"), tax_rate=Decimal("9")),
    ]
    memory.orders["1"] = order("1", lines=lines, country="BE")
    options = {
        "tax_codes": {"NL": {"21": "H21"}, "BE": {"21": "BE21", "default": "BEL"}},
        "revenue_accounts": {"NL": "8000", "BE": "8010"},
        "shipping_sku": "SHIP", "shipping_account": "8100", "discount_sku": "DISC", "cost_centre": "POS",
    }
    result, *_ = await run(config(tmp_path, registry, options=options), tmp_path)
    assert result.counts["created"] == 1, result
    (created,) = memory.target_orders.values()
    product_line, shipping, discount = created.lines
    assert (product_line.tax_code, product_line.account, product_line.cost_centre) == ("BE21", "8010", "POS")
    assert (shipping.sku, shipping.account, shipping.tax_code) == ("SHIP", "8100", "BE21")
    assert (discount.sku, discount.tax_code) == ("DISC", "BEL")


async def test_tax_code_missing_for_country_is_a_record_error(tmp_path, registry, memory):
    seed_products("A")
    memory.orders["1"] = order("1", country="DE")
    result, *_ = await run(config(tmp_path, registry, options={"tax_codes": {"NL": {"21": "H"}}}), tmp_path)
    assert result.counts["failed"] == 1
    assert "'DE'" in (await audit(tmp_path))["1"].reason


async def test_dry_run_writes_nothing_and_plans_every_write(tmp_path, registry, memory):
    seed_products("A")
    memory.customers["C9"] = Customer(kind="person", name="Old Name", email="jan@example.com")
    memory.orders["1001"] = order("1001")
    resolved = config(tmp_path, registry)
    result, engine, _ = await run(resolved, tmp_path, dry_run=True)
    assert result.counts["created"] == 1
    assert memory.target_orders == {} and memory.customers["C9"].name == "Old Name"
    ops = [(p.op, p.entity) for p in engine.plans]
    assert ops == [("update", "customers"), ("create", "orders")]
    assert engine.plans[0].diff["name"] == {"from": "Old Name", "to": "Jan Jansen"}
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    assert await store.runs() == [] and await store.get_cursor("orders") is None
    await store.close()


async def test_mapping_override_applies_before_the_target(tmp_path, registry, memory):
    seed_products("A")
    memory.orders["1001"] = order("1001")
    rules = [{"field": "reference", "from": "number", "transforms": [["prefix", "POS-"]]}]
    await run(config(tmp_path, registry, map=rules), tmp_path)
    assert next(iter(memory.target_orders.values())).reference == "POS-1001"


def test_check_rejects_unsupported_document_and_missing_target_setting(tmp_path, registry):
    with pytest.raises(ConfigError) as exc:
        config(tmp_path, registry, options={"document": "quote"}, target_settings={})
    problems = "\n".join(exc.value.problems)
    assert 'flows.orders.options.document: connector "memtarget" (connection "dst") cannot create \'quote\' (it creates: invoice, order)' in problems
    assert "flows.orders.target_settings.branch_id: required setting is missing" in problems


def test_check_rejects_default_customer_policy_without_default(tmp_path, registry):
    with pytest.raises(ConfigError) as exc:
        config(tmp_path, registry, options={"customer": "default"})
    assert any("default_customer" in p for p in exc.value.problems)


def test_check_rejects_bad_mapping_rules(tmp_path, registry):
    rules = [{"field": "nonsense", "from": "number"}, {"field": "reference", "from": "number", "transforms": ["shout"]}]
    with pytest.raises(ConfigError) as exc:
        config(tmp_path, registry, map=rules)
    problems = "\n".join(exc.value.problems)
    assert "flows.orders.map[0].field: Order has no field 'nonsense'" in problems
    assert "flows.orders.map[1].transforms[0]: no transform 'shout'" in problems


# ---------------------------------------------------------------- customers and invoices flows


def flow_config(tmp_path, registry, entity, options=None, **flow):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "memsource"}, "dst": {"connector": "memtarget"}},
        "flows": {entity: {"source": "src", "target": "dst", "entity": entity, "interval": "1m", "options": options or {}, **flow}},
    }
    return resolve(Config(**raw), registry, tmp_path / "x.toml")


async def run_flow(resolved, tmp_path, name):
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0)
    try:
        return await engine.run_flow(name)
    finally:
        await engine.aclose()
        await store.close()


async def test_customers_flow_by_email_with_tax_code_and_account_per_country(tmp_path, registry, memory):
    nl = Address(street="Kerkstraat", house_number="1", city="Utrecht", country="NL")
    de = Address(street="Hauptstr.", house_number="2", city="Köln", country="DE")
    memory.source_customers["a@example.com"] = Customer(kind="company", name="A BV", email="a@example.com", billing_address=nl, contact=Contact(first_name="Ann"))
    memory.source_customers["b@example.com"] = Customer(kind="person", name="Bert", email="b@example.com", billing_address=de)
    memory.customers["C1"] = Customer(kind="company", name="A BV (old)", email="a@example.com")
    options = {"tax_codes": {"NL": "NL-VAT", "default": "EU"}, "revenue_accounts": {"NL": "8000"}}
    resolved = flow_config(tmp_path, registry, "customers", options)
    result = await run_flow(resolved, tmp_path, "customers")
    # A is found by e-mail and updated; B's country has no revenue account: a record error naming it
    assert result.counts["updated"] == 1 and result.counts["failed"] == 1, result
    assert memory.customers["C1"].name == "A BV" and memory.customers["C1"].tax_code == "NL-VAT"
    assert memory.customers["C1"].revenue_account == "8000"
    assert len(memory.customers) == 1
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    (failed,) = [e for e in await store.audit(flow="customers") if e.action == "failed"]
    await store.close()
    assert "'DE'" in failed.reason and "revenue_accounts" in failed.reason


async def test_invoices_flow_from_paid_orders(tmp_path, registry, memory):
    seed_products("A")
    memory.orders["1"] = order("1", paid=True)
    memory.orders["2"] = order("2", paid=False, status="new", email="x@example.com")
    options = {"source_entity": "orders", "require_paid": True, "tax_codes": {"default": {"21": "H"}}}
    resolved = flow_config(tmp_path, registry, "invoices", options)
    result = await run_flow(resolved, tmp_path, "invoices")
    assert result.counts["created"] == 1 and result.counts["skipped"] == 1, result
    (invoice,) = memory.target_invoices.values()
    assert invoice.number == "1" and invoice.lines[0].tax_code == "H" and invoice.customer_id in memory.customers
    again = await run_flow(resolved, tmp_path, "invoices")
    assert again.counts["created"] == 0 and len(memory.target_invoices) == 1


def test_invoices_flow_needs_a_source_that_reads_the_source_entity(tmp_path, registry):
    with pytest.raises(ConfigError) as exc:
        flow_config(tmp_path, registry, "invoices")
    assert any("cannot read invoices" in p for p in exc.value.problems)


def engraving_order(price: str = "0"):
    return order(
        "W-77",
        lines=(
            OrderLine(sku="A", name="Product A", quantity=Decimal(1), unit_price=Decimal("12.10"), tax_rate=Decimal(21)),
            OrderLine(sku=None, name="Gravure: Jan", quantity=Decimal(1), unit_price=Decimal(price), tax_rate=Decimal(21)),
        ),
    )


async def test_a_custom_row_without_sku_is_a_text_line_by_default_not_a_failed_order(tmp_path, registry, memory):
    """Real CCV orders carry rows without product_number (an engraving): before, the whole order failed."""
    seed_products("A")
    memory.orders["W-77"] = engraving_order()
    result, _, _ = await run(config(tmp_path, registry), tmp_path)
    assert result.counts["created"] == 1 and result.counts["failed"] == 0
    (created,) = memory.target_orders.values()
    assert [(line.kind, line.sku) for line in created.lines] == [("product", "A"), ("text", None)]


async def test_a_custom_row_with_an_amount_goes_to_the_fallback_article_or_fails_naming_the_setting(tmp_path, registry, memory):
    seed_products("A", "MISC")
    memory.orders["W-77"] = engraving_order("7.50")
    result, _, _ = await run(config(tmp_path, registry), tmp_path)  # text (default): money would be lost
    assert result.counts["failed"] == 1
    assert "line 2 (Gravure: Jan) has no SKU and an amount of 7.50" in (await audit(tmp_path))["W-77"].reason
    result, _, _ = await run(
        config(tmp_path / "b", registry, options={"lines_without_sku": "article", "fallback_sku": "MISC"}), tmp_path / "b"
    )
    assert result.counts["created"] == 1
    (created,) = memory.target_orders.values()
    assert [line.sku for line in created.lines] == ["A", "MISC"]


def test_lines_without_sku_article_needs_a_fallback_sku():
    from apicenterd.flows import OrderOptions

    with pytest.raises(ValueError, match="needs fallback_sku"):
        OrderOptions(lines_without_sku="article")
    from apicenterd.errors import RecordError
    from apicenterd.orders import lines_without_sku

    with pytest.raises(RecordError, match="line\\(s\\) 2 have no SKU"):
        lines_without_sku(engraving_order(), OrderOptions(lines_without_sku="fail"))

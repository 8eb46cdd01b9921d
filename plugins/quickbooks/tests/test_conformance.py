"""Conformance with Intuit's XSD (shared/api-specs/quickbooks/xsd): every JSON key the connector sends and the
simulator answers is an element (or attribute) of the type the XSD gives it, and every simple value has the
XSD's type. QuickBooks JSON uses the XSD's element names as keys, references as ``{"value", "name"}``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from decimal import Decimal
from functools import cache
from typing import Any

import pytest
from apicenterd_quickbooks import QuickBooksConnector, mapping
from apicenterd_quickbooks.connector import OrderSettings, document_body

from apicenterd import Address, Contact, Customer, DocumentRequest, Entity, Found, Order, OrderLine, Product
from apicenterd.testing import connect

XS = "{http://www.w3.org/2001/XMLSchema}"
pytestmark = pytest.mark.anyio
# attributes of IntuitEntity / the JSON envelope that are not elements
JSON_EXTRAS = {"sparse", "domain", "status"}


@cache
def _types(xsd_dir: str) -> tuple[dict[str, dict[str, str]], dict[str, str | None]]:
    """complexType name -> {element/attribute name: type name}, with extension bases merged; and base of each type."""
    fields: dict[str, dict[str, str]] = {}
    bases: dict[str, str | None] = {}
    for name in ("IntuitBaseTypes.xsd", "IntuitNamesTypes.xsd", "Finance.xsd", "IntuitRestServiceDef.xsd"):
        root = ET.parse(f"{xsd_dir}/{name}").getroot()  # noqa: S314 - the project's own spec files
        for ctype in root.iter(f"{XS}complexType"):
            type_name = ctype.get("name")
            if not type_name:
                continue
            ext = ctype.find(f".//{XS}extension")
            bases[type_name] = ext.get("base") if ext is not None else None
            own: dict[str, str] = {}
            for el in ctype.iter(f"{XS}element"):
                if el.get("name"):
                    own[el.get("name", "")] = el.get("type", "")
                elif el.get("ref"):
                    own[el.get("ref", "")] = el.get("ref", "")
            for attr in ctype.iter(f"{XS}attribute"):
                if attr.get("name"):
                    own[attr.get("name", "")] = attr.get("type", "xs:string")
            fields[type_name] = own
    return fields, bases


def _all_fields(xsd_dir: str, type_name: str) -> dict[str, str]:
    fields, bases = _types(xsd_dir)
    out: dict[str, str] = {}
    current: str | None = type_name
    while current:
        out = {**fields.get(current, {}), **out}
        current = bases.get(current)
    return out


def check(xsd_dir: str, type_name: str, obj: Any, path: str = "") -> list[str]:
    """Problems of ``obj`` against complexType ``type_name``."""
    problems: list[str] = []
    fields, _ = _types(xsd_dir)
    if type_name.endswith("ReferenceType") or type_name == "ReferenceType":
        if not isinstance(obj, dict) or "value" not in obj or set(obj) - {"value", "name", "type"}:
            problems.append(f"{path}: a reference must be {{value[, name]}}, got {obj!r}")
        return problems
    allowed = _all_fields(xsd_dir, type_name)
    if not isinstance(obj, dict):
        return [f"{path}: expected an object of {type_name}, got {type(obj).__name__}"]
    for key, value in obj.items():
        where = f"{path}.{key}" if path else key
        if key in JSON_EXTRAS:
            continue
        if key not in allowed:
            problems.append(f"{where}: not an element of {type_name}")
            continue
        child_type = allowed[key].split(":")[-1]
        items = value if isinstance(value, list) else [value]
        for n, item in enumerate(items):
            here = f"{where}[{n}]" if isinstance(value, list) else where
            if child_type in fields:
                problems += check(xsd_dir, child_type, item, here)
            elif child_type == "decimal" and not isinstance(item, (Decimal, int, float)):
                problems.append(f"{here}: xs:decimal expected, got {item!r}")
            elif child_type == "boolean" and not isinstance(item, bool):
                problems.append(f"{here}: xs:boolean expected, got {item!r}")
    return problems


@pytest.fixture
def xsd(spec) -> str:
    return str(spec("xsd", "Finance.xsd").parent)


def test_the_checker_refuses_what_the_xsd_does_not_have(xsd):
    assert check(xsd, "Item", {"Name": "x", "Skuu": "y"}) == ["Skuu: not an element of Item"]
    assert check(xsd, "Item", {"UnitPrice": "ten"})[0].startswith("UnitPrice: xs:decimal")
    assert check(xsd, "Item", {"IncomeAccountRef": "1"})[0].startswith("IncomeAccountRef: a reference")
    assert check(xsd, "Item", {"Name": "x", "Sku": "y", "IncomeAccountRef": {"value": "1"}, "Active": True}) == []


def test_fixtures_pass_the_checker(xsd, fixture_json):
    """The checker itself against Intuit's payloads: what Intuit sends passes."""
    for name, entity in (("item.xml", "Item"), ("customer.xml", "Customer")):
        body = fixture_json(name)
        body.pop("time", None)
        assert check(xsd, entity, _typed(body)) == []


def _typed(obj: Any) -> Any:
    """XML text values as JSON values (numbers for the XSD's decimals come as numbers in JSON)."""
    if isinstance(obj, dict):
        return {k: _typed(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_typed(v) for v in obj]
    if isinstance(obj, str):
        try:
            return Decimal(obj)
        except ArithmeticError:
            return obj
    return obj


def test_item_and_customer_bodies_the_connector_sends(xsd):
    product = Product(sku="S1", name="Shirt", description="d", price_excl_tax=Decimal("9.99"), purchase_price=Decimal(4), currency="USD")
    assert check(xsd, "Item", {**mapping.item_fields(product, None), "IncomeAccountRef": {"value": "1"}, "Type": "NonInventory"}) == []
    company = Customer(
        kind="company",
        name="Acme",
        email="a@acme.test",
        phone="+1 555",
        vat_number="US123",
        contact=Contact(first_name="Ann", last_name="Lee"),
        billing_address=Address(street="Main St", house_number="1", postcode="94043", city="MV", region="CA", country="US"),
        tax_code="5",
        payment_terms="3",
        payment_method="2",
        classification="7",
    )
    body = mapping.customer_fields(company, None)
    assert check(xsd, "Customer", body) == []
    assert {k: body[k] for k in ("DefaultTaxCodeRef", "SalesTermRef", "PaymentMethodRef", "CustomerTypeRef")} == {
        "DefaultTaxCodeRef": {"value": "5"},
        "SalesTermRef": {"value": "3"},
        "PaymentMethodRef": {"value": "2"},
        "CustomerTypeRef": {"value": "7"},
    }
    back = mapping.api_to_customer({**body, "Id": "9"})  # read back as written: a second run compares equal
    assert (back.tax_code, back.payment_terms, back.payment_method, back.classification) == ("5", "3", "2", "7")
    assert set(mapping.customer_fields(company, frozenset({"tax_code"}))) == {"DefaultTaxCodeRef"}  # sparse: only what changed
    assert check(xsd, "Customer", mapping.customer_fields(Customer(kind="person", name="Jan Jansen"), None)) == []


@pytest.mark.parametrize("entity", ["Invoice", "SalesReceipt", "Estimate"])
def test_document_bodies_the_connector_sends(xsd, entity):
    order = Order(
        number="1001",
        status="paid",
        created_at=datetime(2026, 5, 1, tzinfo=timezone.utc),
        total=Decimal("12.10"),
        paid=True,
        payment_method="cash",
        payment_terms="30d",
        currency="USD",
        note="n",
        custom_fields={"delivery_method": "post"},
        lines=(OrderLine(sku="S1", name="Shirt", unit_price=Decimal("12.10"), tax_rate=Decimal(21), tax_code="TAX", account="41"),),
    )
    request = DocumentRequest(record=order, kind="order", customer=Found(id="5", record=None), articles={"S1": Found(id="7", record=None)})
    settings = OrderSettings(payment_methods={"cash": "1"}, payment_terms={"30d": "3"}, deposit_account_id="35", ship_methods={"post": "9"})
    body = document_body(order, request, settings, entity)
    assert check(xsd, entity, body) == []
    assert ("ShipMethodRef" in body) is (entity != "Estimate")


async def test_the_batch_requests_create_many_sends(xsd, app, sim, settings):
    """Every operation of the item, customer and document batches (BatchItemRequest, IntuitRestServiceDef.xsd)."""
    sent: list[dict] = []
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        original = conn.client.batch

        async def spy(operations, *, what):
            sent.extend(operations)
            return await original(operations, what=what)

        conn.client.batch = spy
        await conn.sink(Entity.PRODUCTS).create_many([Product(sku="B1", name="Bolt", price_excl_tax=Decimal(1), currency="USD")])
        person = Customer(kind="person", name="Jan Jansen", email="j@x.test")
        await conn.sink(Entity.CUSTOMERS).create_many([person])
        order = Order(
            number="B-1",
            status="paid",
            paid=True,
            created_at=datetime(2026, 5, 1, tzinfo=timezone.utc),
            total=Decimal(1),
            currency="USD",
            lines=(OrderLine(sku="B1", name="Bolt", unit_price=Decimal(1), prices_include_tax=False),),
        )
        requests = [
            DocumentRequest(
                record=order.model_copy(update={"paid": paid}),
                kind=kind,
                customer=Found(id="1", record=None),
                articles={"B1": Found(id="1", record=None)},
            )  # fmt: skip
            for paid, kind in ((True, "order"), (False, "order"), (False, "quote"))
        ]
        await conn.document_sink(Entity.ORDERS).create_many(requests)
    assert [sorted(op) for op in sent] == [
        ["Item", "bId", "operation"],
        ["Customer", "bId", "operation"],
        ["SalesReceipt", "bId", "operation"],
        ["Invoice", "bId", "operation"],
        ["Estimate", "bId", "operation"],
    ]
    for op in sent:  # the envelope's own fields, and the entity (an IntuitObject of the substitution group) by its type
        entity = next(k for k in op if k not in ("bId", "operation"))
        assert check(xsd, "BatchItemRequest", {k: op[k] for k in ("bId", "operation")}) == [], op
        assert check(xsd, entity, op[entity]) == [], op


async def test_every_object_the_simulator_answers_conforms(xsd, app, sim, settings):
    async with connect(QuickBooksConnector, settings, app=app) as conn:
        item = await conn.sink(Entity.PRODUCTS).create(Product(sku="S1", name="Shirt", price_excl_tax=Decimal(5), currency="USD"))
        customer = await conn.sink(Entity.CUSTOMERS).create(Customer(kind="person", name="Jan Jansen", email="j@x.test"))
        order = Order(
            number="1",
            status="new",
            created_at=datetime(2026, 5, 1, tzinfo=timezone.utc),
            total=Decimal(5),
            currency="USD",
            lines=(OrderLine(sku="S1", name="Shirt", unit_price=Decimal(5), prices_include_tax=False),),
        )
        await conn.document_sink(Entity.ORDERS).create(
            DocumentRequest(
                record=order, kind="order", customer=Found(id=customer, record=None), articles={"S1": Found(id=item, record=None)}
            )
        )
    for entity, coll in sim.store.items():
        for obj in coll.values():
            assert check(xsd, entity, obj) == [], (entity, obj)

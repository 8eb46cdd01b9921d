"""The simulator and the connector's requests checked against Visma's swagger (the 2017 v6.11 file in
shared/api-specs): routes, query parameters, request bodies (every property a property of the
operation's model, every value of its type) and the simulator's answers (every property one of
the response model's). What the 2017 file lacks and the 9.66 spec adds (``pageNumber``/``pageSize``,
the per-record ``metadata``) is allowed by name, nothing else."""

from __future__ import annotations

import json
import re
import runpy
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from apicenterd_visma_net import VismaNetConnector
from apicenterd_visma_net.connector import OrderSettings

from apicenterd import Address, Attribute, Customer, DocumentRequest, Entity, Found, JournalEntry, JournalLine, Order, OrderLine, Product
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio

BASE = "/API/controller/api/v1"  # the swagger's basePath /API + its paths
NEWER_QUERY = {"pageNumber", "pageSize"}  # 9.66: "Pagination parameter" on every list
NEWER_RESPONSE = {"metadata"}  # 9.66: totalCount and maxPageSize on each record of a page
SPEC_966 = runpy.run_path(str(Path(__file__).with_name("spec_9_66.py")))
CUSTOM = {"customer_custom_fields": {"segment": "SEGMENT"}, "item_custom_fields": {"brand": "BRAND"}, "item_attributes": {"Colour": "COLOR"}}
"""What was checked in the 9.66 spec (a hand-written list with its source; the spec is not copied)."""


class Recorder:
    """ASGI middleware keeping (method, path, query, body) of every call to the API."""

    def __init__(self, app: Any):
        self.app, self.calls = app, []
        self.state = app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/connect"):
            return await self.app(scope, receive, send)
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        self.calls.append((scope["method"], scope["path"], scope["query_string"].decode(), body))

        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


def _operation(swagger: dict, method: str, path: str) -> dict | None:
    path = path[len(swagger["basePath"]) :] if path.startswith(swagger["basePath"] + "/") else path
    for template, ops in swagger["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "/?$"
        if re.match(pattern, path, re.IGNORECASE) and method.lower() in ops:
            return ops[method.lower()]
    return None


def _problems(value: Any, schema: dict, defs: dict, where: str, model: str = "") -> list[str]:
    """Where ``value`` is not of ``schema``: unknown properties, wrong types, values outside an enum.
    A property the 2017 model lacks passes when the 9.66 spec's model of the same name has it."""
    if "$ref" in schema:
        model = schema["$ref"].rsplit("/", 1)[-1]
        schema = defs[model]
    if value is None:
        return []  # .NET models: every property may be null
    kind = schema.get("type") or ("object" if "properties" in schema else None)
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} is not one of {schema['enum']}"]
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        props = schema.get("properties", {})
        out = []
        newer = SPEC_966["SCHEMAS"].get(model, {}).get("properties", ())
        for key, item in value.items():
            if key in props:
                out += _problems(item, props[key], defs, f"{where}.{key}")
            elif key not in newer:
                out.append(f"{where}.{key}: not a property of the model")
        return out
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array"]
        return [p for n, item in enumerate(value) for p in _problems(item, schema.get("items", {}), defs, f"{where}[{n}]", model)]
    checks = {
        "string": lambda v: isinstance(v, str),
        "number": lambda v: isinstance(v, (int, float, Decimal)) and not isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    if kind in checks and not checks[kind](value):
        return [f"{where}: {value!r} is not a {kind}"]
    if kind == "string" and schema.get("format") == "date-time":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return [f"{where}: {value!r} is not a date-time"]
    return []


def _check_call(swagger: dict, method: str, path: str, query: str, body: bytes) -> list[str]:
    spec_path = BASE + path[len("/v1") :] if path.startswith("/v1/") else path
    op = _operation(swagger, method, spec_path)
    if op is None:
        return [f"{method} {spec_path}: not in the swagger"]
    params = {p["name"]: p for p in op.get("parameters", [])}
    out = [
        f"{method} {spec_path}: query parameter {name!r} is not the operation's"
        for name, _ in parse_qsl(query)
        if name not in params and name not in NEWER_QUERY
    ]
    body_param = next((p for p in params.values() if p["in"] == "body"), None)
    if body:
        if body_param is None:
            out.append(f"{method} {spec_path}: sends a body the operation does not take")
        else:
            out += _problems(json.loads(body, parse_float=Decimal), body_param["schema"], swagger["definitions"], f"{method} {spec_path}")
    return out


async def test_every_simulated_route_is_in_the_swagger(swagger):
    app = VismaNetConnector.simulator()
    for mount in app.routes:
        if getattr(mount, "path", "") != BASE:
            continue
        for route in mount.routes:
            for method in route.methods - {"HEAD"}:
                assert _operation(swagger, method, BASE + route.path) is not None, f"{method} {route.path} is not in the swagger"


async def _drive(conn: Any, sim: Any) -> None:
    """Every kind of request the connector sends."""
    customer = Customer(
        kind="company", name="Fjord AS", email="post@fjord.no", vat_number="NO1", coc_number="999",
        billing_address=Address(street="Gate", house_number="1", postcode="0154", city="Oslo", country="NO"),
        tax_code="NO-DOM", payment_terms="30D", currency="NOK", revenue_account="3000", payment_method="CARD",
        classification="RETAIL", custom_fields={"segment": "B2B", "unmapped": "x"},
    )  # fmt: skip
    customer_id = await conn.create(Entity.CUSTOMERS, conn.normalize(Entity.CUSTOMERS, customer))
    await conn.find(Entity.CUSTOMERS, "post@fjord.no")
    await conn.find(Entity.CUSTOMERS, customer_id)
    await conn.update(Entity.CUSTOMERS, customer_id, customer, frozenset(conn.sink(Entity.CUSTOMERS).written_fields))
    product = Product(
        sku="C-1", name="Conformance", price_excl_tax=Decimal("9.99"), tax_rate=Decimal(21), currency="EUR",
        attributes=(Attribute(name="Colour", value="Red"),), custom_fields={"brand": "Acme"}, item_group="GOODS",
    )  # fmt: skip
    item = await conn.create(Entity.PRODUCTS, conn.normalize(Entity.PRODUCTS, product))
    await conn.find(Entity.PRODUCTS, item)
    await conn.update(Entity.PRODUCTS, item, product, frozenset({"name", "price_excl_tax", "active", "tax_rate", "attributes", "custom_fields"}))
    order = Order(
        number="EA-1", status="paid", created_at=datetime(2024, 5, 1, 12, tzinfo=timezone.utc), total=Decimal("12.09"),
        shipping_address=Address(street="Vei 2", postcode="5003", city="Bergen", country="NO"), payment_terms="30D",
        payment_method="CARD",
        lines=(OrderLine(sku="C-1", name="A line whose text is longer than thirty characters", unit_price=Decimal("12.09"), tax_rate=Decimal(21), discount=Decimal(1), tax_code="1", account="3000"),),
    )  # fmt: skip
    sink = conn.document_sink(Entity.ORDERS)
    for kind in ("order", "invoice"):
        settings = OrderSettings(order_type="SO", branch="1", warehouse="MAIN", ship_via={"default": "POST"}, shipping_terms={"default": "FCA"})
        record = order.model_copy(update={"number": f"EA-{kind}"})
        await sink.create(DocumentRequest(record, kind, Found(id=customer_id), {"C-1": Found(id=item)}, settings))
    await sink.find("EA-nothing")
    entry = JournalEntry(
        number="J-1", entry_date=date(2024, 5, 31),
        lines=(JournalLine(account="1510", debit=Decimal(10)), JournalLine(account="3000", credit=Decimal(10))),
    )  # fmt: skip
    await conn.create(Entity.JOURNAL, entry)
    await conn.find(Entity.JOURNAL, "J-1")
    for entity in (Entity.CUSTOMERS, Entity.PRODUCTS, Entity.ORDERS, Entity.STOCK):
        changes = [c async for c in conn.read(entity, None)]
        if entity is not Entity.STOCK:
            [c async for c in conn.read(entity, changes[-1].cursor)]


async def test_every_request_the_connector_sends_is_in_the_swagger(swagger, settings):
    app = Recorder(VismaNetConnector.simulator(seed=3, records=2))
    async with connect(VismaNetConnector, {**settings, "branch": "1", **CUSTOM}, app=app) as conn:
        await _drive(conn, app.state.sim)
    problems = [p for call in app.calls for p in _check_call(swagger, *call)]
    assert not problems, "\n".join(problems)
    sent = {(m, re.sub(r"/[^/]*\d[^/]*$", "/{id}", p)) for m, p, _, _ in app.calls}
    assert {("POST", "/v1/customer"), ("PUT", "/v1/customer/{id}"), ("POST", "/v1/inventory"), ("PUT", "/v1/inventory/{id}"),
            ("POST", "/v1/salesorder"), ("POST", "/v1/customerinvoice"), ("POST", "/v1/journaltransaction"),
            ("GET", "/v1/inventorysummary/{id}")} <= sent  # fmt: skip


def test_the_conformance_check_catches_a_wrong_field_and_a_bare_value(swagger):
    good = json.dumps({"name": {"value": "A"}}).encode()
    assert _check_call(swagger, "POST", "/v1/customer", "", good) == []
    assert _check_call(swagger, "POST", "/v1/customer", "", json.dumps({"Name": {"value": "A"}}).encode())
    assert _check_call(swagger, "POST", "/v1/customer", "", json.dumps({"name": "A"}).encode())
    assert _check_call(swagger, "GET", "/v1/customer", "emailAddress=x", b"")
    assert _check_call(swagger, "GET", "/v1/nothing", "", b"")


async def test_simulator_answers_have_only_the_swagger_models_properties(swagger, settings):
    app = VismaNetConnector.simulator(seed=3, records=2)
    sim = app.state.sim
    async with connect(VismaNetConnector, {**settings, **CUSTOM}, app=Recorder(app)) as conn:
        await _drive(conn, sim)
        for path in ("customer", "inventory", "salesorder", "customerinvoice", "journaltransaction", "inventorysummary/VN-00001"):
            body = await conn.client.get(path, what=path)
            op = _operation(swagger, "GET", f"{BASE}/{path}")
            assert op is not None
            schema = op["responses"]["200"]["schema"]
            items = body if isinstance(body, list) else [body]
            assert items, path
            for item in items:
                item = {k: v for k, v in item.items() if k not in NEWER_RESPONSE}
                problems = _problems(item, schema.get("items", schema), swagger["definitions"], path)
                assert not problems, "\n".join(problems)
        for number in sim.customers:
            one = await conn.client.get(f"customer/{number}", what="one")
            assert not _problems(one, {"$ref": "#/definitions/CustomerDto"}, swagger["definitions"], "customer")


def _collection(method: str, path: str) -> str:
    """The collection a write goes to: POST ``/v1/customer`` and PUT ``/v1/customer/{number}`` → ``customer``."""
    parts = path.strip("/").split("/")
    return parts[-1] if method == "POST" else parts[-2]


def _problems_966(path: str, body: dict, method: str = "POST") -> list[str]:
    """Where a write body to a collection the 9.66 list covers is not of its 9.66 write model:
    properties it lacks, required ones missing (the lines and the nested models read too)."""
    model = SPEC_966["PATHS"].get(_collection(method, path))
    if model is None:
        return []
    out = []
    todo = [(model, body, path)]
    while todo:
        name, value, where = todo.pop()
        if not isinstance(value, dict):
            out.append(f"{where}: expected an object of the 9.66 {name}")
            continue
        spec = SPEC_966["SCHEMAS"][name]
        out += [f"{where}.{k}: not in the 9.66 {name}" for k in value if k not in spec["properties"]]
        out += [f"{where}: the 9.66 {name} requires {k}" for k in spec["required"] if k not in value]
        if name in SPEC_966["LINES"]:
            field, line_model = SPEC_966["LINES"][name]
            todo += [(line_model, line, f"{where}.{field}[{n}]") for n, line in enumerate(value.get(field) or [])]
        for field, nested in SPEC_966["NESTED"].get(name, {}).items():
            inner = value.get(field)
            if isinstance(inner, list):
                todo += [(nested, row, f"{where}.{field}[{n}]") for n, row in enumerate(inner)]
            elif inner is not None:
                todo.append((nested, inner.get("value") if isinstance(inner, dict) and set(inner) == {"value"} else inner, f"{where}.{field}"))
    return out


async def test_every_body_the_connector_posts_is_of_the_966_write_model(settings):
    app = Recorder(VismaNetConnector.simulator(seed=3, records=2))
    async with connect(VismaNetConnector, {**settings, "branch": "1", **CUSTOM}, app=app) as conn:
        await _drive(conn, app.state.sim)
    posts = [(path, json.loads(body)) for method, path, _, body in app.calls if method == "POST"]
    checked = {path.rsplit("/", 1)[-1] for path, _ in posts} & set(SPEC_966["PATHS"])
    assert checked == set(SPEC_966["PATHS"]), checked
    writes = [(m, path, json.loads(body)) for m, path, _, body in app.calls if m in ("POST", "PUT")]
    assert {_collection(m, path) for m, path, _ in writes if m == "PUT"} >= {"customer", "inventory"}
    problems = [p for m, path, body in writes for p in _problems_966(path, body, m)]
    assert not problems, "\n".join(problems)
    customer = next(body for path, body in posts if path.endswith("/customer"))
    assert customer["glAccounts"] == {"value": {"salesAccount": {"value": "3000"}}}
    assert customer["defaultPaymentMethod"]["value"]["paymentMethodId"] == {"value": "CARD"}
    assert customer["customerClassId"] == {"value": "RETAIL"} and customer["vatZoneId"] == {"value": "NO-DOM"}
    assert customer["attributeLines"] == [{"attributeId": {"value": "SEGMENT"}, "attributeValue": {"value": "B2B"}}]  # "unmapped" not sent
    invoice = next(body for path, body in posts if path.endswith("/customerinvoice"))
    length = SPEC_966["INVOICE_LINE_TEXT_LENGTH"]
    assert all(len(line["description"]["value"]) <= length for line in invoice["invoiceLines"])
    assert invoice["invoiceLines"][0]["description"]["value"] == "A line whose text is longer than thirty characters"[:length]
    journal = next(body for path, body in posts if path.endswith("/journaltransaction"))
    mandatory = SPEC_966["MANDATORY"]["JournalTransactionLineDto"]
    assert all(all(line.get(k, {}).get("value") for k in mandatory) for line in journal["journalTransactionLines"])
    item = next(body for path, body in posts if path.endswith("/inventory"))
    assert {"inventoryNumber", "description", "attributeLines"} <= set(item)  # the screen's mandatory id and description
    assert {"attributeId": {"value": "BRAND"}, "attributeValue": {"value": "Acme"}} in item["attributeLines"]
    assert item["itemClass"] == {"value": "GOODS"}


def test_the_966_check_catches_a_missing_required_field_and_an_unknown_one():
    assert _problems_966("/v1/salesorder", {"lines": [{"inventoryId": {"value": "A"}}]}) == [
        "/v1/salesorder: the 9.66 SalesOrderUpdateDto requires orderType",
        "/v1/salesorder.lines[0]: the 9.66 SalesOrderLineUpdateDto requires inventoryNumber",
    ]
    assert _problems_966("/v1/journaltransaction", {"journalTransactionLines": [{"debitAmount": {"value": 1}}]}) == [
        "/v1/journaltransaction.journalTransactionLines[0].debitAmount: not in the 9.66 JournalTransactionLineUpdateDto"
    ]
    assert _problems_966("/v1/customer/C1", {"glAccounts": {"value": {"revenueAccount": {"value": "3000"}}}}, "PUT") == [
        "/v1/customer/C1.glAccounts.revenueAccount: not in the 9.66 CustomerGlAccountsUpdateDto"
    ]
    assert _problems_966("/v1/customerinvoice", {"invoiceLines": [{"unitPrice": {"value": 1}}]}) == [
        "/v1/customerinvoice.invoiceLines[0].unitPrice: not in the 9.66 CustomerInvoiceLinesUpdateDto"
    ]


@pytest.mark.parametrize("order_type", ["S", "SOX", "S-"])
def test_an_order_type_is_two_alphanumeric_characters_as_in_966(order_type):
    assert SPEC_966["ORDER_TYPE_LENGTH"] == 2
    with pytest.raises(ValueError, match="order_type"):
        OrderSettings(order_type=order_type)
